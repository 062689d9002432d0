"""scripts/gpu_check.sh cannot pass unless every step ran and passed.

No test here needs, or assumes the absence of, a GPU: the driver gets a fake step list
(``GPU_CHECK_STEPS``) and a fake ``nvidia-smi`` first on ``PATH``, one that lists a GPU or one
that finds none.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "gpu_check.sh"

pytestmark = pytest.mark.skipif(
    shutil.which("bash") is None or shutil.which("timeout") is None,
    reason="gpu_check.sh needs bash and coreutils' timeout",
)

GPU_VISIBLE = "#!/bin/sh\necho 'GPU 0: NVIDIA H100 (UUID: GPU-0)'\n"
NO_GPU = "#!/bin/sh\necho 'No devices were found'\nexit 6\n"


def run_check(
    tmp_path: Path,
    *args: str,
    smi: str = GPU_VISIBLE,
    steps: list[str] | None = None,
    python: str | None = None,
) -> subprocess.CompletedProcess[str]:
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir(exist_ok=True)
    (fake_bin / "nvidia-smi").write_text(smi, encoding="utf-8")
    (fake_bin / "nvidia-smi").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "GPU_CHECK_STEPS"}
    env["PATH"] = f"{fake_bin}{os.pathsep}{env.get('PATH', '')}"
    if python is not None:
        env["PYTHON"] = python
    if steps is not None:
        (tmp_path / "steps.txt").write_text("\n".join(steps) + "\n", encoding="utf-8")
        env["GPU_CHECK_STEPS"] = str(tmp_path / "steps.txt")
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        env=env,
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


def test_every_step_ok_exits_0(tmp_path: Path) -> None:
    out = run_check(tmp_path, steps=["first|10|true", "second|10|echo hi"])
    assert out.returncode == 0, out.stdout + out.stderr
    assert summary_of(out) == {"first": "ok", "second": "ok"}
    assert "hi" in out.stdout


def test_a_failed_or_timed_out_step_fails_and_the_rest_still_run(tmp_path: Path) -> None:
    steps = ["fails|10|exit 3", "no tests|10|exit 5", "hangs|1|sleep 30", "last|10|true"]
    out = run_check(tmp_path, steps=steps)
    assert out.returncode == 1
    assert summary_of(out) == {
        "fails": "FAILED (exit 3)",
        "no tests": "FAILED (exit 5)",  # pytest's 'no tests ran' is a failure too
        "hangs": "FAILED (exit 124)",
        "last": "ok",
    }


def test_without_a_visible_gpu_nothing_runs_and_it_fails(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    out = run_check(tmp_path, smi=NO_GPU, steps=[f"step|10|touch {marker}", "other|10|true"])
    assert out.returncode == 1
    assert "No devices were found" in out.stdout
    assert summary_of(out) == {
        "step": "NOT RUN (no NVIDIA GPU visible)",
        "other": "NOT RUN (no NVIDIA GPU visible)",
    }
    assert not marker.exists(), "a step ran without a GPU"


def test_the_real_steps_without_a_gpu_are_all_not_run(tmp_path: Path) -> None:
    out = run_check(tmp_path, smi=NO_GPU)
    result = summary_of(out)
    assert out.returncode == 1 and len(result) == 7
    assert set(result.values()) == {"NOT RUN (no NVIDIA GPU visible)"}


def test_the_step_list_covers_the_gpu_check(tmp_path: Path) -> None:
    out = run_check(tmp_path, "--list")
    assert out.returncode == 0, out.stderr
    steps = {line.split("|")[0]: line.split("|", 2)[2] for line in out.stdout.splitlines()}
    for case in ("cupy", "torch-cuda", "jax-cuda"):
        command = steps[f"tests {case}"]
        assert f"XPNN_TEST_REQUIRE={case}" in command and f"--backend {case}" in command
        assert "XPNN_TEST_EXPECTED_SKIPS=" in command  # any skip fails
    assert [n for n in steps if n.startswith("eval ")] == [
        "eval cupy",
        "eval torch-cuda",
        "eval jax-cuda",
    ]
    assert "scripts/bench.py --gpu --quick" in steps["bench --gpu --quick"]


def test_the_eval_check_wants_cuda_and_9352(tmp_path: Path) -> None:
    """eval_on checks the report: a CPU device or another score fails the step."""
    fake = tmp_path / "fakepy"
    fake.write_text(
        '#!/bin/sh\nif [ "$1" = scripts/eval.py ]; then cat "$REPORT"; '
        'else exec python3 "$@"; fi\n',
        encoding="utf-8",
    )
    fake.chmod(0o755)
    results = {}
    for name, report in {
        "good": '{"device": "cuda:0", "correct": 9352, "n": 10000, "backend": "torch"}',
        "cpu": '{"device": "cpu", "correct": 9352, "n": 10000, "backend": "torch"}',
        "score": '{"device": "cuda:0", "correct": 9354, "n": 10000, "backend": "torch"}',
    }.items():
        (tmp_path / f"{name}.json").write_text(report, encoding="utf-8")
        steps = [f"{name}|20|REPORT={tmp_path / name}.json eval_on torch"]
        results[name] = summary_of(run_check(tmp_path, steps=steps, python=str(fake)))[name]
    assert results == {"good": "ok", "cpu": "FAILED (exit 1)", "score": "FAILED (exit 1)"}


def test_unknown_argument_is_refused(tmp_path: Path) -> None:
    out = run_check(tmp_path, "--bogus")
    assert out.returncode == 2 and "usage" in out.stderr
