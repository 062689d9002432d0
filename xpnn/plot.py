"""The chapter's figures and views of what the network gets right and wrong (matplotlib).

Needs the ``plot`` extra (``pip install 'xpnn[plot]'``); ``import xpnn`` never
imports matplotlib. Arrays of any backend and device are converted with
:func:`xpnn.to_numpy` at this edge. Every function returns a
:class:`matplotlib.figure.Figure` made without pyplot (no global state, no
window), ready for ``fig.savefig(path)``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._backend.devices import device_scope
from .activations import relu, sigmoid, step_function
from .backends import backend_name, namespace, to_numpy

__all__ = [
    "activation_figure",
    "confusion_matrix_figure",
    "digits_figure",
    "misclassified_figure",
    "misclassified_indices",
]


def _figure(**kwargs: Any) -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("xpnn.plot needs matplotlib: pip install 'xpnn[plot]'") from None
    return Figure(**kwargs)


def activation_figure(backend: str | None = None, device: Any = None) -> Any:
    """Sigmoid and step (dashed) on one axes, ReLU on another, as in the chapter.

    Computed with xpnn on the chosen backend and device over x in [-5, 5) with
    step 0.1; the first axes is limited to y in [-0.1, 1.1] as in the book.

    Examples
    --------
    >>> fig = activation_figure("array_api_strict", "device1")
    >>> [line.get_label() for line in fig.axes[0].lines]
    ['sigmoid', 'step function']
    """
    xp, dev = namespace(backend, device)
    with device_scope(backend_name(backend), dev):  # CuPy creates on its current device
        x = xp.arange(-5.0, 5.0, 0.1, device=dev)
    xs = to_numpy(x)
    fig = _figure(figsize=(9, 3.6), layout="constrained")
    left, right = fig.subplots(1, 2)
    left.plot(xs, to_numpy(sigmoid(x)), label="sigmoid")
    left.plot(xs, to_numpy(step_function(x)), "k--", label="step function")
    left.set_ylim(-0.1, 1.1)
    left.set_title("sigmoid and step function")
    left.legend(loc="upper left")
    right.plot(xs, to_numpy(relu(x)), color="tab:green", label="ReLU")
    right.set_ylim(-1.0, 5.5)
    right.set_title("ReLU")
    right.legend(loc="upper left")
    for ax in (left, right):
        ax.set_xlabel("x")
        ax.grid(alpha=0.3)
    return fig


def _as_images(images: Any) -> np.ndarray:
    host = to_numpy(images)
    if host.ndim == 2 and host.shape[1] == 784:
        return host.reshape(-1, 28, 28)
    if host.ndim == 4 and host.shape[1] == 1:
        return host[:, 0]
    if host.ndim == 3:
        return host
    raise ValueError(f"images must be (N, 784), (N, 28, 28) or (N, 1, 28, 28); got {host.shape}")


def _grid(n: int, columns: int) -> tuple[Any, list[Any]]:
    columns = max(1, min(columns, n))
    rows = max(1, math.ceil(n / columns))
    fig = _figure(figsize=(1.2 * columns, 1.45 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, columns, squeeze=False)).ravel().tolist()
    for ax in axes:
        ax.set_axis_off()
    return fig, axes


def digits_figure(
    images: Any, labels: Any, predictions: Any | None = None, *, columns: int = 10
) -> Any:
    """A grid of digits titled with their label and, if given, the predicted class.

    Wrong predictions are titled in red as ``label→prediction``.
    """
    pixels = _as_images(images)
    true = to_numpy(labels).astype(int)
    pred = None if predictions is None else to_numpy(predictions).astype(int)
    fig, axes = _grid(len(pixels), columns)
    for i, ax in enumerate(axes[: len(pixels)]):
        ax.imshow(pixels[i], cmap="gray_r")
        if pred is None:
            ax.set_title(str(true[i]), fontsize=9)
        elif pred[i] == true[i]:
            ax.set_title(f"{true[i]}", fontsize=9)
        else:
            ax.set_title(f"{true[i]}→{pred[i]}", fontsize=9, color="red")
    return fig


def misclassified_indices(labels: Any, predictions: Any) -> np.ndarray:
    """Indices where the prediction differs from the label."""
    return np.flatnonzero(to_numpy(labels).astype(int) != to_numpy(predictions).astype(int))


def misclassified_figure(
    images: Any, labels: Any, probabilities: Any, *, limit: int = 100, columns: int = 10
) -> Any:
    """The misclassified images, titled ``true→predicted`` with the network's confidence.

    ``probabilities`` are the network's outputs (``(N, 10)``, softmax); the
    first ``limit`` mistakes are shown, in index order
    (:func:`misclassified_indices` lists them all).
    """
    pixels = _as_images(images)
    probs = to_numpy(probabilities)
    true = to_numpy(labels).astype(int)
    pred = probs.argmax(axis=1)
    wrong = misclassified_indices(true, pred)
    shown = wrong[:limit]
    fig, axes = _grid(max(len(shown), 1), columns)
    for ax, i in zip(axes, shown, strict=False):
        ax.imshow(pixels[i], cmap="gray_r")
        ax.set_title(f"{true[i]}→{pred[i]} {probs[i, pred[i]]:.0%}", fontsize=8, color="red")
    fig.suptitle(f"{len(wrong)} misclassified of {len(true)} (first {len(shown)} shown)")
    return fig


def confusion_matrix_figure(matrix: Any) -> Any:
    """The confusion matrix as an annotated heatmap (rows: true, columns: predicted)."""
    counts = np.asarray(matrix) if isinstance(matrix, list) else to_numpy(matrix)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
        raise ValueError(f"a confusion matrix must be square, got shape {counts.shape}")
    k = counts.shape[0]
    fig = _figure(figsize=(6.4, 5.6), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(np.log1p(counts), cmap="Blues")
    threshold = np.log1p(counts).max() / 2
    for i in range(k):
        for j in range(k):
            color = "white" if np.log1p(counts[i, j]) > threshold else "black"
            ax.text(j, i, str(int(counts[i, j])), ha="center", va="center", fontsize=8, color=color)
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    correct = int(np.trace(counts))
    ax.set_title(f"confusion matrix: {correct}/{int(counts.sum())} correct")
    fig.colorbar(image, ax=ax, label="log(1 + count)")
    return fig
