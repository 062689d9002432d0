#!/usr/bin/env python
"""Draw the chapter's activation functions: `xpnn plot-activations`.

The same options as the installed command (``python scripts/plot_activations.py --help``). Needs the
clone installed (``pip install -e .``); without installing, run ``python -m xpnn plot-activations``
from the clone's root.
"""

from xpnn.cli import run_script

if __name__ == "__main__":  # worker processes (dask) import this file again: run once
    run_script("plot-activations")
