"""The ``backend`` and ``dtype`` fixtures that run every test on every backend.

Selection: ``pytest --backend numpy --backend torch`` or
``XPNN_TEST_BACKENDS=numpy,torch`` (names: a backend, a case id such as
``torch-cuda``, ``jax-cpu1`` or ``array_api_strict-device1``). A backend that
is missing or has no such device here is skipped with the reason, unless it
is listed in ``XPNN_TEST_REQUIRE``, which turns that skip into a failure.
There ``torch`` means torch on the CPU; the GPU cases are ``cupy``,
``torch-cuda`` and ``jax-cuda``; ``jax-cpu1`` is JAX's second CPU device.

Each case is built here with the library itself (an array made on the
device, then ``array_api_compat``), independently of xpnn, and
``xpnn.namespace`` must agree with it: a disagreement fails the test.

Before JAX is imported, this file asks XLA for two host devices (so that
``jax-cpu1`` exists; an ``XLA_FLAGS`` already set is kept as it is), and at
configure time it turns on JAX's 64-bit mode (float64 tests need it).
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
import pytest

# No test may reach the internet: downloads are tested against a local server
# only, with this variable removed for the duration of those tests.
os.environ["XPNN_OFFLINE"] = "1"

# A second, real JAX device on any machine; must be set before jax is imported.
_HOST_DEVICES = "--xla_force_host_platform_device_count=2"
if "XLA_FLAGS" not in os.environ:
    os.environ["XLA_FLAGS"] = _HOST_DEVICES

MNIST_DATA_FILES = (
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "sample_weight.pkl",
)


@dataclass(frozen=True)
class BackendCase:
    """One backend on one device, as listed in the test ids."""

    backend: str
    device: str
    key: str  # the name XPNN_TEST_REQUIRE uses
    label: str = ""  # the id, when it is not backend-device

    @property
    def id(self) -> str:
        return self.label or f"{self.backend}-{self.device}"


CASES = (
    BackendCase("numpy", "cpu", "numpy"),
    BackendCase("array_api_strict", "cpu", "array_api_strict"),
    BackendCase("array_api_strict", "device1", "array_api_strict"),
    BackendCase("array_api_strict", "no_float64", "strict-no_float64", "strict-no_float64"),
    BackendCase("array_api_strict", "no_x64", "strict-no_x64", "strict-no_x64"),
    BackendCase("torch", "cpu", "torch"),
    BackendCase("jax", "cpu", "jax"),
    BackendCase("jax", "cpu:1", "jax-cpu1", "jax-cpu1"),
    BackendCase("dask", "cpu", "dask"),
    BackendCase("ndonnx", "cpu", "ndonnx"),
    BackendCase("cupy", "cuda", "cupy"),
    BackendCase("torch", "cuda", "torch-cuda"),
    BackendCase("jax", "cuda", "jax-cuda"),
)

DTYPES = ("float32", "float64")


@dataclass(frozen=True)
class Facts:
    """What only the tests need to know about a backend (the library itself never asks)."""

    lazy: bool = False  # sigmoid computes the exp(-|x|) form (is_lazy_array)
    flushes_subnormals: bool = False  # XLA on the CPU flushes float32/float64 subnormal results
    rounding_by_position: bool = False  # onnxruntime's float64 exp rounds body and tail apart
    eager_at_scale: bool = True  # False: one onnxruntime call per operation, too slow for MNIST


FACTS = {
    "jax": Facts(flushes_subnormals=True),
    "dask": Facts(lazy=True),
    "ndonnx": Facts(lazy=True, rounding_by_position=True, eager_at_scale=False),
}


@dataclass(frozen=True)
class Backend:
    """What a test gets from the ``backend`` fixture."""

    case: BackendCase
    xp: ModuleType
    device: Any

    @property
    def name(self) -> str:
        return self.case.backend

    @property
    def facts(self) -> Facts:
        """The test-only facts of this backend."""
        return FACTS.get(self.name, Facts())

    def dtypes(self) -> list[str]:
        """The dtype names the device has, as its namespace says (float16 where it exists)."""
        info = self.xp.__array_namespace_info__()
        names = list(info.dtypes(device=self.device, kind=None))
        return [*names, "float16"] if getattr(self.xp, "float16", None) is not None else names

    def asarray(self, values: Any, dtype: str | None = None) -> Any:
        """Make an array on this backend and device from NumPy-like values.

        Floating values without a dtype take the device's default floating dtype.
        """
        host = np.asarray(values)
        if dtype is not None and dtype not in self.dtypes():
            pytest.skip(f"{self.case.id}: no {dtype} on this device (its namespace says)")
        if dtype is not None:
            host = host.astype(dtype)
        elif host.dtype.kind == "f" and host.dtype.name not in self.dtypes():
            host = host.astype(self.default_float)
        xp_dtype = getattr(self.xp, str(host.dtype))
        return self.xp.asarray(host, dtype=xp_dtype, device=self.device)

    @property
    def default_float(self) -> str:
        info = self.xp.__array_namespace_info__()
        default = info.default_dtypes(device=self.device)["real floating"]
        return next(n for n in ("float32", "float64") if getattr(self.xp, n) == default)

    def has_dtype(self, dtype: str) -> bool:
        return dtype in self.dtypes()

    def assert_native(self, result: Any) -> None:
        """Assert ``result`` belongs to this backend's namespace and device."""
        import array_api_compat

        assert array_api_compat.array_namespace(result) is self.xp
        assert array_api_compat.device(result) == self.device
        if callable(getattr(result, "devices", None)):  # JAX: every shard, not only the first
            assert result.devices() == {self.device}


