"""Score corrections from a bank of reference queries, and bank-free hubness re-rankers."""

from .augment import AugmentedDatabase
from .base import Baseline, Correction
from .csls import CSLS
from .dn import DistributionNormalization, MeanBias, WithDN
from .fusion import Fusion
from .invgc import InvGC
from .online import OnlineBank
from .nnn import NNN
from .rerank import LocalScaling, MutualProximity
from .softmax import DBNorm, InvertedSoftmax, QBNorm, SinkhornNorm

__all__ = [
    "Correction",
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
]
