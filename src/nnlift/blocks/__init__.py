"""Block embeddings: a block-softmax encoder trained on a collection's own neighbour structure.

Needs the ``train`` extra (torch).
"""

from ..outliers import ConfidenceScorer, knn_confidence
from .confidence import block_entropy, confidence, sparse_matrix, to_sparse
from .encoder import BlocksEncoder
from .features import Feature, describe_features, steer
from .prefetch import SparsePrefetch, qdrant_prefetch_search
from .train import Triplets, mine_triplets, train_blocks

__all__ = [
    "BlocksEncoder",
    "Feature",
    "describe_features",
    "steer",
    "SparsePrefetch",
    "qdrant_prefetch_search",
    "train_blocks",
    "mine_triplets",
    "Triplets",
    "confidence",
    "knn_confidence",
    "ConfidenceScorer",
    "block_entropy",
    "to_sparse",
    "sparse_matrix",
]
