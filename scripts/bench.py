#!/usr/bin/env python
"""Benchmark the chapter's work on each engine: 10,000 MNIST test images in, labels out.

    python scripts/bench.py                 # every CPU case installed
    python scripts/bench.py --quick         # a short run
    python scripts/bench.py --gpu --quick   # the GPU cases; exit 1 unless every one ran
    python scripts/bench.py --update-docs docs/performance.md

Each case runs in a fresh process of its own, each engine at its defaults (ONNX Runtime's
default session options, torch's and JAX's default thread counts, NumPy's BLAS). Every case
does the same work: the 10,000 test images in (float32 pixels in [0, 1], or raw uint8 pixels
for the ``_u8`` cases) and the 10,000 labels out as a NumPy array, which must score 9352. A
case warms up, then times its calls. The cases run in rounds, each round starting one case
later than the one before. Reported: minimum and median over every timed call, and ratios
A/B as the median over rounds of A's median over B's median in the same round. Also the
whole-process time of ``import xpnn`` against ``import numpy``, and the peak RSS of
``scripts/eval.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
EXPECTED_CORRECT = 9352
Work = Callable[[], Any]  # one timed call: returns the labels

CPU_CASES = {
    "numpy_plain": "plain NumPy, one batch (the book's batched code)",
    "numpy_predict": "xpnn numpy `predict`, one batch",
    "numpy_classify": "xpnn numpy `classify`, one batch",
    "numpy_classify_u8": "xpnn numpy `classify`, batch 1000, input_scale=1/255",
    "book_batch100": "the book's batch-100 loop (3.6.3)",
    "torch_hand": "torch, hand-written, inference_mode",
    "torch_xpnn": "xpnn torch `classify`, one batch",
    "jax_hand": "JAX, hand-written jax.jit",
    "jax_xpnn": "xpnn jax `classify`, one batch",
    "jax_hand_u8": "JAX, hand-written jax.jit, /255 inside",
    "jax_xpnn_u8": "xpnn jax `classify`, input_scale=1/255",
    "ort": "ONNX Runtime, hand-built graph",
    "ort_u8": "ONNX Runtime, hand-built graph, Cast and /255 inside",
    "ort_xpnn": "ONNX Runtime, xpnn's export",
    "ort_xpnn_u8": "ONNX Runtime, xpnn's uint8 export",
}
GPU_CASES = {
    "cupy_xpnn": "xpnn cupy `classify`, one batch",
    "torch_cuda_hand": "torch on cuda, hand-written, inference_mode",
    "torch_cuda_xpnn": "xpnn torch `classify` on cuda",
    "jax_cuda_xpnn": "xpnn jax `classify` on cuda",
}
# (label, A, B, target for A/B as a ratio of medians, or None)
RATIOS = (
    ("xpnn numpy predict / plain NumPy", "numpy_predict", "numpy_plain", 1.05),
    ("xpnn numpy classify / ORT, float32", "numpy_classify", "ort", 1.3),
    ("xpnn numpy classify, uint8 / ORT, uint8", "numpy_classify_u8", "ort_u8", 1.0),
    ("the book's batch-100 loop / plain NumPy", "book_batch100", "numpy_plain", None),
    ("xpnn torch / hand-written torch", "torch_xpnn", "torch_hand", 1.05),
    ("xpnn jax / hand-written jax.jit", "jax_xpnn", "jax_hand", 1.05),
    ("the same from uint8", "jax_xpnn_u8", "jax_hand_u8", 1.05),
    ("xpnn's ONNX export / hand-built graph", "ort_xpnn", "ort", 1.05),
    ("the same from uint8", "ort_xpnn_u8", "ort_u8", 1.05),
    ("xpnn torch on cuda / hand-written", "torch_cuda_xpnn", "torch_cuda_hand", 1.05),
)


# -- the cases, each built in its worker process ----------------------------------------------


def book_sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))  # type: ignore[no-any-return]


def book_labels(p: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """The chapter's predict (softmax dropped: argmax does not need it), labels out."""
    z1 = book_sigmoid(x @ p["W1"] + p["b1"])
    z2 = book_sigmoid(z1 @ p["W2"] + p["b2"])
    return np.argmax(z2 @ p["W3"] + p["b3"], axis=1)


