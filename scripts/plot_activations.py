#!/usr/bin/env python
"""Draw the chapter's activation functions (sigmoid and step, ReLU) with xpnn.

python scripts/plot_activations.py --out docs/activations.png --backend torch
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import xpnn


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="activations.png", help="PNG file to write")
    parser.add_argument("--backend", default=None, help="backend to compute with")
    parser.add_argument("--device", default=None)
    parser.add_argument("--dpi", type=int, default=80)
    args = parser.parse_args(argv)
    try:
        from xpnn.plot import activation_figure

        fig = activation_figure(args.backend, args.device)
    except (xpnn.XpnnError, ImportError) as err:
        print(f"plot_activations.py: error: {err}", file=sys.stderr)
        return 2
    fig.savefig(args.out, dpi=args.dpi)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
