"""Data: clean sources, array files, and the noisy/clean problem of a run."""

from sfbd.data.problem import Problem, corrupt, load_pretrain, load_problem, uses_pretrain
from sfbd.data.sources import BUILTINS, builtin, builtin_shape, load_array, to_data_scale

__all__ = [
    "BUILTINS",
    "Problem",
    "builtin",
    "builtin_shape",
    "corrupt",
    "load_array",
    "load_pretrain",
    "load_problem",
    "to_data_scale",
    "uses_pretrain",
]
