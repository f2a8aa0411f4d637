"""Distribution normalisation (DN): shift items and queries by a fraction of their dev means."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._artifact import ArtifactError
from .._base import Estimator, check_is_fitted, clone
from .._check import check_array, check_finite_scalar, check_metric, normalize_rows
from ..index.base import BaseIndex
from .base import Correction, WrapsCorrection
from .nnn import NNN
from ..errors import InputError

__all__ = ["DistributionNormalization", "WithDN"]


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
        array = self._prepare(database, "database", width=len(self.database_mean_))
        return (array - np.float32(self.lambda_) * self.database_mean_).astype(np.float32)

    def transform_queries(self, queries: Any) -> np.ndarray:
        """Shift queries (and a bank, which holds queries) by the query-side mean."""
        check_is_fitted(self)
        array = self._prepare(queries, "queries", width=len(self.query_mean_))
        return (array - np.float32(self.lambda_) * self.query_mean_).astype(np.float32)


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
        self.dn_ = DistributionNormalization(self.lambda_, self.metric).fit(
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
