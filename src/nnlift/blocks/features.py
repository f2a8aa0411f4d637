"""Reading and steering block features: what each block cell stands for, and a query pushed towards or away from it.

A feature is one cell ``(block, cell)`` of the block embedding, numbered
``block · block_size + cell``. :func:`describe_features` lists, per feature,
the collection's items that activate it most and the words over-represented
in their labels; :func:`steer` moves probability mass of a query's block
vector onto or off a feature, for :meth:`SparsePrefetch.search`'s candidates.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._check import check_finite_scalar, check_positive_int
from ..errors import InputError

__all__ = ["Feature", "describe_features", "steer"]


@dataclass(frozen=True)
class Feature:
    """One block cell: how much of the collection it wins, its top items, and the words that mark them."""

    feature: int
    block: int
    cell: int
    share: float
    items: list
    words: list

    def __str__(self) -> str:
        words = ", ".join(word for word, _ in self.words) or "—"
        items = "; ".join(str(label) for label, _ in self.items[:3])
        return f"feature {self.feature} (block {self.block}, cell {self.cell}, {100 * self.share:.1f}%): {words} | {items}"


def _words(text: Any) -> set[str]:
    return set(re.findall(r"[a-z][a-z'-]+", str(text).lower()))


def describe_features(
    encoder: Any,
    collection: Any,
    labels: Any,
    *,
    features: Any = None,
    top: int = 5,
    words: int = 5,
    min_share: float = 0.0,
) -> list[Feature]:
    """Per feature, the ``top`` items with the highest probability on it, and the marking words.

    ``share`` is the fraction of the collection whose block puts its largest
    probability on this cell. The words are those in the labels of the items
    that win the cell (or of the top items, when none wins it) that add the
    most to its Kullback–Leibler divergence from all labels: ``f · ln(f / g)``,
    with ``f`` a word's frequency there and ``g`` in all labels, counting words
    seen at least twice there (lift alone favours words seen twice). Features are those given, or
    every feature that wins at least ``min_share`` of the collection.
    """
    top = check_positive_int(top, "top")
    words = check_positive_int(words, "words")
    labels = list(labels)
    embeddings = encoder.encode(collection)
    if len(labels) != len(embeddings):
        raise InputError(f"labels has {len(labels)} entries for {len(embeddings)} collection items")
    size = encoder.block_size
    width = encoder.num_blocks * size
    blocks = embeddings.reshape(len(embeddings), encoder.num_blocks, size)
    winners = blocks.argmax(axis=2)  # (n, num_blocks): the cell each item's block puts most mass on
    if features is None:
        share = np.stack([np.bincount(winners[:, b], minlength=size) for b in range(encoder.num_blocks)]) / len(labels)
        chosen = [int(f) for f in np.flatnonzero(share.ravel() >= max(min_share, 1e-12))]
    else:
        chosen = [int(f) for f in np.atleast_1d(features)]
        bad = [f for f in chosen if not 0 <= f < width]
        if bad:
            raise InputError(f"features must be in [0, {width}); got {bad}")
    vocab = [_words(label) for label in labels]
    background = Counter(word for item in vocab for word in item)
    out = []
    for feature in chosen:
        block, cell = divmod(feature, size)
        column = embeddings[:, feature]
        best = np.argsort(-column, kind="stable")[:top]
        members = np.flatnonzero(winners[:, block] == cell)
        pool = members if len(members) else best
        counts = Counter(word for row in pool for word in vocab[row])
        weight = {}
        for word, count in counts.items():
            if count >= 2:
                here = count / len(pool)
                weight[word] = here * np.log(here / (background[word] / len(labels)))
        marked = sorted(weight.items(), key=lambda pair: (-pair[1], pair[0]))[:words]
        out.append(
            Feature(
                feature=feature,
                block=block,
                cell=cell,
                share=float(len(members) / len(labels)),
                items=[(labels[r], float(column[r])) for r in best],
                words=[(word, float(value)) for word, value in marked],
            )
        )
    return out


def steer(encoder: Any, query: Any, feature: int, weight: float) -> np.ndarray:
    """A query's block vector with ``weight`` of probability added to ``feature`` (negative removes it).

    The feature's block is clipped at 0 and renormalised to sum to 1, so it
    stays a distribution; the other blocks are unchanged, and so is
    everything at ``weight == 0``. Returns (n, width) block vectors for
    ``SparsePrefetch.search(queries, blocks=...)``.
    """
    weight = check_finite_scalar(weight, "weight")
    width = encoder.num_blocks * encoder.block_size
    if isinstance(feature, bool) or not isinstance(feature, (int, np.integer)) or not 0 <= feature < width:
        raise InputError(f"feature must be an int in [0, {width}); got {feature!r}")
    vectors = encoder.encode(np.atleast_2d(np.asarray(query, dtype=np.float32)))
    if weight == 0:
        return vectors
    block = int(feature) // encoder.block_size
    part = slice(block * encoder.block_size, (block + 1) * encoder.block_size)
    moved = vectors[:, part].astype(np.float64)
    moved[:, int(feature) - part.start] += weight
    moved = np.maximum(moved, 0.0)
    total = moved.sum(axis=1, keepdims=True)
    if (total <= 0).any():
        raise InputError(f"weight {weight} removes every probability of block {block}")
    vectors[:, part] = (moved / total).astype(np.float32)
    return vectors
