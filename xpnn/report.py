"""Scoring a classifier's predictions: accuracy, per-class accuracy, confusion matrix.

Host NumPy arrays only: reports are an edge of the library, after :func:`xpnn.to_numpy`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["confusion_matrix", "format_report", "score", "score_matrix"]


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, classes: int = 10) -> np.ndarray:
    """Return the ``classes x classes`` count matrix; rows are true labels.

    Labels or predictions outside ``0..classes-1`` are an error, never counted.

    Examples
    --------
    >>> confusion_matrix(np.array([0, 1, 1]), np.array([0, 1, 0]), classes=2)
    array([[1, 0],
           [1, 1]])
    """
    labels = np.asarray(labels).astype(np.int64)
    predictions = np.asarray(predictions).astype(np.int64)
    if labels.shape != predictions.shape or labels.ndim != 1:
        raise ValueError(
            f"labels and predictions must be 1-D of one length, got {labels.shape} "
            f"and {predictions.shape}"
        )
    for name, values in (("label", labels), ("prediction", predictions)):
        outside = values[(values < 0) | (values >= classes)]
        if outside.size:
            raise ValueError(
                f"{name}s must lie in 0..{classes - 1}, got {outside.size} outside "
                f"(e.g. {int(outside[0])}); they are never counted"
            )
    flat = np.bincount(labels * classes + predictions, minlength=classes * classes)
    return flat.reshape(classes, classes)


def score(labels: np.ndarray, predictions: np.ndarray, classes: int = 10) -> dict[str, Any]:
    """Score predictions against labels: ``n``, ``correct``, ``accuracy``,
    ``per_class_accuracy`` and ``confusion_matrix`` (JSON-ready).

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
    totals, diagonal = matrix.sum(axis=1).tolist(), np.diagonal(matrix).tolist()
    n, correct = int(matrix.sum()), int(sum(diagonal))
    per_class = [c / t if t else float("nan") for c, t in zip(diagonal, totals, strict=True)]
    return {
        "n": n,
        "correct": correct,
        "accuracy": correct / n if n else float("nan"),
        "per_class_accuracy": per_class,
        "confusion_matrix": matrix.tolist(),
    }


def format_report(report: Mapping[str, Any], quiet: bool = False) -> str:
    """The text form of an evaluation report (the dict that ``xpnn eval --json`` prints).

    ``quiet`` gives the accuracy line only (``accuracy``, ``correct`` and ``n``).

    Examples
    --------
    >>> print(format_report({"accuracy": 0.75, "correct": 3, "n": 4}, quiet=True))
    accuracy: 0.7500 (3/4)
    """
    line = f"accuracy: {report['accuracy']:.4f} ({report['correct']}/{report['n']})"
    if quiet:
        return line
    per_class = report["per_class_accuracy"]
    return "\n".join(
        [
            f"backend: {report['backend']}  device: {report['device']}  "
            f"dtype: {report['dtype']}  batch size: {report['batch_size']}",
            line,
            "per-class accuracy:",
            *(f"  {digit}: {acc:.4f}" for digit, acc in enumerate(per_class)),
            "confusion matrix (rows: true digit, columns: predicted digit):",
            "      " + "".join(f"{d:>6}" for d in range(len(per_class))),
            *(
                f"  {digit:>2}  " + "".join(f"{c:>6}" for c in row)
                for digit, row in enumerate(report["confusion_matrix"])
            ),
            f"speed: {report['images_per_second']:,.0f} images/s "
            f"(forward {report['forward_seconds'] * 1e3:.1f} ms), "
            f"wall time {report['wall_seconds']:.2f} s",
        ]
    )
