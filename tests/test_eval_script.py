"""``scripts/eval.py``, the main job, run as a user runs it from a clone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from optional import import_or_skip

ROOT = Path(__file__).resolve().parent.parent
EVAL = ROOT / "scripts" / "eval.py"


def run_eval(*args, env=None, cwd=None):
    """Run the script in a fresh process, from ``cwd`` (default: a directory of its own).

    The checkout goes first on ``PYTHONPATH``, as an editable install would put
    it, so the code under test is this checkout's.
    """
    environ = {**os.environ, **(env or {})}
    environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), environ.get("PYTHONPATH", "")) if p
    )
    return subprocess.run(
        [sys.executable, str(EVAL), *args],
        capture_output=True,
        text=True,
        env=environ,
        cwd=cwd or "/",
        timeout=300,
    )


def test_json_report(backend, dtype, data_dir):
    case = backend.case
    out = run_eval(
        "--json", "--dtype", dtype, "--data-dir", data_dir,
        "--backend", case.backend, "--device", case.device,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["backend"] == case.backend and report["dtype"] == dtype
    assert report["device"] == str(backend.device)  # where the predicted labels were
    assert report["correct"] == 9352 and report["n"] == 10000
    assert report["accuracy"] == pytest.approx(0.9352)
    matrix = report["confusion_matrix"]
    assert sum(map(sum, matrix)) == 10000
    assert sum(matrix[i][i] for i in range(10)) == 9352
    assert len(report["per_class_accuracy"]) == 10 and report["images_per_second"] > 0


def test_text_report_from_another_directory(data_dir, tmp_path):
    out = run_eval("--data-dir", data_dir, "--batch-size", "1000", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    for part in ("backend: numpy", "accuracy: 0.9352 (9352/10000)", "confusion matrix", "images/s"):
        assert part in text
    assert out.stderr == ""  # no progress bar when not on a terminal
    assert list(tmp_path.iterdir()) == []  # nothing written where it was run


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--backend", "tensorflow"], "unknown backend 'tensorflow'"),
        (["--backend", "nunpy", "--workers", "2"], "unknown backend 'nunpy'"),
        (["--device", "cuda"], "runs on the CPU only"),
        (["--batch-size", "0"], "--batch-size: must be at least 1"),
        (["--workers", "0", "--backend", "dask"], "--workers: must be at least 1"),
        (["--workers", "2"], "need --backend dask"),
        (["--backend", "dask", "--workers", "2", "--scheduler", "tcp://h:1"], "not allowed with"),
        (["--backend", "dask", "--workers", "2", "--plot", "figures"], "--plot is not available"),
        (["--dtype", "int8"], "invalid choice: 'int8'"),
        (["--frobnicate"], "unrecognized arguments: --frobnicate"),
        (["--weights", "/nonexistent/w.safetensors"], "no such weights file"),
    ],
)
def test_errors_are_one_line_exit_2(args, message, data_dir):
    out = run_eval("--data-dir", data_dir, *args)
    assert out.returncode == 2
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in out.stderr


def test_a_device_that_cannot_exist_is_one_line_exit_2(data_dir):
    # No machine has 1000 CUDA devices: the error path runs everywhere, GPU or not.
    import_or_skip("torch", "torch")
    out = run_eval("--data-dir", data_dir, "--backend", "torch", "--device", "cuda:999")
    assert out.returncode == 2 and out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "cuda:999" in lines[0] and "Traceback" not in out.stderr


def test_missing_data_is_one_line_exit_2(tmp_path):
    out = run_eval("--data-dir", str(tmp_path), env={"XPNN_OFFLINE": "1"})
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "sample_weight.pkl" in lines[0] and str(tmp_path) in lines[0]


@pytest.mark.parametrize("script", ["plot_activations", "show_mnist"])
def test_figure_scripts_take_the_command_options(script, data_dir, tmp_path):
    import_or_skip("matplotlib", "matplotlib")
    environ = {**os.environ, "PYTHONPATH": str(ROOT), "XPNN_DATA_DIR": data_dir}
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / f"{script}.py"), "--out", "figure.png"],
        capture_output=True, text=True, cwd=tmp_path, env=environ, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "figure.png").read_bytes()[:4] == b"\x89PNG"


def test_script_starts_worker_processes(data_dir):
    # Worker processes import the script again: it must run its command only once.
    import_or_skip("distributed", "dask")
    out = run_eval("--backend", "dask", "--workers", "1", "--json", "--data-dir", data_dir)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["correct"] == 9352 and report["device"] == "cluster of 1 worker(s)"
    assert out.stderr == ""
