"""The interface every score correction shares: ``fit``, ``search``, ``score``, ``save``.

Most corrections are affine in the raw score::

    corrected(q, x) = scale · (s(q, x) − bias(x)) − query_term(q)

so one implementation serves search and scoring: the index finds the top-k of
``s − bias``, and the per-query term (which never changes a query's ranking)
is applied to the k winners only.

Every correction takes ``index=``, an nnlift index used as a template: it is
cloned for each collection the correction searches (the bank, the database),
so the same method code runs exactly (``ExactIndex()``, the default) or
approximately (``Checked(IVFIndex())``, ``FaissIndex("HNSW32")``, ...). What
a :class:`~nnlift.Checked` index measured is kept in ``checks_``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._artifact import ArtifactError
from .._base import Estimator, check_is_fitted
from .._check import check_array, check_k, check_metric, check_positive_int, normalize_rows
from ..index.base import BaseIndex, build_index, quiet
from ..index.exact import ExactIndex
from ..neighbors import Neighbors
from ..errors import InputError

__all__ = ["Correction", "Baseline", "WrapsCorrection"]


class Correction(Estimator):
    """Base class: a fitted database plus a per-item bias and an optional per-query term.

    Subclasses implement ``_fit(database, bank, **kwargs)`` (setting ``bias_``
    and any other learned state) and may override ``_search_bias``,
    ``_query_term`` and ``scale``.
    """

    _artifact_arrays = ("database_", "bias_")
    scale = 1.0
    index: BaseIndex | None = None

    # -- indexes -----------------------------------------------------------
    def _template(self) -> BaseIndex | None:
        """The index template in use (None: ``ExactIndex()``)."""
        return self.index

    def _build_index(self, rows: np.ndarray, like: BaseIndex | None = None) -> BaseIndex:
        """A fresh clone of this correction's index template over validated rows."""
        template = self._template()
        return build_index(ExactIndex() if template is None else template, rows, like=like)

    def _reduce(self, on: str, index: BaseIndex, reduction: str, *args: Any, progress: bool = False, **kwargs: Any):
        """Run one of the index's reductions; what a ``Checked`` index measured goes to ``checks_``, tagged ``on``."""
        before = len(getattr(index, "checks_", ()))
        with quiet(index, progress):
            result = getattr(index, reduction)(*args, **kwargs)
        for record in getattr(index, "checks_", [])[before:]:
            self.checks_.append({"on": on, **record})
        return result

    def _database_index(self) -> BaseIndex:
        """The index over ``database_`` that searches run on (built at fit, or lazily after loading or growth)."""
        if getattr(self, "_db_index", None) is None:
            self._db_index = self._build_index(self.database_)
        return self._db_index

    def _saves_index(self) -> bool:
        """An approximate index is saved with the model: rebuilt, its lists or graph would give other neighbours."""
        template = self._template()
        return template is not None and not isinstance(template, ExactIndex)

    # -- hooks -------------------------------------------------------------
    def _fit(self, database: np.ndarray, bank: np.ndarray | None, **kwargs: Any) -> None:
        self.bias_ = np.zeros(database.shape[0], dtype=np.float32)

    def _search_bias(self) -> np.ndarray | None:
        """The per-item value subtracted from raw scores before ranking."""
        return self.bias_

    def _query_term(self, queries: np.ndarray) -> np.ndarray | None:
        """Per-query offset that makes scores comparable across queries (None: none)."""
        return None

    needs_bank = True

    # -- validation --------------------------------------------------------
    def _prepare(self, array: Any, name: str, width: int | None = None) -> np.ndarray:
        metric = check_metric(getattr(self, "metric", "cosine"))
        out = check_array(array, name, width=width)
        return normalize_rows(out, name) if metric == "cosine" else out

    def _prepare_queries(self, queries: Any) -> np.ndarray:
        check_is_fitted(self)
        return self._prepare(queries, "queries", width=self.database_.shape[1])

    # -- public API --------------------------------------------------------
    def fit(self, database: Any, bank: Any = None, **kwargs: Any) -> Correction:
        """Learn the correction for ``database`` from a ``bank`` of reference queries.

        Every correction takes ``fit(database, bank=None)``: a bank-free one
        (``needs_bank`` false) ignores a bank it is given, as scikit-learn's
        estimators ignore ``y``, so callers never branch on the kind.
        """
        database_array = self._prepare(database, "database")
        bank_array = None
        if bank is not None and self.needs_bank:
            bank_array = self._prepare(bank, "bank", width=database_array.shape[1])
        elif self.needs_bank:
            raise InputError(f"{type(self).__name__} needs a bank of reference queries: fit(database, bank)")
        if np.shares_memory(database_array, np.asarray(database)):
            database_array = database_array.copy()  # the model must not change if the caller's array does
        self.database_ = database_array
        self.checks_ = []
        self._db_index = None
        self._fit(database_array, bank_array, **kwargs)
        return self

    def search(self, queries: Any, k: int = 10, *, progress: bool = True) -> Neighbors:
        """Top-k database rows by corrected score for each query (ids are database row numbers)."""
        queries_array = self._prepare_queries(queries)
        k = check_k(k, self.database_.shape[0])
        return self._search_arrays(queries_array, k, progress=progress)

    def _search_arrays(self, queries: np.ndarray, k: int, *, progress: bool = True) -> Neighbors:
        found = self._reduce(
            "database", self._database_index(), "search_arrays", queries, k, bias=self._search_bias(), progress=progress
        )
        return self._finish_scores(queries, found)

    def _finish_scores(self, queries: np.ndarray, found: Neighbors) -> Neighbors:
        scores = found.scores
        if self.scale != 1.0:
            scores = scores * np.float32(self.scale)
        term = self._query_term(queries)
        if term is not None:
            scores = scores - term[:, None]
        scores = np.where(found.ids >= 0, scores, -np.inf)
        return Neighbors(found.ids, scores)

    def score(self, queries: Any, database_ids: Any) -> np.ndarray:
        """Corrected scores of given pairs.

        Parameters
        ----------
        queries : array-like of shape (n_queries, d)
        database_ids : array-like of int, shape (n_queries, m) or (m,)
            Database rows to score for each query (a 1-D list is used for every query).

        Returns
        -------
        numpy.ndarray of shape (n_queries, m), float32
        """
        queries_array = self._prepare_queries(queries)
        ids = np.asarray(database_ids)
        if ids.size == 0 and ids.ndim in (1, 2) and (ids.ndim == 1 or ids.shape[0] == queries_array.shape[0]):
            return np.empty((queries_array.shape[0], 0), dtype=np.float32)
        if ids.ndim == 1:
            ids = np.broadcast_to(ids, (queries_array.shape[0], ids.shape[0]))
        if ids.ndim != 2 or ids.shape[0] != queries_array.shape[0]:
            raise InputError(
                f"database_ids must have shape (n_queries={queries_array.shape[0]}, m) or (m,); got {ids.shape}"
            )
        if ids.size and (not np.issubdtype(ids.dtype, np.integer) or ids.min() < 0 or ids.max() >= len(self.database_)):
            raise InputError(f"database_ids must be integer row numbers in [0, {len(self.database_)})")
        raw = np.einsum("qd,qmd->qm", queries_array, self.database_[ids]).astype(np.float32)
        return self._score_arrays(queries_array, ids, raw)

    def _score_arrays(self, queries: np.ndarray, ids: np.ndarray, raw: np.ndarray) -> np.ndarray:
        bias = self._search_bias()
        corrected = raw if bias is None else raw - bias[ids]
        return self._finish_scores(queries, Neighbors(ids, corrected)).scores

    @property
    def n_database(self) -> int:
        check_is_fitted(self)
        return self.database_.shape[0]

    # -- persistence ---------------------------------------------------------
    def _artifact_extra(self) -> dict[str, Any]:
        return {"checks": getattr(self, "checks_", [])}

    def _restore_extra(self, extra: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        checks = extra.get("checks", [])
        if not isinstance(checks, list) or not all(isinstance(c, dict) for c in checks):
            raise ArtifactError(f"{type(self).__name__} artifact: extra.checks must be a list of records")
        self.checks_ = checks
        self._db_index = None

    def _artifact_parts(self) -> dict[str, Any]:
        return {"database_index": self._database_index()} if self._saves_index() else {}

    def _restore_parts(self, parts: dict[str, Any]) -> None:
        index = parts.get("database_index")
        if self._saves_index() != (index is not None):
            raise ArtifactError(
                f"{type(self).__name__} artifact: a model with an approximate index (and only one) holds its "
                "'database_index' part"
            )
        if index is not None:
            if not isinstance(index, BaseIndex) or len(index) != len(self.database_):
                raise ArtifactError(f"{type(self).__name__} artifact: 'database_index' must index the database rows")
            self._db_index = index

    def _check_state(self) -> None:
        database = getattr(self, "database_", None)
        if not isinstance(database, np.ndarray) or database.ndim != 2 or database.dtype != np.float32:
            raise ArtifactError(f"{type(self).__name__} artifact: database_ must be a 2-D float32 array")
        if not np.isfinite(database).all():
            raise ArtifactError(f"{type(self).__name__} artifact: database_ has NaN or inf values")
        for name in self._artifact_arrays:
            if name == "database_":
                continue
            array = getattr(self, name)
            if array.shape != (database.shape[0],) or array.dtype.kind not in "fb":
                raise ArtifactError(
                    f"{type(self).__name__} artifact: {name} must have shape ({database.shape[0]},); "
                    f"got {array.shape} {array.dtype}"
                )
            if array.dtype.kind == "f" and not np.isfinite(array).all():
                raise ArtifactError(f"{type(self).__name__} artifact: {name} has NaN or inf values")


class WrapsCorrection(Correction):
    """A correction that prepares the database (and queries) and then delegates to a fitted inner ``correction_``.

    ``set_params`` with ``correction__name`` also reaches the fitted inner
    correction, so search-time parameters (NNN's ``alpha``) need no refit.
    """

    _artifact_arrays = ()

    @property
    def search_params(self) -> tuple[str, ...]:
        inner = self._inner_template()
        return tuple(f"correction__{name}" for name in getattr(inner, "search_params", ())) if inner is not None else ()

    def _inner_template(self) -> Correction | None:
        return self.correction

    def set_params(self, **params: Any) -> WrapsCorrection:
        super().set_params(**params)
        inner = {key.split("__", 1)[1]: v for key, v in params.items() if key.startswith("correction__")}
        inner.pop("metric", None)  # the fitted inner correction keeps the metric the wrapper chose
        if inner and hasattr(self, "correction_"):
            self.correction_.set_params(**inner)
        return self

    def _search_arrays(self, queries: np.ndarray, k: int, *, progress: bool = True) -> Neighbors:
        return self.correction_._search_arrays(queries, k, progress=progress)

    def _score_arrays(self, queries, ids, raw):
        return self.correction_._score_arrays(queries, ids, raw)

    @property
    def checks_(self) -> list[dict[str, Any]]:  # type: ignore[override]
        """What the fitted inner correction's ``Checked`` indexes measured."""
        return self.correction_.checks_

    def _artifact_extra(self) -> dict[str, Any]:
        return {}

    def _restore_extra(self, extra: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        return None

    def _artifact_parts(self) -> dict[str, Any]:
        return {"correction": self.correction_}

    def _restore_parts(self, parts: dict[str, Any]) -> None:
        if not isinstance(parts.get("correction"), Correction):
            raise ArtifactError(f"{type(self).__name__} artifact: its part 'correction' must be a fitted correction")
        self.correction_ = parts["correction"]
        self.database_ = self.correction_.database_

    def _check_state(self) -> None:
        return None  # the parts checked their own state


class Baseline(Correction):
    """No correction: raw cosine (or inner-product) scores. The reference point for every gain.

    Examples
    --------
    >>> import numpy as np
    >>> Baseline().fit(np.eye(3)).search([[1.0, 0.2, 0.0]], k=2).ids.tolist()
    [[0, 1]]
    """

    needs_bank = False

    def __init__(self, metric: str = "cosine", index: BaseIndex | None = None) -> None:
        self.metric = metric
        self.index = index

    def _search_bias(self) -> None:
        return None


def check_k_param(k: Any, bank: np.ndarray | None, owner: str) -> int:
    k = check_positive_int(k, f"{owner}.k")
    if bank is not None:
        check_k(k, bank.shape[0], name=f"{owner}.k", what="bank rows")
    return k
