#!/usr/bin/env python
"""Export the MNIST network to an ONNX model: `xpnn export-onnx`.

The same options as the installed command; run ``python scripts/export_onnx.py --help``.
Needs xpnn importable: installed (``pip install -e .`` in the clone), or run
``python -m xpnn export-onnx`` from the clone's root instead.
"""

import sys

try:
    from xpnn.cli import run_script
except ModuleNotFoundError as err:
    if err.name != "xpnn":
        raise
    print(
        f"{sys.argv[0]}: error: the xpnn package is not importable; install the clone "
        "(pip install -e .) or run 'python -m xpnn export-onnx' from its root",
        file=sys.stderr,
    )
    sys.exit(2)

if __name__ == "__main__":  # worker processes (dask) import this file again: run once
    run_script("export-onnx")
