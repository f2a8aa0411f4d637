"""nnn-retrieval's API on nnlift: the same names, signatures and ``(scores, indices)`` results.

``NNNRanker(NNNRetriever(dim), retrieval_embeds, reference_embeds, alternate_ks,
alternate_weight).search(queries, top_k)`` returns what nnn-retrieval 1.0.1
returns, ties aside, computed by :class:`nnlift.NNN` on the exact kernel:

- ``alternate_ks`` → ``NNN.k``, ``alternate_weight`` → ``NNN.alpha``;
  ``batch_size`` is accepted and unused (nnlift tiles by ``working_memory``);
- like the reference, vectors are **not** normalised (``metric="ip"``); pass
  unit vectors for cosine, or use :class:`nnlift.NNN` with ``metric="cosine"``;
- ``use_gpu=True, gpu_id=N`` runs on ``cuda:N`` (nnlift's CUDA engine);
- unlike the reference: ``alternate_ks`` larger than the reference set is a clear
  error, NaN rows are refused, inputs are never changed, and the model can be
  saved (``ranker.model.save(path)``).

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> images, references = rng.normal(size=(100, 8)), rng.normal(size=(40, 8))
>>> ranker = NNNRanker(NNNRetriever(8), images, references, alternate_ks=16, alternate_weight=0.75)
>>> scores, indices = ranker.search(rng.normal(size=(3, 8)), 5)
>>> indices.shape, scores.dtype.name
((3, 5), 'float32')
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._check import check_array
from ..correct.nnn import NNN
from ..errors import InputError, InputTypeError
from ..index.exact import ExactIndex

__all__ = ["NNNRetriever", "NNNRanker", "DNRanker", "BaseRanker"]


def _device(use_gpu: Any, gpu_id: Any) -> str | None:
    if not isinstance(use_gpu, (bool, np.bool_)):
        raise InputTypeError(f"use_gpu must be True or False; got {use_gpu!r}")
    if not use_gpu:
        return None
    if isinstance(gpu_id, bool) or not isinstance(gpu_id, (int, np.integer)) or gpu_id < 0:
        raise InputError(f"use_gpu=True needs gpu_id, the CUDA device number (0, 1, ...); got {gpu_id!r}")
    return f"cuda:{int(gpu_id)}"


class NNNRetriever:
    """nnn-retrieval's retriever: here it only carries the vector size and the device."""

    def __init__(self, embeds_size: int, use_gpu: bool = False, gpu_id: int = -1) -> None:
        if isinstance(embeds_size, bool) or not isinstance(embeds_size, (int, np.integer)) or embeds_size < 1:
            raise InputError(f"embeds_size must be a positive int (the vector dimension); got {embeds_size!r}")
        self.embeds_size = int(embeds_size)
        self.use_gpu, self.gpu_id = use_gpu, gpu_id
        self.device = _device(use_gpu, gpu_id)


class BaseRanker:
    """Plain inner-product search with the reference's ``search(queries, top_k) -> (scores, indices)``.

    ``reference_embeds`` is required and unused, as in the reference (its baseline ranker).
    """

    def __init__(
        self,
        retriever: NNNRetriever,
        retrieval_embeds: Any,
        reference_embeds: Any,
        batch_size: int = 128,
        use_gpu: bool = False,
        gpu_id: int = -1,
    ) -> None:
        self.retriever = retriever
        self.batch_size = batch_size
        self._check_device(use_gpu, gpu_id)
        self._database = self._checked(retrieval_embeds, "retrieval_embeds")
        self._checked(reference_embeds, "reference_embeds")  # unused, as there
        self.index = ExactIndex(metric="ip", device=self.retriever.device, progress=False).add(self._database)

    def _check_device(self, use_gpu: Any, gpu_id: Any) -> None:
        if not isinstance(self.retriever, NNNRetriever):
            raise InputTypeError(f"retriever must be an NNNRetriever; got {type(self.retriever).__name__}")
        if _device(use_gpu, gpu_id) != self.retriever.device:
            raise InputError(
                f"the ranker (use_gpu={use_gpu}, gpu_id={gpu_id}) and its retriever "
                f"(use_gpu={self.retriever.use_gpu}, gpu_id={self.retriever.gpu_id}) must use the same device"
            )

    def _checked(self, array: Any, name: str) -> np.ndarray:
        """``array`` as validated float32 rows of the retriever's dimension."""
        rows = check_array(array, name, ndim=2)
        if rows.shape[1] != self.retriever.embeds_size:
            raise InputError(
                f"{name} has {rows.shape[1]} dimensions; the retriever was made for {self.retriever.embeds_size}"
            )
        return rows

    def _queries(self, batch_query: Any) -> np.ndarray:
        return self._checked(batch_query, "batch_query")

    def search(self, batch_query: Any, top_k: int) -> tuple[np.ndarray, np.ndarray]:
        """Scores and indices of the ``top_k`` best items per query, best first: (n_queries, top_k) each."""
        found = self.index.search(self._queries(batch_query), top_k)
        return found.scores, found.ids


