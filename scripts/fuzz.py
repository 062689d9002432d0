#!/usr/bin/env python
"""A long fuzz run of the file readers: mutated IDX, gzip, pickle, safetensors and npz files.

    python scripts/fuzz.py --count 100000 --seed 0

Inputs: mutations of valid files of every format (pickles of protocols 2-5
in both byte orders and both NumPy module spellings, little- and big-endian
``.npz``), plus hostile ones made to cost memory (container-opcode and memo
floods up to 1 MB, ``.npz`` bombs that inflate to megabytes or lie about
their size). The run starts with the largest hostile inputs (every flood at
1 MiB, a 0.4 MB ``.npz`` that inflates to 400 MB), so the memory bound is
measured against them. Every input must either load or raise the library's own error
(DataError for IDX, WeightsError for weights), and no pickle may run code.
Prints the counts per kind, the largest input and the peak growth of the
process's memory (resident set, measured in a thread every millisecond) over
its size; exits 1 if anything else escaped, code ran, or memory grew by 20
times the largest input or more.
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import xpnn
from xpnn._fuzzing import HOSTILE, gzip_wrap, largest_cases, mutate, seed_files
from xpnn.idx import read_idx
from xpnn.safe_pickle import load_weight_pickle

#: Memory growth allowed, as a multiple of the largest input.
GROWTH_LIMIT = 20


def _suffix(kind: str) -> str:
    if kind.startswith("idx"):
        return ".idx"
    if kind.startswith("pkl"):
        return ".pkl"
    if kind.startswith("npz"):
        return ".npz"
    return ".safetensors"


def read(path: Path) -> None:
    if path.suffix == ".idx":
        read_idx(path)
    elif path.suffix == ".pkl":
        load_weight_pickle(path)
    else:
        xpnn.load_weights(path)


def _rss() -> int:
    """Resident set size of this process in bytes (Linux /proc, else the peak so far)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * resource.getpagesize()
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class _PeakWatch:
    """Samples the resident set size every millisecond while an input is read."""

    def __init__(self) -> None:
        self.peak = self.base = _rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.001):
            self.peak = max(self.peak, _rss())

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    seeds = seed_files()
    kinds = sorted(seeds) + sorted(HOSTILE)
    outcome: Counter[tuple[str, str]] = Counter()
    escaped = []
    largest = 0
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        sentinel = Path(tmp) / "sentinel"
        # Warm up every reader once, so imports and caches are not counted as growth.
        for kind in sorted(seeds):
            path = Path(tmp) / f"warm{_suffix(kind)}"
            path.write_bytes(seeds[kind])
            read(path)
        largest_first = largest_cases()
        watch = _PeakWatch()
        for i in range(args.count):
            kind = kinds[i % len(kinds)]
            if largest_first:
                kind, suffix, data = largest_first.pop(0)
            elif kind in HOSTILE:
                suffix, make = HOSTILE[kind]
                data = make(rng)
            else:
                suffix = _suffix(kind)
                data = mutate(seeds[kind], rng)
                if kind == "idx" and rng.random() < 0.3:
                    data = gzip_wrap(data)
            largest = max(largest, len(data))
            path = Path(tmp) / f"input{suffix}"
            path.write_bytes(data)
            del data
            try:
                read(path)
            except (xpnn.DataError, xpnn.WeightsError):
                outcome[kind, "refused"] += 1
            except Exception as err:  # anything else is a bug
                outcome[kind, "ESCAPED"] += 1
                escaped.append(f"{kind} #{i}: {type(err).__name__}: {err}")
            else:
                outcome[kind, "loaded"] += 1
        watch.close()
        ran_code = sentinel.exists()
    seconds = time.perf_counter() - started
    growth = watch.peak - watch.base
    print(f"fuzzed {args.count} inputs in {seconds:.1f} s (seed {args.seed})")
    for kind in kinds:
        counts = {k[1]: v for k, v in outcome.items() if k[0] == kind}
        print(f"  {kind:14} " + "  ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    total: Counter[str] = Counter()
    for (_, result), value in outcome.items():
        total[result] += value
    print("  total          " + "  ".join(f"{k}={v}" for k, v in sorted(total.items())))
    for line in escaped[:20]:
        print("  escaped:", line)
    ratio = growth / largest if largest else 0.0
    print(
        f"largest input {largest} bytes; peak memory growth {growth / 1e6:.1f} MB "
        f"({ratio:.1f}x the largest input; limit {GROWTH_LIMIT}x)"
    )
    print(f"unexpected exceptions: {len(escaped)}; code executed: {ran_code}")
    return 1 if escaped or ran_code or ratio >= GROWTH_LIMIT else 0


if __name__ == "__main__":
    sys.exit(main())
