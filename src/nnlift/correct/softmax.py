"""Inverted softmax and its relatives: QB-Norm's dynamic inverted softmax and DBNorm.

All are computed in log space with the index's log-sum-exp reduction (the
kernel's streaming one on ``ExactIndex``), so no bank × database matrix is
ever built.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._artifact import ArtifactError
from .._check import check_finite_scalar, check_k, check_positive_int
from ..index.base import BaseIndex
from ..neighbors import Neighbors
from .base import Correction
from ..errors import InputError

__all__ = ["InvertedSoftmax", "QBNorm", "DBNorm", "SinkhornNorm"]


def _check_beta(beta: Any) -> float:
    beta = check_finite_scalar(beta, "beta")
    if beta <= 0:
        raise InputError(f"beta must be > 0; got {beta}")
    return beta


def _softmax_bias(model: Correction, on: str, bank_index: BaseIndex, database: np.ndarray, beta: float, progress: bool):
    """``(1/β)·log Σ_{r∈bank} exp(β·s(r, x))`` for every database row, by the bank index's log-sum-exp."""
    return model._reduce(on, bank_index, "logsumexp", database, beta, progress=progress)


class InvertedSoftmax(Correction):
    """Inverted softmax: ``s(q, x) − (1/β)·log Σ_{r∈R} exp(β·s(r, x))``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> model = InvertedSoftmax(beta=20).fit(rng.normal(size=(30, 4)), rng.normal(size=(20, 4)))
    >>> bool(np.isfinite(model.bias_).all())
    True
    """

    def __init__(self, beta: float = 20.0, metric: str = "cosine", index: BaseIndex | None = None) -> None:
        self.beta = beta
        self.metric = metric
        self.index = index

    def _fit(self, database, bank, progress: bool = True) -> None:
        beta = _check_beta(self.beta)
        bank_index = self._build_index(bank)
        self.bias_ = _softmax_bias(self, "bank", bank_index, database, beta, progress)
        self._db_index = self._build_index(database, like=bank_index)  # an IVF one fills the bank's lists


class QBNorm(Correction):
    """QB-Norm with the dynamic inverted softmax (DIS).

    The activation set is every database item that is among the top-``k`` of
    some bank query. A query whose raw top-1 item is in the set gets inverted
    softmax scores; any other query keeps its raw scores. This keeps the
    correction from hurting when the bank is out of domain.

    Attributes
    ----------
    activated_ : numpy.ndarray of bool, shape (n_database,)
        The activation set.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> model = QBNorm().fit(rng.normal(size=(30, 4)), rng.normal(size=(20, 4)))
    >>> int(model.activated_.sum()) <= 20
    True
    """

    _artifact_arrays = ("database_", "bias_", "activated_")

    def __init__(self, beta: float = 20.0, k: int = 1, metric: str = "cosine", index: BaseIndex | None = None) -> None:
        self.beta = beta
        self.k = k
        self.metric = metric
        self.index = index

    def _fit(self, database, bank, progress: bool = True) -> None:
        beta = _check_beta(self.beta)
        k = check_k(self.k, database.shape[0], name="QBNorm.k", what="database rows")
        bank_index = self._build_index(bank)
        if k == 1:  # each bank query's top-1 item comes from the bias pass's own scores: no second pass
            self.bias_, activating = self._reduce(
                "bank", bank_index, "logsumexp", database, beta, column_best=True, progress=progress
            )
        else:
            self.bias_ = _softmax_bias(self, "bank", bank_index, database, beta, progress)
        self._db_index = self._build_index(database, like=bank_index)  # an IVF one fills the bank's lists
        if k > 1:
            activating = self._reduce("database", self._db_index, "search_arrays", bank, k).ids.ravel()
        self.activated_ = np.zeros(database.shape[0], dtype=bool)
        self.activated_[activating[activating >= 0]] = True

    def is_activated(self, queries: Any) -> np.ndarray:
        """Whether each query's raw top-1 item is in the activation set (so IS applies)."""
        return self._activated(self._prepare_queries(queries))

    def _activated(self, queries: np.ndarray) -> np.ndarray:
        top1 = self._reduce("database", self._database_index(), "search_arrays", queries, 1)
        return self.activated_[top1.ids[:, 0]]

    def _search_arrays(self, queries: np.ndarray, k: int, *, progress: bool = True) -> Neighbors:
        active = self._activated(queries)
        ids = np.empty((len(queries), k), dtype=np.int64)
        scores = np.empty((len(queries), k), dtype=np.float32)
        for mask, bias in ((active, self.bias_), (~active, None)):
            if mask.any():
                part = self._reduce(
                    "database", self._database_index(), "search_arrays", queries[mask], k, bias=bias, progress=progress
                )
                ids[mask], scores[mask] = part.ids, part.scores
        return Neighbors(ids, scores)

    def _score_arrays(self, queries, ids, raw):
        active = self._activated(queries)
        return np.where(active[:, None], raw - self.bias_[ids], raw).astype(np.float32)


