#!/usr/bin/env python
"""Side-by-side benchmark of xpnn against the book's code and other engines.

    python scripts/bench.py              # full run (a few minutes on 2 cores)
    python scripts/bench.py --quick      # fewer repeats, no 10^6-image runs
    python scripts/bench.py --json out.json
    python scripts/bench.py --gpu        # on a CUDA machine: cupy vs torch-cuda

Every timing is the median (and min) of interleaved repeats after warm-up, and
every figure is reported as a ratio to a reference measured in the same run:
the book's per-sample loop, plain NumPy on one batch, ONNX Runtime, the
roofline of this machine's float32 GEMM peak, ``import numpy``. Needs the MNIST
test set and the book's weights (``XPNN_DATA_DIR`` or ``--data-dir``).
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import xpnn  # noqa: E402
from xpnn.download import data_home  # noqa: E402
from xpnn.safe_pickle import load_weight_pickle  # noqa: E402

LAYERS = ((784, 50), (50, 100), (100, 10))
RESULTS: dict[str, Any] = {}


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


# -- timing ----------------------------------------------------------------------


def interleaved(
    cases: dict[str, Callable[[], Any]], repeat: int, warmup: int = 2, reference: str | None = None
) -> dict:
    """Run every case ``warmup`` times, then ``repeat`` rounds of all cases.

    Each round runs every case once, starting one case later than the round
    before, so that every case follows every other equally often (a library's
    threads still spinning after its call slow down whatever runs next). With
    a ``reference``, each case also gets the median of its per-round ratios to
    the reference: paired in time, these cancel the drift of a shared machine.
    """
    names = list(cases)
    for fn in cases.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for r in range(repeat):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = time.perf_counter()
            cases[name]()
            samples[name].append(time.perf_counter() - start)
    out = {
        name: {"median_s": statistics.median(s), "min_s": min(s), "repeat": len(s)}
        for name, s in samples.items()
    }
    if reference is not None:
        for name, s in samples.items():
            paired = [a / b for a, b in zip(s, samples[reference], strict=True)]
            out[name]["paired_ratio"] = round(statistics.median(paired), 3)
    return out


def ratio(a: float, b: float) -> float:
    return round(a / b, 3)


def show(title: str, rows: list[tuple[str, str, str]]) -> None:
    print(f"\n## {title}")
    width = max(len(r[0]) for r in rows)
    for name, value, note in rows:
        print(f"  {name:<{width}}  {value:>14}  {note}")


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms"


# -- sections --------------------------------------------------------------------


def gemm_peak(repeat: int) -> float:
    """Best float32 GEMM rate of NumPy (and torch, if present) on this machine, FLOP/s."""
    a = np.random.default_rng(0).random((2048, 2048), dtype=np.float32)
    rates = []
    timing = interleaved({"numpy": lambda: a @ a}, repeat=max(3, repeat // 2))
    rates.append(2 * 2048**3 / timing["numpy"]["min_s"])
    try:
        import torch

        t = torch.from_numpy(a)
        timing = interleaved({"torch": lambda: t @ t}, repeat=max(3, repeat // 2))
        rates.append(2 * 2048**3 / timing["torch"]["min_s"])
    except ImportError:
        pass
    return max(rates)


def forward_cases(params: dict[str, np.ndarray], x8: np.ndarray, repeat: int) -> None:
    """The 10k forward pass: xpnn on every backend vs plain NumPy and ONNX Runtime."""
    n = x8.shape[0]
    x32 = x8.astype(np.float32) / 255
    net = xpnn.Network(params, output="softmax", dtype="float32")
    net_raw = net.to(input_scale=1 / 255)
    # Same work as the references: the softmax output, then argmax.
    cases: dict[str, Callable[[], Any]] = {
        "plain numpy, one batch": lambda: book_batch_predict(params, x32).argmax(axis=1),
        "plain numpy from uint8 (/255 each call)": lambda: book_batch_predict(
            params, x8.astype(np.float32) / 255
        ).argmax(axis=1),
        "book batch-100 loop": lambda: [
            book_batch_predict(params, x32[i : i + 100]).argmax(axis=1) for i in range(0, n, 100)
        ],
        "xpnn numpy predict, one batch": lambda: np.argmax(net.predict(x32), axis=1),
        # classify: argmax of the logits; the softmax cannot change it, so it is skipped.
        "xpnn numpy classify, batch 100": lambda: net.classify(x32, 100),
        "xpnn numpy classify, batch 1000": lambda: net.classify(x32, 1000),
        "xpnn numpy classify, one batch": lambda: net.classify(x32),
        "xpnn numpy classify uint8, batch 1000": lambda: net_raw.classify(x8, 1000),
        "xpnn numpy classify uint8, one batch": lambda: net_raw.classify(x8),
    }
    backends = {}
    for name in ("torch", "jax", "dask", "array_api_strict"):
        try:
            other = net.to(name)
        except xpnn.BackendError as err:
            print(f"  (skipping {name}: {err})")
            continue
        x_on = other.xp.asarray(x32, device=other.device)
        backends[name] = other
        if name == "jax":
            import jax

            jitted = jax.jit(other.forward)
            cases["xpnn jax, jit, one batch"] = lambda f=jitted, x=x_on: f(x).block_until_ready()
        elif name == "dask":
            import dask.array as da

            x_dask = da.from_array(x32, chunks=(2500, 784))
            cases["xpnn dask (threads), 4 chunks"] = lambda o=other, x=x_dask: xpnn.to_numpy(
                o.classify(x)
            )
        else:
            cases[f"xpnn {name}, one batch"] = lambda o=other, x=x_on: xpnn.to_numpy(o.classify(x))
    session = onnx_session(params)
    if session is not None:
        cases["ONNX Runtime, one batch"] = lambda: session.run(None, {"x": x32})[0].argmax(axis=1)
    timings = interleaved(cases, repeat, reference="plain numpy, one batch")
    RESULTS["forward_10k"] = timings
    # Ratios to ORT from the paired ratios of both to plain numpy (same rounds).
    ort = timings.get("ONNX Runtime, one batch", {}).get("paired_ratio")
    roofline = RESULTS["roofline_s"]
    best = min(timings, key=lambda k: timings[k]["paired_ratio"])
    rows = []
    for name, t in timings.items():
        note = f"{t['paired_ratio']}x plain numpy"
        if ort:
            note += f", {ratio(t['paired_ratio'], ort)}x ORT"
        note += f", {ratio(t['median_s'], roofline)}x roofline"
        rows.append((name, ms(t["median_s"]), note))
    show(f"10k forward, float32 (median of {repeat}; best: {best})", rows)
    RESULTS["ratios"]["numpy_batched_vs_plain_numpy"] = timings["xpnn numpy predict, one batch"][
        "paired_ratio"
    ]
    RESULTS["ratios"]["best_cpu_vs_onnxruntime"] = (
        ratio(timings[best]["paired_ratio"], ort) if ort else None
    )
    RESULTS["ratios"]["best_cpu_vs_roofline"] = ratio(timings[best]["median_s"], roofline)
    RESULTS["best_cpu_path"] = best


def per_sample(params: dict[str, np.ndarray], x8: np.ndarray, n: int, passes: int) -> None:
    """One image at a time, as the chapter's first loop does, in paired slices of 500."""
    x32 = x8[:n].astype(np.float32) / 255
    net = xpnn.Network(params, output="softmax", dtype="float32")
    size = 500
    slices = [x32[i : i + size] for i in range(0, n, size)]

    def book_loop() -> None:
        for xi in part:
            np.argmax(book_predict(params, xi))

    def xpnn_loop() -> None:
        for xi in part:
            np.argmax(net.predict(xi))

    samples: dict[str, list[float]] = {"book loop": [], "xpnn loop": []}
    part = slices[0]
    for r in range(passes * len(slices)):
        part = slices[r % len(slices)]
        order = [("book loop", book_loop), ("xpnn loop", xpnn_loop)][:: 1 if r % 2 else -1]
        for name, fn in order:
            start = time.perf_counter()
            fn()
            samples[name].append((time.perf_counter() - start) / len(part))
    paired = statistics.median(
        a / b for a, b in zip(samples["xpnn loop"], samples["book loop"], strict=True)
    )
    RESULTS["per_sample"] = {k: statistics.median(v) for k, v in samples.items()}
    show(
        f"per-sample loop, {n} images x {passes} passes in slices of {size}",
        [
            ("book loop", f"{RESULTS['per_sample']['book loop'] * 1e6:.2f} us/img", "1.0x"),
            (
                "xpnn loop",
                f"{RESULTS['per_sample']['xpnn loop'] * 1e6:.2f} us/img",
                f"{paired:.3f}x book loop (median of paired slices)",
            ),
        ],
    )
    RESULTS["ratios"]["per_sample_vs_book"] = round(paired, 3)


