#!/usr/bin/env python
"""A long fuzz run of the file readers: mutated IDX, gzip, pickle, safetensors and npz files.

    python scripts/fuzz.py --count 100000 --seed 0

Every input must either load or raise the library's own error (DataError for
IDX, WeightsError for weights) and no pickle may run code. Prints the counts
per format; exits 1 if anything else escaped.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from fuzz_inputs import gzip_wrap, mutate, seed_files  # noqa: E402

import xpnn  # noqa: E402
from xpnn.idx import read_idx  # noqa: E402
from xpnn.safe_pickle import load_weight_pickle  # noqa: E402

SUFFIX = {"idx": ".idx", "idx.gz": ".idx", "pkl": ".pkl", "pkl5": ".pkl"}
SUFFIX |= {"safetensors": ".safetensors", "npz": ".npz"}


def read(path: Path) -> None:
    if path.suffix == ".idx":
        read_idx(path)
    elif path.suffix == ".pkl":
        load_weight_pickle(path)
    else:
        xpnn.load_weights(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    seeds = seed_files()
    kinds = sorted(seeds)
    outcome: Counter[tuple[str, str]] = Counter()
    escaped = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        sentinel = Path(tmp) / "sentinel"
        for i in range(args.count):
            kind = kinds[i % len(kinds)]
            data = mutate(seeds[kind], rng)
            if kind == "idx" and rng.random() < 0.3:
                data = gzip_wrap(data)
            path = Path(tmp) / f"input{SUFFIX[kind]}"
            path.write_bytes(data)
            try:
                read(path)
            except (xpnn.DataError, xpnn.WeightsError):
                outcome[kind, "refused"] += 1
            except Exception as err:  # anything else is a bug
                outcome[kind, "ESCAPED"] += 1
                escaped.append(f"{kind} #{i}: {type(err).__name__}: {err}")
            else:
                outcome[kind, "loaded"] += 1
        ran_code = sentinel.exists()
    seconds = time.perf_counter() - started
    print(f"fuzzed {args.count} inputs in {seconds:.1f} s (seed {args.seed})")
    for kind in kinds:
        counts = {k[1]: v for k, v in outcome.items() if k[0] == kind}
        print(f"  {kind:12} " + "  ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    for line in escaped[:20]:
        print("  escaped:", line)
    print(f"escaped: {len(escaped)}; code executed: {ran_code}")
    return 1 if escaped or ran_code else 0


if __name__ == "__main__":
    sys.exit(main())
