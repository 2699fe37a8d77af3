"""Which classes a classifier mixes up: the most frequent off-diagonal (true, predicted) pairs."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

__all__ = ["confusion_pairs"]

logger = logging.getLogger(__name__)


def confusion_pairs(
    labels: np.ndarray, predictions: np.ndarray, class_names: Sequence[str], top: int = 5
) -> list[tuple[str, str, int]]:
    """The ``top`` most frequent misclassifications.

    Args:
        labels: (M,) true class indices.
        predictions: (M,) predicted class indices.
        class_names: name of every class index.
        top: how many pairs to return at most.

    Returns:
        ``(true name, predicted name, count)`` for off-diagonal pairs with a non-zero count, most frequent first
        (ties broken by true then predicted index, so the order is deterministic).
    """
    labels = np.asarray(labels, dtype=np.int64).ravel()
    predictions = np.asarray(predictions, dtype=np.int64).ravel()
    if labels.shape != predictions.shape:
        raise ValueError(f"labels {labels.shape} and predictions {predictions.shape} must have the same length")
    c = len(class_names)
    for what, arr in (("labels", labels), ("predictions", predictions)):
        if arr.size and (arr.min() < 0 or arr.max() >= c):
            raise ValueError(f"{what} must lie in [0, {c}) for {c} class names")
    matrix = np.zeros((c, c), dtype=np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    np.fill_diagonal(matrix, 0)
    flat = matrix.ravel()
    # Stable sort on the negated counts keeps row-major (true, predicted) order among ties.
    order = np.argsort(-flat, kind="stable")[: max(top, 0)]
    return [(class_names[i // c], class_names[i % c], int(flat[i])) for i in order if flat[i] > 0]
