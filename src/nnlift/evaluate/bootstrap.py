"""Paired bootstrap confidence intervals for the difference between two methods on the same queries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._check import check_array, check_finite_scalar, check_positive_int
from ..errors import InputError

__all__ = ["PairedDifference", "paired_bootstrap"]


@dataclass(frozen=True)
class PairedDifference:
    """Mean of ``b − a`` over queries with a percentile bootstrap interval."""

    mean: float
    low: float
    high: float
    confidence: float
    n_queries: int

    @property
    def significant(self) -> bool:
        """Whether the interval excludes zero."""
        return self.low > 0 or self.high < 0

    def __str__(self) -> str:
        return f"{self.mean:+.4f} [{self.low:+.4f}, {self.high:+.4f}]"


def paired_bootstrap(
    baseline: Any,
    treatment: Any,
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> PairedDifference:
    """Bootstrap the mean per-query gain ``treatment − baseline``, resampling queries with replacement.

    Both are per-query values of one metric on the same queries, in the same
    order (``hit_rate_at_k(..., per_query=True)``). A positive ``mean`` means
    the treatment (a correction, say) does better than the baseline (cosine).

    Examples
    --------
    >>> import numpy as np
    >>> cosine = np.zeros(200); corrected = np.r_[np.ones(60), np.zeros(140)]
    >>> gain = paired_bootstrap(cosine, corrected)
    >>> round(gain.mean, 2), gain.significant
    (0.3, True)
    """
    a = check_array(baseline, "baseline", ndim=1).astype(np.float64)
    b = check_array(treatment, "treatment", ndim=1).astype(np.float64)
    if a.shape != b.shape:
        raise InputError(f"baseline and treatment must be paired (same queries); got {len(a)} and {len(b)} values")
    n_resamples = check_positive_int(n_resamples, "n_resamples")
    confidence = check_finite_scalar(confidence, "confidence", low=0.0, high=1.0)
    difference = b - a
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples)
    for start in range(0, n_resamples, 256):  # bounded memory for many queries
        stop = min(start + 256, n_resamples)
        picks = rng.integers(0, len(difference), size=(stop - start, len(difference)))
        means[start:stop] = difference[picks].mean(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return PairedDifference(float(difference.mean()), float(low), float(high), confidence, len(difference))