def ort_graph(p: dict[str, np.ndarray], raw: bool) -> bytes:
    """MatMul, Add, Sigmoid, ..., ArgMax, written by hand (Cast and /255 first for uint8)."""
    from onnx import TensorProto, helper, numpy_helper

    dtype = TensorProto.UINT8 if raw else TensorProto.FLOAT
    nodes, x = [], "x"
    if raw:
        nodes += [helper.make_node("Cast", ["x"], ["xf"], to=TensorProto.FLOAT)]
        nodes += [helper.make_node("Mul", ["xf", "scale"], ["x0"])]
        x = "x0"
    for i in (1, 2, 3):
        nodes += [helper.make_node("MatMul", [x, f"W{i}"], [f"m{i}"])]
        out = f"a{i}" if i < 3 else "logits"
        nodes += [helper.make_node("Add", [f"m{i}", f"b{i}"], [out])]
        if i < 3:
            nodes += [helper.make_node("Sigmoid", [out], [f"z{i}"])]
            x = f"z{i}"
    nodes += [helper.make_node("ArgMax", ["logits"], ["labels"], axis=1, keepdims=0)]
    inits = [numpy_helper.from_array(v.astype(np.float32), k) for k, v in p.items()]
    inits += [numpy_helper.from_array(np.array(1 / 255, np.float32), "scale")]
    graph = helper.make_graph(
        nodes,
        "mnist",
        [helper.make_tensor_value_info("x", dtype, ["batch", 784])],
        [helper.make_tensor_value_info("labels", TensorProto.INT64, ["batch"])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    return model.SerializeToString()  # type: ignore[no-any-return]


def build(name: str, data_dir: str) -> Work:
    """The timed call of case ``name``, built in this (worker) process."""
    import xpnn

    raw = name.endswith("_u8")
    x8, _ = xpnn.load_mnist_split("test", normalize=False, data_dir=data_dir)
    x = x8 if raw else (x8.astype(np.float32) / 255)
    net = xpnn.pretrained_network(data_dir=data_dir, input_scale=1 / 255 if raw else 1.0)
    p = {k: v.astype(np.float32) for k, v in net.host_params().items()}
    engine = name.split("_")[0]
    device = "cuda" if "cuda" in name or engine == "cupy" else "cpu"
    if name == "numpy_plain":
        return lambda: book_labels(p, x)
    if name == "numpy_predict":
        return lambda: np.argmax(net.predict(x), axis=1)
    if name == "book_batch100":
        return lambda: np.concatenate(
            [book_labels(p, x[i : i + 100]) for i in range(0, 10000, 100)]
        )
    if "xpnn" in name or name.startswith("numpy_classify"):
        if engine == "ort":  # xpnn's export, run by ONNX Runtime as the hand-built graph is
            import tempfile

            import onnxruntime as ort

            path = os.path.join(tempfile.mkdtemp(), "model.onnx")
            kind = "uint8" if raw else "float32"
            xpnn.export_onnx(net.to(input_scale=1.0), path, input_dtype=kind, output="labels")
            session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
            feed = session.get_inputs()[0].name
            return lambda: session.run(None, {feed: x})[0]
        backend = "numpy" if engine == "numpy" else engine
        on = net.to(backend, device)
        xp, dev = xpnn.namespace(backend, device)
        xd = xp.asarray(x, device=dev)
        batch = 1000 if name == "numpy_classify_u8" else None
        return lambda: xpnn.to_numpy(on.classify(xd, batch_size=batch))
    if engine == "torch":
        import torch

        tp = {k: torch.asarray(v, device=device) for k, v in p.items()}
        tx = torch.asarray(x, device=device)

        def run_torch() -> np.ndarray:
            with torch.inference_mode():
                z = torch.sigmoid(tx @ tp["W1"] + tp["b1"])
                z = torch.sigmoid(z @ tp["W2"] + tp["b2"])
                return torch.argmax(z @ tp["W3"] + tp["b3"], dim=1).cpu().numpy()

        return run_torch
    if engine == "jax":
        import jax
        import jax.numpy as jnp

        jp = {k: jnp.asarray(v) for k, v in p.items()}

        @jax.jit
        def labels(v: Any) -> Any:
            v = v.astype(jnp.float32) / 255 if raw else v
            z = jax.nn.sigmoid(v @ jp["W1"] + jp["b1"])
            z = jax.nn.sigmoid(z @ jp["W2"] + jp["b2"])
            return jnp.argmax(z @ jp["W3"] + jp["b3"], axis=1)

        jx = jnp.asarray(x)
        return lambda: np.asarray(labels(jx))
    if engine == "ort":
        import onnxruntime as ort

        session = ort.InferenceSession(ort_graph(p, raw), providers=["CPUExecutionProvider"])
        return lambda: session.run(None, {"x": x})[0]
    raise SystemExit(f"bench.py: unknown case {name!r}")


def worker(name: str, data_dir: str, warmup: int, repeat: int) -> dict[str, Any]:
    import xpnn

    run = build(name, data_dir)
    _, t = xpnn.load_mnist_split("test", data_dir=data_dir)
    for _ in range(warmup):
        labels = run()
    times, cpu_start, wall_start = [], time.process_time(), time.perf_counter()
    for _ in range(repeat):
        start = time.perf_counter()
        labels = run()
        times.append(time.perf_counter() - start)
    busy = (time.process_time() - cpu_start) / (time.perf_counter() - wall_start)
    return {"times": times, "correct": int(np.sum(np.asarray(labels) == t)), "busy": busy}


# -- the parent: rounds, processes, figures ---------------------------------------------------


def run_worker(name: str, args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, __file__, "--worker", name, "--data-dir", args.data_dir]
    command += ["--repeat", str(args.repeat), "--warmup", str(args.warmup)]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    out = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900, check=False)
    if out.returncode != 0:
        lines = (out.stderr.strip() or out.stdout.strip() or "no output").splitlines()
        return {"error": lines[-1]}
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    if result["correct"] != EXPECTED_CORRECT:
        result["error"] = f"{result['correct']} correct, expected {EXPECTED_CORRECT}"
    return result


def whole_process(code: str, rounds: int) -> list[float]:
    """Wall times of ``python -c code`` in fresh processes."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=120)
        times.append(time.perf_counter() - start)
    return times


def peak_rss_mb(command: list[str]) -> float:
    """Peak resident memory of a child process, from the kernel's accounting (wait4)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"bench.py: {command} exited {child.returncode}")
    return usage.ru_maxrss / 1024  # KiB on Linux


def measure(args: argparse.Namespace, names: list[str]) -> dict[str, Any]:
    cases: dict[str, Any] = {n: {"rounds": [], "busy": []} for n in names}
    for r in range(args.rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            case = cases[name]
            if "error" in case:
                continue
            result = run_worker(name, args)
            if "error" in result:
                case["error"] = result["error"]
                print(f"bench.py: {name} did not run: {result['error']}", file=sys.stderr)
                continue
            case["rounds"].append(result["times"])
            case["busy"].append(result["busy"])
    imports = {m: whole_process(f"import {m}", args.rounds * 3) for m in ("numpy", "xpnn")}
    eval_py = [sys.executable, str(ROOT / "scripts" / "eval.py"), "--quiet"]
    rss = peak_rss_mb([*eval_py, "--data-dir", args.data_dir])
    return {"cases": cases, "imports": imports, "eval_peak_rss_mb": rss, "header": header(args)}


def paired(cases: dict[str, Any], a: str, b: str) -> float | None:
    ra, rb = cases.get(a, {}).get("rounds"), cases.get(b, {}).get("rounds")
    if not ra or not rb:
        return None
    pairs = zip(ra, rb, strict=False)
    return statistics.median(statistics.median(x) / statistics.median(y) for x, y in pairs)


def header(args: argparse.Namespace) -> str:
    found = []
    for name in ("numpy", "torch", "jax", "onnxruntime", "onnx", "cupy-cuda12x", "cupy-cuda13x"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            found.append(f"{name} {metadata.version(name)}")
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    mode = " --quick" if args.quick else ""
    return (
        f"One run of `python scripts/bench.py{mode}` on {now}: {os.cpu_count()} logical CPUs, "
        f"{platform.platform()}; python {platform.python_version()}, {', '.join(found)}; "
        f"{args.rounds} rounds x {args.repeat} timed calls per case."
    )


def markdown(results: dict[str, Any]) -> str:
    cases, titles = results["cases"], {**CPU_CASES, **GPU_CASES}
    lines = [results["header"], ""]
    lines += ["| case, each in its own process | min | median | cores busy |", "|---|---|---|---|"]
    for name, case in cases.items():
        if "error" in case:
            lines.append(f"| {titles[name]} | not run: {case['error']} | | |")
            continue
        flat = [t for times in case["rounds"] for t in times]
        busy = statistics.median(case["busy"])
        lines.append(
            f"| {titles[name]} | {min(flat) * 1e3:.2f} ms | {statistics.median(flat) * 1e3:.2f} ms"
            f" | {busy:.2f} |"
        )
    lines += ["", "| ratio (median of per-round ratios of medians) | value | target |"]
    lines += ["|---|---|---|"]
    for label, a, b, target in RATIOS:
        value = paired(cases, a, b)
        if value is not None:
            lines.append(f"| {label} | {value:.3f}x | {f'<= {target}x' if target else ''} |")
    imports = results["imports"]
    ratio = statistics.median(imports["xpnn"]) / statistics.median(imports["numpy"])
    lines.append(f"| `import xpnn` / `import numpy`, whole process | {ratio:.3f}x | <= 1.3x |")
    rss = results["eval_peak_rss_mb"]
    lines.append(f"| peak RSS of `scripts/eval.py` | {rss:.0f} MB | <= 200 MB |")
    return "\n".join(lines) + "\n"


BEGIN, END = "<!-- bench.py --markdown: begin -->", "<!-- bench.py --markdown: end -->"


def update_docs(path: str, tables: str) -> None:
    text = Path(path).read_text(encoding="utf-8")
    if text.count(BEGIN) != 1 or text.count(END) != 1:
        raise SystemExit(f"bench.py: {path} needs one {BEGIN} and one {END} line")
    head, rest = text.split(BEGIN)
    Path(path).write_text(f"{head}{BEGIN}\n{tables}{END}{rest.split(END)[1]}", encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds x 5 calls")
    parser.add_argument("--gpu", action="store_true", help="the GPU cases; exit 1 if any fails")
    parser.add_argument("--case", action="append", help="run only this case (repeatable)")
    parser.add_argument("--data-dir", default=os.environ.get("XPNN_DATA_DIR") or None)
    parser.add_argument("--json", metavar="FILE", help="write every figure to FILE")
    parser.add_argument("--from-json", metavar="FILE", help="report a saved run, measure nothing")
    parser.add_argument("--markdown", action="store_true", help="print the tables as Markdown")
    parser.add_argument("--update-docs", metavar="PAGE", help="rewrite PAGE's tables in place")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--repeat", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--warmup", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.rounds = 2 if args.quick else 5
    args.repeat = args.repeat or (5 if args.quick else 30)
    args.warmup = args.warmup or (2 if args.quick else 5)
    if args.data_dir is None:
        from xpnn.download import data_home

        args.data_dir = str(data_home())
    if args.worker:
        print(json.dumps(worker(args.worker, args.data_dir, args.warmup, args.repeat)))
        return 0
    if args.from_json:
        results = json.loads(Path(args.from_json).read_text(encoding="utf-8"))
    else:
        names = args.case or list(GPU_CASES if args.gpu else CPU_CASES)
        results = measure(args, names)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1), encoding="utf-8")
    tables = markdown(results)
    if args.update_docs:
        update_docs(args.update_docs, tables)
    print(tables)
    failed = [n for n, c in results["cases"].items() if "error" in c]
    return 1 if args.gpu and failed else 0


if __name__ == "__main__":
    sys.exit(main())
