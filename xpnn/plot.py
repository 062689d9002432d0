"""The chapter's figures and the network's mistakes as pyplot-free matplotlib figures (the ``plot``
extra) for ``fig.savefig(path)``; arrays of any backend go through :func:`xpnn.to_numpy`."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .activations import relu, sigmoid, step_function
from .backends import device_scope, namespace, to_numpy

__all__ = ["activation_figure", "confusion_matrix_figure", "digits_figure", "misclassified_figure"]

#: Inches per digit in a grid, and the caption size in points: legible at 80 dpi.
_CELL, _CAPTION = 1.5, 11


def _figure(**kwargs: Any) -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("xpnn.plot needs matplotlib: pip install 'xpnn[plot]'") from None
    return Figure(layout="constrained", **kwargs)


def activation_figure(backend: str | None = None, device: Any = None) -> Any:
    """Sigmoid and step (dashed), and ReLU, over [-5, 5) by 0.1, computed by xpnn on a backend.

    Examples
    --------
    >>> fig = activation_figure("array_api_strict", "device1")
    >>> [line.get_label() for line in fig.axes[0].lines]
    ['sigmoid', 'step function']
    """
    xp, dev = namespace(backend, device)
    x = xp.asarray((np.arange(-50, 50) / 10).astype(np.float32), device=dev)  # -5.0 to 4.9
    with device_scope(x):  # CuPy computes on its current device
        xs, *ys = (to_numpy(y) for y in (x, sigmoid(x), step_function(x), relu(x)))
    left, right = (fig := _figure(figsize=(9, 3.6))).subplots(1, 2)
    left.plot(xs, ys[0], label="sigmoid")
    left.plot(xs, ys[1], "k--", label="step function")
    right.plot(xs, ys[2], color="tab:green", label="ReLU")
    for ax, title, ylim in ((left, "sigmoid and step function", (-0.1, 1.1)),
                            (right, "ReLU", (-1.0, 5.5))):  # fmt: skip
        ax.set(title=title, ylim=ylim, xlabel="x")
        ax.legend(loc="upper left")
        ax.grid(alpha=0.3)
    return fig


def _grid(images: Any, captions: list[tuple[str, str]], columns: int) -> Any:
    """A grid of 28x28 digits, each captioned ``(text, color)``."""
    host = to_numpy(images)
    if host.ndim not in (2, 3, 4) or math.prod(host.shape[1:]) != 784:
        raise ValueError(f"images must be (N, 784), (N, 28, 28) or (N, 1, 28, 28): {host.shape}")
    columns = max(1, min(columns, len(captions)))
    rows = max(1, math.ceil(len(captions) / columns))
    fig = _figure(figsize=(_CELL * columns, (_CELL + 0.3) * rows))
    axes = np.asarray(fig.subplots(rows, columns, squeeze=False)).ravel()
    for ax in axes:
        ax.set_axis_off()
    for ax, image, (text, color) in zip(axes, host.reshape(-1, 28, 28), captions, strict=False):
        ax.imshow(image, cmap="gray_r")
        ax.set_title(text, fontsize=_CAPTION, color=color)
    return fig


def digits_figure(images: Any, labels: Any, predictions: Any | None = None, *,
                  columns: int = 10) -> Any:  # fmt: skip
    """A grid of digits titled with their label; a wrong prediction in red as ``label→pred``."""
    true = to_numpy(labels).astype(int)
    pred = true if predictions is None else to_numpy(predictions).astype(int)
    pairs = zip(true.tolist(), pred.tolist(), strict=True)
    captions = [(f"{t}", "black") if t == p else (f"{t}→{p}", "red") for t, p in pairs]
    return _grid(images, captions, columns)


def misclassified_figure(images: Any, labels: Any, probabilities: Any, *, limit: int = 48,
                         columns: int = 8) -> Any:  # fmt: skip
    """The first ``limit`` mistakes, titled ``true→predicted`` and the softmax confidence."""
    probs = to_numpy(probabilities)
    true, pred = to_numpy(labels).astype(int), probs.argmax(axis=1)
    shown = (wrong := np.flatnonzero(true != pred))[:limit]
    captions = [(f"{true[i]}→{pred[i]} {probs[i, pred[i]]:.0%}", "red") for i in shown]
    fig = _grid(to_numpy(images)[shown], captions, columns)
    title = f"{len(wrong)} misclassified of {len(true)} (first {len(shown)} shown)"
    fig.suptitle(title, fontsize=_CAPTION + 2)
    return fig


def confusion_matrix_figure(matrix: Any) -> Any:
    """The confusion matrix as an annotated heatmap (rows: true, columns: predicted)."""
    counts = np.asarray(matrix) if isinstance(matrix, list) else to_numpy(matrix)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
        raise ValueError(f"a confusion matrix must be square, got shape {counts.shape}")
    shade = np.log1p(counts)
    ax = (fig := _figure(figsize=(6.4, 5.6))).subplots()
    fig.colorbar(ax.imshow(shade, cmap="Blues"), ax=ax, label="log(1 + count)")
    for (i, j), count in np.ndenumerate(counts):
        color = "white" if shade[i, j] > shade.max() / 2 else "black"
        ax.text(j, i, str(int(count)), ha="center", va="center", fontsize=8, color=color)
    ax.set_title(f"confusion matrix: {int(np.trace(counts))}/{int(counts.sum())} correct")
    ax.set(xticks=range(len(counts)), yticks=range(len(counts)), xlabel="predicted", ylabel="true")
    return fig