def onnx_session(params: dict[str, np.ndarray]) -> Any:
    try:
        import onnxruntime as ort
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        print("  (ONNX Runtime not installed: pip install 'xpnn[onnx]')")
        return None
    nodes, inits, prev = [], [], "x"
    for i in (1, 2, 3):
        inits += [numpy_helper.from_array(params[f"W{i}"], f"W{i}")]
        inits += [numpy_helper.from_array(params[f"b{i}"], f"b{i}")]
        nodes += [helper.make_node("MatMul", [prev, f"W{i}"], [f"m{i}"])]
        nodes += [helper.make_node("Add", [f"m{i}", f"b{i}"], [f"a{i}"])]
        prev = f"a{i}"
        if i < 3:
            nodes += [helper.make_node("Sigmoid", [prev], [f"z{i}"])]
            prev = f"z{i}"
    nodes += [helper.make_node("Softmax", [prev], ["y"], axis=-1)]
    graph = helper.make_graph(
        nodes,
        "book",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 784])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    options = ort.SessionOptions()
    # Idle threads that spin would slow down whichever case runs next.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def run_python(code: str, env: dict[str, str] | None = None) -> tuple[float, str]:
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
        check=True,
    )
    return time.perf_counter() - start, out.stdout


def import_and_process(repeat: int, data_dir: str) -> None:
    samples: dict[str, list[float]] = {"import numpy": [], "import xpnn": [], "eval.py": []}
    eval_code = (
        f"import runpy, sys; sys.argv = ['eval.py', '--quiet', '--data-dir', {data_dir!r}]; "
        f"runpy.run_path({str(ROOT / 'scripts' / 'eval.py')!r}, run_name='__main__')"
    )
    for _ in range(repeat):
        samples["import numpy"].append(run_python("import numpy")[0])
        samples["import xpnn"].append(run_python("import xpnn")[0])
        samples["eval.py"].append(run_python(eval_code)[0])
    medians = {k: statistics.median(v) for k, v in samples.items()}
    RESULTS["process"] = medians
    ref = medians["import numpy"]
    show(
        f"whole-process time (median of {repeat})",
        [(k, ms(v), f"{ratio(v, ref)}x import numpy") for k, v in medians.items()],
    )
    RESULTS["ratios"]["import_xpnn_vs_numpy"] = ratio(medians["import xpnn"], ref)


