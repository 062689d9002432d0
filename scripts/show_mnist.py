#!/usr/bin/env python
"""Draw MNIST test digits with their labels and the book network's predictions.

python scripts/show_mnist.py --count 30 --out docs/digits.png
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import xpnn


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="digits.png", help="PNG file to write")
    parser.add_argument("--count", type=int, default=30, help="how many digits (from the first)")
    parser.add_argument("--start", type=int, default=0, help="index of the first digit")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--backend", default=None)
    parser.add_argument("--device", default=None)
    parser.add_argument("--dpi", type=int, default=80)
    args = parser.parse_args(argv)
    try:
        from xpnn.plot import digits_figure

        options = {"data_dir": args.data_dir, "backend": args.backend, "device": args.device}
        x, t = xpnn.load_mnist_split("test", normalize=False, **options)
        network = xpnn.pretrained_network(input_scale=1 / 255, **options)
        part = slice(args.start, args.start + args.count)
        fig = digits_figure(x[part, ...], t[part], network.classify(x[part, ...]))
    except (xpnn.XpnnError, ImportError) as err:
        print(f"show_mnist.py: error: {err}", file=sys.stderr)
        return 2
    fig.savefig(args.out, dpi=args.dpi)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
