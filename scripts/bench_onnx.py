#!/usr/bin/env python
"""ONNX Runtime timings: the exported network against a hand-built graph, uint8 against float32.

    python scripts/bench_onnx.py [--rounds 5] [--repeats 20] [--json]

Cases, each timed in its own process with ONNX Runtime's default session
options (CPU execution provider), on the 10,000 MNIST test images in one run,
returning the softmax probabilities:

- ``hand-float32``: a minimal hand-built graph of the book's network
  (MatMul, Add, Sigmoid, MatMul, Add, Sigmoid, MatMul, Add, Softmax), float32
  input ``x / 255``; the reference.
- ``exported-float32``: ``xpnn.export_onnx(net, output="probabilities")``, the
  same float32 input.
- ``exported-uint8``: ``input_dtype="uint8"``, the raw uint8 pixels of the same
  images.

Rounds run the cases in rotating order; each process times ``--repeats``
calls of ``session.run`` after three warm-up calls. Reported: minimum and
median milliseconds per 10k images, and the ratios: of the minima, of the
medians, and "paired", the median over rounds of the ratio of the two
processes' medians in that round (neighbours in time share the machine's load);
also the minimum from uint8 pixels, counting the host-side ``x / 255`` that
the float32 models need (the uint8 model does it in the graph).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from typing import Any

CASES = ("hand-float32", "exported-float32", "exported-uint8")
RATIOS = (
    ("exported-float32", "hand-float32"),
    ("exported-uint8", "exported-float32"),
    ("exported-uint8", "hand-float32"),
)


def hand_built_model(params: dict[str, Any]) -> Any:
    """The book's network as nine ONNX nodes, written by hand (the reference only)."""
    from onnx import TensorProto, helper, numpy_helper

    nodes, weights, previous = [], [], "x"
    for i in (1, 2, 3):
        weights += [numpy_helper.from_array(params[f"W{i}"], f"W{i}")]
        weights += [numpy_helper.from_array(params[f"b{i}"], f"b{i}")]
        nodes += [helper.make_node("MatMul", [previous, f"W{i}"], [f"m{i}"])]
        nodes += [helper.make_node("Add", [f"m{i}", f"b{i}"], [f"a{i}"])]
        previous = f"a{i}"
        if i < 3:
            nodes += [helper.make_node("Sigmoid", [previous], [f"z{i}"])]
            previous = f"z{i}"
    nodes += [helper.make_node("Softmax", [previous], ["probabilities"], axis=-1)]
    graph = helper.make_graph(
        nodes,
        "hand_built",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 784])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 10])],
        weights,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])


def time_case(case: str, repeats: int, data_dir: str | None) -> dict[str, Any]:
    """Build one case's model and session, run it; return the timings (in this process)."""
    import numpy as np
    import onnxruntime as ort

    import xpnn
    from xpnn.export import export_model

    net = xpnn.pretrained_network(data_dir=data_dir, backend="numpy")
    pixels, labels = xpnn.load_mnist_split(
        "test", normalize=False, data_dir=data_dir, backend="numpy"
    )
    if case == "hand-float32":
        params = {k: np.asarray(v, dtype=np.float32) for k, v in net.params.items()}
        model = hand_built_model(params)
    else:
        input_dtype = case.split("-")[1]
        model = export_model(net, input_dtype=input_dtype, output="probabilities")
    x = pixels if case.endswith("uint8") else pixels.astype(np.float32) / 255
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for _ in range(3):
        (probabilities,) = session.run(None, {"x": x})
    correct = int((probabilities.argmax(axis=1) == labels).sum())
    seconds, with_prepare = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        if not case.endswith("uint8"):  # the float32 models' input, made from the pixels
            x = pixels.astype(np.float32) / 255
        prepared = time.perf_counter()
        session.run(None, {"x": x})
        done = time.perf_counter()
        seconds.append(done - prepared)
        with_prepare.append(done - started)
    return {
        "case": case,
        "correct": correct,
        "nodes": len(model.graph.node),
        "seconds": seconds,
        "with_prepare": with_prepare,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--case", choices=CASES, help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args(argv)
    if args.case:
        print(json.dumps(time_case(args.case, args.repeats, args.data_dir)))
        return 0
    seconds: dict[str, list[float]] = {case: [] for case in CASES}
    with_prepare: dict[str, list[float]] = {case: [] for case in CASES}
    per_round: list[dict[str, tuple[float, float]]] = []
    info: dict[str, dict[str, Any]] = {}
    for round_index in range(args.rounds):
        per_round.append({})
        shift = round_index % len(CASES)
        for case in CASES[shift:] + CASES[:shift]:
            command = [sys.executable, __file__, "--case", case, "--repeats", str(args.repeats)]
            if args.data_dir:
                command += ["--data-dir", args.data_dir]
            child = subprocess.run(command, capture_output=True, text=True, check=True)
            result = json.loads(child.stdout)
            seconds[case] += result["seconds"]
            with_prepare[case] += result["with_prepare"]
            per_round[-1][case] = (
                statistics.median(result["seconds"]),
                statistics.median(result["with_prepare"]),
            )
            info[case] = {"correct": result["correct"], "nodes": result["nodes"]}
    summary: dict[str, Any] = {"cases": {}, "ratios": {}}
    for case in CASES:
        summary["cases"][case] = {
            **info[case],
            "min_ms": min(seconds[case]) * 1e3,
            "median_ms": statistics.median(seconds[case]) * 1e3,
            "min_ms_with_pixel_conversion": min(with_prepare[case]) * 1e3,
            "median_ms_with_pixel_conversion": statistics.median(with_prepare[case]) * 1e3,
            "runs": len(seconds[case]),
        }
    for a, b in RATIOS:
        ca, cb = summary["cases"][a], summary["cases"][b]
        summary["ratios"][f"{a} / {b}"] = {
            "min": ca["min_ms"] / cb["min_ms"],
            "median": ca["median_ms"] / cb["median_ms"],
            "min_with_pixel_conversion": ca["min_ms_with_pixel_conversion"]
            / cb["min_ms_with_pixel_conversion"],
            "paired": statistics.median(r[a][0] / r[b][0] for r in per_round),
            "paired_with_pixel_conversion": statistics.median(r[a][1] / r[b][1] for r in per_round),
        }
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    for case, row in summary["cases"].items():
        print(
            f"{case:18} min {row['min_ms']:7.2f} ms  median {row['median_ms']:7.2f} ms  "
            f"({row['runs']} runs, {row['nodes']} top-level nodes, {row['correct']}/10000); "
            f"from uint8 pixels: min {row['min_ms_with_pixel_conversion']:7.2f} ms"
        )
    for name, ratio in summary["ratios"].items():
        print(
            f"{name:38} {ratio['paired']:.3f}x (paired)  {ratio['min']:.3f}x (min)  "
            f"{ratio['median']:.3f}x (median)  "
            f"{ratio['paired_with_pixel_conversion']:.3f}x (paired, from uint8 pixels)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
