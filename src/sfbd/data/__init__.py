"""Data: clean sources, array files, and the noisy/clean problem of a run."""

from sfbd.data.problem import Problem, corrupt, load_problem
from sfbd.data.sources import BUILTINS, builtin, load_array, to_data_scale

__all__ = [
    "BUILTINS",
    "Problem",
    "builtin",
    "corrupt",
    "load_array",
    "load_problem",
    "to_data_scale",
]
