"""scikit-learn's digits (1,797 8×8 images, 10 classes) split for similarity learning and examples."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._optional import require
from ..errors import InputError

__all__ = ["DigitsSplit", "load_digits_split"]


@dataclass(frozen=True)
class DigitsSplit:
    """Pixels scaled to [0, 1] as float32 rows of 64, with integer labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def load_digits_split(val_size: float = 0.2, test_size: float = 0.2, seed: int = 0) -> DigitsSplit:
    """A seeded, class-stratified train/val/test split of ``sklearn.datasets.load_digits``.

    Examples
    --------
    >>> split = load_digits_split(seed=0)
    >>> split.x_train.shape[1], sorted(set(split.y_test.tolist())) == list(range(10))
    (64, True)
    """
    if not (0 < val_size < 1 and 0 < test_size < 1 and val_size + test_size < 1):
        raise InputError(f"val_size and test_size must be in (0, 1) and sum below 1; got {val_size}, {test_size}")
    datasets = require("sklearn.datasets", "load_digits_split")
    digits = datasets.load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for label in np.unique(y):
        rows = rng.permutation(np.flatnonzero(y == label))
        n_test, n_val = int(round(test_size * len(rows))), int(round(val_size * len(rows)))
        parts["test"].append(rows[:n_test])
        parts["val"].append(rows[n_test : n_test + n_val])
        parts["train"].append(rows[n_test + n_val :])
    rows = {name: np.sort(np.concatenate(chunks)) for name, chunks in parts.items()}
    return DigitsSplit(
        x[rows["train"]], y[rows["train"]], x[rows["val"]], y[rows["val"]], x[rows["test"]], y[rows["test"]]
    )
