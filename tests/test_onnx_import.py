"""Reading plain MLPs from ONNX models (xpnn.onnx_import.read_onnx), hostile models refused."""

from __future__ import annotations

import time
import tracemalloc
import warnings

import numpy as np
import pytest
from optional import import_or_skip

onnx = import_or_skip("onnx", "onnx")

import xpnn  # noqa: E402
from xpnn.export import export_model, export_onnx  # noqa: E402
from xpnn.onnx_import import read_onnx  # noqa: E402

H = onnx.helper
T = onnx.TensorProto
tensor = onnx.numpy_helper.from_array


def network(path, backend=None, **options):
    arrays, settings = read_onnx(path)
    return xpnn.Network(
        arrays,
        **settings,
        backend=None if backend is None else backend.name,
        device=None if backend is None else backend.device,
        **options,
    )


def host(x):
    return xpnn.to_numpy(x)


# -- round trip: the book's network -------------------------------------------------------------


def test_export_then_read_gives_the_same_arrays(data_dir, tmp_path):
    book = xpnn.pretrained_network(data_dir=data_dir, backend="numpy")
    arrays, settings = read_onnx(export_onnx(book, tmp_path / "book.onnx"))
    assert settings == {"hidden": "sigmoid", "output": "identity"}
    want = book.host_params()
    assert sorted(arrays) == sorted(want)
    for name, values in want.items():
        assert arrays[name].dtype == values.dtype
        np.testing.assert_array_equal(arrays[name], values)
    arrays, settings = read_onnx(export_onnx(book, tmp_path / "p.onnx", output="probabilities"))
    assert settings["output"] == "softmax"
    arrays, settings = read_onnx(export_onnx(book, tmp_path / "l.onnx", output="labels"))
    assert settings["output"] == "identity" and len(arrays) == 6


def test_the_book_read_back_scores_9352(backend, data_dir, tmp_path):
    book = xpnn.pretrained_network(data_dir=data_dir, backend="numpy")
    path = export_onnx(book, tmp_path / "book.onnx", output="labels")
    net = network(path, backend, input_scale=1 / 255)
    x, t = xpnn.load_mnist_split(
        "test", normalize=False, data_dir=data_dir, backend=backend.name, device=backend.device
    )
    labels = net.classify(x, batch_size=2500)
    assert int((host(labels) == host(t)).sum()) == 9352


def test_mixed_activations_round_trip(tmp_path):
    rng = np.random.default_rng(5)
    params = {f"W{i}": rng.normal(size=(4, 4)) for i in (1, 2, 3)}
    params |= {f"b{i}": rng.normal(size=4) for i in (1, 2, 3)}
    net = xpnn.Network(params, hidden=("tanh", "identity"), output="softmax", dtype="float64")
    arrays, settings = read_onnx(export_onnx(net, tmp_path / "m.onnx", output="probabilities"))
    assert settings == {"hidden": ("tanh", "identity"), "output": "softmax"}
    x = rng.normal(size=(9, 4))
    again = xpnn.Network(arrays, **settings)
    np.testing.assert_array_equal(np.asarray(again.predict(x)), np.asarray(net.predict(x)))


# -- models from other frameworks, on every backend ------------------------------------------------


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
def test_a_torch_sequential_gives_torch_outputs(backend, dynamo, tmp_path):
    torch = pytest.importorskip("torch")
    if dynamo:
        pytest.importorskip("onnxscript")
    nn = torch.nn
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(6, 5),
        nn.ReLU(),
        nn.Linear(5, 4),
        nn.Sigmoid(),
        nn.Linear(4, 4),
        nn.Tanh(),
        nn.Linear(4, 3),
    )
    x = torch.randn(16, 6)
    path = tmp_path / "torch.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporters' deprecation and progress notes
        if dynamo:
            batch = torch.export.Dim("batch")
            torch.onnx.export(model, (x,), path, dynamo=True, dynamic_shapes=({0: batch},))
        else:
            torch.onnx.export(model, (x,), path, dynamo=False)
    net = network(path, backend)
    assert net.hidden == ("relu", "sigmoid", "tanh") and net.output == "identity"
    with torch.no_grad():
        want = model(x).numpy()
    got = host(net.forward(backend.asarray(x.numpy())))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("activation", ["relu", "logistic", "tanh", "identity"])
