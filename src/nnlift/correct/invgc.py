"""Inverse graph convolution of the gallery (InvGC, and its local form LocalAdj; Wang et al., EMNLP 2023 Findings).

Hubs are gallery items close to many others. InvGC pushes every gallery
item away from its neighbours, in the gallery and in the bank of queries,
by subtracting a weighted sum of them (a graph convolution with a negative
sign), then renormalises::

    x' = x − r_g · Σ_{j ∈ N_k(x, gallery)} w(x, x_j) x_j − r_q · Σ_{r ∈ N_k(x, bank)} w(x, r) r

Here, as in the paper's LocalAdj, ``N_k`` is the ``k`` nearest (the gallery
leaving ``x`` itself out) rather than every item: it scales, and the authors
found it at least as good. ``weighting="uniform"`` averages the neighbours
(``w = 1/k``); ``"similarity"`` weighs each by its similarity, normalised
to sum to 1. The queries are not changed; a ``correction`` after it
(cosine by default, or NNN) scores them against ``x'``. With ``r_q = 0`` it
needs no bank.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._base import check_is_fitted, clone
from .._check import check_finite_scalar, check_k, check_positive_int, normalize_rows
from ..errors import InputError
from ..index.base import BaseIndex, build_index, quiet
from ..index.exact import ExactIndex
from .base import Baseline, Correction, WrapsCorrection

__all__ = ["InvGC", "WEIGHTINGS"]

WEIGHTINGS = ("uniform", "similarity")


class InvGC(WrapsCorrection):
    """Subtract each gallery item's neighbourhood (gallery and bank), renormalise, then apply ``correction``.

    Parameters
    ----------
    k : int
        Neighbours in the gallery and in the bank.
    gallery_weight, bank_weight : float
        ``r_g`` and ``r_q``, each ≥ 0.
    weighting : {"uniform", "similarity"}
    correction : Correction, optional
        Applied to the new gallery (cosine by default).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> model = InvGC(k=4).fit(rng.normal(size=(60, 8)), rng.normal(size=(30, 8)))
    >>> model.search(rng.normal(size=(2, 8)), k=3).ids.shape
    (2, 3)
    """

    def __init__(
        self,
        k: int = 10,
        gallery_weight: float = 0.2,
        bank_weight: float = 0.2,
        weighting: str = "uniform",
        correction: Correction | None = None,
        metric: str = "cosine",
        index: BaseIndex | None = None,
    ) -> None:
        self.k = k
        self.gallery_weight = gallery_weight
        self.bank_weight = bank_weight
        self.weighting = weighting
        self.correction = correction
        self.metric = metric
        self.index = index

    def _inner_template(self) -> Correction:
        return Baseline() if self.correction is None else self.correction

    @property
    def needs_bank(self) -> bool:  # type: ignore[override]
        return self.bank_weight != 0 or self._inner_template().needs_bank

    def fit(self, database: Any, bank: Any = None, **kwargs: Any) -> InvGC:
        k = check_positive_int(self.k, "InvGC.k")
        for name in ("gallery_weight", "bank_weight"):
            check_finite_scalar(getattr(self, name), f"InvGC.{name}", low=0.0)
        if self.weighting not in WEIGHTINGS:
            raise InputError(f"InvGC.weighting must be one of {', '.join(WEIGHTINGS)}; got {self.weighting!r}")
        rows = self._prepare(database, "database")
        check_k(k, rows.shape[0] - 1, name="InvGC.k", what="other database rows")
        if self.needs_bank and bank is None:
            raise InputError("InvGC needs a bank of reference queries with bank_weight > 0: fit(database, bank)")
        bank_rows = None if bank is None else self._prepare(bank, "bank", width=rows.shape[1])
        template = ExactIndex(progress=False) if self.index is None else self.index
        gallery = build_index(template, rows)
        with quiet(gallery, False):
            found = gallery.self_join(k)
        shifted = rows.astype(np.float64) - self.gallery_weight * self._pull(found, rows)
        if self.bank_weight != 0:
            bank_index = build_index(template, bank_rows)
            with quiet(bank_index, False):
                near = bank_index.search_arrays(rows, check_k(k, len(bank_rows), name="InvGC.k", what="bank rows"))
            shifted -= self.bank_weight * self._pull(near, bank_rows)
        moved = normalize_rows(shifted.astype(np.float32), "the convolved database")
        overrides = {"metric": "ip"} if self.index is None else {"metric": "ip", "index": self.index}
        inner = clone(self._inner_template(), **overrides)
        self.correction_ = inner.fit(moved, bank_rows if inner.needs_bank else None, **kwargs)
        self.database_ = self.correction_.database_
        return self

    def _pull(self, found: Any, rows: np.ndarray) -> np.ndarray:
        """Each row's weighted mean of its neighbours' vectors (``found`` ids index ``rows``; -1 pads)."""
        ids, scores = found.ids, found.scores.astype(np.float64)
        valid = ids >= 0
        if self.weighting == "similarity":
            weights = np.where(valid, np.maximum(scores, 0.0), 0.0)
        else:
            weights = valid.astype(np.float64)
        totals = weights.sum(axis=1, keepdims=True)
        weights = np.divide(weights, totals, out=np.zeros_like(weights), where=totals > 0)
        return np.einsum("nk,nkd->nd", weights, rows[np.where(valid, ids, 0)].astype(np.float64))

    def _prepare_queries(self, queries: Any) -> np.ndarray:
        check_is_fitted(self, "correction_")
        return self._prepare(queries, "queries", width=self.database_.shape[1])
