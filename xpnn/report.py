"""Scoring a classifier's predictions: accuracy, per-class accuracy, confusion matrix.

These work on host NumPy arrays: reports are an edge of the library, reached
after :func:`xpnn.to_numpy`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["Score", "confusion_matrix", "score", "score_matrix"]


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, classes: int = 10) -> np.ndarray:
    """Return the ``classes x classes`` count matrix; rows are true labels.

    Examples
    --------
    >>> confusion_matrix(np.array([0, 1, 1]), np.array([0, 1, 0]), classes=2)
    array([[1, 0],
           [1, 1]])
    """
    labels = np.asarray(labels, dtype=np.int64)
    predictions = np.asarray(predictions, dtype=np.int64)
    if labels.shape != predictions.shape or labels.ndim != 1:
        raise ValueError(
            f"labels and predictions must be 1-D of one length, got {labels.shape} "
            f"and {predictions.shape}"
        )
    for name, values in (("label", labels), ("prediction", predictions)):
        if values.size and (values.min() < 0 or values.max() >= classes):
            raise ValueError(f"{name}s must lie in 0..{classes - 1}")
    flat = np.bincount(labels * classes + predictions, minlength=classes * classes)
    return flat.reshape(classes, classes)


@dataclass(frozen=True)
class Score:
    """The outcome of classifying a labelled set."""

    n: int
    correct: int
    accuracy: float
    per_class_accuracy: list[float]
    confusion_matrix: list[list[int]]

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def score(labels: np.ndarray, predictions: np.ndarray, classes: int = 10) -> Score:
    """Score predictions against labels.

    Examples
    --------
    >>> s = score(np.array([0, 1, 1, 1]), np.array([0, 1, 0, 1]), classes=2)
    >>> s.correct, s.accuracy, s.per_class_accuracy
    (3, 0.75, [1.0, 0.6666666666666666])
    """
    return score_matrix(confusion_matrix(labels, predictions, classes))


def score_matrix(matrix: np.ndarray) -> Score:
    """Score from a confusion matrix (rows: true labels), e.g. one reduced on a cluster."""
    matrix = np.asarray(matrix, dtype=np.int64)
    per_class_total = matrix.sum(axis=1)
    diagonal = np.diagonal(matrix)
    per_class = [
        float(c / t) if t else float("nan")
        for c, t in zip(diagonal.tolist(), per_class_total.tolist(), strict=True)
    ]
    n = int(matrix.sum())
    correct = int(diagonal.sum())
    return Score(
        n=n,
        correct=correct,
        accuracy=correct / n if n else float("nan"),
        per_class_accuracy=per_class,
        confusion_matrix=matrix.tolist(),
    )