class NNNRanker(BaseRanker):
    """nnn-retrieval's ``NNNRanker``: NNN with k = ``alternate_ks`` and α = ``alternate_weight``.

    ``model`` is the fitted :class:`nnlift.NNN` (``model.bias_`` is the
    reference's ``alignment_means``).
    """

    def __init__(
        self,
        retriever: NNNRetriever,
        retrieval_embeds: Any,
        reference_embeds: Any,
        alternate_ks: int = 256,
        batch_size: int = 128,
        alternate_weight: float = 0.5,
        use_gpu: bool = False,
        gpu_id: int = -1,
    ) -> None:
        self.retriever = retriever
        self.batch_size = batch_size
        self.alternate_ks, self.alternate_weight = alternate_ks, alternate_weight
        self._check_device(use_gpu, gpu_id)
        database = self._checked(retrieval_embeds, "retrieval_embeds")
        self.model = self._fit(database, self._checked(reference_embeds, "reference_embeds"))

    def _fit(self, database: np.ndarray, bank: np.ndarray) -> NNN:
        template = ExactIndex(metric="ip", device=self.retriever.device, progress=False)
        model = NNN(k=self.alternate_ks, alpha=self.alternate_weight, metric="ip", index=template)
        return model.fit(database, bank, progress=False)

    @property
    def alignment_means(self) -> np.ndarray:
        """Each retrieval item's bias (the mean of its ``alternate_ks`` best reference scores), as in the reference."""
        return self.model.bias_[:, None]

    def search(self, batch_query: Any, top_k: int) -> tuple[np.ndarray, np.ndarray]:
        """Scores ``s(q, x) − alternate_weight·alignment_mean(x)`` and indices of the ``top_k`` best, best first."""
        found = self.model.search(self._queries(batch_query), top_k, progress=False)
        return found.scores, found.ids


class DNRanker(NNNRanker):
    """nnn-retrieval's ``DNRanker``: NNN after distribution normalisation.

    Retrieval items move by ``dn_lambda·mean(retrieval_dev_embeds)``; reference
    vectors and queries by ``dn_lambda·mean(query_dev_embeds)``, as in the reference.
    """

    def __init__(
        self,
        retriever: NNNRetriever,
        retrieval_embeds: Any,
        reference_embeds: Any,
        alternate_ks: int = 256,
        batch_size: int = 128,
        alternate_weight: float = 0.5,
        use_gpu: bool = False,
        gpu_id: int = -1,
        retrieval_dev_embeds: Any = None,
        query_dev_embeds: Any = None,
        dn_lambda: float = 0.5,
    ) -> None:
        if retrieval_dev_embeds is None or query_dev_embeds is None:
            raise InputError("DNRanker needs both retrieval_dev_embeds and query_dev_embeds (their means shift the vectors)")
        self.retriever = retriever
        self._check_device(use_gpu, gpu_id)
        retrieval_dev = self._checked(retrieval_dev_embeds, "retrieval_dev_embeds")
        query_dev = self._checked(query_dev_embeds, "query_dev_embeds")
        self.dn_lambda = dn_lambda
        self.retrieval_shift = (dn_lambda * retrieval_dev.mean(axis=0, dtype=np.float64)).astype(np.float32)
        self.query_shift = (dn_lambda * query_dev.mean(axis=0, dtype=np.float64)).astype(np.float32)
        super().__init__(
            retriever,
            self._checked(retrieval_embeds, "retrieval_embeds") - self.retrieval_shift,
            self._checked(reference_embeds, "reference_embeds") - self.query_shift,
            alternate_ks=alternate_ks,
            batch_size=batch_size,
            alternate_weight=alternate_weight,
            use_gpu=use_gpu,
            gpu_id=gpu_id,
        )

    def _queries(self, batch_query: Any) -> np.ndarray:
        return super()._queries(batch_query) - self.query_shift
