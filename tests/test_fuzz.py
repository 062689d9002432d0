"""Fuzzing the readers: whatever the bytes, only xpnn's own errors may escape."""

from __future__ import annotations

import contextlib
import random

import pytest
from fuzz_inputs import gzip_wrap, mutate, seed_files
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import xpnn
from xpnn.idx import read_idx
from xpnn.safe_pickle import load_weight_pickle

SEEDS = seed_files()
SUFFIX = {"pkl": ".pkl", "pkl5": ".pkl", "safetensors": ".safetensors", "npz": ".npz"}
_settings = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


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
@given(kind=st.sampled_from(sorted(SUFFIX)), seed=st.integers(0, 2**32 - 1))
def test_mutated_weights(tmp_path, kind, seed):
    sentinel = tmp_path / "sentinel"
    path = tmp_path / f"w{SUFFIX[kind]}"
    path.write_bytes(mutate(SEEDS[kind], random.Random(seed)))
    _read_weights(path)
    assert not sentinel.exists()


@_settings
@given(data=st.binary(max_size=300), suffix=st.sampled_from([".pkl", ".safetensors", ".npz"]))
def test_random_bytes_as_weights(tmp_path, data, suffix):
    path = tmp_path / f"w{suffix}"
    path.write_bytes(data)
    _read_weights(path)


@pytest.mark.parametrize("kind", sorted(SEEDS))
def test_seeds_are_valid(tmp_path, kind):
    """The fuzzers start from files the readers accept."""
    path = tmp_path / ("f.idx" if kind.startswith("idx") else f"w{SUFFIX[kind]}")
    path.write_bytes(SEEDS[kind])
    if kind.startswith("idx"):
        assert read_idx(path).size > 0
    elif path.suffix == ".pkl":
        assert sorted(load_weight_pickle(path)) == ["W1", "W2", "b1", "b2"]
    else:
        assert xpnn.load_weights(path).layer_sizes == (6, 4, 3)
