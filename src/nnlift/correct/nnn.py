"""Nearest Neighbor Normalization (NNN, EMNLP 2024).

Each item's score is lowered by its mean similarity to its nearest bank queries.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._base import check_is_fitted
from .._check import check_finite_scalar, check_k, check_row_numbers
from ..errors import InputError
from ..index.base import BaseIndex, build_index
from ..index.checked import shorthand
from ..index.exact import ExactIndex
from .base import Correction, check_k_param

__all__ = ["NNN", "nnn_bias"]


def nnn_bias(database: np.ndarray, bank: np.ndarray, k: int, *, index: BaseIndex | None = None) -> np.ndarray:
    """``b(x) = mean of the k largest s(r, x) over r ∈ bank`` for every database row (validated arrays)."""
    return build_index(ExactIndex(progress=False) if index is None else index, bank).topk_mean(database, k)


class NNN(Correction):
    """Nearest Neighbor Normalization: ``s'(q, x) = s(q, x) − alpha · b(x)``.

    Parameters
    ----------
    k : int
        Bank neighbours averaged into each item's bias (at most the bank size).
    alpha : float
        Weight of the bias. 0.75–1.0 worked best on text; above 1 hurt.
    metric : {"cosine", "ip"}
        ``"cosine"`` normalises copies of every input; ``"ip"`` scores raw vectors.
    index : BaseIndex, optional
        Index template, cloned for the bank (the bias) and for the database
        (the search); default ``ExactIndex()``. ``Checked(IVFIndex())`` is
        approximate and measured; the IVF database index reuses the bank's
        lists, so no second k-means runs.
    approximate : bool
        Shorthand for ``index=Checked(IVFIndex())``.

    Attributes
    ----------
    bias_ : numpy.ndarray of shape (n_database,)
        ``b(x)``, the mean of the k largest bank similarities of each item.
    checks_ : list of dict
        What ``Checked`` indexes measured (the bias's error, the searches' recall).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> database, bank = rng.normal(size=(100, 8)), rng.normal(size=(50, 8))
    >>> model = NNN(k=4, alpha=0.75).fit(database, bank)
    >>> model.search(rng.normal(size=(2, 8)), k=3).ids.shape
    (2, 3)
    """

    search_params = ("alpha",)  # applied at search time: tuning alpha needs no refit

    def __init__(
        self,
        k: int = 16,
        alpha: float = 0.75,
        metric: str = "cosine",
        index: BaseIndex | None = None,
        approximate: bool = False,
    ) -> None:
        self.k = k
        self.alpha = alpha
        self.metric = metric
        self.index = index
        self.approximate = approximate

    def _template(self) -> BaseIndex | None:
        return shorthand(self.approximate, self.index, "NNN")

    def _fit(self, database: np.ndarray, bank: np.ndarray, progress: bool = True) -> None:
        k = check_k_param(self.k, bank, "NNN")
        check_finite_scalar(self.alpha, "alpha")
        bank_index = self._build_index(bank)
        self.bias_ = self._reduce("bank", bank_index, "topk_mean", database, k, progress=progress)
        # Built now, beside the bank's: an IVF index then fills the bank's lists with the database.
        self._db_index = self._build_index(database, like=bank_index)

    def _search_bias(self) -> np.ndarray:
        alpha = check_finite_scalar(self.alpha, "alpha")
        return (np.float32(alpha) * self.bias_).astype(np.float32)

    # -- folding -----------------------------------------------------------
    def folded_database(self) -> np.ndarray:
        """``[x, b(x)]`` per row: store this in any inner-product index."""
        check_is_fitted(self)
        return np.hstack([self.database_, self.bias_[:, None]]).astype(np.float32)

    def fold_queries(self, queries: Any, *, _prepared: bool = False) -> np.ndarray:
        """``[q, −alpha]`` per query: its inner product with ``[x, b(x)]`` is the corrected score."""
        array = queries if _prepared else self._prepare_queries(queries)
        alpha = check_finite_scalar(self.alpha, "alpha")
        return np.hstack([array, np.full((array.shape[0], 1), -alpha, dtype=np.float32)]).astype(np.float32)

    # -- growth --------------------------------------------------------------
    def add(self, vectors: Any, bank: Any = None) -> NNN:
        """Add database items without refitting; their bias comes from the fitted bank.

        The bank is not stored (it may be large), so pass it again here.
        """
        check_is_fitted(self)
        new = self._prepare(vectors, "vectors", width=self.database_.shape[1])
        bias = self._bias_from(bank, new, "add")
        self.database_ = np.concatenate([self.database_, new])
        self.bias_ = np.concatenate([self.bias_, bias])
        self._db_index = None  # rebuilt over the grown database on the next search
        return self

    def remove(self, rows: Any) -> NNN:
        """Remove database rows (the row numbers ``search`` returns); later rows move up, as in ``numpy.delete``.

        The other items' bias is unchanged: it depends on the bank only.

        Examples
        --------
        >>> import numpy as np
        >>> model = NNN(k=1).fit(np.eye(3), np.eye(3))
        >>> model.remove([0]).n_database
        2
        """
        check_is_fitted(self)
        positions = check_row_numbers(rows, len(self.database_))
        if len(positions) == 0:
            return self
        self.database_ = np.delete(self.database_, positions, axis=0)
        self.bias_ = np.delete(self.bias_, positions)
        if getattr(self, "_db_index", None) is not None:
            self._db_index.remove_positions(positions)  # an approximate index keeps its lists or graph
        return self

    def update(self, rows: Any, vectors: Any, bank: Any = None) -> NNN:
        """Replace database rows with new vectors and recompute their bias from the bank (passed again, as in ``add``)."""
        check_is_fitted(self)
        positions = check_row_numbers(rows, len(self.database_))
        order = np.argsort(np.asarray([rows] if np.ndim(rows) == 0 else rows), kind="stable")
        new = self._prepare(vectors, "vectors", width=self.database_.shape[1])
        if len(new) != len(positions):
            raise InputError(f"update got {len(positions)} rows but {len(new)} vectors; give one vector per row")
        bias = self._bias_from(bank, new, "update")
        database, biases = self.database_.copy(), self.bias_.copy()  # a new array: indexes may cache the old one
        database[positions], biases[positions] = new[order], bias[order]
        self.database_, self.bias_ = database, biases
        self._db_index = None  # rebuilt over the changed rows on the next search
        return self

    def _bias_from(self, bank: Any, vectors: np.ndarray, step: str) -> np.ndarray:
        if bank is None:
            raise InputError(f"NNN.{step} needs the bank used in fit to compute the new items' bias: pass bank=")
        bank_array = self._prepare(bank, "bank", width=self.database_.shape[1])
        k = check_k(self.k, bank_array.shape[0], name="NNN.k", what="bank rows")
        return self._reduce("bank", self._build_index(bank_array), "topk_mean", vectors, k)

