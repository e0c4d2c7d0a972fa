"""The ``sfbd`` command: :mod:`sfbd.cli.main` (subcommands), ``status`` and ``demo``.

Kept free of imports so that the console script (:mod:`sfbd.cli.entry`) installs its signal
handlers before torch is imported.
"""