def _names(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def _matches(case: BackendCase, names: list[str]) -> bool:
    return any(n in (case.backend, case.key, case.id) for n in names)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--backend",
        action="append",
        default=[],
        help="run the backend tests on this backend only (repeatable); "
        "default: XPNN_TEST_BACKENDS, else all",
    )


def _selected(config: pytest.Config) -> list[BackendCase]:
    names = config.getoption("--backend") or _names(os.environ.get("XPNN_TEST_BACKENDS"))
    if not names:
        return list(CASES)
    known = {n for c in CASES for n in (c.backend, c.key, c.id)}
    unknown = sorted(set(names) - known)
    if unknown:
        raise pytest.UsageError(f"unknown backend(s) {unknown}; choose from {sorted(known)}")
    return [c for c in CASES if _matches(c, names)]


def pytest_configure(config: pytest.Config) -> None:
    _selected(config)  # an unknown backend name stops the run before collection
    # JAX's 64-bit mode, once, before any test: float64 tests need it.
    if "jax" in sys.modules:
        sys.modules["jax"].config.update("jax_enable_x64", True)
    else:
        os.environ["JAX_ENABLE_X64"] = "1"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        cases = _selected(metafunc.config)
        metafunc.parametrize("backend", cases, ids=[c.id for c in cases], indirect=True)
    if "dtype" in metafunc.fixturenames:
        metafunc.parametrize("dtype", DTYPES)


def _native_zeros(case: BackendCase) -> Any:
    """A one-element array made by the library itself on the case's device (no xpnn)."""
    import importlib

    if case.backend == "numpy":
        return np.zeros(1)
    if case.backend == "array_api_strict":
        xps = importlib.import_module("array_api_strict")
        name = "CPU_DEVICE" if case.device == "cpu" else case.device
        return xps.asarray([0.0], dtype=xps.float32, device=xps.Device(name))
    if case.backend == "torch":
        torch = importlib.import_module("torch")
        return torch.zeros(1, device=case.device)
    if case.backend == "jax":
        jax = importlib.import_module("jax")
        platform, _, index = case.device.partition(":")
        devices = jax.devices("gpu" if platform == "cuda" else platform)
        return jax.device_put(jax.numpy.zeros(1), devices[int(index or 0)])
    if case.backend == "dask":
        return importlib.import_module("dask.array").zeros(1)
    if case.backend == "ndonnx":
        return importlib.import_module("ndonnx").asarray(np.zeros(1))
    if case.backend == "cupy":
        cupy = importlib.import_module("cupy")
        with cupy.cuda.Device(0):
            return cupy.zeros(1)
    raise AssertionError(f"conftest cannot build case {case.id}")


