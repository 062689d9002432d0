"""xpnn: the forward pass of *Deep Learning from Scratch*, chapter 3, on any array backend.

Functions take arrays of NumPy, CuPy, PyTorch, JAX, Dask or array-api-strict and
return arrays of the same library on the same device. Networks hold their
weights on one backend, device and dtype, chosen with :func:`namespace` names.

Examples
--------
>>> import xpnn
>>> net = xpnn.init_network(backend="numpy", dtype="float64")
>>> xpnn.forward(net, [1.0, 0.5])
array([0.31682708, 0.69627909])
"""

from __future__ import annotations

import importlib
from typing import Any

from .activations import identity_function, relu, sigmoid, softmax, step_function
from .backends import BACKENDS, namespace, to_numpy
from .errors import BackendError, DataError, OnnxError, WeightsError, XpnnError
from .network import Network, classify, forward, init_network, predict

__version__ = "0.1.0"

# Names served from submodules that are imported on first use only, so that
# ``import xpnn`` stays as cheap as ``import numpy``.
_LAZY = dict.fromkeys(("load_mnist", "load_mnist_split", "load_mnist_labels"), "xpnn.mnist")
_LAZY |= dict.fromkeys(("load_weights", "save_weights", "pretrained_network"), "xpnn.weights")
_LAZY |= {"read_idx": "xpnn.mnist", "export_onnx": "xpnn.export", "OnnxRunner": "xpnn.ort"}

__all__ = ["BACKENDS", "BackendError", "DataError", "Network", "OnnxError", "WeightsError"]
__all__ += ["XpnnError", "classify", "forward", "identity_function", "init_network", "namespace"]
__all__ += ["predict", "relu", "sigmoid", "softmax", "step_function", "to_numpy", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'xpnn' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
