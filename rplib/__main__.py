"""``python -m rplib ...`` and ``torchrun ... -m rplib train ...``: the command line of :mod:`rplib.cli`."""

import sys

from rplib.cli import main

if __name__ == "__main__":
    sys.exit(main())
