"""Weights: safetensors, npz, and the book's pickle read without running code."""

from __future__ import annotations

import io
import os
import pickle
import shutil
import struct
import sys
import tracemalloc
import types
import zipfile

import numpy as np
import pytest
from fuzzing import npz_bomb, npz_overlap_bomb
from hostile import hostile_pickles, valid_weights
from reference import CHAPTER_X, CHAPTER_Y, assert_close

import xpnn
from xpnn import weights
from xpnn.safe_pickle import load_weight_pickle


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_numpy_pickles_load(tmp_path, protocol):
    weights = valid_weights()
    path = tmp_path / "w.pkl"
    path.write_bytes(pickle.dumps(weights, protocol=protocol))
    loaded = load_weight_pickle(path)
    assert sorted(loaded) == sorted(weights)
    for key, value in weights.items():
        assert loaded[key].dtype == value.dtype
        np.testing.assert_array_equal(loaded[key], value)


@pytest.mark.parametrize("case", sorted(hostile_pickles("x")))
def test_hostile_pickles_are_refused_and_never_run(tmp_path, case):
    sentinel = tmp_path / "sentinel"
    path = tmp_path / f"{case}.pkl"
    path.write_bytes(hostile_pickles(str(sentinel))[case])
    with pytest.raises(xpnn.WeightsError) as info:
        xpnn.load_weights(path)
    assert str(path) in str(info.value)
    assert not sentinel.exists()


def test_hostile_pickle_really_is_hostile(tmp_path):
    """Guard for the test above: plain pickle.load of one does create the sentinel."""
    sentinel = tmp_path / "sentinel"
    pickle.loads(hostile_pickles(str(sentinel))["reduce-eval"])
    assert sentinel.exists()


def test_book_pickle_loads(data_dir):
    arrays = load_weight_pickle(os.path.join(data_dir, "sample_weight.pkl"))
    shapes = {k: v.shape for k, v in arrays.items()}
    assert shapes == {
        "W1": (784, 50),
        "b1": (50,),
        "W2": (50, 100),
        "b2": (100,),
        "W3": (100, 10),
        "b3": (10,),
    }
    assert all(v.dtype == np.float32 for v in arrays.values())


def test_save_book_pickle_as_safetensors(data_dir, tmp_path):
    target = tmp_path / "b.safetensors"
    xpnn.save_weights(xpnn.load_weights(os.path.join(data_dir, "sample_weight.pkl")), target)
    network = xpnn.load_weights(target)
    assert network.layer_sizes == (784, 50, 100, 10)
    assert (network.hidden, network.output, network.dtype_name) == ("sigmoid", "softmax", "float32")
    original = load_weight_pickle(os.path.join(data_dir, "sample_weight.pkl"))
    for key, value in network.params.items():
        np.testing.assert_array_equal(xpnn.to_numpy(value), original[key])


@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
def test_save_and_load_round_trip(backend, dtype, tmp_path, suffix):
    network = xpnn.init_network(backend.name, backend.device, dtype)
    path = tmp_path / f"net{suffix}"
    xpnn.save_weights(network, path)
    loaded = xpnn.load_weights(path, backend=backend.name, device=backend.device, output="identity")
    assert loaded.dtype_name == dtype
    y = loaded.forward(backend.asarray(CHAPTER_X, dtype))
    backend.assert_native(y)
    assert_close(y, CHAPTER_Y, dtype)
    assert [p.name for p in tmp_path.iterdir()] == [f"net{suffix}"]  # no temporary left


def test_safetensors_keeps_functions(tmp_path):
    params = {"W1": np.ones((2, 2)), "b1": np.zeros(2)}
    path = tmp_path / "r.safetensors"
    xpnn.save_weights(xpnn.Network(params, hidden="relu", output="softmax"), path)
    loaded = xpnn.load_weights(path)
    assert (loaded.hidden, loaded.output) == ("relu", "softmax")


def _safetensors_bytes(tmp_path, arrays):
    from safetensors.numpy import save_file

    path = tmp_path / "tmp.safetensors"
    save_file(arrays, str(path))
    return path.read_bytes()


