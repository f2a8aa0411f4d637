"""Choosing blending thresholds from the data: each row's neighbour similarities, and ``"auto"``.

A blending pass keeps, for each row, its top-(k−1) other rows whose cosine
similarity exceeds the threshold. Whether a threshold does anything depends on
the embedding model: on wordllama vectors of WordNet glosses the defaults
(0.9, 0.8) keep 1.2 neighbours per row (itself included), so blending barely
moves anything. :func:`neighbor_profile` shows the similarities a threshold
meets; :func:`auto_threshold` picks the one that keeps a target number.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._check import check_finite_scalar, check_k
from ..neighbors import Neighbors
from .graph import neighbor_graph, unit_rows

__all__ = ["ThresholdProfile", "neighbor_profile", "auto_threshold", "kept_per_row", "keep_above", "other_similarities"]

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
CANDIDATES = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95)


def kept_per_row(others: np.ndarray, threshold: float) -> np.ndarray:
    """Neighbours a threshold keeps per row, itself included, from each row's other-neighbour similarities."""
    return 1 + (others > threshold).sum(axis=1)


def auto_threshold(others: np.ndarray, keep: float) -> float:
    """The threshold keeping ``keep`` neighbours per row on average (itself included), given the other rows' similarities.

    ``others`` holds each row's top-(k−1) similarities to other rows (-inf
    padding allowed). The threshold is the similarity ranked
    ``(keep − 1)·n`` overall, so that many pairs lie above it; it is at most
    just below 1, and at least just below the lowest similarity seen (then
    every neighbour found is kept).

    Examples
    --------
    >>> import numpy as np
    >>> others = np.array([[0.9, 0.5], [0.8, 0.4], [0.7, 0.3]])
    >>> t = auto_threshold(others, keep=2.0)
    >>> float(t), kept_per_row(others, t).tolist()
    (0.5, [2, 2, 2])
    """
    n = len(others)
    keep = check_finite_scalar(keep, "keep", low=1.0)
    values = np.sort(others[np.isfinite(others)].astype(np.float64))[::-1]
    wanted = int(round((keep - 1.0) * n))
    if len(values) == 0:
        return float(np.nextafter(np.float32(1.0), np.float32(0.0)))
    if wanted >= len(values):
        return float(np.nextafter(np.float32(values[-1]), np.float32(-np.inf)))
    threshold = values[wanted]
    return float(min(threshold, np.nextafter(np.float32(1.0), np.float32(0.0))))


@dataclass(frozen=True)
class ThresholdProfile:
    """Each row's neighbour similarities, summarised for choosing thresholds.

    Attributes
    ----------
    k : int
        Neighbours per row, itself included.
    quantiles : dict
        Quantile → similarity of each row's k-th neighbour (its last other neighbour).
    kept : dict
        Threshold → neighbours kept per row on average, itself included.
    alone : dict
        Threshold → share of rows that keep only themselves (the pass leaves them as they are).
    auto : tuple of (keep, threshold), optional
        With ``keep``: the threshold an ``"auto"`` first pass would use to keep that many per row.
    """

    k: int
    n_rows: int
    quantiles: dict[float, float]
    kept: dict[float, float]
    alone: dict[float, float]
    auto: tuple[float, float] | None = None

    def lines(self) -> list[str]:
        """A short human-readable report."""
        spread = ", ".join(f"{100 * q:.0f}%: {v:.3f}" for q, v in self.quantiles.items())
        lines = [f"similarity of each row's {self.k}th neighbour over {self.n_rows:,} rows ({spread})"]
        lines.append("threshold  neighbours kept per row (itself included)  rows left alone")
        for threshold, kept in self.kept.items():
            mark = "  <- auto" if self.auto is not None and threshold == self.auto[1] else ""
            lines.append(f"{threshold:>9.3f}  {kept:>42.2f}  {100 * self.alone[threshold]:>14.1f}%{mark}")
        if self.auto is not None:
            lines.append(f"auto: a first pass keeping {self.auto[0]:g} per row on average uses threshold {self.auto[1]:.4f}")
        return lines


def neighbor_profile(
    emb: Any,
    k: int = 10,
    thresholds: Any = CANDIDATES,
    *,
    keep: float | None = None,
    index: Any = None,
    progress: bool = True,
) -> ThresholdProfile:
    """The distribution of each row's k-th neighbour similarity, and what each threshold keeps.

    With ``keep``, also the threshold an ``"auto"`` first pass picks for it (in the table too).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> profile = neighbor_profile(rng.normal(size=(200, 4)), k=5, thresholds=(0.5, 0.9))
    >>> profile.kept[0.5] > profile.kept[0.9] >= 1.0
    True
    """
    unit = unit_rows(emb)
    k = check_k(k, unit.shape[0], name="k", what="rows")
    found, _ = neighbor_graph(unit, k, None, index=index, progress=progress)
    others = other_similarities(found)
    last = others[:, -1] if others.shape[1] else np.ones(len(unit))
    values = [check_finite_scalar(t, "thresholds") for t in thresholds]
    auto = None
    if keep is not None:
        keep = check_finite_scalar(keep, "keep", low=1.0, high=float(k))
        auto = (keep, auto_threshold(others, keep))
        values = sorted(set(values) | {auto[1]})
    kept = {t: float(kept_per_row(others, t).mean()) for t in values}
    alone = {t: float((kept_per_row(others, t) == 1).mean()) for t in values}
    quantiles = {q: float(np.quantile(last[np.isfinite(last)], q)) for q in QUANTILES} if np.isfinite(last).any() else {}
    return ThresholdProfile(k=k, n_rows=len(unit), quantiles=quantiles, kept=kept, alone=alone, auto=auto)


def other_similarities(found: Neighbors) -> np.ndarray:
    """Each row's similarities to its other neighbours (itself dropped), -inf where padded."""
    rows = np.arange(found.ids.shape[0])[:, None]
    is_self = found.ids == rows
    # Exactly one self entry per row (neighbor_graph puts it in): drop it, keep the order.
    others = found.scores[~is_self].reshape(found.ids.shape[0], found.ids.shape[1] - 1)
    return np.where(found.ids[~is_self].reshape(others.shape) >= 0, others, -np.inf)


def keep_above(found: Neighbors, threshold: float) -> Neighbors:
    """Drop each row's other neighbours at or below ``threshold`` (itself always stays); padding stays last."""
    is_self = found.ids == np.arange(found.ids.shape[0])[:, None]
    drop = (found.scores <= threshold) & ~is_self
    return Neighbors(np.where(drop, -1, found.ids), np.where(drop, -np.inf, found.scores).astype(np.float32))
