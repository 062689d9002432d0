#!/usr/bin/env python
"""Benchmark xpnn against the book's code and other engines, each engine in its own process.

    python scripts/bench.py                  # full run (10-20 minutes on 2 busy cores)
    python scripts/bench.py --quick          # fewer rounds and repeats
    python scripts/bench.py --json out.json  # also write every figure
    python scripts/bench.py --markdown       # also print the README's tables
    python scripts/bench.py --from-json out.json --markdown   # tables of an earlier run
    python scripts/bench.py --update-readme README.md         # rewrite the README's tables
    python scripts/bench.py --cases ort,numpy_classify_f32   # a subset
    python scripts/bench.py --gpu            # on a CUDA machine: cupy vs torch-cuda

Method. Every case runs in a fresh Python process of its own (``bench.py
--worker CASE``): it builds its inputs, runs the work a few times to warm up
(JAX compiles there), then times ``repeat`` calls. Every engine runs at its
default settings (ONNX Runtime's default session options, torch's and JAX's
default thread counts, NumPy's OpenBLAS threads). Every forward case does the
same work: the 10,000 MNIST test images in, the 10,000 predicted labels out as
a NumPy array, from float32 pixels in [0, 1] or from raw uint8 pixels. The
cases run one after another in rounds; each round starts one case later than
the one before. For each case the report gives the minimum and the median over
all timed calls of all rounds; a ratio ``A / B`` is the median over rounds of
``median_A / median_B`` within the round. Only NumPy code is ever compared
inside one process (xpnn's per-sample loop against the book's, plain NumPy pass
by pass, xpnn's batch sizes), with the variants alternating call by call; those
ratios are medians of call-by-call ratios, in wall time and in CPU time of the
calling thread. Needs the MNIST test set and the book's weights
(``XPNN_DATA_DIR`` or ``--data-dir``).

Exit status: 0 when every requested case was measured or skipped for a stated
reason (a library not installed, a feature not present); 1 when any case failed
or nothing was measured.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

LAYERS = ((784, 50), (50, 100), (100, 10))
N_IMAGES = 10_000
BATCH = 1000  # rows per pass in a uint8 classify case (a cache-sized float32 copy)
SAMPLE_SLICE = 500  # images per timed slice in the per-sample loop


class Skip(Exception):
    """A case that cannot run here for a stated reason (a library is missing)."""


# -- the book's code, written here in plain NumPy as the reference ---------------


def book_sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def book_softmax(a: np.ndarray) -> np.ndarray:
    c = np.max(a)
    e = np.exp(a - c)
    return e / np.sum(e)


def book_predict(p: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    z1 = book_sigmoid(np.dot(x, p["W1"]) + p["b1"])
    z2 = book_sigmoid(np.dot(z1, p["W2"]) + p["b2"])
    return book_softmax(np.dot(z2, p["W3"]) + p["b3"])


def book_batch_predict(p: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    z1 = book_sigmoid(np.dot(x, p["W1"]) + p["b1"])
    z2 = book_sigmoid(np.dot(z1, p["W2"]) + p["b2"])
    a3 = np.dot(z2, p["W3"]) + p["b3"]
    e = np.exp(a3 - a3.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# -- the inputs of a worker ------------------------------------------------------


class Inputs:
    """The book's weights and the test images, loaded on first use."""

    def __init__(self, data_dir: str, quick: bool) -> None:
        self.data_dir = data_dir
        self.quick = quick
        self._params: dict[str, np.ndarray] | None = None
        self._x8: np.ndarray | None = None

    @property
    def params(self) -> dict[str, np.ndarray]:
        if self._params is None:
            from xpnn.safe_pickle import load_weight_pickle

            self._params = load_weight_pickle(os.path.join(self.data_dir, "sample_weight.pkl"))
        return self._params

    @property
    def x8(self) -> np.ndarray:
        if self._x8 is None:
            import xpnn

            self._x8 = xpnn.load_mnist_split("test", normalize=False, data_dir=self.data_dir)[0]
        return self._x8

    @property
    def x32(self) -> np.ndarray:
        return self.x8.astype(np.float32) / np.float32(255)


Work = dict[str, Callable[[], Any]]  # variant name -> one timed call


