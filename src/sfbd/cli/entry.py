"""The ``sfbd`` console script and ``python -m sfbd``: signal handlers first, then the command
line (:mod:`sfbd.cli.main`), then the exit (:func:`sfbd.runtime.distributed.leave`)."""

from __future__ import annotations

import sys
import traceback
from typing import NoReturn


def main() -> NoReturn:
    """Run the command line on ``sys.argv`` and exit with its status."""
    from sfbd.runtime.interrupt import install_early

    install_early()  # before torch is imported: a preempted start-up still exits 75
    from sfbd.cli.main import main as cli_main
    from sfbd.runtime import distributed

    try:
        code = cli_main()
    except SystemExit as exc:  # argparse's usage errors and --help
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
    except BaseException:  # an unexpected error: its traceback, then the same exit path
        traceback.print_exc()
        code = 1
    distributed.leave(code)
