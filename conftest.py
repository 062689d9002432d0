"""The ``backend`` and ``dtype`` fixtures that run every test on every backend.

Selection: ``pytest --backend numpy --backend torch`` or
``XPNN_TEST_BACKENDS=numpy,torch`` (names: a backend, a case id such as
``torch-cuda`` or ``array_api_strict-device1``). A backend that is missing or
has no device here is skipped with the reason, unless it is listed in
``XPNN_TEST_REQUIRE``, which turns that skip into a failure. There ``torch``
means torch on the CPU; the GPU cases are ``cupy``, ``torch-cuda`` and
``jax-cuda``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
import pytest

# No test may reach the internet: downloads are tested against a local server
# only, with this variable removed for the duration of those tests.
os.environ["XPNN_OFFLINE"] = "1"

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

    @property
    def id(self) -> str:
        return f"{self.backend}-{self.device}"


CASES = (
    BackendCase("numpy", "cpu", "numpy"),
    BackendCase("array_api_strict", "cpu", "array_api_strict"),
    BackendCase("array_api_strict", "device1", "array_api_strict"),
    BackendCase("torch", "cpu", "torch"),
    BackendCase("jax", "cpu", "jax"),
    BackendCase("dask", "cpu", "dask"),
    BackendCase("cupy", "cuda", "cupy"),
    BackendCase("torch", "cuda", "torch-cuda"),
    BackendCase("jax", "cuda", "jax-cuda"),
)

DTYPES = ("float32", "float64")


@dataclass(frozen=True)
class Backend:
    """What a test gets from the ``backend`` fixture."""

    case: BackendCase
    xp: ModuleType
    device: Any

    @property
    def name(self) -> str:
        return self.case.backend

    def asarray(self, values: Any, dtype: str | None = None) -> Any:
        """Make an array on this backend and device from NumPy-like values."""
        host = np.asarray(values)
        if dtype is not None:
            host = host.astype(dtype)
        xp_dtype = getattr(self.xp, str(host.dtype))
        return self.xp.asarray(host, dtype=xp_dtype, device=self.device)

    def has_dtype(self, dtype: str) -> bool:
        return getattr(self.xp, dtype, None) is not None

    def assert_native(self, result: Any) -> None:
        """Assert ``result`` belongs to this backend's namespace and device."""
        import array_api_compat

        assert array_api_compat.array_namespace(result) is self.xp
        assert array_api_compat.device(result) == self.device


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


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        cases = _selected(metafunc.config)
        metafunc.parametrize("backend", cases, ids=[c.id for c in cases], indirect=True)
    if "dtype" in metafunc.fixturenames:
        metafunc.parametrize("dtype", DTYPES)


_PROBED: dict[BackendCase, Backend | str] = {}


def _probe(case: BackendCase) -> Backend | str:
    """Return the Backend, or the reason it cannot run here (cached)."""
    if case not in _PROBED:
        import xpnn

        if case.backend == "jax":
            try:
                import jax

                jax.config.update("jax_enable_x64", True)  # float64 tests need it
            except ImportError:
                pass
        try:
            xp, device = xpnn.namespace(case.backend, case.device)
        except xpnn.BackendError as err:
            _PROBED[case] = str(err)
        else:
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


# The docstring examples of the modules that need the ``onnx`` extra are
# skipped, with the reason, where onnx, onnxruntime or ndonnx is missing
# (tests/test_onnx.py fails instead where XPNN_TEST_REQUIRE names onnx).
_ONNX_MODULES = ("export.py", "ort.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    import importlib.util

    missing = [m for m in ("onnx", "onnxruntime", "ndonnx") if importlib.util.find_spec(m) is None]
    if not missing:
        return
    skip = pytest.mark.skip(reason=f"{', '.join(missing)} not installed (onnx)")
    for item in items:
        if (
            isinstance(item, pytest.DoctestItem)
            and item.path.name in _ONNX_MODULES
            and item.path.parent.name == "xpnn"
        ):
            item.add_marker(skip)
