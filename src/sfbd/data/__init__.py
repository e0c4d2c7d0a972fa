"""Data: clean sources, array files, and the noisy/clean problem of a run.

* :mod:`sfbd.data.sources`: builtin datasets and array files; :mod:`sfbd.data.images`, image
  folders and zips; :mod:`sfbd.data.cache`, their converted .npy caches;
* :mod:`sfbd.data.problem`: the :class:`Problem` (clean, noisy, noise model, references);
* :mod:`sfbd.data.benchmark`: benchmark mode's split and corruption;
* :mod:`sfbd.data.load`: a configuration's problem, in both modes;
* :mod:`sfbd.data.store`: the computed arrays a run stores in ``DIR/data``.
"""

from sfbd.data.load import load_pretrain, load_problem
from sfbd.data.problem import Problem
from sfbd.data.sources import BUILTINS, builtin, builtin_shape, load_array, to_data_scale

__all__ = [
    "BUILTINS",
    "Problem",
    "builtin",
    "builtin_shape",
    "load_array",
    "load_pretrain",
    "load_problem",
    "to_data_scale",
]
