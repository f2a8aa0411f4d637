"""Real data without downloads: the WordNet reverse dictionary, digits, and users' own files."""

from .digits import DigitsSplit, load_digits_split
from .files import load_embeddings, load_targets
from .synthetic import clustered_unit_vectors
from .wordnet import ReverseDictionary, WordNetNotFound, find_wordnet, load_wordnet, parse_wndb

__all__ = [
    "load_wordnet",
    "find_wordnet",
    "parse_wndb",
    "ReverseDictionary",
    "WordNetNotFound",
    "load_digits_split",
    "DigitsSplit",
    "load_embeddings",
    "load_targets",
    "clustered_unit_vectors",
]