@pytest.mark.parametrize("zipmap", [False, True])
def test_a_sklearn_mlp_gives_sklearn_predictions(backend, activation, zipmap, tmp_path):
    pytest.importorskip("sklearn")
    skl2onnx = pytest.importorskip("skl2onnx")
    from sklearn.datasets import make_classification
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    x, y = make_classification(
        n_samples=400, n_features=10, n_informative=6, n_classes=4, random_state=1
    )
    x = x.astype(np.float32)
    clf = MLPClassifier(
        hidden_layer_sizes=(12, 7), activation=activation, max_iter=20, random_state=0
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(x[:300], y[:300])
    path = tmp_path / "mlp.onnx"
    path.write_bytes(
        skl2onnx.to_onnx(clf, x[:1], options={id(clf): {"zipmap": zipmap}}).SerializeToString()
    )
    net = network(path, backend)
    held_out = x[300:]
    np.testing.assert_array_equal(
        host(net.classify(backend.asarray(held_out))), clf.predict(held_out)
    )
    proba = host(net.predict(backend.asarray(held_out)))
    np.testing.assert_allclose(proba, clf.predict_proba(held_out), atol=1e-5)


def test_sklearn_labels_that_are_not_0_to_k_are_refused(tmp_path):
    pytest.importorskip("sklearn")
    skl2onnx = pytest.importorskip("skl2onnx")
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 4)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = MLPClassifier(hidden_layer_sizes=(5,), max_iter=3).fit(x, np.arange(60) % 3 * 2 + 1)
    path = tmp_path / "odd.onnx"
    path.write_bytes(skl2onnx.to_onnx(clf, x[:1]).SerializeToString())
    with pytest.raises(xpnn.WeightsError, match=r"ZipMap labels that are not 0\.\.k-1"):
        read_onnx(path)
    options = {id(clf): {"zipmap": False}}
    path.write_bytes(skl2onnx.to_onnx(clf, x[:1], options=options).SerializeToString())
    with pytest.raises(xpnn.WeightsError, match=r"class labels \[1, 3, 5\] that are not 0\.\.2"):
        read_onnx(path)


# -- hostile and foreign models: one WeightsError, little memory -----------------------------------

X = H.make_tensor_value_info("x", T.FLOAT, ["n", 2])
Y = H.make_tensor_value_info("y", T.FLOAT, ["n", 2])
W = tensor(np.eye(2, dtype=np.float32), "W")
B = tensor(np.zeros(2, np.float32), "B")


def save(path, nodes, inits=(W, B), inputs=(X,), outputs=(Y,), opset=21):
    graph = H.make_graph(nodes, "g", list(inputs), list(outputs), initializer=list(inits))
    model = H.make_model(graph, opset_imports=[H.make_opsetid("", opset)], ir_version=10)
    path.write_bytes(model.SerializeToString())
    return path


