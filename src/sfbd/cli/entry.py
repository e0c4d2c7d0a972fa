"""The ``sfbd`` console script: signal handlers first, then the command line
(:mod:`sfbd.cli.main`)."""

from __future__ import annotations


def main() -> int:
    from sfbd.runtime.interrupt import install_early

    install_early()  # before torch is imported: a preempted start-up still exits 75
    from sfbd.cli.main import main as cli_main

    return cli_main()
