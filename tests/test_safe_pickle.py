"""The allowlist unpickler: exact round trips of every NumPy pickle, hostile dtypes, floods."""

from __future__ import annotations

import pickle
import tracemalloc

import numpy as np
import pytest
from fuzzing import FLOODS, container_flood, numpy1_spelling
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import xpnn
from xpnn import safe_pickle
from xpnn.safe_pickle import loads_weight_pickle

PROTOCOLS = (2, 3, 4, 5)
ORDERS = ("<", ">")
FLOATS = ("f2", "f4", "f8")
SPELLINGS = {"numpy2": lambda blob: blob, "numpy1": numpy1_spelling}


def _layouts(dtype: str) -> dict[str, np.ndarray]:
    base = (np.arange(12, dtype=np.float64).reshape(3, 4) - 5.5) / 3
    base = base.astype(dtype)
    return {
        "C": base,
        "F": np.asfortranarray(base),
        "strided": base[:, ::2],
        "empty": np.zeros((0, 4), dtype),
        "0-d": np.array(2.5, dtype),
        "1-d": base[1],
    }


def _same(loaded: np.ndarray, original: np.ndarray) -> None:
    """Exact: the same dtype (byte order included), shape and bytes."""
    assert loaded.dtype == original.dtype and loaded.dtype.str == original.dtype.str
    assert loaded.shape == original.shape
    assert loaded.tobytes() == np.ascontiguousarray(original).tobytes()


@pytest.mark.parametrize("spelling", sorted(SPELLINGS))
@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("code", FLOATS)
def test_every_byte_order_protocol_and_spelling_round_trips(code, order, protocol, spelling):
    originals = _layouts(order + code)
    blob = SPELLINGS[spelling](pickle.dumps(originals, protocol=protocol))
    if spelling == "numpy1":
        assert b"numpy.core" in blob and b"numpy._core" not in blob
    loaded = loads_weight_pickle(blob)
    assert sorted(loaded) == sorted(originals)
    for key, original in originals.items():
        _same(loaded[key], original)
        assert loaded[key].flags.c_contiguous and loaded[key].flags.writeable


def test_the_reported_big_endian_example():
    blob = pickle.dumps({"W1": np.array([[1, 2, 3]], ">f4")}, protocol=2)
    loaded = loads_weight_pickle(blob)["W1"]
    assert loaded.tolist() == [[1.0, 2.0, 3.0]]
    assert loaded.dtype == np.dtype(">f4")


@settings(max_examples=200, deadline=None)
@given(
    array=hnp.arrays(
        dtype=st.sampled_from([o + c for o in ORDERS for c in FLOATS]),
        shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5),
        elements={"allow_nan": True, "allow_infinity": True, "allow_subnormal": True},
    ),
    protocol=st.sampled_from(PROTOCOLS),
    spelling=st.sampled_from(sorted(SPELLINGS)),
    fortran=st.booleans(),
)
def test_round_trip_property(array, protocol, spelling, fortran):
    """Any float array, NaN payloads and subnormals included, comes back bit for bit."""
    if fortran:
        array = np.asfortranarray(array)
    blob = SPELLINGS[spelling](pickle.dumps({"W1": array, "b1": array}, protocol=protocol))
    loaded = loads_weight_pickle(blob)
    _same(loaded["W1"], array)
    _same(loaded["b1"], array)
    assert loaded["W1"] is not loaded["b1"]  # one memoized array, two owned copies


def test_big_endian_pickle_gives_the_right_network(tmp_path):
    params = {"W1": np.array([[0.5, -1.0], [2.0, 0.25]]), "b1": np.array([0.125, -0.5])}
    for order in ORDERS:
        path = tmp_path / f"w{order == '>'}.pkl"
        swapped = {k: v.astype(order + "f8") for k, v in params.items()}
        path.write_bytes(pickle.dumps(swapped, protocol=2))
        network = xpnn.load_weights(path, backend="numpy", dtype="float64", output="identity")
        y = network.forward(np.array([1.0, 2.0]))
        np.testing.assert_array_equal(y, np.array([1.0, 2.0]) @ params["W1"] + params["b1"])


class _Dtype:
    """Pickles as NumPy's dtype does, with any arguments and state."""

    def __init__(self, code, state, args=(False, True)):
        self.code, self.state, self.args = code, state, args

    def __reduce__(self):
        return (np.dtype, (self.code, *self.args), self.state)


class _Array:
    """Pickles as NumPy's ndarray does (protocol 2-4 path), with any state."""

    def __init__(self, state):
        self.state = state

    def __reduce__(self):
        from numpy._core.multiarray import _reconstruct

        return (_reconstruct, (np.ndarray, (0,), b"b"), self.state)


GOOD_DTYPE_STATE = (3, ">", None, None, None, -1, -1, 0)
DATA = np.array([1.0, 2.0], ">f8").tobytes()


def _hand_made(dtype_state=GOOD_DTYPE_STATE, code="f8", shape=(2,), data=DATA, args=(False, True)):
    dtype = _Dtype(code, dtype_state, args)
    return pickle.dumps({"W1": _Array((1, shape, dtype, False, data))}, protocol=2)