def test_malformed_safetensors(tmp_path):
    good = _safetensors_bytes(
        tmp_path, {"W1": np.ones((2, 2), np.float32), "b1": np.ones(2, np.float32)}
    )
    cases = {
        "garbage": b"hello world, not safetensors",
        "truncated": good[: len(good) - 5],
        "huge-header": (10**12).to_bytes(8, "little") + b"{}",
        "bad-json": (5).to_bytes(8, "little") + b"{nope",
        "empty": b"",
    }
    for name, data in cases.items():
        path = tmp_path / f"{name}.safetensors"
        path.write_bytes(data)
        with pytest.raises(xpnn.WeightsError, match="malformed safetensors"):
            xpnn.load_weights(path)


def test_inconsistent_or_integer_weights(tmp_path):
    inconsistent = {"W1": np.ones((2, 3), np.float32), "b1": np.ones(2, np.float32)}
    path = tmp_path / "bad.safetensors"
    path.write_bytes(_safetensors_bytes(tmp_path, inconsistent))
    with pytest.raises(xpnn.WeightsError, match="b1 has 2 entries"):
        xpnn.load_weights(path)
    integer = {"W1": np.ones((2, 2), np.int32), "b1": np.ones(2, np.int32)}
    path.write_bytes(_safetensors_bytes(tmp_path, integer))
    with pytest.raises(xpnn.WeightsError, match="not real floating"):
        xpnn.load_weights(path)


def test_malformed_npz(tmp_path):
    path = tmp_path / "bad.npz"
    path.write_bytes(b"PK\x03\x04 broken zip")
    with pytest.raises(xpnn.WeightsError, match=r"malformed \.npz"):
        xpnn.load_weights(path)
    with open(path, "wb") as f:
        np.savez(f, W1=np.array([1.0, None], dtype=object), b1=np.ones(1))
    with pytest.raises(xpnn.WeightsError, match=r"malformed \.npz"):
        xpnn.load_weights(path)


def _zip(path, members):
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def _npy(array, header_shape=None):
    buffer = io.BytesIO()
    np.save(buffer, array)
    data = buffer.getvalue()
    if header_shape is not None:
        data = data.replace(repr(array.shape).encode(), repr(header_shape).encode(), 1)
    return data


GOOD_NPY = {"W1.npy": _npy(np.ones((2, 2))), "b1.npy": _npy(np.ones(2))}


@pytest.mark.parametrize(
    "members",
    [
        {**GOOD_NPY, "notes.txt": b"hello"},
        {**GOOD_NPY, "W2": b"raw bytes, no suffix"},
        {**GOOD_NPY, "extra/": b""},
        {"W1.npy": _npy(np.ones((2, 2)), header_shape=(10**12, 10**6)), "b1.npy": _npy(np.ones(2))},
        {"W1.npy": _npy(np.ones((2, 2)), header_shape=(3, 2)), "b1.npy": _npy(np.ones(2))},
        {"W1.npy": b"\x93NUMPY\x01\x00\xff\xff" + b"{" * 70000, "b1.npy": _npy(np.ones(2))},
        {"W1.npy": _npy(np.array(["a", "b"])), "b1.npy": _npy(np.ones(2))},
    ],
    ids=[
        "txt-member",
        "member-without-suffix",
        "directory",
        "absurd-shape",
        "shape-too-big",
        "huge-header",
        "text-array",
    ],
)
def test_npz_members_that_are_not_numeric_npy_arrays(tmp_path, members):
    path = tmp_path / "w.npz"
    _zip(path, members)
    with pytest.raises(xpnn.WeightsError):  # never AttributeError or MemoryError
        xpnn.load_weights(path)


def test_npz_duplicate_member_is_refused(tmp_path):
    path = tmp_path / "w.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("W1.npy", _npy(np.ones((2, 2))))
        archive.writestr("b1.npy", _npy(np.ones(2)))
        with pytest.warns(UserWarning, match="Duplicate"):
            archive.writestr("W1.npy", _npy(np.zeros((2, 2))))
    with pytest.raises(xpnn.WeightsError, match="twice"):
        xpnn.load_weights(path)


