"""Scoring predictions on the host (after :func:`xpnn.to_numpy`): accuracy, per class, confusion."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["confusion_matrix", "format_report", "score", "score_matrix"]


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, classes: int = 10) -> np.ndarray:
    """The ``classes x classes`` counts (rows: true labels); values outside the classes: an error.

    Examples
    --------
    >>> confusion_matrix(np.array([0, 1, 1]), np.array([0, 1, 0]), classes=2)
    array([[1, 0],
           [1, 1]])
    """
    labels, predictions = (np.asarray(a).astype(np.int64) for a in (labels, predictions))
    if labels.shape != predictions.shape or labels.ndim != 1:
        raise ValueError("labels and predictions must be 1-D of one length, got "
                         f"{labels.shape} and {predictions.shape}")  # fmt: skip
    for name, values in (("label", labels), ("prediction", predictions)):
        if (outside := values[(values < 0) | (values >= classes)]).size:
            raise ValueError(f"{name}s must lie in 0..{classes - 1}, got {outside.size} outside "
                             f"(e.g. {int(outside[0])}); they are never counted")  # fmt: skip
    return np.bincount(labels * classes + predictions, minlength=classes**2).reshape(classes, -1)


def score(labels: np.ndarray, predictions: np.ndarray, classes: int = 10) -> dict[str, Any]:
    """``n``, ``correct``, ``accuracy``, ``per_class_accuracy``, ``confusion_matrix`` (JSON-ready).

    Examples
    --------
    >>> s = score(np.array([0, 1, 1, 1]), np.array([0, 1, 0, 1]), classes=2)
    >>> s["correct"], s["accuracy"], s["per_class_accuracy"]
    (3, 0.75, [1.0, 0.6666666666666666])
    """
    return score_matrix(confusion_matrix(labels, predictions, classes))


def score_matrix(matrix: np.ndarray) -> dict[str, Any]:
    """:func:`score` from a confusion matrix (rows: true labels), e.g. one made on a cluster."""
    matrix = np.asarray(matrix, dtype=np.int64)
    n, correct = int(matrix.sum()), int(np.trace(matrix))
    with np.errstate(invalid="ignore"):  # a class without labels: nan
        per_class = (np.diagonal(matrix) / matrix.sum(axis=1)).tolist()
    return dict(n=n, correct=correct, accuracy=correct / n if n else float("nan"),
                per_class_accuracy=per_class, confusion_matrix=matrix.tolist())  # fmt: skip


def format_report(report: Mapping[str, Any], quiet: bool = False) -> str:
    """The text of an evaluation report (``xpnn eval --json``'s dict); ``quiet``: one line.

    Examples
    --------
    >>> print(format_report({"accuracy": 0.75, "correct": 3, "n": 4}, quiet=True))
    accuracy: 0.7500 (3/4)
    """
    line = f"accuracy: {report['accuracy']:.4f} ({report['correct']}/{report['n']})"
    if quiet:
        return line
    r, per_class = report, report["per_class_accuracy"]
    return "\n".join([
        f"backend: {r['backend']}  device: {r['device']}  dtype: {r['dtype']}  "
        f"batch size: {r['batch_size']}", line, "per-class accuracy:",
        *(f"  {digit}: {acc:.4f}" for digit, acc in enumerate(per_class)),
        "confusion matrix (rows: true digit, columns: predicted digit):",
        *(f"  {d:>2}  " + "".join(f"{c:>6}" for c in row)  # the header row first
          for d, row in [("", range(len(per_class))), *enumerate(r["confusion_matrix"])]),
        f"speed: {r['images_per_second']:,.0f} images/s (forward "
        f"{r['forward_seconds'] * 1e3:.1f} ms), wall time {r['wall_seconds']:.2f} s",
    ])  # fmt: skip
