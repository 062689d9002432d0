"""ONNX export (built from the network's layers) and scoring with ONNX Runtime."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from optional import import_or_skip

onnx = import_or_skip("onnx", "onnx")
ort = import_or_skip("onnxruntime", "onnx")

import xpnn  # noqa: E402
from xpnn.export import IR_VERSION, OPSET, export_model, export_onnx  # noqa: E402
from xpnn.ort import OnnxRunner, mnist_runner  # noqa: E402

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
OUTPUTS = ("logits", "probabilities", "labels")
INPUT_DTYPES = ("float32", "uint8")


@pytest.fixture(scope="module")
def mnist(data_dir):
    """The MNIST test set as raw uint8 pixels and labels, on the host."""
    x, t = xpnn.load_mnist_split("test", normalize=False, data_dir=data_dir, backend="numpy")
    return np.asarray(x), np.asarray(t)


@pytest.fixture(scope="module")
def book(data_dir):
    return xpnn.pretrained_network(data_dir=data_dir, backend="numpy")


def relu_network():
    rng = np.random.default_rng(7)
    params = {
        "W1": rng.normal(size=(5, 4)),
        "b1": rng.normal(size=4),
        "W2": rng.normal(size=(4, 3)),
        "b2": rng.normal(size=3),
    }
    return xpnn.Network(params, hidden="relu", output="softmax", backend="numpy")


def model_input(x_uint8, input_dtype):
    """What the exported model of a [0, 1]-input network takes, for raw pixels."""
    return x_uint8 if input_dtype == "uint8" else x_uint8.astype(np.float32) / 255


def numpy_reference(net, x01, output):
    """``net`` on NumPy for inputs in [0, 1]: the numbers ONNX Runtime must reproduce."""
    logits = np.asarray(net.forward(x01))
    if output == "logits":
        return logits
    if output == "labels":
        return np.asarray(net.classify(x01))
    return np.asarray(xpnn.softmax(logits))


def session(model):
    data = model if isinstance(model, bytes) else model.SerializeToString()
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"])


# -- the exported model computes what Network computes --------------------------


@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("input_dtype", INPUT_DTYPES)
def test_mnist_scores_9352_in_onnxruntime(book, mnist, tmp_path, input_dtype, output):
    x, t = mnist
    path = export_onnx(book, tmp_path / "book.onnx", input_dtype=input_dtype, output=output)
    runner = OnnxRunner(path, input_size=784, classes=10)
    labels = runner.classify(model_input(x, input_dtype))
    assert labels.dtype == np.int64 and labels.shape == (10000,)
    assert int((labels == t).sum()) == 9352


@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("input_dtype", INPUT_DTYPES)
def test_mnist_outputs_match_numpy(book, mnist, input_dtype, output):
    x, _ = mnist
    x = x[:2000]
    reference = numpy_reference(book, x.astype(np.float32) / 255, output)
    model = export_model(book, input_dtype=input_dtype, output=output)
    (got,) = session(model).run(None, {"x": model_input(x, input_dtype)})
    if output == "labels":
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, reference)
    else:
        assert got.dtype == np.float32 and got.shape == (2000, 10)
        np.testing.assert_allclose(got, reference, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("input_dtype", INPUT_DTYPES)
@pytest.mark.parametrize("make", [xpnn.init_network, relu_network], ids=["chapter", "relu"])
def test_small_networks_match_numpy(make, input_dtype, output):
    net = make(backend="numpy") if make is xpnn.init_network else make()
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, size=(64, net.input_size), dtype=np.uint8)
    reference = numpy_reference(net.to(dtype="float32"), pixels.astype(np.float32) / 255, output)
    model = export_model(net, input_dtype=input_dtype, output=output)
    (got,) = session(model).run(None, {"x": model_input(pixels, input_dtype)})
    if output == "labels":
        np.testing.assert_array_equal(got, reference)
    else:
        np.testing.assert_allclose(got, reference, rtol=1e-5, atol=1e-5)


def test_chapter_network_forward_of_the_book():
    # The chapter's worked example: forward(network, [1.0, 0.5]) = [0.3168..., 0.6962...].
    model = export_model(xpnn.init_network(dtype="float64"))
    (got,) = session(model).run(None, {"x": np.array([[1.0, 0.5]], dtype=np.float32)})
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, [[0.31682708, 0.69627909]], rtol=1e-7)


def op_counts(model):
    counts = {}
    for node in model.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


def test_a_float64_network_keeps_its_dtype():
    net = xpnn.init_network(dtype="float64")
    model = export_model(net, output="probabilities")
    (got,) = session(model).run(None, {"x": np.array([[1.0, 0.5]], dtype=np.float32)})
    assert got.dtype == np.float64
    np.testing.assert_allclose(got.sum(axis=1), 1.0)


# -- the file ---------------------------------------------------------------------


@pytest.mark.parametrize("input_dtype", INPUT_DTYPES)
def test_file_passes_the_checker_and_records_the_network(book, tmp_path, input_dtype):
    path = export_onnx(book, tmp_path / "m.onnx", input_dtype=input_dtype, output="labels")
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert {o.domain or "ai.onnx": o.version for o in model.opset_import} == {"ai.onnx": OPSET}
    assert model.ir_version == IR_VERSION and model.producer_name == "xpnn"
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["xpnn.version"] == xpnn.__version__
    assert meta["xpnn.layer_sizes"] == "784,50,100,10"
    assert meta["xpnn.hidden"] == "sigmoid" and meta["xpnn.output_function"] == "softmax"
    assert meta["xpnn.dtype"] == "float32" and float(meta["xpnn.input_scale"]) == 1.0
    assert meta["xpnn.input_dtype"] == input_dtype and meta["xpnn.output"] == "labels"
    assert meta["xpnn.batch"] == "dynamic"
    folded = float(meta["xpnn.folded_input_scale"])
    assert folded == pytest.approx(1 / 255 if input_dtype == "uint8" else 1.0)
    (x,), (y,) = model.graph.input, model.graph.output
    elem = onnx.TensorProto.UINT8 if input_dtype == "uint8" else onnx.TensorProto.FLOAT
    assert (x.name, x.type.tensor_type.elem_type) == ("x", elem)
    assert (y.name, y.type.tensor_type.elem_type) == ("labels", onnx.TensorProto.INT64)
    # About the size of the weights: 45,360 float32 numbers, and little else.
    weights = sum(np.asarray(v).nbytes for v in book.params.values())
    assert weights <= path.stat().st_size <= 1.05 * weights


def test_the_runner_reads_the_metadata(book, tmp_path):
    path = export_onnx(book, tmp_path / "m.onnx", input_dtype="uint8", output="probabilities")
    runner = OnnxRunner(path)
    assert (runner.input_dtype, runner.input_size) == ("uint8", 784)
    assert (runner.output, runner.classes, runner.batch) == ("probabilities", 10, None)
    assert (runner.dtype, runner.device) == ("float32", "cpu")


# -- batch axis -----------------------------------------------------------------------


def dims(value):
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


def test_dynamic_batch_takes_any_number_of_rows():
    model = export_model(xpnn.init_network(), output="probabilities")
    assert dims(model.graph.input[0]) == ["batch", 2]
    assert dims(model.graph.output[0]) == ["batch", 2]
    runner = OnnxRunner(model.SerializeToString())
    for rows in (0, 1, 3, 100):
        out = runner.run(np.ones((rows, 2), dtype=np.float32))
        assert out.shape == (rows, 2)
    assert runner.run(np.ones(2, dtype=np.float32)).shape == (2,)


def test_fixed_batch_takes_that_many_rows_only():
    model = export_model(xpnn.init_network(), output="labels", batch=4)
    assert dims(model.graph.input[0]) == [4, 2]
    assert dims(model.graph.output[0]) == [4]
    assert session(model).run(None, {"x": np.ones((4, 2), np.float32)})[0].shape == (4,)
    with pytest.raises(Exception, match=r"(?i)dimension|shape"):  # ONNX Runtime refuses it
        session(model).run(None, {"x": np.ones((3, 2), np.float32)})
    runner = OnnxRunner(model.SerializeToString())
    assert runner.batch == 4
    with pytest.raises(xpnn.OnnxError, match="fixed batch of 4 rows; got 3"):
        runner.run(np.ones((3, 2), np.float32))
    with pytest.raises(xpnn.OnnxError, match="fixed batch of 4 rows; got 3"):
        runner.classify(np.ones((8, 2), np.float32), batch_size=3)
    assert runner.classify(np.ones((8, 2), np.float32), batch_size=np.int64(4)).shape == (8,)


# -- bad input, nothing half-written -----------------------------------------------------


@pytest.mark.parametrize(
    ("option", "match"),
    [
        ({"output": "softmax"}, "unknown output 'softmax'; choose one of: logits, probabilities"),
        ({"input_dtype": "int8"}, "unknown input_dtype 'int8'; choose one of: float32, uint8"),
        ({"batch": 0}, "batch must be a positive integer"),
        ({"batch": True}, "batch must be a positive integer"),
        ({"batch": 2.0}, "batch must be a positive integer"),
    ],
)
def test_bad_options_are_refused(tmp_path, option, match):
    with pytest.raises(ValueError, match=match):
        export_onnx(xpnn.init_network(), tmp_path / "m.onnx", **option)
    assert list(tmp_path.iterdir()) == []


def test_not_a_network_is_refused(tmp_path):
    with pytest.raises(TypeError, match=r"needs an xpnn\.Network, got dict"):
        export_onnx({"W1": [[1.0]], "b1": [0.0]}, tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_uint8_input_of_a_network_that_already_scales_is_refused(tmp_path):
    net = xpnn.init_network().to(input_scale=1 / 255)
    with pytest.raises(xpnn.OnnxError, match=r"already scales by 0\.0039"):
        export_onnx(net, tmp_path / "m.onnx", input_dtype="uint8")
    assert list(tmp_path.iterdir()) == []


def test_an_activation_without_an_operator_is_refused(tmp_path):
    # A name the export has no operator for (as a future activation would be).
    net = xpnn.Network(
        {"W1": [[1.0, 2.0]], "b1": [0.0, 0.0], "W2": [[1.0], [1.0]], "b2": [0.0]},
        backend="numpy",
    )
    net.hidden = "gelu"
    with pytest.raises(xpnn.OnnxError, match="no ONNX operator for activation 'gelu'"):
        export_onnx(net, tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_unwritable_paths_give_one_clear_error(tmp_path):
    with pytest.raises(xpnn.OnnxError, match=r"cannot write the ONNX model to .*No such file"):
        export_onnx(xpnn.init_network(), tmp_path / "missing" / "m.onnx")
    (tmp_path / "taken.onnx").mkdir()
    with pytest.raises(xpnn.OnnxError, match=r"cannot write the ONNX model to .*taken\.onnx"):
        export_onnx(xpnn.init_network(), tmp_path / "taken.onnx")
    assert [p.name for p in tmp_path.iterdir()] == ["taken.onnx"]
    assert list((tmp_path / "taken.onnx").iterdir()) == []


@pytest.mark.parametrize("failure", [KeyboardInterrupt, OSError(28, "No space left on device")])
def test_a_failed_write_leaves_the_old_file_and_no_temporary(monkeypatch, tmp_path, failure):
    target = tmp_path / "m.onnx"
    target.write_bytes(b"the previous model")

    def interrupted(*args):
        raise failure

    # At the rename, after the bytes went out to the temporary.
    monkeypatch.setattr(os, "replace", interrupted)
    monkeypatch.setattr(os, "rename", interrupted)
    expected = KeyboardInterrupt if failure is KeyboardInterrupt else xpnn.OnnxError
    with pytest.raises(expected):
        export_onnx(xpnn.init_network(), target)
    assert target.read_bytes() == b"the previous model"
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]


def test_a_successful_write_replaces_the_file(tmp_path):
    target = tmp_path / "m.onnx"
    target.write_bytes(b"the previous model")
    export_onnx(xpnn.init_network(), target)
    onnx.checker.check_model(onnx.load(str(target)), full_check=True)
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


# -- the runner refuses what it cannot run ---------------------------------------------------


def test_runner_devices():
    model = export_model(xpnn.init_network()).SerializeToString()
    assert OnnxRunner(model, device="CPU").device == "cpu"
    with pytest.raises(xpnn.BackendError, match="has no device 'tpu'"):
        OnnxRunner(model, device="tpu")
    # No machine has 4096 GPUs: refused whether or not CUDA is there.
    with pytest.raises(xpnn.XpnnError, match="cuda:4096"):
        OnnxRunner(model, device="cuda:4096")


def test_runner_on_cuda_scores_9352(book, mnist):
    x, t = mnist
    try:
        runner = OnnxRunner.from_network(book, input_dtype="uint8", output="labels", device="cuda")
    except xpnn.BackendError as err:
        # Skipped by capability; XPNN_TEST_REQUIRE=onnxruntime-cuda makes it a failure.
        required = [v.strip() for v in os.environ.get("XPNN_TEST_REQUIRE", "").split(",")]
        if "onnxruntime-cuda" in required:
            pytest.fail(f"required backend onnxruntime-cuda is unavailable: {err}")
        pytest.skip(f"onnxruntime-cuda: {err}")
    assert runner.device == "cuda:0"
    assert runner.session.get_providers()[0] == "CUDAExecutionProvider"
    assert int((runner.classify(x) == t).sum()) == 9352


def test_runner_refuses_a_model_of_other_sizes(tmp_path):
    path = export_onnx(xpnn.init_network(), tmp_path / "chapter.onnx")
    with pytest.raises(xpnn.OnnxError, match="network of 2 inputs and 2 classes, but 784 inputs"):
        OnnxRunner(path, input_size=784, classes=10)


def test_runner_refuses_files_that_are_not_models(tmp_path):
    with pytest.raises(xpnn.OnnxError, match=r"cannot read .*No such file"):
        OnnxRunner(tmp_path / "nope.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00not a model\xff" * 10)
    with pytest.raises(xpnn.OnnxError, match="is not an ONNX model") as info:
        OnnxRunner(junk)
    assert "\n" not in str(info.value)


def test_runner_refuses_wrong_inputs():
    runner = OnnxRunner.from_network(xpnn.init_network(), input_dtype="uint8")
    with pytest.raises(TypeError, match="takes uint8 pixels, got dtype float32"):
        runner.run(np.zeros((1, 2), dtype=np.float32))
    with pytest.raises(ValueError, match=r"shape \(2,\) or \(n, 2\); got shape \(1, 3\)"):
        runner.run(np.zeros((1, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        runner.classify(np.zeros((1, 2), dtype=np.uint8), batch_size=0)


def test_runner_takes_arrays_of_other_backends():
    strict = import_or_skip("array_api_strict", "array_api_strict")
    runner = OnnxRunner.from_network(xpnn.init_network(), output="logits")
    x = strict.asarray([[1.0, 0.5]], dtype=strict.float32)
    np.testing.assert_allclose(runner.run(x), [[0.31682708, 0.69627909]], rtol=1e-6)


def test_missing_onnxruntime_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(xpnn.BackendError, match=r"onnxruntime.*xpnn\[onnx\]"):
        OnnxRunner(b"")


def test_mnist_runner_batches_match_one_pass(book, mnist, data_dir):
    x, t = mnist
    runner = mnist_runner(data_dir=data_dir)
    assert (runner.input_dtype, runner.output) == ("uint8", "labels")
    one = runner.classify(x)
    np.testing.assert_array_equal(runner.classify(x, batch_size=333), one)
    assert int((one == t).sum()) == 9352


# -- the scripts ---------------------------------------------------------------------------------


def run_script(name, *args, env=None):
    return subprocess.run(
        [sys.executable, str(SCRIPTS / name), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def test_eval_with_onnxruntime_reports_like_other_backends(data_dir):
    out = run_script("eval.py", "--backend", "onnxruntime", "--json", "--data-dir", data_dir)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert (report["backend"], report["device"]) == ("onnxruntime", "cpu")
    assert report["dtype"] == "float32"
    assert report["correct"] == 9352 and report["n"] == 10000
    matrix = report["confusion_matrix"]
    assert sum(map(sum, matrix)) == 10000 and sum(matrix[i][i] for i in range(10)) == 9352
    assert report["images_per_second"] > 0


def test_export_script_then_eval_of_the_file(data_dir, tmp_path):
    path = tmp_path / "model.onnx"
    out = run_script("export_onnx.py", "--out", str(path), "--data-dir", data_dir)
    assert out.returncode == 0, out.stderr
    assert "wrote" in out.stdout and "784-50-100-10" in out.stdout
    # A float32 model: eval feeds it pixels / 255, as the network expects.
    out = run_script(
        "eval.py", "--backend", "onnxruntime", "--weights", str(path), "--json", "--quiet"
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["correct"] == 9352


@pytest.mark.parametrize(
    ("script", "args", "message"),
    [
        ("export_onnx.py", ["--out", "/nonexistent-dir/m.onnx"], "no directory"),
        ("export_onnx.py", ["--out", "m.onnx", "--batch", "0"], "must be at least 1"),
        ("export_onnx.py", ["--out", "m.onnx", "--output", "softmax"], "invalid choice"),
        ("eval.py", ["--backend", "onnxruntime", "--device", "cuda:4096"], "cuda"),
        ("eval.py", ["--backend", "onnxruntime", "--weights", "CHAPTER"], "784 inputs"),
        ("eval.py", ["--backend", "numpy", "--weights", "m.onnx"], "no such weights file"),
    ],
)
def test_script_errors_are_one_line_exit_2(data_dir, tmp_path, script, args, message):
    chapter = export_onnx(xpnn.init_network(), tmp_path / "chapter.onnx")
    args = [str(chapter) if a == "CHAPTER" else a for a in args]
    out = run_script(script, *args, "--data-dir", data_dir)
    assert out.returncode == 2, out.stderr
    assert out.stderr.count("\n") == 1 and message in out.stderr, out.stderr
    assert "Traceback" not in out.stderr


def test_eval_without_onnxruntime_names_the_extra(data_dir, tmp_path):
    # A directory that shadows onnxruntime with a module that fails to import.
    (tmp_path / "onnxruntime.py").write_text("raise ImportError('simulated: not installed')\n")
    root = str(SCRIPTS.parent)
    out = run_script(
        "eval.py",
        "--backend",
        "onnxruntime",
        "--data-dir",
        data_dir,
        env={"PYTHONPATH": os.pathsep.join([str(tmp_path), root])},
    )
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "pip install 'xpnn[onnx]'" in out.stderr, out.stderr


# -- the graph is the network's layers ------------------------------------------------------

HIDDEN = ("sigmoid", "relu", "tanh", "identity", ("tanh", "relu"), ("identity", "sigmoid"))


@pytest.mark.parametrize("compute", ["float32", "float64"])
@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("output_function", ["identity", "softmax"])
@pytest.mark.parametrize("hidden", HIDDEN, ids=str)
def test_every_activation_and_output_is_the_network(hidden, output_function, output, compute):
    rng = np.random.default_rng(3)
    params = {"W1": rng.normal(size=(5, 4)), "b1": rng.normal(size=4)}
    params |= {"W2": rng.normal(size=(4, 6)), "b2": rng.normal(size=6)}
    params |= {"W3": rng.normal(size=(6, 3)), "b3": rng.normal(size=3)}
    net = xpnn.Network(params, hidden=hidden, output=output_function, dtype=compute)
    x = rng.normal(size=(50, 5)).astype(np.float32)
    (got,) = session(export_model(net, output=output)).run(None, {"x": x})
    if output == "labels":
        np.testing.assert_array_equal(got, np.asarray(net.classify(x)))
        return
    want = np.asarray(net.forward(x))
    if output == "probabilities":
        want = np.asarray(net.predict(x) if output_function == "softmax" else xpnn.softmax(want))
    assert got.dtype == np.dtype(compute)
    np.testing.assert_allclose(got, want, rtol=1e-5 if compute == "float32" else 1e-12, atol=1e-6)


def test_the_book_network_is_one_node_per_operation(book):
    ops = [node.op_type for node in export_model(book, output="labels").graph.node]
    assert ops == ["MatMul", "Add", "Sigmoid"] * 2 + ["MatMul", "Add", "ArgMax"]
    ops = [n.op_type for n in export_model(book, input_dtype="uint8").graph.node]
    assert ops[0] == "Cast" and ops[-1] == "Add" and len(ops) == 9


def test_float16_labels_agree_with_numpy(data_dir, mnist):
    # The documented float16 tolerance: logits within 0.0078, every test label the same.
    net = xpnn.pretrained_network(data_dir=data_dir, backend="numpy", dtype="float16")
    x = mnist[0].astype(np.float32) / 255
    (got,) = session(export_model(net)).run(None, {"x": x})
    want = np.asarray(net.forward(x))
    assert got.dtype == np.float16
    assert np.abs(got.astype(np.float32) - want.astype(np.float32)).max() <= 0.0079
    np.testing.assert_array_equal(got.argmax(axis=1), np.asarray(net.classify(x)))


def test_missing_onnx_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(xpnn.BackendError, match=r"xpnn\[onnx\]"):
        export_onnx(xpnn.init_network(), tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


# -- the runner: every failure one OnnxError, the model checked first --------------------------

H = onnx.helper


def graph_model(nodes, inputs, outputs, inits=(), meta=None, opset=21):
    graph = H.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    model = H.make_model(graph, opset_imports=[H.make_opsetid("", opset)], ir_version=10)
    if meta:
        H.set_model_props(model, meta)
    return model.SerializeToString()


def value(name, elem, shape):
    return H.make_tensor_value_info(name, elem, shape)


X2 = value("x", onnx.TensorProto.FLOAT, ["n", 2])
LABELS = value("labels", onnx.TensorProto.INT64, ["n"])


def test_a_model_declaring_no_rows_is_refused():
    model = export_model(xpnn.init_network(), output="labels")
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 0
    with pytest.raises(xpnn.OnnxError, match=r"takes tensor\(float\) \[0, 2\]"):
        OnnxRunner(model.SerializeToString())


def test_labels_out_of_range_or_of_other_rows_are_refused():
    five = onnx.numpy_helper.from_array(np.array(5, np.int64), "five")
    nodes = [H.make_node("ArgMax", ["x"], ["a"], axis=1, keepdims=0)]
    big = graph_model(
        [*nodes, H.make_node("Add", ["a", "five"], ["labels"])], [X2], [LABELS], [five]
    )
    runner = OnnxRunner(big, classes=2)
    with pytest.raises(xpnn.OnnxError, match=r"returned labels 5\.\.5 for 3 rows.*labels 0\.\.1"):
        runner.classify(np.zeros((3, 2), np.float32))
    rows = graph_model(
        [H.make_node("ArgMax", ["x"], ["labels"], axis=0, keepdims=0)], [X2], [LABELS]
    )
    with pytest.raises(xpnn.OnnxError, match=r"returned \(2,\) for 3 rows"):
        OnnxRunner(rows, classes=2).classify(np.zeros((3, 2), np.float32))


@pytest.mark.parametrize(
    ("meta", "match"),
    [
        ({"xpnn.output": "labels"}, "metadata xpnn.output='labels'"),
        ({"xpnn.output": "scores"}, "metadata xpnn.output='scores'"),
        ({"xpnn.input_scale": "0"}, "metadata xpnn.input_scale='0': malformed"),
        ({"xpnn.input_scale": "nan"}, "metadata xpnn.input_scale='nan'"),
        ({"xpnn.input_scale": "-1"}, "metadata xpnn.input_scale='-1'"),
        ({"xpnn.input_scale": "inf"}, "metadata xpnn.input_scale='inf'"),
        ({"xpnn.input_scale": "x"}, "metadata xpnn.input_scale='x'"),
        ({"xpnn.layer_sizes": "2,7"}, "metadata xpnn.layer_sizes='2,7'"),
        ({"xpnn.layer_sizes": "2,0,2"}, "metadata xpnn.layer_sizes='2,0,2'"),
        ({"xpnn.dtype": "int8"}, "metadata xpnn.dtype='int8'"),
    ],
)
def test_metadata_is_validated(meta, match):
    model = export_model(xpnn.init_network())
    props = {p.key: p.value for p in model.metadata_props} | meta
    del model.metadata_props[:]
    H.set_model_props(model, props)
    with pytest.raises(xpnn.OnnxError, match=match):
        OnnxRunner(model.SerializeToString())


def test_a_failure_inside_the_run_is_one_line_and_nothing_logged(capfd):
    shape = onnx.numpy_helper.from_array(np.array([-1, 3], np.int64), "shape")
    back = onnx.numpy_helper.from_array(np.array([-1, 2], np.int64), "back")
    nodes = [
        H.make_node("Reshape", ["x", "shape"], ["r"]),
        H.make_node("Reshape", ["r", "back"], ["y"]),
    ]
    model = graph_model(nodes, [X2], [value("y", onnx.TensorProto.FLOAT, ["n", 2])], [shape, back])
    runner = OnnxRunner(model)
    capfd.readouterr()
    with pytest.raises(xpnn.OnnxError, match="onnxruntime failed to run") as info:
        runner.run(np.zeros((1, 2), np.float32))
    assert "\n" not in str(info.value)
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")


def loop_model(trips=2**62):
    """A 31 kB model that would spin for ever: a Loop of 2**62 trips."""
    body = H.make_graph(
        [H.make_node("Add", ["v", "v"], ["v_out"]), H.make_node("Identity", ["c"], ["c_out"])],
        "body",
        [
            value("i", onnx.TensorProto.INT64, []),
            value("c", onnx.TensorProto.BOOL, []),
            value("v", onnx.TensorProto.FLOAT, ["n", 2]),
        ],
        [
            value("c_out", onnx.TensorProto.BOOL, []),
            value("v_out", onnx.TensorProto.FLOAT, ["n", 2]),
        ],
    )
    inits = [
        onnx.numpy_helper.from_array(np.array(trips, np.int64), "trips"),
        onnx.numpy_helper.from_array(np.array(True), "yes"),
        onnx.numpy_helper.from_array(np.zeros(7700, np.float32), "padding"),
    ]
    loop = H.make_node("Loop", ["trips", "yes", "x"], ["y"], body=body)
    return graph_model([loop], [X2], [value("y", onnx.TensorProto.FLOAT, ["n", 2])], inits)


def test_a_loop_is_refused_at_once(tmp_path):
    path = tmp_path / "loop.onnx"
    path.write_bytes(loop_model())
    assert 30_000 < path.stat().st_size < 32_000
    with pytest.raises(xpnn.OnnxError, match="uses operator 'Loop'"):
        OnnxRunner(path)
    with pytest.raises(xpnn.OnnxError, match="uses operator 'Loop'"):
        mnist_runner(path)


@pytest.mark.parametrize(
    ("node", "match"),
    [
        (H.make_node("Conv", ["x", "x"], ["y"]), "operator 'Conv'"),
        (H.make_node("Exp", ["x"], ["y"]), "operator 'Exp'"),
        (H.make_node("Relu", ["x"], ["y"], domain="com.microsoft"), "'com.microsoft.Relu'"),
        (H.make_node("Identity", ["x"], ["y"], sub=H.make_graph([], "s", [], [])), "subgraph"),
    ],
)
def test_operators_outside_the_allow_list_are_refused(node, match):
    model = graph_model([node], [X2], [value("y", onnx.TensorProto.FLOAT, ["n", 2])])
    with pytest.raises(xpnn.OnnxError, match=match):
        OnnxRunner(model)


def test_input_scale_weights_score_9352_in_onnxruntime(book, mnist, tmp_path):
    path = tmp_path / "scaled.safetensors"
    xpnn.save_weights(book.to(input_scale=1 / 255), path)
    runner = mnist_runner(path)
    x, t = mnist
    rows = []
    labels = runner.classify(runner.from_pixels(x), batch_size=np.int64(1000), progress=rows.append)
    assert rows == [1000] * 10 and int((labels == t).sum()) == 9352


def test_runner_external_data_from_the_folder_only(tmp_path):
    model = export_model(xpnn.init_network())
    onnx.save_model(
        model, tmp_path / "m.onnx", save_as_external_data=True, location="m.data", size_threshold=0
    )
    x = np.array([[1.0, 0.5]], np.float32)
    np.testing.assert_allclose(
        OnnxRunner(tmp_path / "m.onnx").run(x), [[0.31682708, 0.69627909]], rtol=1e-6
    )
    model = onnx.load(tmp_path / "m.onnx", load_external_data=False)
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = "../m.data"
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "m.onnx").write_bytes(model.SerializeToString())
    with pytest.raises(xpnn.OnnxError, match="outside its folder"):
        OnnxRunner(tmp_path / "sub" / "m.onnx")
