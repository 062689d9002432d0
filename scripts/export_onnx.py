#!/usr/bin/env python
"""Export the MNIST network to an ONNX model, traced through xpnn's own forward pass.

    python scripts/export_onnx.py --out model.onnx
    python scripts/export_onnx.py --out model.onnx --input-dtype uint8 --output labels

Errors print one line on stderr and exit with status 2.
"""

from __future__ import annotations

import os
import sys

# Run from a checkout without installing: put the repository root first on the path.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from xpnn.export import main

if __name__ == "__main__":
    sys.exit(main())
