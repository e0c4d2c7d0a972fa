"""Loading plug-ins: sfbd's own, and a user's from files or modules named in ``plugins``.

sfbd's own plug-ins are the modules of its plug-in packages (:data:`PACKAGES`): every module
in ``sfbd/noise/`` and ``sfbd/nets/`` is imported, so a new noise model or network is one new
file there and no list to edit. Methods and samplers register when their packages import.

A user's plug-in is a ``.py`` file (or an importable module name) listed in the configuration's
``plugins`` key; importing it registers its noise model, network, method or sampler in the
same registries (docs/extending.md). :func:`load` runs before a configuration is checked, so
such a plug-in's keys and names are valid in YAML and ``--set`` like the built-in ones, and
the resolved ``config.yaml`` records the absolute paths so that ``sfbd sample``, ``sfbd
denoise`` and ``sfbd.load`` find them again.

Importing this module imports nothing else of sfbd; :func:`load` imports the registries.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import sys
import zlib
from collections.abc import Sequence
from pathlib import Path

from sfbd.errors import ConfigError

#: the packages whose every module is a plug-in (or its helper), imported by :func:`load`
PACKAGES = ("sfbd.noise", "sfbd.nets", "sfbd.methods", "sfbd.diffusion.sample")

_loaded: set[str] = set()


def _import_package(name: str) -> None:
    pkg = importlib.import_module(name)
    for info in pkgutil.iter_modules(getattr(pkg, "__path__", [])):
        importlib.import_module(f"{name}.{info.name}")


def resolve(entry: str) -> str:
    """A ``plugins`` entry as it is recorded: a file's absolute path, or a module name."""
    if entry.endswith(".py"):
        return str(Path(entry).expanduser().resolve())
    return entry


def _import_entry(entry: str) -> None:
    if entry.endswith(".py"):
        path = Path(entry)
        if not path.is_file():
            raise ConfigError(f"plugins: file {entry!r} not found; give a .py file or a module")
        name = f"sfbd_plugin_{path.stem}_{zlib.crc32(str(path).encode()):08x}"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception:
            del sys.modules[name]
            raise
        return
    try:
        importlib.import_module(entry)
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"plugins: cannot import module {entry!r} ({exc}); give a .py file or an "
            "importable module name"
        ) from None


def load(extra: Sequence[str] = ()) -> None:
    """Import sfbd's plug-in packages, then each ``extra`` entry (resolved, once each)."""
    for name in PACKAGES:
        if name not in _loaded:
            _import_package(name)
            _loaded.add(name)
    for entry in extra:
        key = resolve(entry)
        if key not in _loaded:
            _import_entry(key)
            _loaded.add(key)