def load_times(data_dir: str, repeat: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
            os.symlink(os.path.join(data_dir, name), os.path.join(tmp, name))
        cold = []
        for _ in range(max(3, repeat // 2)):
            for f in Path(tmp, "decoded").glob("*"):
                f.unlink()
            start = time.perf_counter()
            xpnn.load_mnist_split("test", normalize=False, data_dir=tmp)
            cold.append(time.perf_counter() - start)
        timings = interleaved(
            {
                "warm, raw uint8": lambda: xpnn.load_mnist_split(
                    "test", normalize=False, data_dir=tmp
                ),
                "warm, normalized float32": lambda: xpnn.load_mnist_split("test", data_dir=tmp),
            },
            repeat,
        )
    RESULTS["load"] = {"cold_median_s": statistics.median(cold), **timings}
    show(
        "loading the MNIST test set (10k images)",
        [("cold (checksum + gunzip + parse + cache)", ms(statistics.median(cold)), "")]
        + [(k, ms(v["median_s"]), f"min {ms(v['min_s'])}") for k, v in timings.items()],
    )


def peak_rss_kb() -> int:
    """This process's peak resident memory in kB (VmHWM: reset by exec, unlike ru_maxrss)."""
    with open("/proc/self/status") as status:
        return int(status.read().split("VmHWM:")[1].split()[0])


PEAK_FN = inspect.getsource(peak_rss_kb)

MEMORY_PROBE = """
import sys, numpy as np, xpnn
net = xpnn.pretrained_network(data_dir={data_dir!r}, input_scale=1 / 255)
n, batch = {n}, 10_000
counts = np.zeros(10, np.int64)
rng = np.random.default_rng(0)
for start in range(0, n, batch):
    images = rng.integers(0, 256, size=(min(batch, n - start), 784), dtype=np.uint8)
    counts += np.bincount(net.classify(images, 1000), minlength=10)
assert counts.sum() == n
{peak_fn}
print(peak_rss_kb())
"""

EVAL_PROBE = """
import runpy, sys
sys.argv = ["eval.py", "--quiet", "--data-dir", {data_dir!r}]
try:
    runpy.run_path({script!r}, run_name="__main__")
except SystemExit:
    pass
{peak_fn}
print(peak_rss_kb())
"""


def memory(data_dir: str, quick: bool) -> None:
    script = str(ROOT / "scripts" / "eval.py")
    probe = EVAL_PROBE.format(data_dir=data_dir, script=script, peak_fn=PEAK_FN)
    eval_kb = int(run_python(probe)[1].split()[-1])
    rows = [("eval.py peak RSS", f"{eval_kb / 1024:.0f} MB", "target <= 200 MB")]
    streamed = {}
    for n in (10**4, 10**5) if quick else (10**4, 10**5, 10**6):
        probe = MEMORY_PROBE.format(data_dir=data_dir, n=n, peak_fn=PEAK_FN)
        kb = int(run_python(probe)[1].split()[-1])
        streamed[n] = kb / 1024
        rows.append((f"streamed scoring, N={n:.0e}", f"{kb / 1024:.0f} MB", "peak RSS"))
    RESULTS["memory_mb"] = {"eval": eval_kb / 1024, "streamed": streamed}
    show("peak memory", rows)


def dask_scale(data_dir: str, quick: bool) -> None:
    """2 workers x 1 thread vs single-process numpy on synthetic images."""
    try:
        from xpnn import distributed as xd
    except ImportError:
        return
    net = xpnn.pretrained_network(data_dir=data_dir, input_scale=1 / 255)
    sizes = (10**5,) if quick else (10**5, 10**6)
    rows, out = [], {}
    base = xpnn.load_mnist_split("test", normalize=False, data_dir=data_dir)
    for n in sizes:
        start = time.perf_counter()
        for s in range(0, n, 10_000):
            net.classify(xd.synthetic_rows(*base, s, min(s + 10_000, n), 0, 16)[0], 1000)
        single = time.perf_counter() - start
        with xd.cluster(workers=2) as client:
            x, t = xd.mnist_dask(n, noise=16, seed=0, rows_per_chunk=10_000, data_dir=data_dir)
            xd.confusion(
                xd.classify(net, xd.mnist_dask(20_000, data_dir=data_dir)[0]), t[:20_000]
            ).compute()  # warm
            start = time.perf_counter()
            xd.confusion(xd.classify(net, x), t).compute()
            cluster = time.perf_counter() - start
            peaks = client.run(peak_rss_kb)
        worker_mb = [v / 1024 for v in peaks.values()]
        # Both use the machine's 2 cores: numpy through 2 BLAS threads, the cluster
        # through 2 single-threaded workers; per core, the ratio is cluster / single.
        out[n] = {
            "single_process_images_per_s": n / single,
            "cluster_images_per_s": n / cluster,
            "per_core_ratio": ratio(n / cluster, n / single),
            "worker_peak_mb": worker_mb,
        }
        rows.append(
            (
                f"N={n:.0e}",
                f"{n / cluster:,.0f} img/s",
                f"2 workers vs numpy {n / single:,.0f} img/s: "
                f"{out[n]['per_core_ratio']}x per core; worker peaks "
                + ", ".join(f"{m:.0f}" for m in worker_mb)
                + " MB",
            )
        )
    RESULTS["dask"] = out
    show("dask.distributed, 2 workers x 1 thread, synthetic images", rows)


def gpu(params: dict[str, np.ndarray], x8: np.ndarray, repeat: int) -> None:
    """10k forward with data on the GPU and 10^6 synthetic images: cupy vs torch-cuda."""
    cases = {}
    for name in ("cupy", "torch"):
        try:
            net = xpnn.Network(params, output="softmax", backend=name, device="cuda")
        except xpnn.BackendError as err:
            print(f"  (skipping {name}: {err})")
            continue
        sync = (
            (lambda: __import__("cupy").cuda.Device().synchronize())
            if name == "cupy"
            else (lambda: __import__("torch").cuda.synchronize())
        )
        x = net.xp.asarray(x8.astype(np.float32) / 255, device=net.device)
        big = net.to(input_scale=1 / 255)
        x_big = net.xp.asarray(np.tile(x8, (100, 1)), device=net.device)  # 10^6 images
        cases[f"{name}-cuda 10k forward"] = lambda n=net, x=x, s=sync: (n.classify(x), s())
        cases[f"{name}-cuda 1e6 uint8"] = lambda n=big, x=x_big, s=sync: (
            n.classify(x, 100_000),
            s(),
        )
    if not cases:
        return
    timings = interleaved(cases, repeat, warmup=3)
    RESULTS["gpu"] = timings
    rows = [(k, ms(v["median_s"]), f"min {ms(v['min_s'])}") for k, v in timings.items()]
    if "cupy-cuda 10k forward" in timings and "torch-cuda 10k forward" in timings:
        r = ratio(
            timings["cupy-cuda 10k forward"]["median_s"],
            timings["torch-cuda 10k forward"]["median_s"],
        )
        RESULTS["ratios"]["cupy_vs_torch_cuda"] = r
        rows.append(("cupy / torch-cuda (10k)", f"{r}x", "target <= 1.2"))
    show("GPU", rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, smaller N")
    parser.add_argument("--json", default=None, metavar="FILE", help="also write results here")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--gpu", action="store_true", help="only the GPU section")
    args = parser.parse_args()
    repeat = 5 if args.quick else 15
    data_dir = str(data_home(args.data_dir))
    params = load_weight_pickle(os.path.join(data_dir, "sample_weight.pkl"))  # C-ordered
    x8, _ = xpnn.load_mnist_split("test", normalize=False, data_dir=data_dir)
    RESULTS.update(
        machine=f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}, "
        f"numpy {np.__version__}",
        ratios={},
    )
    print(f"# xpnn benchmark on {RESULTS['machine']}")
    if args.gpu:
        gpu(params, x8, repeat)
    else:
        peak = gemm_peak(repeat)
        flops = 2 * x8.shape[0] * sum(a * b for a, b in LAYERS)
        RESULTS.update(gemm_peak_flops=peak, network_flops=flops, roofline_s=flops / peak)
        print(
            f"\nfloat32 GEMM peak {peak / 1e9:.0f} GFLOP/s; 10k forward = {flops / 1e6:.0f} MFLOP; "
            f"roofline {ms(flops / peak)}"
        )
        forward_cases(params, x8, repeat)
        per_sample(params, x8, 2000 if args.quick else 10_000, 1 if args.quick else 2)
        load_times(data_dir, repeat)
        import_and_process(max(5, repeat // 2), data_dir)
        memory(data_dir, args.quick)
        dask_scale(data_dir, args.quick)
    print("\n## ratios")
    for key, value in RESULTS["ratios"].items():
        print(f"  {key}: {value}")
    if args.json:
        Path(args.json).write_text(json.dumps(RESULTS, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
