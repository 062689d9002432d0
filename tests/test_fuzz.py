"""Fuzzing the readers: whatever the bytes, only xpnn's own errors may escape."""

from __future__ import annotations

import contextlib
import os
import random
import resource
import threading
import time
import tracemalloc
from collections import Counter

import pytest
from fuzzing import (
    FLOODS,
    HOSTILE,
    container_flood,
    gzip_wrap,
    largest_cases,
    mutate,
    seed_files,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import xpnn
from xpnn.mnist import read_idx
from xpnn.safe_pickle import load_weight_pickle

SEEDS = seed_files()
WEIGHT_KINDS = sorted(k for k in SEEDS if not k.startswith("idx"))
_settings = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _suffix(kind):
    for prefix in ("idx", "pkl", "npz"):
        if kind.startswith(prefix):
            return f".{prefix}"
    return ".safetensors"


def _read_any(path):
    """Read a file as the library would, by its suffix."""
    if path.suffix == ".idx":
        read_idx(path)
    elif path.suffix == ".pkl":
        load_weight_pickle(path)
    else:
        xpnn.load_weights(path)


def _read_idx(path):
    with contextlib.suppress(xpnn.DataError):
        read_idx(path)


def _read_weights(path):
    try:
        if path.suffix == ".pkl":
            load_weight_pickle(path)
        else:
            xpnn.load_weights(path)
    except xpnn.WeightsError:
        pass


@_settings
@given(data=st.binary(max_size=300))
def test_random_bytes_as_idx(tmp_path, data):
    path = tmp_path / "f.idx"
    path.write_bytes(data)
    _read_idx(path)
    path.write_bytes(gzip_wrap(data))
    _read_idx(path)


@_settings
@given(kind=st.sampled_from(["idx", "idx.gz"]), seed=st.integers(0, 2**32 - 1))
def test_mutated_idx(tmp_path, kind, seed):
    path = tmp_path / "f.idx"
    path.write_bytes(mutate(SEEDS[kind], random.Random(seed)))
    _read_idx(path)


@_settings
@given(kind=st.sampled_from(WEIGHT_KINDS), seed=st.integers(0, 2**32 - 1))
def test_mutated_weights(tmp_path, kind, seed):
    sentinel = tmp_path / "sentinel"
    path = tmp_path / f"w{_suffix(kind)}"
    path.write_bytes(mutate(SEEDS[kind], random.Random(seed)))
    _read_weights(path)
    assert not sentinel.exists()


@_settings
@given(data=st.binary(max_size=300), suffix=st.sampled_from([".pkl", ".safetensors", ".npz"]))
def test_random_bytes_as_weights(tmp_path, data, suffix):
    path = tmp_path / f"w{suffix}"
    path.write_bytes(data)
    _read_weights(path)


@settings(max_examples=60, deadline=None)
@given(kind=st.sampled_from(sorted(FLOODS)), size=st.integers(1, 1 << 16))
def test_floods_of_any_size_stay_within_bounds(kind, size):
    """A few units may make a harmless pickle (``{}``); many are always refused."""
    blob = container_flood(kind, size)
    tracemalloc.start()
    try:
        try:
            result = xpnn.safe_pickle.loads_weight_pickle(blob)
        except xpnn.WeightsError:
            result = None
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result is None or result == {}
    if size > 1 << 15:
        assert result is None
    # The estimate's bound (8x + 64 KiB) plus the interpreter's own working memory.
    assert peak < 20 * len(blob) + (1 << 18)


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_generators_are_refused(tmp_path, kind):
    suffix, make = HOSTILE[kind]
    rng = random.Random(0)
    for _ in range(5):
        path = tmp_path / f"h{suffix}"
        path.write_bytes(make(rng))
        reader = load_weight_pickle if suffix == ".pkl" else xpnn.load_weights
        with pytest.raises(xpnn.WeightsError):
            reader(path)


@pytest.mark.parametrize("kind", sorted(SEEDS))
def test_seeds_are_valid(tmp_path, kind):
    """The fuzzers start from files the readers accept."""
    path = tmp_path / f"f{_suffix(kind)}"
    path.write_bytes(SEEDS[kind])
    if kind.startswith("idx"):
        assert read_idx(path).size > 0
    elif path.suffix == ".pkl":
        assert sorted(load_weight_pickle(path)) == ["W1", "W2", "b1", "b2"]
    else:
        assert xpnn.load_weights(path).layer_sizes == (6, 4, 3)


def _rss() -> int:
    """Resident set size of this process in bytes (Linux /proc, else the peak so far)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * resource.getpagesize()
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class _PeakWatch:
    """Samples the resident set size every millisecond while inputs are read."""

    def __init__(self):
        self.peak = self.base = _rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.wait(0.001):
            self.peak = max(self.peak, _rss())

    def close(self):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())


#: Memory growth allowed in the long run, as a multiple of the largest input.
GROWTH_LIMIT = 20


def test_long_fuzz_run(tmp_path):
    """The long fuzz run: ``XPNN_FUZZ_COUNT=100000 python -m pytest tests/test_fuzz.py -k long -s``.

    Mutations of valid files of every format plus hostile generators, starting
    with the largest hostile inputs (every flood at 1 MiB, a 0.4 MB ``.npz``
    that inflates to 400 MB, a 0.38 MB ``.npz`` of 450 overlapping members), so
    that the memory bound is measured against them. Every input loads or raises
    the library's own error, no pickle runs code, and the resident set grows by
    less than ``GROWTH_LIMIT`` times the largest input. ``XPNN_FUZZ_SEED``
    picks the seed (default 0); the counts are printed (``-s`` shows them).
    """
    count = int(os.environ.get("XPNN_FUZZ_COUNT", "60"))
    seed = int(os.environ.get("XPNN_FUZZ_SEED", "0"))
    rng = random.Random(seed)
    kinds = sorted(SEEDS) + sorted(HOSTILE)
    outcome: Counter[tuple[str, str]] = Counter()
    escaped, largest = [], 0
    sentinel = tmp_path / "sentinel"
    for kind in sorted(SEEDS):  # warm every reader up: imports and caches are no growth
        path = tmp_path / f"warm{_suffix(kind)}"
        path.write_bytes(SEEDS[kind])
        _read_any(path)
    largest_first = largest_cases()
    watch = _PeakWatch()
    started = time.perf_counter()
    for i in range(count):
        kind = kinds[i % len(kinds)]
        if largest_first:
            kind, suffix, data = largest_first.pop(0)
        elif kind in HOSTILE:
            suffix, make = HOSTILE[kind]
            data = make(rng)
        else:
            suffix, data = _suffix(kind), mutate(SEEDS[kind], rng)
            if kind == "idx" and rng.random() < 0.3:
                data = gzip_wrap(data)
        largest = max(largest, len(data))
        path = tmp_path / f"input{suffix}"
        path.write_bytes(data)
        del data
        try:
            _read_any(path)
        except (xpnn.DataError, xpnn.WeightsError):
            outcome[kind, "refused"] += 1
        except Exception as err:  # anything else is a bug
            outcome[kind, "ESCAPED"] += 1
            escaped.append(f"{kind} #{i}: {type(err).__name__}: {err}")
        else:
            outcome[kind, "loaded"] += 1
    watch.close()
    growth = watch.peak - watch.base
    print(f"\nfuzzed {count} inputs in {time.perf_counter() - started:.1f} s (seed {seed})")
    for kind in kinds:
        counts = {k[1]: v for k, v in outcome.items() if k[0] == kind}
        print(f"  {kind:14} " + "  ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    print(f"largest input {largest} bytes; peak memory growth {growth / 1e6:.1f} MB")
    assert not escaped, escaped[:20]
    assert not sentinel.exists()
    assert growth < GROWTH_LIMIT * largest, f"grew {growth} bytes for inputs of {largest}"
