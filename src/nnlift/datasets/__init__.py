"""Real data without downloads: reverse dictionaries (WordNet, GCIDE, FOLDOC), digits, Fashion-MNIST, users' files."""

from __future__ import annotations

import os
from typing import Any

from ..errors import InputError
from .dictd import find_dictd, load_foldoc, load_gcide, parse_foldoc, parse_gcide, read_dictd
from .digits import DigitsSplit, load_digits_split
from .fashion_mnist import FashionMNIST, find_fashion_mnist, load_fashion_mnist, read_idx
from .files import load_embeddings, load_targets
from .reverse import DatasetNotFound, ReverseDictionary
from .synthetic import clustered_unit_vectors
from .wordnet import WordNetNotFound, find_wordnet, load_wordnet, parse_wndb

__all__ = [
    "REVERSE_DICTIONARIES",
    "load_reverse_dictionary",
    "load_wordnet",
    "find_wordnet",
    "parse_wndb",
    "load_gcide",
    "load_foldoc",
    "find_dictd",
    "read_dictd",
    "parse_gcide",
    "parse_foldoc",
    "ReverseDictionary",
    "DatasetNotFound",
    "WordNetNotFound",
    "load_fashion_mnist",
    "find_fashion_mnist",
    "read_idx",
    "FashionMNIST",
    "load_digits_split",
    "DigitsSplit",
    "load_embeddings",
    "load_targets",
    "clustered_unit_vectors",
]

REVERSE_DICTIONARIES = {"wordnet": load_wordnet, "gcide": load_gcide, "foldoc": load_foldoc}


def load_reverse_dictionary(name: str, path: str | os.PathLike | None = None, **options: Any) -> ReverseDictionary:
    """The reverse dictionary ``name`` (wordnet, gcide or foldoc), split alike; ``options`` go to its loader.

    Examples
    --------
    >>> data = load_reverse_dictionary("foldoc", n_bank=1000, n_val=100, n_test=300)  # doctest: +SKIP
    >>> data.summary()["bank"]  # doctest: +SKIP
    1000
    """
    if name not in REVERSE_DICTIONARIES:
        raise InputError(f"the reverse dictionary must be one of {', '.join(REVERSE_DICTIONARIES)}; got {name!r}")
    return REVERSE_DICTIONARIES[name](path, **options)