def _require(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise Skip(f"{module} is not installed ({err})") from None


def _xpnn_net(inp: Inputs, **kw: Any) -> Any:
    import xpnn

    try:
        return xpnn.Network(inp.params, **kw)
    except xpnn.BackendError as err:
        raise Skip(str(err)) from None


# -- cases: each returns the callables one worker process times ------------------


def case_numpy_plain(inp: Inputs) -> Work:
    p, x = inp.params, inp.x32
    return {"": lambda: book_batch_predict(p, x).argmax(axis=1)}


def case_numpy_predict(inp: Inputs) -> Work:
    net, x = _xpnn_net(inp, output="softmax"), inp.x32
    return {"": lambda: np.argmax(net.predict(x), axis=1)}


def case_numpy_classify_f32(inp: Inputs) -> Work:
    net, x = _xpnn_net(inp), inp.x32
    return {"": lambda: net.classify(x)}


def case_numpy_classify_u8(inp: Inputs) -> Work:
    net, x = _xpnn_net(inp, input_scale=1 / 255), inp.x8
    return {"": lambda: net.classify(x, BATCH)}


def case_numpy_classify_u8_all(inp: Inputs) -> Work:
    net, x = _xpnn_net(inp, input_scale=1 / 255), inp.x8
    return {"": lambda: net.classify(x)}


def case_book_batch100(inp: Inputs) -> Work:
    p, x = inp.params, inp.x32
    return {
        "": lambda: np.concatenate(
            [book_batch_predict(p, x[i : i + 100]).argmax(axis=1) for i in range(0, len(x), 100)]
        )
    }


def case_batch_sweep(inp: Inputs) -> Work:
    """xpnn numpy classify at several batch sizes, in one process (xpnn against itself)."""
    net, net_raw, x32, x8 = _xpnn_net(inp), _xpnn_net(inp, input_scale=1 / 255), inp.x32, inp.x8
    work: Work = {}
    for size in (250, 1000, 2500, None):
        work[f"float32, batch {size or 'all'}"] = lambda s=size: net.classify(x32, s)
        work[f"uint8, batch {size or 'all'}"] = lambda s=size: net_raw.classify(x8, s)
    return work


def case_anatomy(inp: Inputs) -> Work:
    """Where plain NumPy's time goes, pass by pass (NumPy against itself, one process)."""
    p, x = inp.params, inp.x32
    a1 = x @ p["W1"] + p["b1"]
    z1 = book_sigmoid(a1)
    a2 = z1 @ p["W2"] + p["b2"]
    z2 = book_sigmoid(a2)
    w1t = np.ascontiguousarray(p["W1"].T)
    return {
        "whole forward, labels (book's batched code)": lambda: book_batch_predict(p, x).argmax(1),
        "layer 1 GEMM 10000x784 @ 784x50": lambda: x @ p["W1"],
        "layer 1 GEMM, W1 stored transposed": lambda: x @ w1t.T,
        "layer 1 GEMM in 10 row blocks of 1000": lambda: [
            x[i : i + 1000] @ p["W1"] for i in range(0, len(x), 1000)
        ],
        "layer 1 bias add": lambda: a1 + p["b1"],
        "layer 1 sigmoid (4 passes)": lambda: book_sigmoid(a1),
        "layer 2 GEMM + bias": lambda: z1 @ p["W2"] + p["b2"],
        "layer 2 sigmoid (4 passes)": lambda: book_sigmoid(a2),
        "layer 3 GEMM + bias, argmax": lambda: (z2 @ p["W3"] + p["b3"]).argmax(1),
        "uint8 -> float32 / 255 (7.8 M pixels)": lambda: (
            inp.x8.astype(np.float32) / np.float32(255)
        ),
    }


def case_per_sample(inp: Inputs) -> Work:
    """One image at a time, as the chapter's first loop; xpnn against the book in one process."""
    import xpnn

    p = inp.params
    net = xpnn.Network(p, output="softmax")
    n = 1000 if inp.quick else 2000
    x = inp.x32[:n]
    slices = [x[i : i + SAMPLE_SLICE] for i in range(0, n, SAMPLE_SLICE)]
    state = {"i": 0}

    def next_slice() -> np.ndarray:
        # Every variant of a round gets the same slice; the round loop moves on.
        return slices[state["i"] % len(slices)]

    def book() -> None:
        for xi in next_slice():
            np.argmax(book_predict(p, xi))

    def book_guarded() -> None:
        for xi in next_slice():
            with np.errstate(over="ignore"):
                np.argmax(book_predict(p, xi))

    def xpnn_loop() -> None:
        for xi in next_slice():
            np.argmax(net.predict(xi))

    def advance() -> None:
        state["i"] += 1

    return {
        "book loop": book,
        "book loop, one errstate guard per forward": book_guarded,
        "xpnn loop": xpnn_loop,
        "_advance": advance,
    }


def case_torch_hand(inp: Inputs) -> Work:
    torch = _require("torch")
    p = {k: torch.from_numpy(v) for k, v in inp.params.items()}
    x = torch.from_numpy(inp.x32)

    def run() -> np.ndarray:
        with torch.inference_mode():
            z1 = torch.sigmoid(x @ p["W1"] + p["b1"])
            z2 = torch.sigmoid(z1 @ p["W2"] + p["b2"])
            return torch.argmax(z2 @ p["W3"] + p["b3"], dim=1).numpy()

    return {"": run}


def case_torch_xpnn(inp: Inputs) -> Work:
    torch = _require("torch")
    net = _xpnn_net(inp, backend="torch")
    x = torch.from_numpy(inp.x32)
    return {"": lambda: net.classify(x).numpy()}


def _jax_hand(inp: Inputs, raw: bool) -> Work:
    jax = _require("jax")
    jnp = jax.numpy
    p = {k: jnp.asarray(v) for k, v in inp.params.items()}
    w1 = p["W1"] / 255 if raw else p["W1"]

    @jax.jit
    def labels(x: Any) -> Any:
        z1 = jax.nn.sigmoid(x.astype(jnp.float32) @ w1 + p["b1"])
        z2 = jax.nn.sigmoid(z1 @ p["W2"] + p["b2"])
        return jnp.argmax(z2 @ p["W3"] + p["b3"], axis=1)

    x = jax.device_put(inp.x8 if raw else inp.x32)
    return {"": lambda: np.asarray(labels(x))}


def case_jax_hand(inp: Inputs) -> Work:
    return _jax_hand(inp, raw=False)


def case_jax_hand_u8(inp: Inputs) -> Work:
    return _jax_hand(inp, raw=True)


def _jax_xpnn(inp: Inputs, raw: bool) -> Work:
    jax = _require("jax")
    net = _xpnn_net(inp, backend="jax", input_scale=1 / 255 if raw else 1.0)
    x = jax.device_put(inp.x8 if raw else inp.x32)
    return {"": lambda: np.asarray(net.classify(x))}


def case_jax_xpnn(inp: Inputs) -> Work:
    return _jax_xpnn(inp, raw=False)


def case_jax_xpnn_u8(inp: Inputs) -> Work:
    return _jax_xpnn(inp, raw=True)


def ort_graph(params: dict[str, np.ndarray], raw: bool) -> bytes:
    """A minimal ONNX graph of the network: MatMul, Add, Sigmoid, ArgMax (labels out).

    With ``raw``, the input is uint8 pixels: a Cast to float, and 1/255 folded
    into W1 (as xpnn's ``input_scale`` does).
    """
    _require("onnx")
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits, prev = [], [], "x"
    if raw:
        nodes.append(helper.make_node("Cast", ["x"], ["xf"], to=TensorProto.FLOAT))
        prev = "xf"
    for i in (1, 2, 3):
        w = params[f"W{i}"]
        if i == 1 and raw:
            w = (w.astype(np.float64) / 255).astype(np.float32)
        inits.append(numpy_helper.from_array(np.ascontiguousarray(w, np.float32), f"W{i}"))
        inits.append(numpy_helper.from_array(params[f"b{i}"].astype(np.float32), f"b{i}"))
        nodes.append(helper.make_node("MatMul", [prev, f"W{i}"], [f"m{i}"]))
        nodes.append(helper.make_node("Add", [f"m{i}", f"b{i}"], [f"a{i}"]))
        prev = f"a{i}"
        if i < 3:
            nodes.append(helper.make_node("Sigmoid", [prev], [f"z{i}"]))
            prev = f"z{i}"
    nodes.append(helper.make_node("ArgMax", [prev], ["labels"], axis=1, keepdims=0))
    graph = helper.make_graph(
        nodes,
        "book",
        [
            helper.make_tensor_value_info(
                "x", TensorProto.UINT8 if raw else TensorProto.FLOAT, ["n", 784]
            )
        ],
        [helper.make_tensor_value_info("labels", TensorProto.INT64, ["n"])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return bytes(model.SerializeToString())


def _ort_session(model: bytes) -> Any:
    ort = _require("onnxruntime")
    # Default session options: ONNX Runtime as a user gets it.
    return ort.InferenceSession(model, providers=["CPUExecutionProvider"])


def _ort_work(session: Any, x: np.ndarray) -> Work:
    name = session.get_inputs()[0].name
    out = session.get_outputs()
    if len(out) == 1 and "int" in out[0].type:
        return {"": lambda: session.run(None, {name: x})[0]}
    # A graph whose output is scores: the labels are their argmax.
    return {"": lambda: np.argmax(session.run(None, {name: x})[0], axis=1)}


def case_ort(inp: Inputs) -> Work:
    return _ort_work(_ort_session(ort_graph(inp.params, raw=False)), inp.x32)


def case_ort_u8(inp: Inputs) -> Work:
    return _ort_work(_ort_session(ort_graph(inp.params, raw=True)), inp.x8)


def _xpnn_export(inp: Inputs, raw: bool) -> Work:
    """xpnn's own ONNX export (labels out) in ONNX Runtime at its default options."""
    import tempfile

    import xpnn

    try:
        export = xpnn.export_onnx
    except AttributeError:
        raise Skip("xpnn.export_onnx is not in this version of xpnn") from None
    _require("onnx")
    _require("onnxruntime")
    # A float32 network of p / 255; with input_dtype="uint8" the export folds the
    # /255 into W1 itself.
    net = xpnn.Network(inp.params)
    with tempfile.TemporaryDirectory() as tmp:
        path = export(
            net,
            os.path.join(tmp, "net.onnx"),
            input_dtype="uint8" if raw else "float32",
            output="labels",
        )
        model = Path(path).read_bytes()
    return _ort_work(_ort_session(model), inp.x8 if raw else inp.x32)


def case_ort_xpnn(inp: Inputs) -> Work:
    return _xpnn_export(inp, raw=False)


def case_ort_xpnn_u8(inp: Inputs) -> Work:
    return _xpnn_export(inp, raw=True)


GEMM_N = 2048


def _gemm_numpy(inp: Inputs) -> Work:
    a = np.random.default_rng(0).random((GEMM_N, GEMM_N), dtype=np.float32)
    return {"": lambda: a @ a}


def _gemm_torch(inp: Inputs) -> Work:
    torch = _require("torch")
    a = torch.from_numpy(np.random.default_rng(0).random((GEMM_N, GEMM_N), dtype=np.float32))

    def run() -> Any:
        with torch.inference_mode():
            return a @ a

    return {"": run}


def _gpu(backend: str, big: bool) -> Callable[[Inputs], Work]:
    def build(inp: Inputs) -> Work:
        net = _xpnn_net(inp, backend=backend, device="cuda", input_scale=1 / 255 if big else 1.0)
        if backend == "cupy":
            sync: Callable[[], Any] = __import__("cupy").cuda.Device().synchronize
        else:
            sync = __import__("torch").cuda.synchronize
        host = np.tile(inp.x8, (100, 1)) if big else inp.x32  # 10^6 uint8 images, or 10k
        x = net.xp.asarray(host, device=net.device)
        size = 100_000 if big else None
        return {"": lambda: (net.classify(x, size), sync())}

    return build


@dataclass(frozen=True)
class Case:
    """One benchmark case: ``build`` runs in a worker process of its own."""

    label: str
    build: Callable[[Inputs], Work]
    section: str = "forward"
    work: str = "float32"  # the input: "float32" or "uint8"
    calls: float = 1.0  # share of the run's timed calls (long calls take fewer)


CASES: dict[str, Case] = {
    "numpy_plain": Case("plain NumPy, one batch (book's batched code)", case_numpy_plain),
    "numpy_predict": Case("xpnn numpy `predict`, one batch", case_numpy_predict),
    "numpy_classify_f32": Case("xpnn numpy `classify`, one batch", case_numpy_classify_f32),
    "numpy_classify_u8": Case(
        f"xpnn numpy `classify`, batch {BATCH}, input_scale=1/255",
        case_numpy_classify_u8,
        work="uint8",
    ),
    "numpy_classify_u8_all": Case(
        "xpnn numpy `classify`, one batch, input_scale=1/255",
        case_numpy_classify_u8_all,
        work="uint8",
    ),
    "book_batch100": Case("the book's batch-100 loop", case_book_batch100),
    "torch_hand": Case("torch, hand-written, inference_mode", case_torch_hand),
    "torch_xpnn": Case("xpnn torch `classify`, one batch", case_torch_xpnn),
    "jax_hand": Case("JAX, hand-written jax.jit", case_jax_hand),
    "jax_xpnn": Case("xpnn jax `classify`, one batch", case_jax_xpnn),
    "jax_hand_u8": Case("JAX, hand-written jax.jit, /255 folded", case_jax_hand_u8, work="uint8"),
    "jax_xpnn_u8": Case(
        "xpnn jax `classify`, one batch, input_scale=1/255", case_jax_xpnn_u8, work="uint8"
    ),
    "ort": Case("ONNX Runtime, hand-built graph", case_ort),
    "ort_u8": Case("ONNX Runtime, hand-built graph, Cast + /255 folded", case_ort_u8, work="uint8"),
    "ort_xpnn": Case("ONNX Runtime, xpnn's export", case_ort_xpnn),
    "ort_xpnn_u8": Case("ONNX Runtime, xpnn's uint8 export", case_ort_xpnn_u8, work="uint8"),
    "gemm_numpy": Case(f"NumPy float32 GEMM {GEMM_N}^3", _gemm_numpy, section="gemm", calls=0.4),
    "gemm_torch": Case(f"torch float32 GEMM {GEMM_N}^3", _gemm_torch, section="gemm", calls=0.4),
    "batch_sweep": Case(
        "xpnn numpy `classify` by batch size", case_batch_sweep, section="inproc", calls=0.5
    ),
    "per_sample": Case("per-sample loop (one image per call)", case_per_sample, section="inproc"),
    "anatomy": Case("plain NumPy, pass by pass", case_anatomy, section="inproc"),
}
GPU_CASES: dict[str, Case] = {
    "cupy_10k": Case("xpnn cupy-cuda, 10k forward", _gpu("cupy", False), section="gpu"),
    "torch_cuda_10k": Case("xpnn torch-cuda, 10k forward", _gpu("torch", False), section="gpu"),
    "cupy_1e6": Case("xpnn cupy-cuda, 10^6 uint8 images", _gpu("cupy", True), section="gpu"),
    "torch_cuda_1e6": Case(
        "xpnn torch-cuda, 10^6 uint8 images", _gpu("torch", True), section="gpu"
    ),
}


# -- the worker ------------------------------------------------------------------


def versions() -> dict[str, str]:
    import importlib.metadata

    out = {"python": platform.python_version()}
    for dist in ("numpy", "torch", "jax", "jaxlib", "onnxruntime", "onnx", "cupy-cuda12x"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            out[dist] = importlib.metadata.version(dist)
    return out


def worker(name: str, data_dir: str, warmup: int, repeat: int, quick: bool) -> dict[str, Any]:
    """Build case ``name``, warm it up, time ``repeat`` calls of each variant."""
    case = {**CASES, **GPU_CASES}[name]
    try:
        work = case.build(Inputs(data_dir, quick))
    except Skip as why:
        return {"skip": str(why)}
    advance = work.pop("_advance", None)
    for fn in work.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {v: [] for v in work}
    # CPU time of this (the calling) thread: for single-threaded work, what the
    # call cost without the time other processes held the core.
    thread_cpu: dict[str, list[float]] = {v: [] for v in work}
    names = list(work)
    before = resource.getrusage(resource.RUSAGE_SELF)
    for r in range(repeat):
        # Alternate the order of the variants of an in-process comparison.
        for v in names if r % 2 == 0 else names[::-1]:
            start, start_cpu = time.perf_counter(), time.thread_time()
            work[v]()
            samples[v].append(time.perf_counter() - start)
            thread_cpu[v].append(time.thread_time() - start_cpu)
        if advance is not None:
            advance()
    after = resource.getrusage(resource.RUSAGE_SELF)
    calls = repeat * len(names)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {
        "samples": samples,
        "thread_cpu": thread_cpu,
        # Per timed call, all variants together: page faults, and CPU time (over
        # wall time: how many cores the engine kept busy).
        "minor_faults_per_call": (after.ru_minflt - before.ru_minflt) / calls,
        "cpu_s_per_call": cpu / calls,
        "cores_busy": round(cpu / sum(sum(v) for v in samples.values()), 2),
    }


# -- the parent ------------------------------------------------------------------


def child_env() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": str(ROOT) + (os.pathsep + path if path else "")}


def run_worker(name: str, args: argparse.Namespace, warmup: int, repeat: int) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", name]
    cmd += ["--data-dir", args.data_dir, "--warmup", str(warmup), "--repeat", str(repeat)]
    if args.quick:
        cmd.append("--quick")
    try:
        out = subprocess.run(
            cmd, capture_output=True, text=True, env=child_env(), cwd=ROOT, timeout=600
        )
    except subprocess.TimeoutExpired:
        return {"error": "timed out after 600 s"}
    if out.returncode != 0:
        lines = (out.stderr or out.stdout).strip().splitlines()
        return {"error": lines[-1] if lines else f"exit status {out.returncode}"}
    try:
        result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": f"no result from the worker: {out.stdout[-200:]!r}"}
    return result


def process_time(code: str, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - start


def peak_rss_mb(cmd: list[str]) -> float:
    """Peak resident memory of one child process (its own, from wait4), in MB."""
    proc = subprocess.Popen(
        cmd, env=child_env(), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[1:3]} exited {proc.returncode}: {err.strip()[-300:]}")
    return usage.ru_maxrss / 1024  # kB on Linux


STREAM_PROBE = """
import sys, numpy as np, xpnn
net = xpnn.pretrained_network(data_dir=sys.argv[1], input_scale=1 / 255)
n, batch = int(sys.argv[2]), 10_000
counts = np.zeros(10, np.int64)
rng = np.random.default_rng(0)
for start in range(0, n, batch):
    images = rng.integers(0, 256, size=(min(batch, n - start), 784), dtype=np.uint8)
    counts += np.bincount(np.asarray(net.classify(images, 1000)), minlength=10)
assert counts.sum() == n
"""


def summarize(per_round: list[list[float]]) -> dict[str, Any]:
    flat = [s for r in per_round for s in r]
    return {
        "min_s": min(flat),
        "median_s": statistics.median(flat),
        "round_medians_s": [statistics.median(r) for r in per_round],
        "calls": len(flat),
        "rounds": len(per_round),
    }


def paired_ratio(results: dict[str, Any], a: str, b: str) -> float | None:
    """Median over rounds of ``median_a / median_b`` (keys as in ``results["cases"]``)."""
    ca, cb = results["cases"].get(a), results["cases"].get(b)
    if not ca or not cb or "round_medians_s" not in ca or "round_medians_s" not in cb:
        return None
    pairs = [x / y for x, y in zip(ca["round_medians_s"], cb["round_medians_s"], strict=False)]
    return round(statistics.median(pairs), 3) if pairs else None


def paired_min_ratio(results: dict[str, Any], a: str, b: str) -> float | None:
    """Median over rounds of ``min_a / min_b``: the same pairing on each round's fastest call."""
    sa, sb = results.get("samples", {}).get(a), results.get("samples", {}).get(b)
    if not sa or not sb:
        return None
    pairs = [min(x) / min(y) for x, y in zip(sa, sb, strict=False)]
    return round(statistics.median(pairs), 3) if pairs else None


def measure(args: argparse.Namespace, names: list[str], results: dict[str, Any]) -> None:
    """Run the named cases in rotating order, ``args.rounds`` times; fill ``results``."""
    warmup, repeat = (3, 10) if args.quick else (5, 30)
    per_round: dict[str, list[list[float]]] = {}
    cases: dict[str, Any] = results["cases"]
    for r in range(args.rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            if name in results["failed"] or name in results["skipped"]:
                continue
            calls = {**CASES, **GPU_CASES}[name].calls
            out = run_worker(name, args, warmup, max(3, round(repeat * calls)))
            if "skip" in out:
                results["skipped"][name] = out["skip"]
                print(f"  skip  {name}: {out['skip']}", flush=True)
                continue
            if "error" in out:
                results["failed"][name] = out["error"]
                print(f"  FAIL  {name}: {out['error']}", flush=True)
                continue
            stats = results["process_stats"].setdefault(name, [])
            stats.append({k: v for k, v in out.items() if k not in ("samples", "thread_cpu")})
            for variant, cpu in out["thread_cpu"].items():
                key = f"{name}:{variant}" if variant else name
                results["thread_cpu"].setdefault(key, []).append(cpu)
            for variant, samples in out["samples"].items():
                key = f"{name}:{variant}" if variant else name
                per_round.setdefault(key, []).append(samples)
            print(f"  round {r + 1}/{args.rounds}  {name}", flush=True)
    for key, rounds in per_round.items():
        if key.split(":")[0] in results["failed"]:
            continue
        cases[key] = summarize(rounds)
        results["samples"][key] = rounds


def paired_in_process(
    results: dict[str, Any], a: str, b: str, metric: str = "samples"
) -> float | None:
    """For variants timed alternately in one process: median of call-by-call ratios."""
    raw = results.get(metric, {})
    if a not in raw or b not in raw:
        return None
    pairs = [
        x / y for ra, rb in zip(raw[a], raw[b], strict=True) for x, y in zip(ra, rb, strict=True)
    ]
    return round(statistics.median(pairs), 3)


def whole_process(args: argparse.Namespace, results: dict[str, Any]) -> None:
    """`import numpy` against `import xpnn` (whole process), rotating; eval and stream RSS."""
    import tempfile

    codes = {"import numpy": "import numpy", "import xpnn": "import xpnn"}
    per_round: dict[str, list[list[float]]] = {k: [] for k in codes}
    times = 3 if args.quick else 5
    with tempfile.TemporaryDirectory() as cache:
        # Both with their bytecode cached, as an installed package has it, even
        # where PYTHONDONTWRITEBYTECODE is set; the cache lives outside the tree.
        env = {k: v for k, v in child_env().items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = cache
        for code in codes.values():
            process_time(code, env)  # writes the cache
        for r in range(args.rounds):
            names = list(codes) if r % 2 == 0 else list(codes)[::-1]
            for name in names:
                per_round[name].append([process_time(codes[name], env) for _ in range(times)])
    for name, rounds in per_round.items():
        results["cases"][name] = summarize(rounds)
        results["samples"][name] = rounds
    eval_cmd = [sys.executable, str(ROOT / "scripts" / "eval.py"), "--quiet"]
    eval_cmd += ["--data-dir", args.data_dir]
    memory: dict[str, float] = {}
    try:
        memory["eval.py"] = peak_rss_mb(eval_cmd)
        for n in (10**4, 10**5) if args.quick else (10**4, 10**5, 10**6):
            cmd = [sys.executable, "-c", STREAM_PROBE, args.data_dir, str(n)]
            memory[f"streamed N={n:.0e}"] = peak_rss_mb(cmd)
    except RuntimeError as err:
        results["failed"]["memory"] = str(err)
        print(f"  FAIL  memory: {err}", flush=True)
    results["memory_mb"] = memory


# -- the report ------------------------------------------------------------------

# (ratio key, numerator, denominator, target, what)
RATIOS: list[tuple[str, str, str, float | None, str]] = [
    ("numpy_predict_vs_plain", "numpy_predict", "numpy_plain", 1.05, "xpnn numpy predict / plain"),
    ("numpy_f32_vs_ort", "numpy_classify_f32", "ort", 1.3, "xpnn numpy classify / ORT, float32"),
    ("numpy_u8_vs_ort_u8", "numpy_classify_u8", "ort_u8", None, "the same, uint8, batch 1000"),
    (
        "numpy_u8all_vs_ort_u8",
        "numpy_classify_u8_all",
        "ort_u8",
        None,
        "the same, uint8, one batch",
    ),
    ("torch_xpnn_vs_hand", "torch_xpnn", "torch_hand", 1.05, "xpnn torch / hand-written torch"),
    ("jax_xpnn_vs_hand", "jax_xpnn", "jax_hand", 1.05, "xpnn jax / hand-written jax.jit"),
    ("jax_xpnn_u8_vs_hand", "jax_xpnn_u8", "jax_hand_u8", 1.05, "the same from uint8"),
    ("ort_xpnn_vs_hand", "ort_xpnn", "ort", 1.05, "xpnn's ONNX export / hand-built graph"),
    ("ort_xpnn_u8_vs_hand", "ort_xpnn_u8", "ort_u8", 1.05, "the same from uint8"),
    ("jax_hand_vs_ort", "jax_hand", "ort", None, "hand-written jax.jit / ORT, float32"),
    ("cupy_vs_torch_cuda", "cupy_10k", "torch_cuda_10k", 1.2, "xpnn cupy / xpnn torch-cuda, 10k"),
    ("torch_hand_vs_ort", "torch_hand", "ort", None, "hand-written torch / ORT, float32"),
]
XPNN_PATHS = {
    "float32": ["numpy_classify_f32", "numpy_predict", "torch_xpnn", "jax_xpnn", "ort_xpnn"],
    "uint8": ["numpy_classify_u8", "numpy_classify_u8_all", "jax_xpnn_u8", "ort_xpnn_u8"],
}


def derive(results: dict[str, Any]) -> None:
    """Ratios, the best xpnn path per input dtype, the roofline, the process figures."""
    cases = results["cases"]
    ratios: dict[str, Any] = {}
    for key, a, b, target, _ in RATIOS:
        value = paired_ratio(results, a, b)
        if value is not None:
            ratios[key] = {
                "value": value,
                "of_minimums": paired_min_ratio(results, a, b),
                "target": target,
            }
    ort_ref = {"float32": "ort", "uint8": "ort_u8"}
    for dtype, paths in XPNN_PATHS.items():
        found = {p: paired_ratio(results, p, ort_ref[dtype]) for p in paths if p in cases}
        found = {p: v for p, v in found.items() if v is not None}
        if found:
            best = min(found, key=lambda p: found[p])
            ratios[f"best_{dtype}_vs_ort"] = {
                "value": found[best],
                "of_minimums": paired_min_ratio(results, best, ort_ref[dtype]),
                "target": 1.0,
                "path": best,
            }
    rates = [2 * GEMM_N**3 / cases[g]["min_s"] for g in ("gemm_numpy", "gemm_torch") if g in cases]
    if rates:
        flops = 2 * N_IMAGES * sum(a * b for a, b in LAYERS)
        results["gemm_flops_per_s"] = max(rates)
        results["network_flops"] = flops
        results["roofline_s"] = flops / max(rates)
        f32 = [p for p in XPNN_PATHS["float32"] + XPNN_PATHS["uint8"] if p in cases]
        if f32:
            best = min(f32, key=lambda p: cases[p]["median_s"])
            ratios["best_vs_roofline"] = {
                "value": round(cases[best]["median_s"] / results["roofline_s"], 3),
                "of_minimums": round(cases[best]["min_s"] / results["roofline_s"], 3),
                "target": 1.3,
                "path": best,
            }
    if "import numpy" in cases and "import xpnn" in cases:
        value = paired_ratio(results, "import xpnn", "import numpy")
        ratios["import_xpnn_vs_numpy"] = {
            "value": value,
            "of_minimums": paired_min_ratio(results, "import xpnn", "import numpy"),
            "target": 1.3,
        }
    per = (
        "per_sample:xpnn loop",
        "per_sample:book loop",
        "per_sample:book loop, one errstate guard per forward",
    )
    if per[0] in cases and per[1] in cases:
        ratios["per_sample_vs_book"] = {
            "value": paired_in_process(results, per[0], per[1]),
            "target": 1.1,
        }
        ratios["per_sample_vs_book_thread_cpu"] = {
            "value": paired_in_process(results, per[0], per[1], "thread_cpu"),
            "target": 1.1,
        }
        ratios["per_sample_guarded_book_vs_book_thread_cpu"] = {
            "value": paired_in_process(results, per[2], per[1], "thread_cpu"),
            "target": None,
        }
        ratios["per_sample_guarded_book_vs_book"] = {
            "value": paired_in_process(results, per[2], per[1]),
            "target": None,
        }
    if "eval.py" in results.get("memory_mb", {}):
        ratios["eval_peak_rss_mb"] = {
            "value": round(results["memory_mb"]["eval.py"]),
            "target": 200,
        }
    results["ratios"] = ratios


def fmt_ms(s: float) -> str:
    return f"{s * 1e3:.2f} ms"


def fmt_us_per_image(s: float) -> str:
    return f"{s / SAMPLE_SLICE * 1e6:.1f} µs/image"


def header(results: dict[str, Any]) -> str:
    v = results["versions"]
    libs = ", ".join(f"{k} {val}" for k, val in v.items())
    return (
        f"# xpnn benchmark, {results['date']}\n"
        f"# machine: {results['machine']}\n"
        f"# versions: {libs}\n"
        f"# method: each case in its own process at the engine's defaults, {results['rounds']} "
        f"rounds in rotating order, {results['repeat']} timed calls per case and round after "
        f"{results['warmup']} warm-up calls; 10k MNIST test images in, labels out; min and "
        f"median over all calls; ratios are medians of per-round ratios of medians."
    )


def print_text(results: dict[str, Any]) -> None:
    cases = results["cases"]
    print("\n## 10k forward (labels out), each case in its own process")
    width = max((len(c.label) for c in {**CASES, **GPU_CASES}.values()), default=10)
    for name, case in {**CASES, **GPU_CASES}.items():
        if case.section in ("forward", "gpu", "gemm") and name in cases:
            c = cases[name]
            stats = results.get("process_stats", {}).get(name, [])
            faults = statistics.median(st["minor_faults_per_call"] for st in stats) if stats else 0
            busy = statistics.median(st["cores_busy"] for st in stats) if stats else 0
            print(
                f"  {case.label:<{width}}  {case.work:>7}  min {fmt_ms(c['min_s']):>10}  "
                f"median {fmt_ms(c['median_s']):>10}  faults/call {faults:5.0f}  cores {busy:.2f}"
            )
    for section in ("batch_sweep", "per_sample", "anatomy"):
        keys = [k for k in cases if k.startswith(section + ":")]
        if keys:
            print(f"\n## {CASES[section].label} (variants alternate in one process)")
            for k in keys:
                c = cases[k]
                f = fmt_us_per_image if section == "per_sample" else fmt_ms
                print(
                    f"  {k.split(':', 1)[1]:<44}  min {f(c['min_s']):>14}  "
                    f"median {f(c['median_s']):>14}"
                )
    for name in ("import numpy", "import xpnn"):
        if name in cases:
            print(f"  {name:<14} (whole process)  median {fmt_ms(cases[name]['median_s'])}")
    if results.get("memory_mb"):
        print("\n## peak RSS")
        for k, mb in results["memory_mb"].items():
            print(f"  {k:<20} {mb:6.0f} MB")
    if "roofline_s" in results:
        print(
            f"\nfloat32 GEMM rate {results['gemm_flops_per_s'] / 1e9:.0f} GFLOP/s (best of NumPy "
            f"and torch, {GEMM_N}^3, min); 10k forward = {results['network_flops'] / 1e6:.0f} "
            f"MFLOP; roofline {fmt_ms(results['roofline_s'])}"
        )
    print("\n## ratios (target)")
    for key, r in results["ratios"].items():
        target = "" if r.get("target") is None else f"  (target <= {r['target']})"
        path = f"  [{r['path']}]" if "path" in r else ""
        print(f"  {key:<34} {r['value']}{target}{path}")
    for name, why in results["skipped"].items():
        print(f"  skipped {name}: {why}")
    for name, why in results["failed"].items():
        print(f"  FAILED {name}: {why}")


def _stat(results: dict[str, Any], name: str, key: str) -> float | None:
    stats = results.get("process_stats", {}).get(name)
    return statistics.median(st[key] for st in stats) if stats else None


def _x(value: float | None) -> str:
    return "n/a" if value is None else f"{value}x"


def _ratio_text(ratios: dict[str, Any], key: str) -> str:
    return f"{ratios[key]['value']}x" if key in ratios else "n/a"


def markdown(results: dict[str, Any]) -> str:
    """The README's Performance tables, from one run's results."""
    cases, ratios = results["cases"], results["ratios"]
    libs = ", ".join(f"{k} {v}" for k, v in results["versions"].items())
    lines = [
        f"One run of `python scripts/bench.py` on {results['date']}: {results['machine']}; "
        f"{libs}; {results['rounds']} rounds x {results['repeat']} timed calls per case "
        "(fewer for the GEMMs and the batch sweep).",
        "",
        "| 10k MNIST test images -> labels, each case in its own process "
        "| input | min | median | ratio to ORT, same input: medians; minimums | cores busy |",
        "|---|---|---|---|---|---|",
    ]
    refs = {"float32": "ort", "uint8": "ort_u8"}
    for name, case in CASES.items():
        if case.section != "forward" or name not in cases:
            continue
        c = cases[name]
        ref = refs[case.work]
        ratio = paired_ratio(results, name, ref) if name != ref else None
        low = paired_min_ratio(results, name, ref) if name != ref else None
        note = f"{ratio}x; {low}x" if ratio is not None else "1 (reference)"
        busy = _stat(results, name, "cores_busy")
        times = f"{fmt_ms(c['min_s'])} | {fmt_ms(c['median_s'])}"
        lines.append(f"| {case.label} | {case.work} | {times} | {note} | {busy} |")
    if "roofline_s" in results:
        r = ratios.get("best_vs_roofline", {})
        lines.append(
            f"| roofline: {results['network_flops'] / 1e6:.0f} MFLOP at the best measured "
            f"float32 GEMM rate, {results['gemm_flops_per_s'] / 1e9:.0f} GFLOP/s | | "
            f"{fmt_ms(results['roofline_s'])} | | best xpnn path: {r.get('value')}x roofline | |"
        )
    lines += [
        "",
        "| ratio (median of per-round ratios) | of medians | of minimums | target |",
        "|---|---|---|---|",
    ]
    for key, what in (
        ("best_float32_vs_ort", "best xpnn path / ORT, float32 in"),
        ("best_uint8_vs_ort", "best xpnn path / ORT, uint8 in"),
    ):
        if key in ratios:
            r = ratios[key]
            lines.append(
                f"| {what} ({r['path']}) | {r['value']}x | {_x(r.get('of_minimums'))} | ≤ 1.0x |"
            )
    for key, _, _, target, what in RATIOS:
        if key in ratios:
            t = f"≤ {target}x" if target else ""
            r = ratios[key]
            lines.append(f"| {what} | {r['value']}x | {_x(r.get('of_minimums'))} | {t} |")
    if "best_vs_roofline" in ratios:
        lines.append(
            f"| best xpnn path / roofline ({ratios['best_vs_roofline']['path']}) | "
            f"{ratios['best_vs_roofline']['value']}x | "
            f"{_x(ratios['best_vs_roofline'].get('of_minimums'))} | ≤ 1.3x |"
        )
    book = cases.get("per_sample:book loop")
    mine = cases.get("per_sample:xpnn loop")
    if book and mine:
        lines.append(
            "| per-sample loop, xpnn `predict` / the book's loop, wall time "
            f"({fmt_us_per_image(mine['median_s'])} vs {fmt_us_per_image(book['median_s'])}) | "
            f"{_ratio_text(ratios, 'per_sample_vs_book')} | | ≤ 1.10x |"
        )
        lines.append(
            "| the same in CPU time of the calling thread | "
            f"{_ratio_text(ratios, 'per_sample_vs_book_thread_cpu')} | | ≤ 1.10x |"
        )
        lines.append(
            "| the book's loop with one `np.errstate` around each forward pass / without "
            f"(wall; CPU) | {_ratio_text(ratios, 'per_sample_guarded_book_vs_book')}; "
            f"{_ratio_text(ratios, 'per_sample_guarded_book_vs_book_thread_cpu')} | | |"
        )
    if "import xpnn" in cases and "import_xpnn_vs_numpy" in ratios:
        lines.append(
            "| `import xpnn` / `import numpy`, whole process "
            f"({fmt_ms(cases['import xpnn']['median_s'])} vs "
            f"{fmt_ms(cases['import numpy']['median_s'])}) | "
            f"{ratios['import_xpnn_vs_numpy']['value']}x | "
            f"{_x(ratios['import_xpnn_vs_numpy'].get('of_minimums'))} | ≤ 1.3x |"
        )
    mem = results.get("memory_mb", {})
    if mem:
        streamed = " / ".join(f"{v:.0f}" for k, v in mem.items() if k.startswith("streamed"))
        ns = " / ".join(k.split("=")[1] for k in mem if k.startswith("streamed"))
        lines.append(
            f"| peak RSS: `eval.py`; streamed scoring of N = {ns} images | "
            f"{mem.get('eval.py', 0):.0f} MB; {streamed} MB | | ≤ 200 MB; flat in N |"
        )
    for section, title in (
        ("anatomy", "plain NumPy, pass by pass (one process, alternating)"),
        ("batch_sweep", "xpnn numpy `classify` by batch size (one process, alternating)"),
    ):
        keys = [k for k in cases if k.startswith(section + ":")]
        if keys:
            lines += ["", f"| {title} | min | median |", "|---|---|---|"]
            for k in keys:
                c = cases[k]
                lines.append(
                    f"| {k.split(':', 1)[1]} | {fmt_ms(c['min_s'])} | {fmt_ms(c['median_s'])} |"
                )
    faults = {n: _stat(results, n, "minor_faults_per_call") for n in CASES}
    counted = {n: f for n, f in faults.items() if f is not None and CASES[n].section == "forward"}
    if counted:
        lines += [
            "",
            "Minor page faults per timed call, median over rounds: "
            + ", ".join(f"{n} {f:.0f}" for n, f in counted.items())
            + ".",
        ]
    return "\n".join(lines)


README_BEGIN = "<!-- bench.py --markdown: begin -->"
README_END = "<!-- bench.py --markdown: end -->"


def update_readme(path: str, tables: str) -> None:
    """Replace the text between the README's bench markers with ``tables``, atomically."""
    import tempfile

    target = Path(path)
    text = target.read_text(encoding="utf-8")
    start, end = text.find(README_BEGIN), text.find(README_END)
    if start < 0 or end < start:
        raise SystemExit(f"bench.py: {path} has no {README_BEGIN} ... {README_END} markers")
    new = text[: start + len(README_BEGIN)] + "\n" + tables + "\n" + text[end:]
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(new)
        os.replace(tmp, target)
    except BaseException:
        os.unlink(tmp)
        raise


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="2 rounds of 10 calls (default 5 rounds of 30)"
    )
    parser.add_argument(
        "--rounds", type=int, default=None, help="rounds (default 5, or 2 with --quick)"
    )
    parser.add_argument("--json", default=None, metavar="FILE", help="also write every figure")
    parser.add_argument("--markdown", action="store_true", help="also print the README tables")
    parser.add_argument("--from-json", default=None, metavar="FILE", help="report an earlier run")
    parser.add_argument(
        "--update-readme",
        default=None,
        metavar="README",
        help="replace the tables between the bench markers of this file",
    )
    parser.add_argument(
        "--data-dir", default=None, help="MNIST and weights directory (default: $XPNN_DATA_DIR)"
    )
    parser.add_argument(
        "--cases",
        default=None,
        help=f"comma-separated case names (default all): {', '.join(CASES)}; with --gpu: "
        + ", ".join(GPU_CASES),
    )
    parser.add_argument("--gpu", action="store_true", help="only the GPU cases")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--warmup", type=int, default=3, help=argparse.SUPPRESS)
    parser.add_argument("--repeat", type=int, default=10, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.data_dir, args.warmup, args.repeat, args.quick)))
        return 0
    if args.from_json:
        results = json.loads(Path(args.from_json).read_text())
        derive(results)  # from the saved samples, with this version's ratios
        print(header(results))
        print_text(results)
        if args.markdown:
            print("\n" + markdown(results))
        if args.update_readme:
            update_readme(args.update_readme, markdown(results))
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2))
        return 0
    from xpnn.download import data_home

    args.data_dir = str(data_home(args.data_dir))
    args.rounds = args.rounds or (2 if args.quick else 5)
    table = GPU_CASES if args.gpu else CASES
    names = list(table) if not args.cases else args.cases.split(",")
    unknown = [n for n in names if n not in table]
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}; choose from {', '.join(table)}")
    warmup, repeat = (3, 10) if args.quick else (5, 30)
    results: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{_cpu_name()}, {os.cpu_count()} logical CPUs, {platform.platform(terse=True)}",
        "versions": versions(),
        "rounds": args.rounds,
        "warmup": warmup,
        "repeat": repeat,
        "cases": {},
        "skipped": {},
        "failed": {},
        "samples": {},
        "process_stats": {},
        "thread_cpu": {},
    }
    print(header(results), flush=True)
    measure(args, names, results)
    if args.gpu:
        # Asked for explicitly: a GPU case that cannot run is a failure, not a skip.
        results["failed"].update(results["skipped"])
        results["skipped"].clear()
    if not args.gpu and not args.cases:
        whole_process(args, results)
    derive(results)
    print()
    print_text(results)
    if args.markdown:
        print("\n" + markdown(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    if args.update_readme:
        update_readme(args.update_readme, markdown(results))
    measured = [k for k in results["cases"] if not k.startswith("import")]
    if results["failed"] or not measured:
        print(
            "bench.py: "
            + (
                "failed: " + ", ".join(results["failed"])
                if results["failed"]
                else "nothing was measured"
            ),
            file=sys.stderr,
        )
        return 1
    return 0


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    sys.exit(main())
