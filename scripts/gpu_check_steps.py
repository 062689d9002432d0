#!/usr/bin/env python
"""The Python side of ``scripts/gpu_check.sh``: checks that exit non-zero when they fail.

    python scripts/gpu_check_steps.py carry-wheels DIR WHEEL...   # unzip missing wheels
    python scripts/gpu_check_steps.py jax-pytest -- PYTEST_ARGS   # JAX's GPU first, then pytest
    python scripts/gpu_check_steps.py check-report --correct N --device cuda < report.json
    python scripts/gpu_check_steps.py dask-cupy                   # dask array of CuPy chunks

Loaded as a pytest plugin (``-p gpu_check_steps`` with ``scripts/`` on ``sys.path``), it keeps
only the tests that use the ``backend`` fixture and turns every skip into a failure, so a GPU
case that did not run cannot pass as one that did.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import platform
import re
import sys
import zipfile
from pathlib import Path
from typing import Any

# --- pytest plugin --------------------------------------------------------------------------

_SKIPPED: list[str] = []


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    """Keep the tests parametrized by the ``backend`` fixture; the rest run in another step."""
    keep = [item for item in items if "backend" in getattr(item, "fixturenames", ())]
    dropped = [item for item in items if item not in keep]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


def pytest_runtest_logreport(report: Any) -> None:
    """Remember every skipped test."""
    if report.skipped and not getattr(report, "wasxfail", None):
        _SKIPPED.append(report.nodeid)


def pytest_sessionfinish(session: Any, exitstatus: int) -> None:
    """A skip fails the session: every selected GPU case must really run."""
    if _SKIPPED and exitstatus == 0:
        print(f"\ngpu_check: {len(_SKIPPED)} selected test(s) were skipped:", file=sys.stderr)
        for nodeid in _SKIPPED[:20]:
            print(f"  {nodeid}", file=sys.stderr)
        session.exitstatus = 1


# --- wheels ---------------------------------------------------------------------------------

_WHEEL = re.compile(
    r"^(?P<dist>[^-]+)-(?P<version>[^-]+)(?:-\d[^-]*)?-(?P<py>[^-]+)-(?P<abi>[^-]+)-(?P<plat>[^-]+)\.whl$"
)


def wheel_problem(filename: str) -> str | None:
    """Why a wheel cannot run on this interpreter by unzipping it, or None if it can."""
    match = _WHEEL.match(filename)
    if not match:
        return "not a wheel file name"
    here = f"cp{sys.version_info.major}{sys.version_info.minor}"
    pythons = set(match["py"].split("."))
    if not pythons & {"py3", here, f"py{sys.version_info.major}{sys.version_info.minor}"}:
        return f"built for {match['py']}, this is {here}"
    abis = set(match["abi"].split("."))
    if not abis & {"none", "abi3", here}:
        return f"ABI {match['abi']}, this is {here}"
    platforms = match["plat"].split(".")
    machine = platform.machine()
    if "any" not in platforms and not any(
        p.endswith(machine) and p.startswith(("manylinux", "linux")) for p in platforms
    ):
        return f"platform {match['plat']}, this is linux {machine}"
    return None


def distribution_name(filename: str) -> str:
    """The distribution a wheel file installs (``python_dateutil`` for ``python_dateutil-…``)."""
    return filename.split("-", 1)[0]


def carry_wheels(target: Path, wheels: list[Path]) -> int:
    """Unzip each wheel whose distribution is not installed into ``target`` (a wheel is a zip).

    Returns the number of wheels that could not be used (wrong Python or platform).
    """
    bad = 0
    target.mkdir(parents=True, exist_ok=True)
    for wheel in sorted(wheels):
        dist = distribution_name(wheel.name)
        try:
            version = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            version = None
        if version is not None:
            print(f"  {dist}: installed ({version}), {wheel.name} not used")
            continue
        problem = wheel_problem(wheel.name)
        if problem is not None:
            print(f"  {wheel.name}: cannot be used here: {problem}", file=sys.stderr)
            bad += 1
            continue
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(target)
        print(f"  {dist}: from {wheel.name}")
    return bad


# --- checks ---------------------------------------------------------------------------------


def check_report(text: str, correct: int, device: str) -> list[str]:
    """Problems with an ``eval.py --json`` report: the device and the number correct."""
    try:
        report = json.loads(text)
    except json.JSONDecodeError as err:
        return [f"the report is not JSON ({err}): {text[:200]!r}"]
    problems = []
    where = str(report.get("device", ""))
    if device not in where.lower():
        problems.append(f"device {where!r} in the report, expected a {device!r} device")
    if report.get("correct") != correct:
        problems.append(f"{report.get('correct')} correct, expected {correct}")
    print(
        f"  backend {report.get('backend')}, device {where}, dtype {report.get('dtype')}, "
        f"{report.get('correct')} correct"
    )
    return problems


def jax_pytest(pytest_args: list[str]) -> int:
    """Start JAX's GPU backend before anything else loads CUDA, show its devices, run pytest."""
    import jax

    devices = jax.devices()
    print(f"jax {jax.__version__}: jax.devices() = {devices}")
    if not any(d.platform == "gpu" for d in devices):
        print("gpu_check: JAX has no GPU device (a CPU fallback)", file=sys.stderr)
        return 3
    import pytest

    status = int(pytest.main(pytest_args))
    if "torch" in sys.modules:
        print("gpu_check: note: torch was imported in the JAX process", file=sys.stderr)
    return status


