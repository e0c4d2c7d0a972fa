"""The package version, in a module of its own: the modules that record it (the runner, the
API, checkpoints) import it from here, not from the package root, which imports them."""

__version__ = "0.9.1"
