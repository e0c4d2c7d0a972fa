"""``python -m sfbd ...``: the ``sfbd`` command (use this form under ``torchrun -m sfbd``).

Signal handlers go in before anything heavy is imported (see :func:`sfbd.interrupt.install_early`).
"""

import sys

from sfbd.interrupt import install_early

install_early()

from sfbd.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
