"""ONNX export (traced through Network with ndonnx) and scoring with ONNX Runtime."""

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
import_or_skip("ndonnx", "onnx")

import xpnn  # noqa: E402
from xpnn import network as network_module  # noqa: E402
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


def test_graph_follows_the_network_code(monkeypatch):
    # The graph is traced from Network, not written beside it: change the
    # hidden activation Network uses and the exported model changes with it.
    x = np.array([[1.0, 0.5]], dtype=np.float32)
    before = session(export_model(xpnn.init_network())).run(None, {"x": x})[0]
    monkeypatch.setitem(network_module._HIDDEN, "sigmoid", lambda xp: lambda v, xp: -v)
    changed = xpnn.init_network()
    after = session(export_model(changed)).run(None, {"x": x})[0]
    np.testing.assert_allclose(after, np.asarray(changed.forward(x)), rtol=1e-6)
    assert not np.allclose(after, before)


def op_counts(model):
    counts = {}
    for node in model.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


@pytest.mark.parametrize("output", OUTPUTS)
def test_simplified_graph_computes_what_was_traced(book, mnist, output):
    x = mnist[0][:2000].astype(np.float32) / 255
    simple = export_model(book, output=output)
    traced = export_model(book, output=output, simplify=False)
    ops, traced_ops = op_counts(simple), op_counts(traced)
    # The guarded products became MatMul, the book's formula Sigmoid, the guards went.
    assert (ops["MatMul"], ops["Sigmoid"], traced_ops["If"]) == (
        3,
        2,
        3 + 2 * (output == "probabilities"),
    )
    assert "MatMul" not in traced_ops and "Sigmoid" not in traced_ops
    assert ops.get("If", 0) == traced_ops["If"] - 3 and "Neg" not in ops
    (a,) = session(simple).run(None, {"x": x})
    (b,) = session(traced).run(None, {"x": x})
    if output == "labels":
        np.testing.assert_array_equal(a, b)
    else:
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    for rows in (0, 1):
        (empty,) = session(simple).run(None, {"x": np.zeros((rows, 784), np.float32)})
        assert empty.shape[0] == rows


def test_only_the_exact_sigmoid_is_rewritten(monkeypatch):
    # 2 / (1 + exp(-v)) looks like the sigmoid but is not: it must stay as traced.
    monkeypatch.setitem(
        network_module._HIDDEN, "sigmoid", lambda xp: lambda v, xp: 2 / (1 + xp.exp(-v))
    )
    net = xpnn.init_network()
    model = export_model(net)
    assert "Sigmoid" not in op_counts(model) and op_counts(model)["MatMul"] == 3
    x = np.array([[1.0, 0.5], [-3.0, 2.0]], dtype=np.float32)
    (got,) = session(model).run(None, {"x": x})
    np.testing.assert_allclose(got, np.asarray(net.forward(x)), rtol=1e-6)


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
    assert meta["xpnn.batch"] == "dynamic" and meta["xpnn.simplified"] == "true"
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
    with pytest.raises(ValueError, match="fixed batch of 4 rows; got 3"):
        runner.run(np.ones((3, 2), np.float32))


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
    with pytest.raises(xpnn.OnnxError, match=r"already scales its input by 0\.0039"):
        export_onnx(net, tmp_path / "m.onnx", input_dtype="uint8")
    assert list(tmp_path.iterdir()) == []


def test_a_network_without_graph_form_is_refused(monkeypatch, tmp_path):
    # A hidden activation that goes through host memory cannot be traced.
    def host_kernel(x, xp):
        return xp.asarray(1 / (1 + np.exp(-xpnn.to_numpy(x))))

    monkeypatch.setitem(network_module._HIDDEN, "host", lambda xp: host_kernel)
    net = xpnn.Network(
        {"W1": [[1.0, 2.0]], "b1": [0.0, 0.0], "W2": [[1.0], [1.0]], "b2": [0.0]},
        hidden="host",
        backend="numpy",
    )
    np.testing.assert_allclose(net.forward([[0.0]]), [[1.0]])  # works on NumPy
    with pytest.raises(xpnn.OnnxError, match="has no ONNX graph form: tracing its forward"):
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

    def interrupted(fd):
        raise failure

    monkeypatch.setattr(os, "fsync", interrupted)  # mid-write, after the bytes went out
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


def test_missing_ndonnx_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ndonnx", None)
    with pytest.raises(xpnn.BackendError, match=r"xpnn\[onnx\]"):
        export_onnx(xpnn.init_network(), tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


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
    with pytest.raises(xpnn.OnnxError, match="does not exist"):
        OnnxRunner(tmp_path / "nope.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00not a model\xff" * 10)
    with pytest.raises(xpnn.OnnxError, match="onnxruntime cannot load") as info:
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
        ("eval.py", ["--backend", "numpy", "--weights", "m.onnx"], "--backend onnxruntime"),
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
