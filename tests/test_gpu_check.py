"""scripts/gpu_check.sh cannot pass unless every step ran and passed.

No test here needs, or assumes the absence of, a GPU: the runner is driven with a fake step
list (``GPU_CHECK_STEPS``), the "no GPU visible" path with a fake ``nvidia-smi`` first on
``PATH``, and the Python checks of ``scripts/gpu_check_steps.py`` are called directly.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "gpu_check.sh"

pytestmark = pytest.mark.skipif(
    shutil.which("bash") is None or shutil.which("timeout") is None,
    reason="gpu_check.sh needs bash and coreutils' timeout",
)


def _steps_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "gpu_check_steps", ROOT / "scripts" / "gpu_check_steps.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


steps = _steps_module()


def run_check(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        env={**os.environ, **(env or {})},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def summary_of(out: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """Step name -> result, from the summary lines."""
    lines = out.stdout.split("=== summary", 1)[1].splitlines()[1:]
    rows = [line.strip() for line in lines if line.startswith("  ")]
    return {row[:32].strip(): row[32:].strip() for row in rows}


def fake_steps(tmp_path: Path, lines: list[str]) -> dict[str, str]:
    path = tmp_path / "steps.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {"GPU_CHECK_STEPS": str(path)}


def test_every_step_ok_exits_0(tmp_path: Path) -> None:
    out = run_check(tmp_path, env=fake_steps(tmp_path, ["first|10|true", "second|10|echo hi"]))
    assert out.returncode == 0, out.stdout + out.stderr
    result = summary_of(out)
    assert list(result) == ["first", "second"]
    assert all(r.startswith("ok") for r in result.values())
    assert "every step ran and passed" in out.stdout


def test_a_failed_or_timed_out_step_exits_1(tmp_path: Path) -> None:
    env = fake_steps(
        tmp_path, ["good|10|true", "bad|10|exit 3", "slow|1|sleep 30", "after|10|true"]
    )
    out = run_check(tmp_path, env=env)
    assert out.returncode == 1
    result = summary_of(out)
    assert result["good"].startswith("ok")
    assert result["bad"].startswith("FAILED (exit 3")
    assert result["slow"].startswith("TIMED OUT")
    assert result["after"].startswith("ok"), "a failure must not stop the later steps"
    assert "FAILED" in out.stdout.splitlines()[-1]


def test_steps_past_the_budget_are_not_run_and_fail(tmp_path: Path) -> None:
    env = {**fake_steps(tmp_path, ["one|10|true"]), "GPU_CHECK_BUDGET_S": "3"}
    out = run_check(tmp_path, env=env)
    assert out.returncode == 1
    assert summary_of(out)["one"].startswith("NOT RUN (time budget")


def test_termination_stops_the_step_and_fails(tmp_path: Path) -> None:
    marker = tmp_path / "step-finished"
    env = {
        **os.environ,
        **fake_steps(tmp_path, [f"long|60|echo started; sleep 3; touch {marker}", "next|10|true"]),
    }
    with subprocess.Popen(
        ["bash", str(SCRIPT)], env=env, cwd=tmp_path, stdout=subprocess.PIPE, text=True
    ) as process:
        assert process.stdout is not None
        while "started" not in process.stdout.readline():
            pass
        process.send_signal(signal.SIGTERM)
        rest = process.stdout.read()
        assert process.wait(timeout=30) == 130
    assert "gpu_check: interrupted" in rest
    assert "NOT RUN (interrupted)" in rest
    time.sleep(4)
    assert not marker.exists(), "the step kept running after the check was stopped"


def test_without_a_visible_gpu_nothing_runs_and_it_fails(tmp_path: Path) -> None:
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    smi = fake_bin / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'No devices were found'\nexit 6\n", encoding="utf-8")
    smi.chmod(0o755)
    env = {"PATH": f"{fake_bin}{os.pathsep}{os.environ.get('PATH', '')}"}
    env_without_fake = {k: v for k, v in os.environ.items() if k != "GPU_CHECK_STEPS"}
    out = subprocess.run(
        ["bash", str(SCRIPT)],
        env={**env_without_fake, **env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 1
    assert "No devices were found" in out.stdout
    result = summary_of(out)
    assert len(result) >= 10
    assert all(r == "NOT RUN (no NVIDIA GPU visible)" for r in result.values()), result
    assert "===" not in out.stdout.split("=== summary")[0], "a step ran without a GPU"


def listed_steps() -> list[tuple[str, int, str]]:
    out = subprocess.run(
        ["bash", str(SCRIPT), "--list"], capture_output=True, text=True, timeout=60, check=True
    )
    rows = []
    for line in out.stdout.splitlines():
        name, limit, command = line.split("|", 2)
        rows.append((name, int(limit), command))
    return rows


def test_the_step_list_covers_the_gpu_check() -> None:
    rows = listed_steps()
    names = [name for name, _, _ in rows]
    for expected in (
        "pytest cupy + torch-cuda",
        "pytest jax-cuda",
        "eval cupy float32",
        "eval cupy float16",
        "eval torch-cuda float32",
        "eval torch-cuda float16",
        "eval jax-cuda float32",
        "eval jax-cuda float32 highest",
        "eval jax-cuda float16",
        "dask array of CuPy chunks",
        "bench.py --gpu --quick",
        "full suite (CPU cases)",
    ):
        assert expected in names
    assert names[-1] == "full suite (CPU cases)"
    for name, _, command in rows:
        assert " -k " not in command, f"{name}: select GPU cases with --backend, not -k"
        if "pytest" in name:
            assert "XPNN_TEST_REQUIRE=" in command, name
        if "jax" in name:
            assert "XLA_PYTHON_CLIENT_PREALLOCATE=false" in command, name
            assert "torch" not in command and "cupy" not in command, name
        else:
            assert "JAX_PLATFORMS=cpu" in command, f"{name}: JAX must not start CUDA here"
        if name.startswith("eval"):
            assert "check-report" in command and "--device cuda" in command, name
    jax_tests = dict((n, c) for n, _, c in rows)["pytest jax-cuda"]
    assert "jax-pytest" in jax_tests and "--backend jax-cuda" in jax_tests


def test_only_reruns_the_named_steps_as_a_partial_run(tmp_path: Path) -> None:
    env = fake_steps(tmp_path, ["eval a|10|true", "eval b|10|exit 4", "bench|10|exit 5"])
    out = run_check(tmp_path, "--only", "eval a,bench", env=env)
    assert out.returncode == 1
    assert list(summary_of(out)) == ["eval a", "bench"]
    assert "partial run, 2 of 3 steps" in out.stdout
    out = run_check(tmp_path, "--only", "eval a", env=env)
    assert out.returncode == 0
    assert "every step ran and passed (partial run, 1 of 3 steps)" in out.stdout
    out = run_check(tmp_path, "--only", "nothing", env=env)
    assert out.returncode == 2
    assert "matches no step" in out.stderr


def test_unknown_argument_is_refused(tmp_path: Path) -> None:
    out = run_check(tmp_path, "--gpu")
    assert out.returncode == 2
    assert "usage" in out.stderr


# --- scripts/gpu_check_steps.py ---------------------------------------------------------------


def test_check_report() -> None:
    good = '{"backend": "cupy", "device": "cuda:0", "dtype": "float32", "correct": 9352}'
    assert steps.check_report(good, 9352, "cuda") == []
    cpu = good.replace("cuda:0", "cpu:0")
    assert any("device 'cpu:0'" in p for p in steps.check_report(cpu, 9352, "cuda"))
    assert any("9352 correct, expected 9354" in p for p in steps.check_report(good, 9354, "cuda"))
    assert any("not JSON" in p for p in steps.check_report("Traceback", 9352, "cuda"))


def test_wheel_problem() -> None:
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    machine = platform.machine()
    assert steps.wheel_problem("six-1.16.0-py2.py3-none-any.whl") is None
    here = f"kiwisolver-1.4.7-{tag}-{tag}-manylinux_2_17_{machine}.manylinux2014_{machine}.whl"
    assert steps.wheel_problem(here) is None
    assert "built for cp27" in str(steps.wheel_problem("x-1.0-cp27-cp27mu-linux_x86_64.whl"))
    assert "platform" in str(steps.wheel_problem(f"x-1.0-{tag}-{tag}-win_amd64.whl"))
    assert steps.wheel_problem("not-a-wheel.zip") is not None


def _wheel(directory: Path, dist: str, module: str) -> Path:
    path = directory / f"{dist}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{module}.py", "ANSWER = 42\n")
        archive.writestr(f"{dist}-1.0.dist-info/METADATA", f"Name: {dist}\nVersion: 1.0\n")
    return path


def test_carry_wheels_unzips_missing_ones_only(tmp_path: Path) -> None:
    missing = _wheel(tmp_path, "xpnn_carried_probe", "xpnn_carried_probe")
    installed = _wheel(tmp_path, "numpy", "numpy_impostor")
    target = tmp_path / "site"
    assert steps.carry_wheels(target, [missing, installed]) == 0
    assert (target / "xpnn_carried_probe.py").is_file()
    assert not (target / "numpy_impostor.py").exists(), "an installed package was shadowed"
    out = subprocess.run(
        [sys.executable, "-c", "import xpnn_carried_probe as m; print(m.ANSWER)"],
        env={**os.environ, "PYTHONPATH": str(target)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.strip() == "42"
    foreign = tmp_path / "y-1.0-cp27-cp27mu-linux_x86_64.whl"
    foreign.write_bytes(missing.read_bytes())
    assert steps.carry_wheels(tmp_path / "other", [foreign]) == 1


PLUGIN_TESTS = """
import pytest

@pytest.fixture(params=["gpu"])
def backend(request):
    if request.config.getoption("--skip-it"):
        pytest.skip("no such device here")
    return request.param

def test_uses_backend(backend):
    assert backend == "gpu"

def test_without_backend():
    raise AssertionError("must be deselected")
"""

PLUGIN_CONFTEST = """
def pytest_addoption(parser):
    parser.addoption("--skip-it", action="store_true")
"""


@pytest.mark.parametrize(("extra", "status"), [([], 0), (["--skip-it"], 1)])
def test_plugin_keeps_backend_tests_and_fails_on_skips(
    tmp_path: Path, extra: list[str], status: int
) -> None:
    (tmp_path / "test_sample.py").write_text(textwrap.dedent(PLUGIN_TESTS), encoding="utf-8")
    (tmp_path / "conftest.py").write_text(PLUGIN_CONFTEST, encoding="utf-8")
    scripts = str(ROOT / "scripts")
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    out = subprocess.run(
        [*command, "-p", "gpu_check_steps", *extra, "test_sample.py"],
        env={**os.environ, "PYTHONPATH": scripts},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == status, out.stdout + out.stderr
    assert "1 deselected" in out.stdout
    if status:
        assert "1 selected test(s) were skipped" in out.stderr