_PROBED: dict[BackendCase, Backend | str] = {}


def _probe(case: BackendCase) -> Backend | str:
    """Return the Backend, or the reason it cannot run here (cached).

    Raises ``AssertionError`` where the library builds the case but
    ``xpnn.namespace`` disagrees (or the other way round).
    """
    if case not in _PROBED:
        import array_api_compat

        import xpnn

        try:
            native = _native_zeros(case)
        except Exception as err:  # ImportError, no such device: the library's own words
            native, reason = None, f"{type(err).__name__}: {err}"
        try:
            xp, device = xpnn.namespace(case.backend, case.device)
        except xpnn.BackendError as err:
            refused = str(err)
            assert native is None, f"{case.id} works here but xpnn.namespace refused it: {refused}"
            _PROBED[case] = refused  # the library's own words are in `reason`, left out: one line
        else:
            assert native is not None, f"xpnn.namespace accepted {case.id}, unusable: {reason}"
            assert xp is array_api_compat.array_namespace(native), (case.id, xp)
            assert device == array_api_compat.device(native), (case.id, device)
            _PROBED[case] = Backend(case, xp, device)
    return _PROBED[case]


@pytest.fixture(scope="session")
def backend(request: pytest.FixtureRequest) -> Backend:
    """A backend on a device; skipped (or failed, if required) where unavailable."""
    case: BackendCase = request.param
    probed = _probe(case)
    if isinstance(probed, str):
        required = _names(os.environ.get("XPNN_TEST_REQUIRE"))
        if case.key in required or case.id in required:
            pytest.fail(f"required backend {case.id} is unavailable: {probed}")
        pytest.skip(f"{case.id}: {probed}")
    return probed


@pytest.fixture(autouse=True)
def _capabilities(request: pytest.FixtureRequest) -> None:
    """Skip by capability: a dtype the device lacks, or the MNIST set where eager is too slow."""
    if "backend" not in request.fixturenames:
        return
    probed = request.getfixturevalue("backend")
    if "dtype" in request.fixturenames:
        dtype = request.getfixturevalue("dtype")
        if not probed.has_dtype(dtype):
            pytest.skip(f"{probed.case.id}: no {dtype} on this device (its namespace says)")
    if "data_dir" in request.fixturenames and not probed.facts.eager_at_scale:
        pytest.skip(f"{probed.case.id}: eager values, one operation at a time: too slow for MNIST")


@pytest.fixture(scope="session")
def dtype(request: pytest.FixtureRequest) -> str:
    """A floating dtype name every backend supports: float32 or float64."""
    return request.param


@pytest.fixture(scope="session")
def data_dir() -> str:
    """The directory with the real MNIST files and the book's weights.

    Where the library looks (``XPNN_DATA_DIR``, else the user cache directory);
    skipped when files are missing, unless ``XPNN_REQUIRE_DATA=1``, which
    makes that a failure (CI sets it). Tests never download.
    """
    from xpnn.download import data_home

    directory = str(data_home())
    missing = [f for f in MNIST_DATA_FILES if not os.path.isfile(os.path.join(directory, f))]
    if missing:
        reason = f"data files {missing} not found in {directory} (set XPNN_DATA_DIR)"
        if os.environ.get("XPNN_REQUIRE_DATA", "") not in ("", "0"):
            pytest.fail(f"XPNN_REQUIRE_DATA is set but {reason}")
        pytest.skip(reason)
    return directory


