"""Fuzzing the readers: whatever the bytes, only xpnn's own errors may escape."""

from __future__ import annotations

import contextlib
import os
import random
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest
from fuzzing import FLOODS, HOSTILE, container_flood, gzip_wrap, mutate, seed_files
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import xpnn
from xpnn.idx import read_idx
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


def test_fuzz_script_runs_without_the_tests_directory(tmp_path):
    """scripts/fuzz.py needs the package only: run it from elsewhere, tests/ out of reach."""
    root = Path(__file__).resolve().parent.parent
    script = root / "scripts" / "fuzz.py"
    text = script.read_text()
    assert "sys.path" not in text and "fuzz_inputs" not in text
    result = subprocess.run(
        [sys.executable, str(script), "--count", "60", "--seed", "3"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "unexpected exceptions: 0; code executed: False" in result.stdout
