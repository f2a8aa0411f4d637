"""Cross-domain similarity local scaling (CSLS): ``2·s(q,x) − r_X(x) − r_Q(q)``."""

from __future__ import annotations

import numpy as np

from .._check import check_k
from ..index.base import BaseIndex
from .base import Correction, check_k_param

__all__ = ["CSLS"]


class CSLS(Correction):
    """CSLS with a bank: ``r_X(x)`` is the mean of the top-k bank similarities of x.

    Within a query it ranks like NNN with alpha = ½. Both means come from the
    ``index`` template's mean-of-top-k reduction (bank side at fit, database
    side per query), so ``index=Checked(IVFIndex())`` makes it approximate. With ``query_term=True``
    the query side ``r_Q(q)`` (mean of the query's top-k database scores) is
    subtracted too, so scores are comparable across queries (for thresholds).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> model = CSLS(k=3).fit(rng.normal(size=(30, 4)), rng.normal(size=(20, 4)))
    >>> model.search(rng.normal(size=(1, 4)), k=2).ids.shape
    (1, 2)
    """

    scale = 2.0
    search_params = ("query_term",)

    def __init__(
        self, k: int = 10, query_term: bool = True, metric: str = "cosine", index: BaseIndex | None = None
    ) -> None:
        self.k = k
        self.query_term = query_term
        self.metric = metric
        self.index = index

    def _fit(self, database, bank, progress: bool = True) -> None:
        k = check_k_param(self.k, bank, "CSLS")
        check_k(k, database.shape[0], name="CSLS.k", what="database rows")
        bank_index = self._build_index(bank)
        self.bias_ = self._reduce("bank", bank_index, "topk_mean", database, k, progress=progress)
        self._db_index = self._build_index(database, like=bank_index)

    def _search_bias(self) -> np.ndarray:
        return (0.5 * self.bias_).astype(np.float32)

    def _query_term(self, queries: np.ndarray) -> np.ndarray | None:
        if not self.query_term:
            return None
        return self._reduce("database", self._database_index(), "topk_mean", queries, self.k)