def refused(path, match):
    """``read_onnx(path)`` raises one WeightsError line, allocating little."""
    size = path.stat().st_size
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(xpnn.WeightsError, match=match) as info:
            read_onnx(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "\n" not in str(info.value)
    assert time.perf_counter() - started < 10
    assert peak < 8 * size + (1 << 20), peak


def loop_body():
    v = H.make_tensor_value_info
    return H.make_graph(
        [H.make_node("Add", ["v", "v"], ["v_out"]), H.make_node("Identity", ["c"], ["c_out"])],
        "body",
        [v("i", T.INT64, []), v("c", T.BOOL, []), v("v", T.FLOAT, ["n", 2])],
        [v("c_out", T.BOOL, []), v("v_out", T.FLOAT, ["n", 2])],
    )


def test_control_flow_is_refused(tmp_path):
    trips, yes = tensor(np.array(2**62, np.int64), "trips"), tensor(np.array(True), "yes")
    pad = tensor(np.zeros(7700, np.float32), "pad")
    loop = H.make_node("Loop", ["trips", "yes", "x"], ["y"], body=loop_body())
    refused(save(tmp_path / "loop.onnx", [loop], [trips, yes, pad]), "operator 'Loop'")
    branch = H.make_node("If", ["yes"], ["y"], then_branch=loop_body(), else_branch=loop_body())
    refused(save(tmp_path / "if.onnx", [branch], [yes]), "operator 'If'")


@pytest.mark.parametrize(
    ("nodes", "match"),
    [
        ([H.make_node("Conv", ["x", "W"], ["y"])], "operator 'Conv'"),
        (
            [H.make_node("MatMul", ["x", "W"], ["m"]), H.make_node("Add", ["m", "x"], ["y"])],
            "branch",
        ),
        ([H.make_node("Relu", ["x"], ["y"])], "Relu .* where no layer precedes it"),
        ([H.make_node("MatMul", ["W", "x"], ["y"])], "takes the layer input as its weight"),
        (
            [
                H.make_node("Cast", ["B"], ["w"], to=T.FLOAT),
                H.make_node("MatMul", ["x", "w"], ["y"]),
            ],
            "weight 'w' is not a constant",
        ),
        (
            [H.make_node("MatMul", ["x", "W"], ["m"]), H.make_node("Sigmoid", ["m"], ["y"])],
            r"activation \(sigmoid\) after the last layer",
        ),
        (
            [H.make_node("MatMul", ["x", "W"], ["m"]), H.make_node("Mul", ["m", "B"], ["y"])],
            "operator Mul",
        ),
        ([H.make_node("Gemm", ["x", "W", "B"], ["y"], transA=1)], "transA=1"),
        ([H.make_node("Softmax", ["x"], ["y"])], "where no layer precedes it"),
    ],
    ids=[
        "conv",
        "branch",
        "no-layer",
        "weight-first",
        "non-constant",
        "last-act",
        "mul",
        "transA",
        "softmax-only",
    ],
)
def test_foreign_structures_are_refused(tmp_path, nodes, match):
    refused(save(tmp_path / "m.onnx", nodes), match)


def test_a_second_input_is_refused(tmp_path):
    z = H.make_tensor_value_info("z", T.FLOAT, ["n", 2])
    nodes = [H.make_node("MatMul", ["x", "W"], ["y"])]
    refused(save(tmp_path / "m.onnx", nodes, inputs=(X, z)), r"2 inputs \(x, z\)")


def test_wrong_shapes_are_refused(tmp_path):
    w2 = tensor(np.ones((3, 2), np.float32), "W2")
    nodes = [H.make_node("MatMul", ["x", "W"], ["h"]), H.make_node("MatMul", ["h", "W2"], ["y"])]
    refused(
        save(tmp_path / "m.onnx", nodes, [W, w2]), r"weight of shape \(3, 2\) after a layer of 2"
    )
    wide = H.make_tensor_value_info("x", T.FLOAT, ["n", 10**12])
    nodes = [H.make_node("MatMul", ["x", "W"], ["y"])]
    refused(save(tmp_path / "w.onnx", nodes, inputs=(wide,)), "1000000000000 features")


def test_huge_declared_dimensions_are_refused_before_allocating(tmp_path):
    huge = T()
    huge.name, huge.data_type = "W", T.FLOAT
    huge.dims.extend([200_000, 200_000])  # 160 GB declared, 8 bytes held
    huge.raw_data = b"\0" * 8
    nodes = [H.make_node("MatMul", ["x", "W"], ["y"])]
    refused(
        save(tmp_path / "m.onnx", nodes, [huge]), r"\(8 bytes\) is too small.*160000000000 bytes"
    )


def test_external_data_outside_the_folder_or_the_file_is_refused(tmp_path):
    model = export_model(xpnn.init_network())
    (tmp_path / "in").mkdir()
    inside = tmp_path / "in" / "m.onnx"
    onnx.save_model(model, inside, save_as_external_data=True, location="m.data", size_threshold=0)
    assert sorted(read_onnx(inside)[0]) == ["W1", "W2", "W3", "b1", "b2", "b3"]
    for location, match in [("../secret", "outside its folder"), ("/etc/passwd", "outside")]:
        model = onnx.load(inside, load_external_data=False)
        model.graph.initializer[0].external_data[0].value = location
        (tmp_path / "in" / "bad.onnx").write_bytes(model.SerializeToString())
        refused(tmp_path / "in" / "bad.onnx", match)
    model = onnx.load(inside, load_external_data=False)
    entries = {e.key: e for e in model.graph.initializer[0].external_data}
    entries["length"].value = str(10**12)  # far beyond the data file
    (tmp_path / "in" / "long.onnx").write_bytes(model.SerializeToString())
    refused(tmp_path / "in" / "long.onnx", "declares 1000000000000 bytes")


def test_truncated_and_foreign_files_are_refused(tmp_path):
    data = export_model(xpnn.init_network()).SerializeToString()
    for cut in (len(data) // 3, len(data) // 2, len(data) - 7):
        (tmp_path / "cut.onnx").write_bytes(data[:cut])
        refused(tmp_path / "cut.onnx", r"cut\.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"\xff\x00junk" * 100)
    refused(tmp_path / "junk.onnx", "is not an ONNX model")
    with pytest.raises(xpnn.WeightsError, match="cannot read"):
        read_onnx(tmp_path / "missing.onnx")


def test_uint8_input_is_refused(tmp_path):
    net = xpnn.init_network()
    refused(export_onnx(net, tmp_path / "u8.onnx", input_dtype="uint8"), "not a 2-D float tensor")


@pytest.mark.skipif(not hasattr(__import__("os"), "mkfifo"), reason="no FIFOs on this system")
def test_a_fifo_is_refused_without_blocking(tmp_path):
    import os

    os.mkfifo(tmp_path / "m.onnx")
    with pytest.raises(xpnn.WeightsError, match="not a regular file"):
        read_onnx(tmp_path / "m.onnx")
