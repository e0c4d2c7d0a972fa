"""Shared test set-up: converted-input caches go to a temporary folder, never the user's."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True, scope="session")
def _private_data_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """SFBD_CACHE for the whole session (subprocesses inherit it): a fresh temporary folder."""
    os.environ.setdefault("SFBD_CACHE", str(tmp_path_factory.mktemp("sfbd-cache")))
