"""Methods, one file each, registered in :data:`METHODS` (see :mod:`sfbd.methods.base`).

The import order below is the registry's order, which messages and help texts list.
"""

# ruff: noqa: I001
from sfbd.methods import sfbd, online, clean_only, noisy_only, oracle, ambient  # noqa: F401
from sfbd.methods.base import METHODS, Method, Stage, StageContext

__all__ = ["METHODS", "Method", "Stage", "StageContext"]
