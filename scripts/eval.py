#!/usr/bin/env python
"""Classify the MNIST test set with the book's pretrained network: `xpnn eval`.

The same options as the installed command (``python scripts/eval.py --help``). Needs the
clone installed (``pip install -e .``); without installing, run ``python -m xpnn eval``
from the clone's root.
"""

from xpnn.cli import run_script

if __name__ == "__main__":  # worker processes (dask) import this file again: run once
    run_script("eval")
