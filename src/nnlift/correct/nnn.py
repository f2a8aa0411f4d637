"""Nearest Neighbor Normalization (NNN, EMNLP 2024).

Each item's score is lowered by its mean similarity to its nearest bank queries.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np

from .._artifact import ArtifactError
from .._base import check_is_fitted
from .._check import check_finite_scalar, check_k
from ..index.recall import check_rows
from ..kernel import topk_arrays
from ..neighbors import Neighbors
from .base import Correction, check_k_param
from ..errors import InputError

__all__ = ["NNN", "nnn_bias"]
logger = logging.getLogger("nnlift")


def nnn_bias(database: np.ndarray, bank: np.ndarray, k: int, *, working_memory=None, progress=True) -> np.ndarray:
    """``b(x) = mean of the k largest s(r, x) over r ∈ bank`` for every database row (validated arrays)."""
    found = topk_arrays(database, bank, k, working_memory=working_memory, progress=progress)
    return found.scores.mean(axis=1, dtype=np.float64).astype(np.float32)


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
    approximate : bool
        Compute the bias and the search through an approximate index and
        measure agreement with exact search on a sample.
    index : str, optional
        With ``approximate``: ``None`` (default) uses nnlift's IVF-blocked GEMM
        (:class:`~nnlift.IVFIndex`, numpy only); a faiss factory string such as
        ``"HNSW32"`` or ``"IVF1024,Flat"`` uses faiss for both passes.
    n_lists, n_probe : int, optional
        IVF lists and lists probed per query group (built-in IVF only).
    max_bias_error : float
        Warn when the approximate bias's mean absolute error, measured on
        ``check_sample`` items, exceeds this.
    min_agreement : float
        Warn when the approximate search's top-1 agreement with exact search,
        measured on ``check_sample`` queries, falls below this.
    check_sample : int
        Rows sampled to measure the approximate mode's agreement.
    working_memory : int, optional
        Bytes of score tiles held at once by the exact kernel.

    Attributes
    ----------
    bias_ : numpy.ndarray of shape (n_database,)
        ``b(x)``, the mean of the k largest bank similarities of each item.
    agreement_ : dict
        Approximate mode only: measured ``bias_mae`` and ``top1_agreement``.

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
        approximate: bool = False,
        index: str | None = None,
        n_lists: int | None = None,
        n_probe: int = 8,
        min_agreement: float = 0.95,
        max_bias_error: float = 1e-3,
        check_sample: int = 256,
        working_memory: int | None = None,
    ) -> None:
        self.k = k
        self.alpha = alpha
        self.metric = metric
        self.approximate = approximate
        self.index = index
        self.n_lists = n_lists
        self.n_probe = n_probe
        self.min_agreement = min_agreement
        self.max_bias_error = max_bias_error
        self.check_sample = check_sample
        self.working_memory = working_memory

    def _fit(self, database: np.ndarray, bank: np.ndarray, progress: bool = True) -> None:
        k = check_k_param(self.k, bank, "NNN")
        check_finite_scalar(self.alpha, "alpha")
        self._folded_index = None
        self._bank_lists = None
        if self.approximate:
            self.bias_, self.agreement_, self._bank_lists = _approximate_bias(self, database, bank, k, progress)
        else:
            self.bias_ = nnn_bias(database, bank, k, working_memory=self.working_memory, progress=progress)

    def _search_bias(self) -> np.ndarray:
        alpha = check_finite_scalar(self.alpha, "alpha")
        return (np.float32(alpha) * self.bias_).astype(np.float32)

    def _search_arrays(self, queries: np.ndarray, k: int, *, progress: bool = True) -> Neighbors:
        if not self.approximate:
            return super()._search_arrays(queries, k, progress=progress)
        index = self._approximate_index()
        if self.index is None:
            found = index.search_arrays(queries, k, bias=self._search_bias())
        else:
            found = index.search(self.fold_queries(queries, _prepared=True), k)
        sample = check_rows(len(queries), self.check_sample)
        exact = super()._search_arrays(queries[sample], 1, progress=False)
        agreement = float(np.mean(found.ids[sample, 0] == exact.ids[:, 0]))
        self.agreement_ = {**getattr(self, "agreement_", {}), "top1_agreement": agreement}
        logger.info("approximate NNN search: top-1 agreement %.4f on %d sampled queries", agreement, len(sample))
        if agreement < self.min_agreement:
            warnings.warn(
                f"approximate NNN search agrees with exact search on only {agreement:.3f} of top-1 results "
                f"(sample of {len(sample)}); raise n_probe or use approximate=False",
                stacklevel=3,
            )
        return found

    def _approximate_index(self):
        if getattr(self, "_folded_index", None) is None:
            if self.index is None:
                from ..index.ivf import IVFIndex

                self._folded_index = IVFIndex("ip", n_lists=self.n_lists, n_probe=self.n_probe, progress=False)
                self._folded_index.add(self.database_)
                # The fit already placed every item among the bank's lists: reuse them, no second k-means.
                if getattr(self, "_bank_lists", None) is not None:
                    self._folded_index.use_lists(*self._bank_lists)
                    self._bank_lists = None
            else:
                from ..index.faiss import FaissIndex

                self._folded_index = FaissIndex(self.index, metric="ip", ef_search=128).add(self.folded_database())
        return self._folded_index

    # -- persistence ---------------------------------------------------------
    # The approximate path saves its search index (with its IVF lists or faiss
    # graph): rebuilt after loading, it would give other neighbours.
    def _artifact_extra(self) -> dict[str, Any]:
        return {"agreement": getattr(self, "agreement_", None)}

    def _restore_extra(self, extra: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        agreement = extra.get("agreement")
        if agreement is not None and (
            not isinstance(agreement, dict) or not all(isinstance(v, (int, float)) for v in agreement.values())
        ):
            raise ArtifactError("NNN artifact: extra.agreement must map names to numbers")
        if agreement is not None:
            self.agreement_ = agreement
        self._folded_index = None
        self._bank_lists = None

    def _artifact_parts(self) -> dict[str, Any]:
        return {"folded_index": self._approximate_index()} if self.approximate else {}

    def _restore_parts(self, parts: dict[str, Any]) -> None:
        from ..index.base import BaseIndex

        if self.approximate != ("folded_index" in parts):
            raise ArtifactError("NNN artifact: an approximate NNN (and only one) holds its 'folded_index' part")
        index = parts.get("folded_index")
        if index is not None:
            if not isinstance(index, BaseIndex) or len(index) != len(self.database_):
                raise ArtifactError("NNN artifact: 'folded_index' must be an index of the model's database rows")
            self._folded_index = index

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
        if bank is None:
            raise InputError("NNN.add needs the bank used in fit to compute the new items' bias: add(vectors, bank)")
        new = self._prepare(vectors, "vectors", width=self.database_.shape[1])
        bank_array = self._prepare(bank, "bank", width=self.database_.shape[1])
        k = check_k(self.k, bank_array.shape[0], name="NNN.k", what="bank rows")
        bias = nnn_bias(new, bank_array, k, working_memory=self.working_memory)
        self.database_ = np.concatenate([self.database_, new])
        self.bias_ = np.concatenate([self.bias_, bias])
        self._folded_index = None
        return self


def _approximate_bias(model: NNN, database, bank, k, progress) -> tuple[np.ndarray, dict[str, Any], tuple | None]:
    """The approximate bias, its measured error, and (IVF path) the bank's centroids with each item's probes."""
    if model.index is None:
        from ..index.ivf import IVFIndex

        index = IVFIndex("ip", n_lists=model.n_lists, n_probe=model.n_probe, progress=progress).add(bank)
        bias, probes = index.topk_mean_and_probes(database, k)
        lists = (index._centroids, probes)
    else:
        from ..index.faiss import FaissIndex

        found = FaissIndex(model.index, metric="ip", ef_search=max(2 * k, 64)).add(bank).search(database, k)
        bias = found.scores.mean(axis=1, dtype=np.float64).astype(np.float32)
        lists = None
    sample = check_rows(len(database), model.check_sample)
    exact = nnn_bias(database[sample], bank, k, progress=False)
    mae = float(np.abs(exact - bias[sample]).mean())
    logger.info("approximate NNN bias: mean absolute error %.2e on %d sampled items", mae, len(sample))
    if mae > model.max_bias_error:
        warnings.warn(
            f"approximate NNN bias has mean absolute error {mae:.2e} > {model.max_bias_error:g} on {len(sample)} "
            "sampled items; raise n_probe or use approximate=False",
            stacklevel=4,
        )
    return bias, {"bias_mae": mae}, lists
