"""Methods, one file each, registered in :data:`METHODS` (see :mod:`sfbd.methods.base`)."""

from sfbd.methods import clean_only, noisy_only, online, oracle, sfbd  # noqa: F401 (register)
from sfbd.methods.base import METHODS, Method, Stage, StageContext

__all__ = ["METHODS", "Method", "Stage", "StageContext"]
