"""Measuring the gain: retrieval metrics, hubness, paired bootstrap CIs and tuning on held-out data."""

from .bank import BankReport, BankWarning, bank_report
from .compare import METHODS, MethodResult, MethodSpec, compare_methods
from .bootstrap import PairedDifference, paired_bootstrap
from .hubness import gini_index, hub_occurrence, hubness, k_occurrence
from .metrics import (
    hit_rate_at_k,
    map_at_r,
    mrr,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
    relevance,
    retrieval_metrics,
)
from .tune import TuneResult, expand_grid, metric_per_query, tune

__all__ = [
    "bank_report",
    "BankReport",
    "BankWarning",
    "hit_rate_at_k",
    "recall_at_k",
    "precision_at_k",
    "mrr",
    "map_at_r",
    "ndcg_at_k",
    "relevance",
    "retrieval_metrics",
    "hubness",
    "k_occurrence",
    "gini_index",
    "hub_occurrence",
    "paired_bootstrap",
    "PairedDifference",
    "tune",
    "TuneResult",
    "expand_grid",
    "metric_per_query",
    "compare_methods",
    "METHODS",
    "MethodSpec",
    "MethodResult",
]
