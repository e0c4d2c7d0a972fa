"""``python -m sfbd ...``: the ``sfbd`` command (use this form under ``torchrun -m sfbd``).

Signal handlers go in before anything heavy is imported
(see :func:`sfbd.runtime.interrupt.install_early`).
"""

import sys

from sfbd.runtime.interrupt import install_early

install_early()

from sfbd.cli.main import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
