#!/usr/bin/env python
"""Draw MNIST test digits with their labels and the network's predictions: `xpnn show-mnist`.

The same options as the installed command (``python scripts/show_mnist.py --help``). Needs the
clone installed (``pip install -e .``); without installing, run ``python -m xpnn show-mnist``
from the clone's root.
"""

from xpnn.cli import run_script

if __name__ == "__main__":  # worker processes (dask) import this file again: run once
    run_script("show-mnist")