class DBNorm(Correction):
    """Dual-bank normalisation: inverted softmax over a query bank and over a gallery bank.

    ``s(q, x) − (1/β)·log(Σ_{r∈R_query} exp(β·s(r, x)) + Σ_{g∈R_gallery} exp(β·s(g, x)))``.
    The gallery bank is a sample of database-like items; pass one that does
    not contain the database itself (if omitted, the database is used and each
    item's own term ``exp(β·s(x, x))`` is part of its normaliser).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> database, bank = rng.normal(size=(30, 4)), rng.normal(size=(20, 4))
    >>> model = DBNorm().fit(database, bank, gallery_bank=rng.normal(size=(25, 4)))
    >>> model.search(bank[:1], k=2).ids.shape
    (1, 2)
    """

    def __init__(
        self,
        beta: float = 20.0,
        gallery_beta: float | None = None,
        metric: str = "cosine",
        index: BaseIndex | None = None,
    ) -> None:
        self.beta = beta
        self.gallery_beta = gallery_beta
        self.metric = metric
        self.index = index

    def _fit(self, database, bank, gallery_bank: Any = None, progress: bool = True) -> None:
        beta = _check_beta(self.beta)
        gallery_beta = beta if self.gallery_beta is None else _check_beta(self.gallery_beta)
        bank_index = self._build_index(bank)
        query_side = beta * _softmax_bias(self, "bank", bank_index, database, beta, progress)
        self._db_index = self._build_index(database, like=bank_index)  # an IVF one fills the bank's lists
        if gallery_bank is None:
            gallery_index = self._db_index
        else:
            gallery_index = self._build_index(self._prepare(gallery_bank, "gallery_bank", database.shape[1]))
        gallery_side = gallery_beta * _softmax_bias(self, "gallery", gallery_index, database, gallery_beta, progress)
        self.bias_ = dbnorm_bias(query_side, gallery_side, beta)


def dbnorm_bias(query_side: np.ndarray, gallery_side: np.ndarray, beta: float) -> np.ndarray:
    """DBNorm's bias from the two banks' scaled log-sum-exps: ``logaddexp(β·lse_R, β_g·lse_G) / β``."""
    query_side, gallery_side = query_side.astype(np.float64), gallery_side.astype(np.float64)
    return (np.logaddexp(query_side, gallery_side) / beta).astype(np.float32)


class SinkhornNorm(Correction):
    """Sinkhorn normalisation of the bank × database similarities (DBSN, ACM MM 2025, arXiv 2508.02538).

    Inverted softmax normalises each database item's column of ``exp(β·S)``
    over the bank once. Sinkhorn alternates that with normalising each bank
    row over the database, so every bank query spreads the same mass and
    every item receives the same mass: a hub cannot take more than its share.
    In log space, with potentials in units of similarity (``F`` per bank row,
    ``G`` per item, both starting at 0), each iteration is::

        G_j = −(1/β)·log Σ_i exp(β·(s(r_i, x_j) + F_i)) − (1/β)·log n      (columns)
        F_i = −(1/β)·log Σ_j exp(β·(s(r_i, x_j) + G_j)) − (1/β)·log m      (rows)

    and search ranks by ``s(q, x_j) + G_j`` (``bias_ = −G``), from the last
    column step. ``iterations=1`` is inverted softmax (its bias, plus a
    constant). Each log-sum-exp is the index's streaming reduction over
    vectors with one extra coordinate, ``[x, G]`` against
    ``[r, 1]``, so no bank × database matrix is built. ``gallery_bank`` (a
    sample of database-like items) joins the bank's rows, as in DBNorm.

    Attributes
    ----------
    row_error_ : float
        After the last iteration, the largest relative deviation of a bank
        row's mass from its share (0 when converged).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> model = SinkhornNorm(beta=10, iterations=5).fit(rng.normal(size=(40, 4)), rng.normal(size=(30, 4)))
    >>> model.search(rng.normal(size=(1, 4)), k=2).ids.shape, model.row_error_ < 0.2
    ((1, 2), True)
    """

    def __init__(
        self, beta: float = 20.0, iterations: int = 3, metric: str = "cosine", index: BaseIndex | None = None
    ) -> None:
        self.beta = beta
        self.iterations = iterations
        self.metric = metric
        self.index = index

    def _lse(self, stored: np.ndarray, offsets: np.ndarray, queries: np.ndarray, beta: float, progress: bool):
        """``(1/β)·log Σ_j exp(β·(q·s_j + offsets_j))`` per query: an index over ``[s, offsets]``, queries ``[q, 1]``."""
        index = self._build_index(np.c_[stored, offsets.astype(np.float32)].astype(np.float32))
        lifted = np.c_[queries, np.ones(len(queries), dtype=np.float32)].astype(np.float32)
        return self._reduce("sinkhorn", index, "logsumexp", lifted, beta, progress=progress).astype(np.float64)

    def _fit(self, database, bank, gallery_bank: Any = None, progress: bool = True) -> None:
        beta = _check_beta(self.beta)
        iterations = check_positive_int(self.iterations, "SinkhornNorm.iterations")
        rows = bank if gallery_bank is None else np.r_[bank, self._prepare(gallery_bank, "gallery_bank", bank.shape[1])]
        m, n = len(rows), len(database)
        row_share, column_share = np.log(m) / beta, np.log(n) / beta
        row_potential, column_potential = np.zeros(m), np.zeros(n)
        for step in range(iterations):
            if step:
                row_potential = -self._lse(database, column_potential, rows, beta, progress) - row_share
            column_potential = -self._lse(rows, row_potential, database, beta, progress) - column_share
        # the columns were just normalised; how far is each row from its share?
        mass = np.exp(beta * (self._lse(database, column_potential, rows, beta, progress) + row_potential + row_share))
        self.row_error_ = float(np.abs(mass - 1.0).max())
        self.bias_ = (-column_potential).astype(np.float32)
        self._db_index = self._build_index(database)

    def _artifact_extra(self) -> dict[str, Any]:
        return {**super()._artifact_extra(), "row_error": self.row_error_}

    def _restore_extra(self, extra: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        super()._restore_extra(extra, arrays)
        error = extra.get("row_error")
        if not isinstance(error, float) or not np.isfinite(error) or error < 0:
            raise ArtifactError("SinkhornNorm artifact: extra.row_error must be a finite number >= 0")
        self.row_error_ = error
