"""Distance thresholds from held-out labelled data: when is a nearest neighbour a match?"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ..errors import InputError

__all__ = ["Calibration", "calibrate_thresholds", "classification_at"]


@dataclass(frozen=True)
class Calibration:
    """Precision, recall and F1 of "match if the nearest neighbour is within distance t", for every t seen."""

    thresholds: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    cutpoints: dict[str, float]


def calibrate_thresholds(
    distances: np.ndarray, correct: np.ndarray, targets: dict[str, float] | None = None, metric: str = "f1"
) -> Calibration:
    """Thresholds from the nearest-neighbour ``distances`` of held-out queries and whether its label was ``correct``.

    ``"optimal"`` maximises ``metric`` (``"f1"``, ``"precision"`` or ``"recall"``);
    each target such as ``{"precision": 0.99}`` gives the largest threshold whose
    precision (or recall) still meets it.
    """
    distances = np.asarray(distances, dtype=np.float64)
    correct = np.asarray(correct, dtype=bool)
    if distances.shape != correct.shape or distances.ndim != 1 or len(distances) == 0:
        raise InputError(
            f"distances and correct must be equal-length non-empty 1-D arrays; got {distances.shape}, {correct.shape}"
        )
    if not correct.any():
        raise InputError("calibration needs positives: no held-out query's nearest neighbour had its label")
    if metric not in ("f1", "precision", "recall"):
        raise InputError(f"metric must be 'f1', 'precision' or 'recall'; got {metric!r}")
    order = np.argsort(distances, kind="stable")
    sorted_distances, hits = distances[order], correct[order]
    matched = np.arange(1, len(hits) + 1)
    true_matches = np.cumsum(hits)
    # a threshold admits every query at or below it: keep the last index of each distinct distance
    last = np.r_[np.flatnonzero(np.diff(sorted_distances)), len(hits) - 1]
    thresholds = sorted_distances[last]
    precision = true_matches[last] / matched[last]
    recall = true_matches[last] / hits.sum()
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)
    scores = {"f1": f1, "precision": precision, "recall": recall}
    cutpoints = {"optimal": float(thresholds[int(np.argmax(scores[metric]))])}
    for name, target in (targets or {}).items():
        if name not in ("precision", "recall"):
            raise InputError(f"targets may name 'precision' or 'recall'; got {name!r}")
        meets = np.flatnonzero(scores[name] >= target)
        if len(meets) == 0:
            raise InputError(f"no threshold reaches {name} {target} on the calibration data")
        cutpoints[f"{name}={target}"] = float(thresholds[meets[-1] if name == "precision" else meets[0]])
    return Calibration(thresholds, precision, recall, f1, cutpoints)


def classification_at(distances: np.ndarray, correct: np.ndarray, threshold: float) -> dict[str, float]:
    """Precision, recall and F1 of matching at one distance threshold."""
    distances = np.asarray(distances, dtype=np.float64)
    correct = np.asarray(correct, dtype=bool)
    matched = distances <= threshold
    true_matches = int((matched & correct).sum())
    precision = true_matches / matched.sum() if matched.any() else 0.0
    recall = true_matches / correct.sum() if correct.any() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {
        "threshold": float(threshold),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "matched": int(matched.sum()),
    }
