"""Fusion of corrections: reciprocal-rank or score-normalised, over each correction's own top candidates.

Each correction ``c_i`` ranks the database for a query; its top ``depth``
items are its candidates, and the union of all candidates is re-ranked by

- ``method="rrf"`` (reciprocal-rank fusion, Cormack et al., SIGIR 2009):
  ``Σ_i w_i / (rrf_k + rank_i(x))``, where ``rank_i`` is 1 for ``c_i``'s best
  item and an item outside ``c_i``'s candidates adds nothing;
- ``method="zscore"`` (score-normalised fusion, "CombSUM" of z-scores):
  ``Σ_i w_i · (c_i(q, x) − m_i(q)) / s_i(q)``, where ``m_i`` and ``s_i`` are
  the mean and standard deviation of ``c_i``'s scores of its own candidates,
  so corrections on different scales (NNN's biased cosine, inverted
  softmax's log-probabilities) count alike.

Ties go to the lower id. ``score`` gives the same fused value for any pair as
``search`` ranks by. Every correction keeps its own index, so fusion runs on
any index that its members do.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._artifact import ArtifactError, Contents
from .._base import clone
from .._check import check_finite_scalar, check_positive_int
from ..errors import InputError, InputTypeError
from ..index.base import BaseIndex
from ..neighbors import Neighbors
from .base import Correction

__all__ = ["Fusion", "FUSION_METHODS"]

FUSION_METHODS = ("rrf", "zscore")


class Fusion(Correction):
    """Fuse the rankings of several corrections (:mod:`nnlift.correct.fusion`).

    Parameters
    ----------
    corrections : sequence of Correction
        Templates, cloned and fitted on the same database and bank.
    method : {"rrf", "zscore"}
    depth : int
        Candidates each correction contributes (at least the ``k`` searched).
    rrf_k : float
        The reciprocal-rank constant (60 in the paper).
    weights : sequence of float, optional
        One per correction (default: all 1).

    Examples
    --------
    >>> import numpy as np
    >>> from nnlift.correct import CSLS, NNN
    >>> rng = np.random.default_rng(0)
    >>> database, bank = rng.normal(size=(200, 8)), rng.normal(size=(100, 8))
    >>> fused = Fusion([NNN(k=8), CSLS(k=8)], depth=20).fit(database, bank)
    >>> fused.search(rng.normal(size=(2, 8)), k=3).ids.shape
    (2, 3)
    """

    _artifact_arrays = ("database_",)
    _saved_params = ("method", "depth", "rrf_k", "weights", "metric", "members")  # the members are parts

    def __init__(
        self,
        corrections: Any = (),
        method: str = "rrf",
        depth: int = 50,
        rrf_k: float = 60.0,
        weights: Any = None,
        metric: str = "cosine",
        index: BaseIndex | None = None,
    ) -> None:
        self.corrections = corrections
        self.method = method
        self.depth = depth
        self.rrf_k = rrf_k
        self.weights = weights
        self.metric = metric
        self.index = index

    @property
    def needs_bank(self) -> bool:  # type: ignore[override]
        return any(getattr(c, "needs_bank", True) for c in self._templates())

    def _templates(self) -> list[Correction]:
        corrections = list(self.corrections) if isinstance(self.corrections, (list, tuple)) else None
        if not corrections or not all(isinstance(c, Correction) for c in corrections):
            raise InputTypeError(
                f"Fusion.corrections must be a non-empty list of corrections (NNN(), CSLS(), ...); got {self.corrections!r}"
            )
        return corrections

    def _weights(self, count: int) -> np.ndarray:
        if self.weights is None:
            return np.ones(count)
        weights = np.asarray(self.weights, dtype=np.float64)
        if weights.shape != (count,) or not np.isfinite(weights).all() or (weights < 0).any() or weights.sum() <= 0:
            raise InputError(f"Fusion.weights must be {count} finite weights >= 0, not all 0; got {self.weights!r}")
        return weights

    def _fit(self, database: np.ndarray, bank: np.ndarray | None, progress: bool = True) -> None:
        if self.method not in FUSION_METHODS:
            raise InputError(f"Fusion.method must be one of {', '.join(FUSION_METHODS)}; got {self.method!r}")
        check_positive_int(self.depth, "Fusion.depth")
        check_finite_scalar(self.rrf_k, "Fusion.rrf_k", low=0.0)
        templates = self._templates()
        self._weights(len(templates))
        overrides = {} if self.index is None else {"index": self.index}
        self.corrections_ = [  # a bank-free member ignores the bank, as every correction does
            clone(c, **{k: v for k, v in overrides.items() if k in c.get_params(deep=False)}).fit(database, bank)
            for c in templates
        ]

    @property
    def checks_(self) -> list[dict[str, Any]]:  # type: ignore[override]
        """What the members' ``Checked`` indexes measured, at fit and since, each tagged with its member."""
        return [{"member": i, **r} for i, c in enumerate(getattr(self, "corrections_", [])) for r in c.checks_]

    @checks_.setter
    def checks_(self, value: list) -> None:
        """``Correction.fit`` resets the record; the members keep their own."""

    # -- fusing --------------------------------------------------------------
    def _lists(self, queries: np.ndarray, k: int) -> list[Neighbors]:
        depth = min(max(self.depth, k), len(self.database_))
        return [c.search(queries, depth, progress=False) for c in self.corrections_]

    def _fused(self, queries: np.ndarray, ids: np.ndarray, lists: list[Neighbors]) -> np.ndarray:
        """The fused score of each ``ids`` cell (``-1`` cells get ``-inf``), from the members' candidate lists."""
        weights = self._weights(len(lists))
        valid = ids >= 0
        total = np.zeros(ids.shape, dtype=np.float64)
        for weight, found, member in zip(weights, lists, self.corrections_):
            if self.method == "rrf":
                total += weight * _reciprocal_ranks(found.ids, ids, self.rrf_k)
            else:
                own = np.where(found.ids >= 0, found.scores, np.nan).astype(np.float64)
                mean = np.nanmean(own, axis=1, keepdims=True)
                spread = np.nanstd(own, axis=1, keepdims=True)
                spread = np.where(spread > 0, spread, 1.0)
                scores = member.score(queries, np.where(valid, ids, 0)).astype(np.float64)
                total += weight * (scores - mean) / spread
        return np.where(valid, total, -np.inf)

    def _search_arrays(self, queries: np.ndarray, k: int, *, progress: bool = True) -> Neighbors:
        lists = self._lists(queries, k)
        candidates = np.sort(np.concatenate([found.ids for found in lists], axis=1), axis=1)
        repeated = np.zeros(candidates.shape, dtype=bool)
        repeated[:, 1:] = candidates[:, 1:] == candidates[:, :-1]
        candidates = np.where(repeated, -1, candidates)
        fused = self._fused(queries, candidates, lists)
        # best fused score first, ties to the lower id (candidates are sorted by id, and the sort is stable)
        order = np.argsort(-fused, axis=1, kind="stable")[:, :k]
        ids = np.take_along_axis(candidates, order, axis=1)
        scores = np.take_along_axis(fused, order, axis=1)
        ids = np.where(np.isfinite(scores), ids, -1)
        return Neighbors(ids.astype(np.int64), scores.astype(np.float32))

    def _score_arrays(self, queries: np.ndarray, ids: np.ndarray, raw: np.ndarray) -> np.ndarray:
        return self._fused(queries, ids, self._lists(queries, 1)).astype(np.float32)

    # -- persistence: the members are nested artifacts -------------------------
    def _artifact(self) -> Contents:
        templates = self._templates()
        params = {
            "method": self.method,
            "depth": self.depth,
            "rrf_k": self.rrf_k,
            "weights": None if self.weights is None else [float(w) for w in self.weights],
            "metric": self.metric,
            "members": len(templates),
        }
        parts: dict[str, Any] = {f"template_{i}": c for i, c in enumerate(templates)}
        if self.index is not None:
            parts["index"] = self.index
        fitted = self._is_fitted()
        arrays, extra = {}, {"fitted": fitted}
        if fitted:
            arrays = {"database_": self.database_}
            parts.update({f"member_{i}": c for i, c in enumerate(self.corrections_)})
        return Contents(params, arrays, extra, parts)

    @classmethod
    def _from_artifact(cls, manifest: dict, arrays: dict[str, np.ndarray], parts: dict[str, Any]) -> Fusion:
        params = dict(manifest["params"])
        members = params.pop("members", None)
        if not isinstance(members, int) or members < 1:
            raise ArtifactError("Fusion artifact: params.members must be a positive count")
        templates = [parts.get(f"template_{i}") for i in range(members)]
        if not all(isinstance(c, Correction) for c in templates):
            raise ArtifactError(f"Fusion artifact: it must hold {members} correction templates")
        obj = cls(templates, index=parts.get("index"), **params)
        if manifest["extra"].get("fitted"):
            fitted = [parts.get(f"member_{i}") for i in range(members)]
            if not all(isinstance(c, Correction) for c in fitted) or "database_" not in arrays:
                raise ArtifactError(f"Fusion artifact: a fitted one holds database_ and {members} fitted members")
            obj.database_ = arrays["database_"]
            obj.corrections_ = fitted
            obj._db_index = None
            obj._check_state()
        return obj

    def _check_state(self) -> None:
        super()._check_state()
        if any(len(c.database_) != len(self.database_) for c in self.corrections_):
            raise ArtifactError("Fusion artifact: every member must be fitted on the same database")


def _reciprocal_ranks(ranked: np.ndarray, ids: np.ndarray, rrf_k: float) -> np.ndarray:
    """``1 / (rrf_k + rank)`` of each ``ids`` cell in its row of ``ranked`` (best first; absent or -1: 0)."""
    rows, width = ranked.shape
    order = np.argsort(ranked, axis=1, kind="stable")
    sorted_ids = np.take_along_axis(ranked, order, axis=1)
    span = int(max(ranked.max(initial=0), ids.max(initial=0))) + 2
    offsets = (np.arange(rows, dtype=np.int64) * span)[:, None]
    flat = (sorted_ids + 1 + offsets).ravel()  # +1: the -1 padding stays inside its own row's span
    wanted = ids + 1 + offsets
    at = np.clip(np.searchsorted(flat, wanted.ravel()).reshape(ids.shape), 0, flat.size - 1)
    found = (flat[at] == wanted) & (ids >= 0)
    local = np.clip(at - np.arange(rows)[:, None] * width, 0, width - 1)
    rank = np.take_along_axis(order, local, axis=1) + 1
    return np.where(found, 1.0 / (rrf_k + rank), 0.0)
