"""Importing an optional library in a test: skipped where missing, failed where required."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest

# The extra that installs a library, where its key is not the extra's name.
EXTRA = {
    "matplotlib": "plot",
    "ndonnx": "onnx",
    "onnxruntime": "onnx",
    "array_api_strict": "strict",
}


def import_or_skip(module: str, key: str) -> ModuleType:
    """Import ``module``; if it is missing, skip, unless ``key`` is in ``XPNN_TEST_REQUIRE``."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        required = [v.strip() for v in os.environ.get("XPNN_TEST_REQUIRE", "").split(",")]
        if key in required:
            pytest.fail(f"required backend {key} is missing: {err}", pytrace=False)
        extra = EXTRA.get(key, key)
        pytest.skip(f"needs {module}: pip install -e '.[{extra}]'", allow_module_level=True)
