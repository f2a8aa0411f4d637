"""Is an item out of place in a collection? Confidence from the collection's own neighbours (no training).

Four scores, higher meaning more typical of the collection:

- ``knn``: the mean similarity of an item's k nearest collection items, an
  untrained baseline (:func:`knn_confidence`);
- ``density``: that mean minus the mean of the same score of those k
  neighbours (each without itself), a relative density in the manner of the
  local outlier factor: an item in a dense region must be as close to its
  neighbours as they are to theirs;
- ``support``: minus the Mahalanobis distance to the collection's mean, under
  its covariance shrunk by 1% towards the identity (Lee et al., NeurIPS 2018),
  fitted on collection items outside the calibration sample: vectors of
  another model, noise or corrupt rows lie outside the collection's shape
  even where, in a high dimension, their nearest neighbours look ordinary;
- ``blocks``: ``1 − mean normalised block entropy`` of a trained block encoder.

:class:`ConfidenceScorer` turns any of them into a calibrated confidence: each
score's empirical p-value among a leave-one-out sample of the collection
itself. ``method="combined"`` joins knn at two scales (``k`` and a small
one, ``scales=(10, 3)`` by default; the small scale costs nothing, being the
first columns of the same search), density at ``k``, support and, with an
encoder, blocks, by Fisher's statistic, ``T = −2 Σ ln p_i``. Support counts
only in the collection's outer 1% (its term is ``min(0, ln(p / 0.01))``):
alone it ranks ordinary outsiders barely better than chance (AUROC 0.51–0.56
on WordNet strings and glosses), so a full term would only add noise there,
while the far tail it catches is where the neighbour scores saturate. The
scores are correlated, so ``T``'s p-value is not read from ``χ²(2m)`` (that
would call 14% of the collection's own items atypical at the 5% level) but
calibrated like each score, on the same leave-one-out sample: the confidence
is the share of the collection's own items that look at least this atypical.

Why these parts (``benchmarks/blocks.py``; AUROC against held-out WordNet
documents). Two knn scales, as the local outlier factor's authors advise (a
range of MinPts rather than one): the 3-neighbour score separates random
strings and glosses better than the 10-neighbour one, which is surer on
random vectors. Density helps on glosses (+0.05 to +0.09) but loses on random
strings, the more so at 3 neighbours, whose own neighbourhoods are noisy, so
it enters at ``k`` only. Without support, the joined score fell 0.0001 below
the knn baseline on random vectors, where a few short adverbs ("readily",
"between, 'tween") of the collection look as remote as noise. The parts
were chosen on WordNet (15,000 documents, and the whole gallery) among the 56
subsets of up to four of knn and density at 10, 3 and 1 neighbours, and the
support tail among 1%, 2%, 5% and 20%; GCIDE headwords, which played no part
in the choice, then confirmed it (knn baseline / combined: random strings
0.891 / 0.915, random vectors 1.0000 / 1.0000, GCIDE definitions 0.821 / 0.826;
``benchmarks/RESULTS.md``, "Block embeddings on GCIDE"). The references are the local
outlier factor (Breunig et al., SIGMOD 2000), Mahalanobis confidence (Lee et
al., NeurIPS 2018) and Fisher's combined probability test (1925).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from ._check import check_array, check_positive_int
from .errors import InputError, InputTypeError
from .index.base import BaseIndex
from .index.exact import ExactIndex

__all__ = ["METHODS", "ConfidenceScorer", "auroc", "fpr_at_tpr", "knn_confidence"]

METHODS = ("knn", "density", "support", "blocks", "combined")
# The support score's covariance: this share of its mean variance is added to the diagonal.
_SHRINKAGE = 0.01
# The joined statistic hears the support score only below this p-value: the collection's outer 1%.
_SUPPORT_TAIL = 0.01
# Collection rows the support score's mean and covariance are estimated from, at most.
_SUPPORT_ROWS = 50_000


def _collection(collection: Any, name: str = "collection_index") -> BaseIndex:
    if isinstance(collection, BaseIndex):
        if len(collection) == 0:
            raise InputError(f"{name} is empty")
        return collection
    if isinstance(collection, (np.ndarray, list, tuple)):
        return ExactIndex().add(check_array(collection, name))
    raise InputTypeError(
        f"{name} must be an nnlift index or a 2-D array of the collection; got {type(collection).__name__}"
    )


def knn_confidence(vectors: Any, collection_index: Any, k: int = 10) -> np.ndarray:
    """Mean similarity of each vector's ``k`` nearest items in the collection (an index, or its vectors).

    Examples
    --------
    >>> import numpy as np
    >>> collection = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    >>> knn_confidence([[1.0, 0.05], [-1.0, 0.0]], collection, k=2).round(2).tolist()
    [1.0, -0.5]
    """
    index = _collection(collection_index)
    k = check_positive_int(k, "k")
    if k > len(index):
        raise InputError(f"k={k} is more than the {len(index)} items of the collection")
    return index.search(vectors, k).scores.mean(axis=1, dtype=np.float64).astype(np.float32)


class ConfidenceScorer:
    """Calibrated confidence that items belong to a collection: ``fit(collection)``, then ``score(vectors)``.

    Parameters
    ----------
    method : {"combined", "knn", "density", "support", "blocks"}
    k : int
        Neighbours for the knn and density scores (the largest scale).
    scales : tuple of int, optional
        The neighbour counts ``"combined"`` scores knn at, each at most ``k``
        (density is scored at ``k``); by default ``(k, max(1, k // 3))``. The
        other methods use ``k``.
    encoder : BlocksEncoder, optional
        Needed by ``"blocks"``; ``"combined"`` uses it when given.
    sample : int
        Collection items, each scored without itself, that calibrate the p-values.
    seed : int

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> centres = rng.normal(size=(5, 8))
    >>> collection = centres[rng.integers(0, 5, 500)] + 0.3 * rng.normal(size=(500, 8))
    >>> scorer = ConfidenceScorer(k=5, sample=200).fit(collection)
    >>> inside = scorer.score(centres[[0, 1]] + 0.3 * rng.normal(size=(2, 8)))
    >>> outside = scorer.score(rng.normal(size=(2, 8)) * 3)
    >>> bool(inside.min() > outside.max())
    True
    """

    def __init__(
        self,
        method: str = "combined",
        k: int = 10,
        encoder: Any = None,
        sample: int = 2000,
        seed: int = 0,
        scales: tuple[int, ...] | None = None,
    ) -> None:
        if method not in METHODS:
            raise InputError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
        if method == "blocks" and encoder is None:
            raise InputError("method='blocks' needs encoder= (a trained BlocksEncoder)")
        self.method = method
        self.k = check_positive_int(k, "k")
        self.scales = _scales(scales, self.k) if method == "combined" else (self.k,)
        self.encoder = encoder
        self.sample = check_positive_int(sample, "sample", minimum=2)
        self.seed = seed

    def _parts(self) -> tuple[str, ...]:
        """The scores this method joins: ``knn`` and ``density`` at ``k``, ``knn@s`` at a smaller scale s, support."""
        if self.method != "combined":
            return (self.method,)
        return (
            "knn",
            "density",
            *(f"knn{self._at(s)}" for s in self.scales[1:]),
            "support",
            *(("blocks",) if self.encoder is not None else ()),
        )

    def _at(self, scale: int) -> str:
        """A score's name suffix for its scale: none at ``k``, ``@s`` at a smaller one."""
        return "" if scale == self.k else f"@{scale}"

    def fit(self, collection: Any) -> ConfidenceScorer:
        """Index the collection (or take its index) and calibrate on a leave-one-out sample of it."""
        self.index_ = _collection(collection, "collection")
        if self.k + 1 > len(self.index_):
            raise InputError(f"k={self.k} needs more than {self.k + 1} collection items; it has {len(self.index_)}")
        # each item's knn score at each scale without itself, filled when needed
        self._own = np.full((len(self.index_), len(self.scales)), np.nan)
        rows = np.sort(
            np.random.default_rng(self.seed).choice(len(self.index_), min(self.sample, len(self.index_)), replace=False)
        )
        stored = self._stored = self.index_.stored_vectors()
        self._dim = stored.shape[1]
        if "support" in self._parts():
            self.support_ = _fit_support(stored, rows, self.seed)
        vectors = stored[rows]
        raw = self._raw(vectors, rows)
        self.reference_ = {name: np.sort(values) for name, values in raw.items()}
        if len(raw) > 1:  # the joined statistic's own calibration sample, as Σ ln p (higher is more typical)
            self.reference_sum_ = np.sort(
                self._joined({name: _log_p(self.reference_[name], raw[name]) for name in raw})
            )
        return self

    def _joined(self, log_p: dict[str, np.ndarray]) -> np.ndarray:
        """Fisher's ``Σ ln p`` (up to the factor −2), with support heard only in the collection's outer tail."""
        return sum(np.minimum(v - np.log(_SUPPORT_TAIL), 0.0) if name == "support" else v for name, v in log_p.items())

    def _neighbours(self, vectors: np.ndarray, rows: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Positions and scores of each vector's k nearest, leaving out its own row when it is a stored one."""
        found = self.index_.search(vectors, self.k + (rows is not None))
        positions = self.index_.positions(found.ids.ravel()).reshape(found.ids.shape)
        scores = found.scores.astype(np.float64)
        if rows is None:
            return positions, scores
        own = positions == rows[:, None]
        drop = np.where(own.any(axis=1), own.argmax(axis=1), self.k)  # itself, else the last
        keep = np.ones_like(own)
        keep[np.arange(len(rows)), drop] = False
        return positions[keep].reshape(len(rows), self.k), scores[keep].reshape(len(rows), self.k)

    def _own_knn(self, positions: np.ndarray) -> np.ndarray:
        """Each position's knn score at every scale, itself left out: shape ``positions.shape + (scales,)``."""
        missing = np.unique(positions[np.isnan(self._own[positions, 0])])
        if missing.size:
            _, scores = self._neighbours(self._stored[missing], missing)
            self._own[missing] = _scale_means(scores, self.scales)
        return self._own[positions]

    def _raw(self, vectors: np.ndarray, rows: np.ndarray | None = None) -> dict[str, np.ndarray]:
        out = {}
        parts = self._parts()
        if any(name.startswith(("knn", "density")) for name in parts):
            positions, scores = self._neighbours(vectors, rows)
            knn = _scale_means(scores, self.scales)
            for j, s in enumerate(self.scales):
                at = self._at(s)
                out[f"knn{at}"] = knn[:, j]
                if f"density{at}" in parts:  # the neighbours' own knn at the same scale, over the same s neighbours
                    out[f"density{at}"] = knn[:, j] - self._own_knn(positions[:, :s])[..., j].mean(axis=1)
        if "support" in parts:
            out["support"] = _support_score(self.support_, self.index_._prepare(vectors, "vectors"))
        if "blocks" in parts:
            from .blocks.confidence import block_entropy

            out["blocks"] = 1.0 - block_entropy(self.encoder.encode(vectors), self.encoder.num_blocks).mean(axis=1)
        return {name: out[name] for name in parts}

    def p_values(self, vectors: Any) -> dict[str, np.ndarray]:
        """Each score's p-value: the share of the calibration sample scoring at or below it.

        Below the sample's lowest score, where that share would be a flat
        ``1/(n+1)`` for every outsider, the p-value continues down a normal
        tail fitted to the sample, so far outsiders still rank below near ones.
        """
        array = self._fitted_check(vectors)
        return {name: np.exp(log_p) for name, log_p in self._log_p_values(array).items()}

    def _fitted_check(self, vectors: Any) -> np.ndarray:
        if not hasattr(self, "reference_"):
            raise InputError("this ConfidenceScorer is not fitted; call fit(collection) first")
        return check_array(vectors, "vectors", width=self._dim)

    def _log_p_values(self, array: np.ndarray) -> dict[str, np.ndarray]:
        return {name: _log_p(self.reference_[name], values) for name, values in self._raw(array).items()}

    def score(self, vectors: Any) -> np.ndarray:
        """Confidence in [0, 1]: a calibrated p-value (low means out of place), float64.

        Float64 because far outsiders' p-values lie far below float32's range, and they still rank.
        """
        log_p = self._log_p_values(self._fitted_check(vectors))
        if len(log_p) == 1:
            return np.exp(next(iter(log_p.values())))
        return np.exp(_log_p(self.reference_sum_, self._joined(log_p)))


def _fit_support(stored: np.ndarray, calibration: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The support score's mean and whitening map, from collection rows outside the calibration sample.

    Those rows are scored as outsiders would be (leave-out), unless they are
    the whole collection. At most ``_SUPPORT_ROWS`` rows are drawn; the
    covariance gets ``_SHRINKAGE`` of its mean variance on the diagonal, so it
    is invertible whatever the rows (fewer than the dimensions, or identical).
    """
    rest = np.setdiff1d(np.arange(len(stored)), calibration)
    if len(rest) < 2:
        rest = np.arange(len(stored))
    if len(rest) > _SUPPORT_ROWS:
        rest = np.sort(np.random.default_rng(seed).choice(rest, _SUPPORT_ROWS, replace=False))
    rows = stored[rest].astype(np.float64)
    mean = rows.mean(axis=0)
    centred = rows - mean
    covariance = centred.T @ centred / max(len(rows) - 1, 1)
    spread = float(np.trace(covariance)) / covariance.shape[0]
    covariance[np.diag_indices_from(covariance)] += _SHRINKAGE * (spread if spread > 0 else 1.0)
    values, vectors = np.linalg.eigh(covariance)
    return mean, vectors / np.sqrt(values)


def _support_score(support: tuple[np.ndarray, np.ndarray], vectors: np.ndarray) -> np.ndarray:
    """Minus each vector's Mahalanobis distance to the collection (higher is more typical), float64."""
    mean, whitening = support
    return -np.linalg.norm((vectors.astype(np.float64) - mean) @ whitening, axis=1)


def _scales(scales: Any, k: int) -> tuple[int, ...]:
    if scales is None:
        return tuple(sorted({k, max(1, k // 3)}, reverse=True))
    if isinstance(scales, (int, np.integer)) or not len(scales):
        raise InputError(f"scales must be a non-empty tuple of neighbour counts; got {scales!r}")
    checked = sorted({check_positive_int(s, "scales") for s in scales}, reverse=True)
    if checked[0] != k:
        raise InputError(f"scales must include k={k} as the largest; got {tuple(scales)}")
    return tuple(checked)


def _scale_means(scores: np.ndarray, scales: tuple[int, ...]) -> np.ndarray:
    """Mean of each row's first ``s`` scores (sorted best first) for every scale s: shape ``(rows, scales)``."""
    running = np.cumsum(scores, axis=1)
    return np.stack([running[:, s - 1] / s for s in scales], axis=1)


def _log_p(reference: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Log of the calibrated p-value of each value among the sorted ``reference`` scores.

    Within the reference range, the empirical share at or below the value,
    interpolated between neighbouring reference scores (so that it is strictly
    increasing: no ties that a step function would make); below the lowest
    reference score, a normal tail fitted to the reference and scaled to meet
    ``1/(n+1)`` there, so far outsiders still rank below near ones.
    """
    n = len(reference)
    ranks = _interpolated_ranks(reference, values)
    log_p = np.log(ranks / (n + 1.0))
    mean, spread = float(reference.mean()), float(reference.std()) or 1.0
    tail = stats.norm.logcdf((values - mean) / spread) - stats.norm.logcdf((reference[0] - mean) / spread)
    return np.where(values < reference[0], np.minimum(tail, 0.0) - np.log(n + 1.0), log_p)


def _interpolated_ranks(reference: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Each value's rank among the sorted ``reference``, linear between neighbours, clipped to ``[1, n]``.

    ``np.interp`` divides the rank step by the gap first, and a subnormal gap
    makes that slope infinite; the share of the gap is taken here instead, which
    stays within [0, 1] for any gap (a tie counts as the upper rank).
    """
    n = len(reference)
    if n == 1:
        return np.ones(values.shape)
    upper = np.clip(np.searchsorted(reference, values, side="right"), 1, n - 1)
    low, high = reference[upper - 1], reference[upper]
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(high > low, (values - low) / (high - low), 1.0)
    return upper + np.clip(share, 0.0, 1.0)


def auroc(inside: Any, outside: Any) -> float:
    """Probability that an inside item scores above an outside one (ties count half): 1 separates, 0.5 guesses.

    Examples
    --------
    >>> auroc([0.9, 0.8, 0.4], [0.5, 0.1])
    0.8333333333333334
    """
    inside, outside = np.asarray(inside, dtype=np.float64).ravel(), np.asarray(outside, dtype=np.float64).ravel()
    if not inside.size or not outside.size:
        raise InputError("auroc needs at least one inside and one outside score")
    ranks = stats.rankdata(np.r_[inside, outside])  # ties get their average rank
    return float((ranks[: inside.size].sum() - inside.size * (inside.size + 1) / 2) / (inside.size * outside.size))


def fpr_at_tpr(inside: Any, outside: Any, tpr: float = 0.95) -> float:
    """Share of outside items accepted at the threshold that accepts ``tpr`` of the inside ones (lower is better).

    Examples
    --------
    >>> fpr_at_tpr([0.9, 0.8, 0.7, 0.6], [0.65, 0.1], tpr=0.75)
    0.0
    """
    inside, outside = np.asarray(inside, dtype=np.float64).ravel(), np.asarray(outside, dtype=np.float64).ravel()
    if not inside.size or not outside.size:
        raise InputError("fpr_at_tpr needs at least one inside and one outside score")
    threshold = np.quantile(inside, 1.0 - tpr, method="higher")  # accepts at least tpr of them
    return float((outside >= threshold).mean())
