"""Distribution normalisation (DN) and mean-bias renormalisation: remove each side's mean (or its direction)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._artifact import ArtifactError
from .._base import Estimator, check_is_fitted, clone
from .._check import check_array, check_finite_scalar, check_metric, normalize_rows
from ..index.base import BaseIndex
from .base import Baseline, Correction, WrapsCorrection
from .nnn import NNN
from ..errors import InputError

__all__ = ["DistributionNormalization", "MeanRemoval", "WithDN", "MeanBias"]
MODES = ("shift", "projection")


class DistributionNormalization(Estimator):
    """``x ← x − λ·mean(X_dev)`` and ``q, r ← q − λ·mean(Q_dev)`` (inputs normalised first for cosine).

    Examples
    --------
    >>> import numpy as np
    >>> dn = DistributionNormalization(lambda_=0.5, metric="ip").fit([[2.0, 0.0]], [[0.0, 4.0]])
    >>> dn.transform_database([[2.0, 0.0]]).tolist(), dn.transform_queries([[0.0, 4.0]]).tolist()
    ([[1.0, 0.0]], [[0.0, 2.0]])
    """

    _artifact_arrays = ("database_mean_", "query_mean_")

    def __init__(self, lambda_: float = 0.5, metric: str = "cosine") -> None:
        self.lambda_ = lambda_
        self.metric = metric

    def _prepare(self, array: Any, name: str, width: int | None = None) -> np.ndarray:
        out = check_array(array, name, width=width)
        return normalize_rows(out, name) if check_metric(self.metric) == "cosine" else out

    def fit(self, database_dev: Any, queries_dev: Any) -> DistributionNormalization:
        """Learn the dev means of the database side and the query side."""
        check_finite_scalar(self.lambda_, "lambda_")
        database = self._prepare(database_dev, "database_dev")
        queries = self._prepare(queries_dev, "queries_dev", width=database.shape[1])
        self.database_mean_ = database.mean(axis=0, dtype=np.float64).astype(np.float32)
        self.query_mean_ = queries.mean(axis=0, dtype=np.float64).astype(np.float32)
        return self

    def _check_state(self) -> None:
        database_mean, query_mean = self.database_mean_, self.query_mean_
        if database_mean.ndim != 1 or database_mean.shape != query_mean.shape or database_mean.dtype != np.float32:
            raise ArtifactError("DistributionNormalization artifact: the two means must be 1-D float32 of one size")
        if not (np.isfinite(database_mean).all() and np.isfinite(query_mean).all()):
            raise ArtifactError("DistributionNormalization artifact: the means have NaN or inf values")

    def transform_database(self, database: Any) -> np.ndarray:
        check_is_fitted(self)
        return self._remove(self._prepare(database, "database", width=len(self.database_mean_)), self.database_mean_)

    def transform_queries(self, queries: Any) -> np.ndarray:
        """Shift queries (and a bank, which holds queries) by the query-side mean."""
        check_is_fitted(self)
        return self._remove(self._prepare(queries, "queries", width=len(self.query_mean_)), self.query_mean_)

    def _remove(self, array: np.ndarray, mean: np.ndarray) -> np.ndarray:
        return (array - np.float32(self.lambda_) * mean).astype(np.float32)


class MeanRemoval(DistributionNormalization):
    """DN's shift with a choice of what is removed, and unit rows after: mean-bias renormalisation's transform.

    ``mode="shift"`` subtracts ``λ·μ``; ``mode="projection"`` removes only the
    component along each side's mean direction ``u = μ/‖μ‖``:
    ``x ← x − λ·(x·u)·u``. Either way the rows are rescaled to unit length (a
    row equal to what was removed stays 0). A class of its own, so that
    ``DistributionNormalization``'s saved parameters, and WithDN models saved
    before it, stay as they were.
    """

    def __init__(self, lambda_: float = 1.0, metric: str = "cosine", mode: str = "shift") -> None:
        super().__init__(lambda_, metric)
        self.mode = mode

    def fit(self, database_dev: Any, queries_dev: Any) -> MeanRemoval:
        if self.mode not in MODES:
            raise InputError(f"mode must be one of {', '.join(MODES)}; got {self.mode!r}")
        return super().fit(database_dev, queries_dev)

    def _remove(self, array: np.ndarray, mean: np.ndarray) -> np.ndarray:
        lam = np.float32(self.lambda_)
        if self.mode == "projection":
            length = float(np.linalg.norm(mean.astype(np.float64)))
            direction = (mean / length).astype(np.float32) if length > 0 else np.zeros_like(mean)
            out = (array - lam * (array @ direction)[:, None] * direction[None, :]).astype(np.float32)
        else:
            out = super()._remove(array, mean)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return np.divide(out, norms, out=np.zeros_like(out), where=norms > 0)


class WithDN(WrapsCorrection):
    """DN followed by another correction (DN+NNN by default), like nnn-retrieval's ``DNRanker``.

    The shifted vectors are not renormalised: the wrapped correction scores
    them by raw inner product. ``index``, when given, replaces the wrapped
    correction's index template. The dev sets default to the database and the bank
    (the bank is a sample of queries).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> database, bank = rng.normal(size=(60, 8)), rng.normal(size=(40, 8))
    >>> WithDN(NNN(k=4)).fit(database, bank).search(bank[:2], k=3).ids.shape
    (2, 3)
    """

    def _inner_template(self) -> Correction:
        return NNN() if self.correction is None else self.correction

    def __init__(
        self,
        correction: Correction | None = None,
        lambda_: float = 0.5,
        metric: str = "cosine",
        index: BaseIndex | None = None,
    ) -> None:
        self.correction = correction
        self.lambda_ = lambda_
        self.metric = metric
        self.index = index

    def fit(
        self,
        database: Any,
        bank: Any = None,
        *,
        database_dev: Any = None,
        queries_dev: Any = None,
        **kwargs: Any,
    ) -> WithDN:
        if bank is None and queries_dev is None:
            raise InputError("WithDN needs a bank or queries_dev to estimate the query-side mean")
        self.dn_ = self._normalization().fit(
            database if database_dev is None else database_dev,
            bank if queries_dev is None else queries_dev,
        )
        # A fresh copy: the caller's estimator is never changed by fitting this one.
        overrides = {"metric": "ip"} if self.index is None else {"metric": "ip", "index": self.index}
        inner = clone(NNN() if self.correction is None else self.correction, **overrides)
        shifted_bank = None if bank is None else self.dn_.transform_queries(bank)
        self.correction_ = inner.fit(self.dn_.transform_database(database), shifted_bank, **kwargs)
        self.database_ = self.correction_.database_
        return self

    def _normalization(self) -> DistributionNormalization:
        return DistributionNormalization(self.lambda_, self.metric)

    def set_params(self, **params: Any) -> WithDN:
        if self.correction is None and any(key.startswith("correction__") for key in params):
            self.correction = NNN()
        return super().set_params(**params)

    def _prepare_queries(self, queries: Any) -> np.ndarray:
        check_is_fitted(self, "correction_")
        return self.dn_.transform_queries(queries)

    def _artifact_parts(self) -> dict[str, Any]:
        return {**super()._artifact_parts(), "dn": self.dn_}

    def _restore_parts(self, parts: dict[str, Any]) -> None:
        if not isinstance(parts.get("dn"), DistributionNormalization):
            raise ArtifactError("WithDN artifact: its part 'dn' must be a fitted DistributionNormalization")
        super()._restore_parts(parts)
        self.dn_ = parts["dn"]


class MeanBias(WithDN):
    """Mean-bias renormalisation (arXiv 2511.11041): remove each side's mean, renormalise, then search.

    Text embedders add a common component to every vector, which inflates
    every similarity alike and favours the items nearest to it (hubs). Here
    the query side's mean comes from the bank (a sample of queries) and the
    database side's from the database, and ``λ`` of it is removed:
    ``mode="shift"`` subtracts ``λ·μ``; ``mode="projection"`` removes only the
    component along ``μ``'s direction, ``x − λ·(x·u)·u`` with ``u = μ/‖μ‖``.
    Either way each vector is rescaled to unit length, so the ``correction``
    after it (cosine by default; NNN or any other) scores directions. It is
    DN (:class:`WithDN`) with full strength and renormalisation.

    Examples
    --------
    >>> import numpy as np
    >>> common = np.array([3.0, 0.0, 0.0])
    >>> database = common + np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 1.0]])
    >>> bank = common + np.array([[0.0, 1.0, 0.1], [0.0, 0.1, 1.0]])
    >>> model = MeanBias().fit(database, bank)
    >>> model.search(common + np.array([[0.0, 1.0, 0.0]]), k=1).ids.tolist()
    [[0]]
    """

    def _inner_template(self) -> Correction:
        return Baseline() if self.correction is None else self.correction

    def __init__(
        self,
        correction: Correction | None = None,
        mode: str = "shift",
        lambda_: float = 1.0,
        metric: str = "cosine",
        index: BaseIndex | None = None,
    ) -> None:
        super().__init__(correction, lambda_, metric, index)
        self.mode = mode

    def _normalization(self) -> DistributionNormalization:
        return MeanRemoval(self.lambda_, self.metric, mode=self.mode)

    def fit(self, database: Any, bank: Any = None, **kwargs: Any) -> MeanBias:
        if self.correction is None:
            self.correction = Baseline()
        return super().fit(database, bank, **kwargs)

    def set_params(self, **params: Any) -> MeanBias:
        if self.correction is None and any(key.startswith("correction__") for key in params):
            self.correction = Baseline()
        return super().set_params(**params)