def dask_cupy(data_dir: str | None) -> list[str]:
    """Classify the MNIST test set as a dask array of CuPy chunks; check labels and counts."""
    import numpy as np

    # Typed as Any: CuPy has no type stubs, dask.array's are partial.
    cupy: Any = importlib.import_module("cupy")
    da: Any = importlib.import_module("dask.array")

    import xpnn
    from xpnn import distributed as xd

    net = xpnn.pretrained_network(input_scale=1 / 255, data_dir=data_dir)
    x, t = xpnn.load_mnist_split("test", normalize=False, data_dir=data_dir)
    x_gpu = da.from_array(x, chunks=(2500, 784)).map_blocks(cupy.asarray)
    labels = xd.classify(net, x_gpu)
    problems = []
    first = labels.blocks[0].compute()
    if not isinstance(first, cupy.ndarray):
        problems.append(f"a chunk of labels is {type(first).__module__}, not on the GPU")
    matrix = xpnn.to_numpy(xd.confusion(labels, da.from_array(t, chunks=2500)).compute())
    correct, total = int(np.trace(matrix)), int(np.sum(matrix))
    print(f"  dask of CuPy chunks: {correct} of {total} correct")
    if (correct, total) != (9352, 10000):
        problems.append(f"{correct} of {total} correct, expected 9352 of 10000")
    relu = xpnn.relu(x_gpu[:10].astype("float32") - 128).compute()
    if not isinstance(relu, cupy.ndarray):
        problems.append(f"relu of CuPy chunks computed to {type(relu).__module__}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    carry = sub.add_parser("carry-wheels", help="unzip the wheels whose package is missing")
    carry.add_argument("target", type=Path)
    carry.add_argument("wheels", type=Path, nargs="*")
    jaxp = sub.add_parser("jax-pytest", help="JAX's GPU first, then pytest with these args")
    jaxp.add_argument("pytest_args", nargs=argparse.REMAINDER)
    report = sub.add_parser("check-report", help="check an eval.py --json report on stdin")
    report.add_argument("--correct", type=int, required=True)
    report.add_argument("--device", default="cuda")
    dask = sub.add_parser("dask-cupy", help="xd.classify + xd.confusion on CuPy chunks")
    dask.add_argument("--data-dir", default=None)
    args = parser.parse_args(argv)

    if args.command == "carry-wheels":
        return 1 if carry_wheels(args.target, args.wheels) else 0
    if args.command == "jax-pytest":
        rest = args.pytest_args[1:] if args.pytest_args[:1] == ["--"] else args.pytest_args
        return jax_pytest(rest)
    if args.command == "check-report":
        problems = check_report(sys.stdin.read(), args.correct, args.device)
    else:
        problems = dask_cupy(args.data_dir)
    for problem in problems:
        print(f"gpu_check: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
