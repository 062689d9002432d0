#!/usr/bin/env python
"""Export the network to an ONNX model: `xpnn export-onnx`.

The same options as the installed command (``python scripts/export_onnx.py --help``). Needs the
clone installed (``pip install -e .``); without installing, run ``python -m xpnn export-onnx``
from the clone's root.
"""

from xpnn.cli import run_script

if __name__ == "__main__":  # worker processes (dask) import this file again: run once
    run_script("export-onnx")
