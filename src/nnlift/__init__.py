"""nnlift: fix hubs and loose clusters in embedding search with nearest neighbours.

The core needs only numpy and scipy; faiss, hnswlib, qdrant-client, torch and
the command line are optional extras.
"""

from __future__ import annotations

import logging

from ._artifact import ArtifactError, load
from ._base import NotFittedError
from .errors import InputError, InputTypeError, MissingExtraError, NnliftError, UnknownIdError
from .blend import (
    DatabaseAugmentation,
    NeighborhoodBlender,
    alpha_query_expansion,
    blend_neighborhood,
    iterative_neighborhood_blending,
    neighborhood_search,
)
from .correct import (
    AugmentedDatabase,
    CSLS,
    NNN,
    Baseline,
    DBNorm,
    DistributionNormalization,
    InvertedSoftmax,
    LocalScaling,
    MutualProximity,
    QBNorm,
    WithDN,
    MeanBias,
    Fusion,
    OnlineBank,
    InvGC,
    SinkhornNorm,
)
from . import algebra, engines, evaluate, outliers
from .engines import set_engine
from .evaluate import tune
from .index import Checked, ExactIndex, Index, IVFIndex, LowRecallError, neighbor_recall
from .kernel import logsumexp, topk, topk_mean
from .neighbors import Neighbors
from .recommend import Recommender

__version__ = "0.1.0"

logging.getLogger("nnlift").addHandler(logging.NullHandler())

__all__ = [
    "engines",
    "set_engine",
    "topk",
    "topk_mean",
    "logsumexp",
    "Neighbors",
    "Index",
    "ExactIndex",
    "IVFIndex",
    "Checked",
    "LowRecallError",
    "neighbor_recall",
    "FaissIndex",
    "HnswIndex",
    "QdrantIndex",
    "load",
    "Recommender",
    "SimilarityModel",
    "algebra",
    "evaluate",
    "outliers",
    "tune",
    "ArtifactError",
    "NotFittedError",
    "NnliftError",
    "InputError",
    "InputTypeError",
    "UnknownIdError",
    "MissingExtraError",
    "Baseline",
    "NNN",
    "DistributionNormalization",
    "WithDN",
    "MeanBias",
    "Fusion",
    "OnlineBank",
    "InvGC",
    "SinkhornNorm",
    "CSLS",
    "InvertedSoftmax",
    "QBNorm",
    "DBNorm",
    "LocalScaling",
    "MutualProximity",
    "AugmentedDatabase",
    "neighborhood_search",
    "blend_neighborhood",
    "iterative_neighborhood_blending",
    "NeighborhoodBlender",
    "DatabaseAugmentation",
    "alpha_query_expansion",
]


def __getattr__(name: str):
    if name == "SimilarityModel":  # needs torch: imported only when asked for
        from .metric import SimilarityModel

        return SimilarityModel
    if name in ("FaissIndex", "HnswIndex", "QdrantIndex"):
        from . import index

        return getattr(index, name)
    raise AttributeError(f"module 'nnlift' has no attribute {name!r}")