@pytest.mark.parametrize(
    ("inflated", "declare", "match"),
    [
        (64 << 20, None, "ratio"),  # 64 MiB of zeros in 64 kB
        (1 << 16, 1 << 31, "ratio"),  # a small member that declares 2 GiB
        (1 << 20, 100, "malformed"),  # declares 100 bytes, inflates to more: stopped at 100
    ],
    ids=["bomb", "declares-2GiB", "lies-small"],
)
def test_npz_bombs_are_refused_before_inflating(tmp_path, inflated, declare, match):
    path = tmp_path / "bomb.npz"
    path.write_bytes(npz_bomb(inflated, declare=declare))
    tracemalloc.start()
    try:
        with pytest.raises(xpnn.WeightsError, match=match):
            xpnn.load_weights(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20 * path.stat().st_size + (1 << 20)


def test_npz_members_whose_data_overlap_are_refused(tmp_path):
    path = tmp_path / "w.npz"
    path.write_bytes(npz_overlap_bomb(2, 64))
    with pytest.raises(xpnn.WeightsError, match="overlap"):
        xpnn.load_weights(path)


def test_npz_overlap_bomb_is_refused_in_little_memory(tmp_path):
    """The reported case: 0.38 MB whose 450 overlapping members inflate to 171 MB in all."""
    path = tmp_path / "bomb.npz"
    path.write_bytes(npz_overlap_bomb(450, 380_000))
    tracemalloc.start()
    try:
        with pytest.raises(xpnn.WeightsError):
            xpnn.load_weights(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20 * path.stat().st_size + (1 << 20)


def _set_central(data, offset, fmt, value):
    """Overwrite a field of every central directory header of a zip."""
    out = bytearray(data)
    start = out.find(b"PK\x01\x02")
    while start != -1:
        struct.pack_into(fmt, out, start + offset, value)
        start = out.find(b"PK\x01\x02", start + 4)
    return bytes(out)


def test_npz_encrypted_member_is_refused(tmp_path):
    path = tmp_path / "w.npz"
    _zip(path, GOOD_NPY)
    path.write_bytes(_set_central(path.read_bytes(), 8, "<H", 1))  # flag bit 0: encrypted
    with pytest.raises(xpnn.WeightsError, match="encrypted"):
        xpnn.load_weights(path)


def test_npz_with_too_many_members_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(weights, "MAX_NPZ_MEMBERS", 2)
    path = tmp_path / "w.npz"
    _zip(path, {**GOOD_NPY, "W2.npy": _npy(np.ones((2, 2)))})
    with pytest.raises(xpnn.WeightsError, match="3 members"):
        xpnn.load_weights(path)


def test_npz_member_whose_header_disagrees_with_its_declared_size(tmp_path):
    """A header declaring more data than the member holds is refused before numpy allocates."""
    path = tmp_path / "w.npz"
    _zip(
        path,
        {"W1.npy": _npy(np.ones((2, 2)), header_shape=(4000, 4000)), "b1.npy": _npy(np.ones(2))},
    )
    tracemalloc.start()
    try:
        with pytest.raises(xpnn.WeightsError, match="declares"):
            xpnn.load_weights(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def test_big_endian_npz_loads(tmp_path):
    params = {"W1": np.array([[0.5, -1.0], [2.0, 0.25]]), "b1": np.array([0.125, -0.5])}
    path = tmp_path / "be.npz"
    np.savez(path, **{k: v.astype(">f8") for k, v in params.items()})
    network = xpnn.load_weights(path, backend="numpy", output="identity")
    assert network.dtype_name == "float64"
    for key, value in network.params.items():
        assert value.dtype.isnative
        np.testing.assert_array_equal(value, params[key])
    np.testing.assert_array_equal(network.forward([1.0, 2.0]), [4.625, -1.0])


def test_zero_width_layer_is_refused(tmp_path):
    path = tmp_path / "w.npz"
    np.savez(path, W1=np.ones((784, 0)), b1=np.ones(0))
    with pytest.raises(xpnn.WeightsError, match="without units"):
        xpnn.load_weights(path)


def test_unknown_format_and_missing_file(tmp_path):
    with pytest.raises(xpnn.WeightsError, match="no such weights file"):
        xpnn.load_weights(tmp_path / "none.safetensors")
    other = tmp_path / "w.h5"
    other.write_bytes(b"x")
    with pytest.raises(xpnn.WeightsError, match="unknown weights format"):
        xpnn.load_weights(other)
    with pytest.raises(xpnn.WeightsError, match="save weights as"):
        xpnn.save_weights(xpnn.init_network(), tmp_path / "w.pkl")


SETTINGS = [
    {"hidden": "relu", "output": "identity", "input_scale": 1 / 255, "dtype": "float64"},
    {"hidden": "sigmoid", "output": "softmax", "input_scale": 0.1, "dtype": "float32"},
    {"hidden": "sigmoid", "output": "identity", "input_scale": 1.0, "dtype": "float16"},
]


@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: f"{s['hidden']}-{s['dtype']}")
def test_every_setting_survives_save_and_load(tmp_path, suffix, setting):
    rng = np.random.default_rng(1)
    params = {"W1": rng.normal(size=(5, 4)), "b1": rng.normal(size=4)}
    params |= {"W2": rng.normal(size=(4, 3)), "b2": rng.normal(size=3)}
    network = xpnn.Network(
        params,
        hidden=setting["hidden"],
        output=setting["output"],
        dtype=setting["dtype"],
        input_scale=setting["input_scale"],
    )
    path = tmp_path / f"net{suffix}"
    xpnn.save_weights(network, path)
    loaded = xpnn.load_weights(path)
    assert (loaded.hidden, loaded.output, loaded.dtype_name) == (
        setting["hidden"],
        setting["output"],
        setting["dtype"],
    )
    assert loaded.input_scale == setting["input_scale"]  # exactly
    assert loaded.layer_sizes == (5, 4, 3)
    x = rng.integers(0, 256, size=(7, 5)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(x), network.predict(x))


def test_raw_pixel_network_keeps_its_scale(data_dir, tmp_path):
    """The reported case: a network for raw pixels saved and loaded scores the same."""
    network = xpnn.pretrained_network(data_dir=data_dir, backend="numpy", input_scale=1 / 255)
    x, t = xpnn.load_mnist_split("test", normalize=False, data_dir=data_dir, backend="numpy")
    for suffix in (".safetensors", ".npz"):
        path = tmp_path / f"raw{suffix}"
        xpnn.save_weights(network, path)
        loaded = xpnn.load_weights(path)
        assert loaded.input_scale == 1 / 255
        assert int(np.sum(loaded.classify(x, 1000) == t)) == 9352


def test_recorded_settings_can_be_overridden(tmp_path):
    network = xpnn.init_network(dtype="float64").to(input_scale=0.5)
    path = tmp_path / "n.safetensors"
    xpnn.save_weights(network, path)
    loaded = xpnn.load_weights(path, input_scale=1.0, output="softmax", dtype="float32")
    assert (loaded.input_scale, loaded.output, loaded.dtype_name) == (1.0, "softmax", "float32")


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("input_scale", "-1", "malformed recorded setting"),
        ("input_scale", "nan", "malformed recorded setting"),
        ("layer_sizes", "2,3", "records 2-3"),
        ("layer_sizes", "two", "malformed recorded setting"),
        ("hidden", "gelu", "unknown hidden activation"),
        ("hidden", "relu, relu", "hidden.*choose one of: sigmoid, relu, tanh, identity"),
        ("hidden", "relu,relu", "2 activations for 0 hidden layers"),
        ("output", "softmax ", "output.*choose one of: identity, softmax"),
        ("layer_sizes", " 2,2", "layer_sizes"),
        ("layer_sizes", "2,02", "layer_sizes"),
        ("input_scale", " 0.5", "input_scale"),
        ("input_scale", "1_0", "input_scale"),
        ("input_scale", "0", "input_scale"),
        ("input_scale", "inf", "input_scale"),
    ],
)
def test_bad_recorded_settings(tmp_path, key, value, match):
    from safetensors.numpy import save_file

    path = tmp_path / "w.safetensors"
    arrays = {"W1": np.ones((2, 2), np.float32), "b1": np.ones(2, np.float32)}
    save_file(arrays, str(path), metadata={f"xpnn.{key}": value})
    with pytest.raises(xpnn.WeightsError, match=match):
        xpnn.load_weights(path)


