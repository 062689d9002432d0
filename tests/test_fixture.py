"""The backend fixture itself: selection by option or variable, and required backends."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from optional import import_or_skip

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
        "strict-no_float64",
        "strict-no_x64",
        "torch-cpu",
        "jax-cpu",
        "jax-cpu1",
        "dask-cpu",
        "ndonnx-cpu",
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
    """The skip of a missing device becomes a failure once it is required (as in CI).

    JAX told to make one host device cannot have ``cpu:1``, on any machine
    (and where JAX is missing the case is skipped too).
    """
    env = {
        "XPNN_TEST_BACKENDS": "jax-cpu1",
        "XLA_FLAGS": "--xla_force_host_platform_device_count=1",
    }
    skipped = run_pytest("-rs", TARGET, env=env)
    assert skipped.returncode == 0 and "1 skipped" in skipped.stdout, skipped.stdout
    assert "jax-cpu1" in skipped.stdout
    env["XPNN_TEST_REQUIRE"] = "jax-cpu1"
    failed = run_pytest(TARGET, env=env)
    assert failed.returncode == 1
    assert "required backend jax-cpu1 is unavailable" in failed.stdout


def test_jax_cpu1_is_a_second_device_where_jax_is_installed():
    """conftest asks XLA for two host devices, so jax-cpu1 runs on every machine with JAX."""
    import_or_skip("jax", "jax")
    env = {"XPNN_TEST_BACKENDS": "jax-cpu1"}
    environ_flags = os.environ.get("XLA_FLAGS")
    if environ_flags is not None and "device_count=2" not in environ_flags:
        pytest.skip(f"XLA_FLAGS={environ_flags!r} is set here; conftest keeps it")
    out = run_pytest("-rs", TARGET, env=env)
    assert out.returncode == 0 and "1 passed" in out.stdout, out.stdout


def test_every_backend_has_a_cpu_case_and_every_simulated_device_a_case():
    """The fixture covers each backend on the CPU, and array-api-strict's every device."""
    import xpnn
    from conftest import CASES

    for name in xpnn.BACKENDS:
        devices = {c.device for c in CASES if c.backend == name}
        assert name == "cupy" or "cpu" in devices, name
    xps = pytest.importorskip("array_api_strict")
    names = {xpnn.backends._label(d) for d in xps.__array_namespace_info__().devices()}
    cases = {c.device for c in CASES if c.backend == "array_api_strict"}
    assert names - {"device2"} <= cases, names - cases


def test_fixture_disagreeing_with_xpnn_fails(monkeypatch):
    """The fixture is an independent check of xpnn.namespace, not a copy of it."""
    import conftest
    import xpnn

    case = conftest.CASES[0]  # numpy-cpu
    monkeypatch.setattr(conftest, "_PROBED", {})
    monkeypatch.setattr(xpnn, "namespace", lambda backend, device: (np, "cpu"))
    with pytest.raises(AssertionError):
        conftest._probe(case)


def test_unexpected_skips_fail_the_run(tmp_path):
    """With XPNN_TEST_EXPECTED_SKIPS set (as in CI), a skip for any other reason fails."""
    (tmp_path / "test_skips.py").write_text(
        "import pytest\n\n"
        "def test_expected():\n    pytest.skip('gpu-case: no device here')\n\n"
        "def test_unexpected():\n    pytest.skip('a data file is missing')\n"
    )
    environ = {k: v for k, v in os.environ.items() if not k.startswith("XPNN_TEST_")}
    environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), environ.get("PYTHONPATH", "")])

    def run(expected: str | None) -> subprocess.CompletedProcess:
        env = dict(environ)
        if expected is not None:
            env["XPNN_TEST_EXPECTED_SKIPS"] = expected
        return subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "conftest", "-p", "no:cacheprovider", "-q"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=env,
            timeout=300,
        )

    assert run(None).returncode == 0  # a developer's run: skips are only reported
    strict = run("gpu-case:")
    assert strict.returncode == 1, strict.stdout
    assert "test_unexpected: a data file is missing" in strict.stdout
    assert "test_expected" not in strict.stdout.split("unexpected skips")[-1]
    assert run("gpu-case:,a data file").returncode == 0
