"""``python -m xpnn``: the ``xpnn`` command (see :mod:`xpnn.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m xpnn"))
