"""``python -m sfbd ...``: the ``sfbd`` command (use this form under ``torchrun -m sfbd``).

Signal handlers go in before anything heavy is imported
(see :func:`sfbd.runtime.interrupt.install_early`), and the process ends through
:func:`sfbd.runtime.distributed.leave` (see :mod:`sfbd.cli.entry`).
"""

from sfbd.cli.entry import main

if __name__ == "__main__":
    main()