@pytest.mark.parametrize("value", ["int8", "bfloat16", "float64 ", "Float32", ""])
def test_recorded_dtype_must_be_a_floating_dtype(tmp_path, value):
    from safetensors.numpy import save_file

    path = tmp_path / "w.safetensors"
    arrays = {"W1": np.ones((2, 2), np.float32), "b1": np.ones(2, np.float32)}
    save_file(arrays, str(path), metadata={"xpnn.dtype": value})
    with pytest.raises(xpnn.WeightsError, match=r"dtype.*choose one of: float16, float32, float64"):
        xpnn.load_weights(path)


@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
def test_per_layer_hidden_activations_survive_save_and_load(tmp_path, suffix):
    rng = np.random.default_rng(2)
    shapes = {"W1": (5, 4), "b1": (4,), "W2": (4, 3), "b2": (3,), "W3": (3, 2), "b3": (2,)}
    params = {k: rng.normal(size=s) for k, s in shapes.items()}
    network = xpnn.Network(params, hidden=("relu", "tanh"), output="softmax")
    path = tmp_path / f"net{suffix}"
    xpnn.save_weights(network, path)
    loaded = xpnn.load_weights(path)
    assert (loaded.hidden, loaded.output) == (("relu", "tanh"), "softmax")
    x = rng.normal(size=(6, 5))
    np.testing.assert_array_equal(loaded.predict(x), network.predict(x))


