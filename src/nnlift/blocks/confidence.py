"""What block embeddings give: per-item confidence and sparse vectors for fast pre-fetch."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._check import check_array, check_finite_scalar, check_positive_int
from ..errors import InputError

__all__ = ["block_entropy", "confidence", "sparse_matrix", "to_sparse"]


def _blocks(embeddings: Any, num_blocks: int) -> np.ndarray:
    array = check_array(embeddings, "block_embeddings")
    num_blocks = check_positive_int(num_blocks, "num_blocks")
    if array.shape[1] % num_blocks:
        raise InputError(f"block_embeddings have {array.shape[1]} columns, not a multiple of num_blocks={num_blocks}")
    return array.reshape(len(array), num_blocks, -1).astype(np.float64)


def block_entropy(embeddings: Any, num_blocks: int) -> np.ndarray:
    """Entropy of each block divided by ``ln(block_size)``, in [0, 1], with 0·ln 0 = 0 (never NaN)."""
    probabilities = _blocks(embeddings, num_blocks)
    logs = np.log(np.where(probabilities > 0, probabilities, 1.0))
    entropy = -(probabilities * logs).sum(axis=2)
    return np.clip(entropy / np.log(probabilities.shape[2]), 0.0, 1.0)


def confidence(
    encoder: Any, vectors: Any, method: str = "blocks", index: Any = None, k: int = 10
) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-item confidence, and each block's largest probability (``None`` without an encoder).

    ``method="blocks"``: ``1 − mean normalised block entropy`` in [0, 1]; items
    like the training collection get peaked blocks, out-of-collection items
    (a car among food) flat ones. ``"knn"``: the untrained baseline, the mean
    similarity of the ``k`` nearest items of ``index`` (the collection's index,
    or its vectors). ``"combined"``: knn at ``k`` and ``k // 3`` neighbours,
    relative density at ``k``, Mahalanobis support and block entropy, each
    calibrated on the collection and joined by Fisher's statistic, itself calibrated
    (:class:`nnlift.outliers.ConfidenceScorer`; fit one yourself to score many
    batches against one calibration, or to leave the encoder out, which on
    WordNet did better). Measured in ``benchmarks/blocks.py``.
    """
    from ..outliers import ConfidenceScorer, knn_confidence

    if method not in ("blocks", "knn", "combined"):
        raise InputError(f"method must be 'blocks', 'knn' or 'combined'; got {method!r}")
    if method != "blocks" and index is None:
        raise InputError(f"method={method!r} needs index= (the collection's index, or its vectors)")
    if method != "knn" and encoder is None:
        raise InputError(f"method={method!r} needs the trained encoder")
    largest = None
    if encoder is not None:
        embeddings = encoder.encode(vectors)
        largest = _blocks(embeddings, encoder.num_blocks).max(axis=2).astype(np.float32)
    if method == "knn":
        return knn_confidence(vectors, index, k), largest
    if method == "combined":
        return ConfidenceScorer("combined", k=k, encoder=encoder).fit(index).score(vectors), largest
    entropy = block_entropy(embeddings, encoder.num_blocks)
    return (1.0 - entropy.mean(axis=1)).astype(np.float32), largest


def to_sparse(block_embeddings: Any, threshold: float = 0.1) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Entries above ``threshold`` of each row, as (indices, values) lists (at most 1/threshold − 1 per block).

    Examples
    --------
    >>> indices, values = to_sparse([[0.7, 0.05, 0.25, 0.0]], threshold=0.1)
    >>> indices[0].tolist(), values[0].astype(float).round(2).tolist()
    ([0, 2], [0.7, 0.25])
    """
    array = check_array(block_embeddings, "block_embeddings")
    threshold = check_finite_scalar(threshold, "threshold", low=0.0, high=1.0)
    keep = array > threshold
    indices = [np.flatnonzero(row) for row in keep]
    values = [array[i, idx] for i, idx in enumerate(indices)]
    return indices, values


def sparse_matrix(block_embeddings: Any, threshold: float = 0.1):
    """The thresholded block embeddings as a scipy CSR matrix (for sparse pre-fetch by dot product)."""
    import scipy.sparse as sp

    array = check_array(block_embeddings, "block_embeddings")
    return sp.csr_matrix(np.where(array > check_finite_scalar(threshold, "threshold", low=0.0), array, 0.0))