def test_hand_made_pickle_is_what_numpy_writes():
    """Guard for the hostile cases below: unchanged, the hand-made pickle loads."""
    assert loads_weight_pickle(_hand_made())["W1"].tolist() == [1.0, 2.0]
    assert pickle.loads(_hand_made())["W1"].tolist() == [1.0, 2.0]  # and NumPy agrees


HOSTILE_DTYPES = {
    "object-flag": {"dtype_state": (3, "|", None, None, None, -1, -1, 63)},
    "hasobject-bit": {"dtype_state": (3, ">", None, None, None, -1, -1, 1)},
    "fields": {"dtype_state": (3, ">", None, ("a",), {"a": (np.dtype("f8"), 0)}, 8, 1, 16)},
    "subarray": {"dtype_state": (3, ">", (np.dtype("f8"), (2,)), None, None, 16, 8, 0)},
    "metadata": {"dtype_state": (4, ">", None, None, None, -1, -1, 0, {"k": 1})},
    "old-version": {"dtype_state": (2, ">", None, None, None, -1, -1)},
    "bad-order": {"dtype_state": (3, "x", None, None, None, -1, -1, 0)},
    "pipe-order-on-f8": {"dtype_state": (3, "|", None, None, None, -1, -1, 0)},
    "wrong-elsize": {"dtype_state": (3, ">", None, None, None, 4, -1, 0)},
    "not-a-tuple": {"dtype_state": [3, ">", None, None, None, -1, -1, 0]},
    "object-code": {"code": "O"},
    "void-code": {"code": "V16", "data": bytes(32)},
    "structured-code": {"code": "f8,f8"},
    "string-code": {"code": "U2"},
    "complex-code": {"code": "c16"},
    "longdouble-code": {"code": "f16", "data": bytes(32)},
    "datetime-code": {"code": "M8[s]"},
    "align-argument": {"args": ("yes", True)},
    "short-data": {"data": DATA[:-1]},
    "long-data": {"data": DATA + b"\x00"},
    "absurd-shape": {"shape": (10**12, 10**12)},
    "negative-shape": {"shape": (-2,)},
    "float-shape": {"shape": (2.0,)},
    "list-data": {"data": [1.0, 2.0]},
}


@pytest.mark.parametrize("case", sorted(HOSTILE_DTYPES))
def test_hostile_dtype_and_array_states_are_refused(case):
    with pytest.raises(xpnn.WeightsError):
        loads_weight_pickle(_hand_made(**HOSTILE_DTYPES[case]))


def test_dtype_state_set_twice_is_refused():
    """A second BUILD of one dtype (e.g. from a memo reference) could switch flags on later."""
    spec = safe_pickle._DtypeSpec("f8")
    spec.__setstate__(GOOD_DTYPE_STATE)
    with pytest.raises(xpnn.WeightsError, match="twice"):
        spec.__setstate__((3, "|", None, None, None, -1, -1, 63))


FAST_FLOOD_BYTES = 1 << 20
SLOW_FLOODS = {"MEMO-KEPT-DICTS", "MEMO-KEPT-TUPLES", "SETITEM", "SETITEMS-BATCHES"}


@pytest.mark.parametrize("kind", sorted(FLOODS))
def test_floods_are_refused_within_a_memory_bound(kind):
    """Cheap opcodes that make the unpickler allocate: refused, peak < 20x the file."""
    size = FAST_FLOOD_BYTES if kind not in SLOW_FLOODS else FAST_FLOOD_BYTES // 4
    blob = container_flood(kind, size)
    tracemalloc.start()
    try:
        with pytest.raises(xpnn.WeightsError):
            loads_weight_pickle(blob)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20 * len(blob), f"{kind}: peak {peak} bytes for a {len(blob)}-byte pickle"


def test_a_megabyte_of_empty_sets_is_refused_at_once():
    blob = b"\x80\x04" + b"\x8f" * (1 << 20) + b"."
    with pytest.raises(xpnn.WeightsError, match="EMPTY_SET at byte 2"):
        loads_weight_pickle(blob)


def test_allocation_budget_refuses_memo_kept_containers(monkeypatch):
    """With the opcode limit out of the way, the allocation estimate alone refuses."""
    monkeypatch.setattr(safe_pickle, "MAX_OPCODES", 1 << 30)
    blob = container_flood("MEMO-KEPT-DICTS", 1 << 18)
    with pytest.raises(xpnn.WeightsError, match="would allocate over"):
        loads_weight_pickle(blob)


def test_memo_reference_to_an_unstored_index_is_refused():
    blob = b"\x80\x02}q\x00h\x05."  # EMPTY_DICT, BINPUT 0, BINGET 5
    with pytest.raises(xpnn.WeightsError, match="never stored"):
        loads_weight_pickle(blob)


def test_reading_a_pickle_file_costs_about_its_size(tmp_path):
    """The file is read by its real size, not by the 256 MiB limit."""
    path = tmp_path / "w.pkl"
    path.write_bytes(pickle.dumps(_layouts("<f4"), protocol=2))
    tracemalloc.start()
    try:
        safe_pickle.load_weight_pickle(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20 * path.stat().st_size + (1 << 16)
