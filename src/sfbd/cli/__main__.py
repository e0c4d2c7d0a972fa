"""``python -m sfbd.cli.main ...``: the same as ``python -m sfbd``."""

import sys

from sfbd.runtime.interrupt import install_early

install_early()

from sfbd.cli.main import main  # noqa: E402

sys.exit(main())