# A docstring example that needs an optional library is skipped where that library is missing
# (unless XPNN_TEST_REQUIRE names its extra, when it runs and fails). What it needs is read
# from its own source: ``import X`` / ``from X import`` lines, and ``namespace("X")`` /
# ``backend="X"`` backend names; modules whose examples need a library they never name are
# listed in _DOCTEST_NEEDS.
_ONNX_MODULES = ("export.py", "ort.py", "onnx_import.py")
_DOCTEST_NEEDS = {name: ("onnx", "onnxruntime") for name in _ONNX_MODULES}
_DOCTEST_NEEDS["distributed.py"] = ("dask", "distributed")  # its examples import xpnn only
_EXTRA_OF = {
    "array_api_strict": "strict",
    "distributed": "dask",
    "onnxruntime": "onnx",
    "ndonnx": "onnx",
    "matplotlib": "plot",
    "cupy": "cuda12",
}
_NEEDS_IN_SOURCE = re.compile(
    r"^\s*(?:import|from)\s+([A-Za-z_]\w*)|namespace\(\s*[\"'](\w+)[\"']|"
    r"backend\s*=\s*[\"'](\w+)[\"']",
    re.MULTILINE,
)


def doctest_needs(source: str, filename: str = "") -> list[str]:
    """The top-level modules a docstring example's ``source`` needs, in order, once each."""
    backends = {case.backend for case in CASES}
    found = [
        m[1] or name
        for m in _NEEDS_IN_SOURCE.finditer(source)
        for name in [m[2] or m[3]]
        if m[1] or name in backends  # a backend name only where it is one: not "nunpy"
    ]
    return list(dict.fromkeys([*found, *_DOCTEST_NEEDS.get(filename, ())]))


def missing_for_doctest(source: str, filename: str = "") -> str | None:
    """A short skip reason naming what to install, or None when everything is here."""
    import importlib.util

    missing = [m for m in doctest_needs(source, filename) if importlib.util.find_spec(m) is None]
    required = _names(os.environ.get("XPNN_TEST_REQUIRE"))
    missing = [m for m in missing if _EXTRA_OF.get(m, m) not in required and m not in required]
    if not missing:
        return None
    extras = ",".join(dict.fromkeys(_EXTRA_OF.get(m, m) for m in missing))
    return f"needs {', '.join(missing)}: pip install -e '.[{extras}]'"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if isinstance(item, pytest.DoctestItem) and item.dtest is not None:
            source = "\n".join(example.source for example in item.dtest.examples)
            reason = missing_for_doctest(source, item.path.name)
            if reason:
                item.add_marker(pytest.mark.skip(reason=f"doctest {reason}"))


# CI fails on skips it does not expect: with XPNN_TEST_EXPECTED_SKIPS set (a
# comma-separated list of reason prefixes), any skip whose reason starts with
# none of them makes the run fail, naming the test and its reason.
_UNEXPECTED_SKIPS: list[str] = []


def _expected_skip_prefixes() -> list[str] | None:
    value = os.environ.get("XPNN_TEST_EXPECTED_SKIPS")
    return None if value is None else _names(value)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    prefixes = _expected_skip_prefixes()
    if prefixes is None or not report.skipped or hasattr(report, "wasxfail"):
        return
    reason = str(report.longrepr[2]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
    reason = reason.removeprefix("Skipped: ")
    if not any(reason.startswith(prefix) for prefix in prefixes):
        _UNEXPECTED_SKIPS.append(f"{report.nodeid}: {reason}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _UNEXPECTED_SKIPS and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _UNEXPECTED_SKIPS:
        terminalreporter.section("unexpected skips (XPNN_TEST_EXPECTED_SKIPS)", red=True)
        for line in _UNEXPECTED_SKIPS:
            terminalreporter.write_line(line)
