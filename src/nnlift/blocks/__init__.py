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
    "ConfidenceScorer",
    "Feature",
    "SparsePrefetch",
    "Triplets",
    "block_entropy",
    "confidence",
    "describe_features",
    "knn_confidence",
    "mine_triplets",
    "qdrant_prefetch_search",
    "sparse_matrix",
    "steer",
    "to_sparse",
    "train_blocks",
]