def test_onnx_models_are_read_by_onnx_import(tmp_path, monkeypatch):
    seen = []

    def read_onnx(path):
        seen.append(path)
        arrays = {"W1": np.array([[1.0, -1.0], [0.5, 2.0]]), "b1": np.array([0.0, 1.0])}
        arrays |= {"W2": np.eye(2), "b2": np.zeros(2)}
        return arrays, {"hidden": ("identity",), "output": "identity"}

    module = types.ModuleType("xpnn.onnx_import")
    module.read_onnx = read_onnx
    monkeypatch.setitem(sys.modules, "xpnn.onnx_import", module)
    path = tmp_path / "m.onnx"
    path.write_bytes(b"not read here")
    network = xpnn.load_weights(path, backend="numpy", dtype="float64")
    assert [str(p) for p in seen] == [str(path)]
    assert (network.hidden, network.output, network.layer_sizes) == (
        "identity",
        "identity",
        (2, 2, 2),
    )
    np.testing.assert_array_equal(network.forward([1.0, 1.0]), [1.5, 2.0])


def test_onnx_without_the_onnx_library_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # the import fails
    path = tmp_path / "m.onnx"
    path.write_bytes(b"x")
    with pytest.raises(xpnn.BackendError, match=r"xpnn\[onnx\]"):
        xpnn.load_weights(path)


def test_plain_npz_without_settings_loads_with_the_books_defaults(tmp_path):
    path = tmp_path / "plain.npz"
    np.savez(path, W1=np.ones((2, 2), np.float32), b1=np.zeros(2, np.float32))
    loaded = xpnn.load_weights(path)
    assert (loaded.hidden, loaded.output, loaded.input_scale) == ("sigmoid", "softmax", 1.0)


def test_pickle_cannot_be_saved_and_says_why(tmp_path):
    with pytest.raises(xpnn.WeightsError, match="cannot record the network's settings"):
        xpnn.save_weights(xpnn.init_network(), tmp_path / "w.pkl")
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def weights_dir(data_dir, tmp_path):
    shutil.copy(os.path.join(data_dir, "sample_weight.pkl"), tmp_path)
    return tmp_path


def _modified_book_pickle(path):
    arrays = load_weight_pickle(path)
    arrays["b3"] = arrays["b3"] + np.float32(0.5)  # a quietly different network
    path.write_bytes(pickle.dumps(arrays, protocol=3))


def test_modified_book_weights_in_the_data_directory_are_refused(weights_dir):
    _modified_book_pickle(weights_dir / "sample_weight.pkl")
    with pytest.raises(xpnn.DataError, match=r"SHA-256 .* does not match the pinned"):
        xpnn.pretrained_network(data_dir=weights_dir, download=False)


def test_user_named_weights_are_not_pinned(weights_dir):
    path = weights_dir / "sample_weight.pkl"
    _modified_book_pickle(path)
    network = xpnn.load_weights(path)  # the user's own file: loaded as data
    assert network.layer_sizes == (784, 50, 100, 10)


def test_book_weights_are_parsed_from_the_bytes_that_were_hashed(weights_dir, monkeypatch):
    """A file swapped in right after the hash check is never what gets parsed."""
    path = weights_dir / "sample_weight.pkl"
    original = load_weight_pickle(path)
    real_read_verified = weights.read_verified

    def verify_then_swap(remote, where):
        verified = real_read_verified(remote, where)
        _modified_book_pickle(path)  # the file changes between check and parse
        return verified

    monkeypatch.setattr(weights, "read_verified", verify_then_swap)
    network = xpnn.pretrained_network(data_dir=weights_dir, backend="numpy", download=False)
    np.testing.assert_array_equal(network.params["b3"], original["b3"])


def test_save_leaves_nothing_on_failure_and_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "net.safetensors"
    xpnn.save_weights(xpnn.init_network(), path)
    before = path.read_bytes()

    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(xpnn._files.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        xpnn.save_weights(xpnn.init_network(dtype="float64"), path)
    assert [p.name for p in tmp_path.iterdir()] == ["net.safetensors"]
    assert path.read_bytes() == before
