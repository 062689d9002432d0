"""``python -m xpnn``: the ``xpnn`` command (see :mod:`xpnn.cli`)."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main(prog="python -m xpnn"))
