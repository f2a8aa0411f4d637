"""Index protocol and backends: exact (default), faiss, hnswlib."""

from .base import BaseIndex, Index
from .checked import Checked, LowRecallError
from .exact import ExactIndex
from .ivf import IVFIndex, neighbor_recall

__all__ = ["Index", "BaseIndex", "Checked", "LowRecallError", "ExactIndex", "IVFIndex", "FaissIndex", "HnswIndex", "QdrantIndex", "neighbor_recall"]


def __getattr__(name: str):
    # Optional backends import their engines only when asked for.
    if name == "FaissIndex":
        from .faiss import FaissIndex

        return FaissIndex
    if name == "QdrantIndex":
        from .qdrant import QdrantIndex

        return QdrantIndex
    if name == "HnswIndex":
        from .hnsw import HnswIndex

        return HnswIndex
    raise AttributeError(f"module 'nnlift.index' has no attribute {name!r}")
