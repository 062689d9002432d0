"""The backend fixture itself: selection by option or variable, and required backends."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = "tests/test_activations.py::test_results_stay_on_the_input_device"


def run_pytest(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("XPNN_TEST_")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**environ, **(env or {})},
        timeout=300,
    )


def collected(out: subprocess.CompletedProcess) -> list[str]:
    return [line.split("[")[1].rstrip("]") for line in out.stdout.splitlines() if "::" in line]


def test_all_cases_are_listed_by_default():
    out = run_pytest("--collect-only", TARGET)
    assert collected(out) == [
        "numpy-cpu",
        "array_api_strict-cpu",
        "array_api_strict-device1",
        "torch-cpu",
        "jax-cpu",
        "dask-cpu",
        "cupy-cuda",
        "torch-cuda",
        "jax-cuda",
    ]


def test_select_with_option_and_variable():
    out = run_pytest("--collect-only", "--backend", "numpy", "--backend", "torch", TARGET)
    assert collected(out) == ["numpy-cpu", "torch-cpu", "torch-cuda"]
    out = run_pytest(
        "--collect-only", TARGET, env={"XPNN_TEST_BACKENDS": "array_api_strict-device1"}
    )
    assert collected(out) == ["array_api_strict-device1"]
    out = run_pytest("--collect-only", "--backend", "tensorflow", TARGET)
    assert out.returncode != 0 and "unknown backend(s) ['tensorflow']" in out.stderr


def test_required_backend_that_is_missing_fails():
    """The skip of a missing backend becomes a failure once it is required (as in CI)."""
    env = {"XPNN_TEST_BACKENDS": "torch-cuda"}
    skipped = run_pytest("-rs", TARGET, env=env)
    assert skipped.returncode == 0 and "1 skipped" in skipped.stdout
    env["XPNN_TEST_REQUIRE"] = "torch-cuda"
    failed = run_pytest(TARGET, env=env)
    assert failed.returncode == 1
    assert "required backend torch-cuda is unavailable" in failed.stdout
