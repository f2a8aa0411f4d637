"""What every reverse dictionary shares: the split, its sample, and the build cache.

A reverse dictionary pairs a definition (the query) with the words it
defines (the document). ARCHITECTURE.md §4 fixes one split for all of them
(WordNet, GCIDE, FOLDOC): each document goes to the *ref* or *test* side with
p = ½, together with its queries. The gallery is the test-side documents; the
bank is the ref-side queries, so no bank query's target is in the gallery.
Test-side queries are split 25/75 into *val* and *test*.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError

__all__ = ["ReverseDictionary", "DatasetNotFound", "build_cached", "default_cache_dir"]
logger = logging.getLogger("nnlift")


class DatasetNotFound(FileNotFoundError):
    """A data set's files are not in any standard place (the message says how to install them)."""


@dataclass(frozen=True)
class ReverseDictionary:
    """A split of the reverse dictionary: gallery documents, bank queries and labelled val/test queries.

    ``val_targets`` and ``test_targets`` index ``gallery``.
    """

    gallery: np.ndarray
    bank: np.ndarray
    val_queries: np.ndarray
    val_targets: np.ndarray
    test_queries: np.ndarray
    test_targets: np.ndarray

    def subset(
        self,
        n_bank: int | None = None,
        n_val: int | None = None,
        n_test: int | None = None,
        seed: int = 0,
        n_gallery: int | None = None,
    ) -> ReverseDictionary:
        """A seeded sample of the bank, val and test queries; with ``n_gallery``, of the gallery too.

        A smaller gallery keeps every document a kept val or test query is
        looking for, then fills up with a seeded sample of the others (the
        distractors), so every query still has its answer; ``n_gallery``
        below the number of such targets is an error that names it.
        """
        rng = np.random.default_rng(seed)

        def pick(n: int | None, size: int) -> np.ndarray:
            if n is None or n >= size:
                return np.arange(size)
            if n < 1:
                raise InputError(f"subset sizes must be >= 1; got {n}")
            return np.sort(rng.choice(size, size=n, replace=False))

        bank = pick(n_bank, len(self.bank))
        val = pick(n_val, len(self.val_queries))
        test = pick(n_test, len(self.test_queries))
        gallery = self.gallery
        val_targets, test_targets = self.val_targets[val], self.test_targets[test]
        if n_gallery is not None and n_gallery < len(self.gallery):
            needed = np.union1d(val_targets, test_targets)
            if n_gallery < len(needed):
                raise InputError(
                    f"n_gallery={n_gallery} is smaller than the {len(needed)} documents the kept val and test "
                    "queries look for; raise it or lower n_val/n_test"
                )
            others = np.setdiff1d(np.arange(len(self.gallery)), needed)
            kept = np.sort(np.concatenate([needed, rng.choice(others, size=n_gallery - len(needed), replace=False)]))
            new_position = np.full(len(self.gallery), -1, dtype=np.int64)
            new_position[kept] = np.arange(len(kept))
            gallery, val_targets, test_targets = (
                self.gallery[kept],
                new_position[val_targets],
                new_position[test_targets],
            )
        return ReverseDictionary(
            gallery,
            self.bank[bank],
            self.val_queries[val],
            val_targets,
            self.test_queries[test],
            test_targets,
        )

    def summary(self) -> dict[str, int]:
        return {
            "gallery": len(self.gallery),
            "bank": len(self.bank),
            "val": len(self.val_queries),
            "test": len(self.test_queries),
        }


def split_pairs(pairs: list[tuple[str, str]], seed: int) -> ReverseDictionary:
    """Split ``(document, query)`` pairs by the rule above, seeded: documents to sides, then queries to val/test."""
    if not pairs:
        raise InputError("the reverse dictionary has no (document, query) pairs: are its source files empty?")
    documents = sorted({doc for doc, _ in pairs})
    index = {doc: i for i, doc in enumerate(documents)}
    rng = np.random.default_rng(seed)
    test_side = rng.random(len(documents)) < 0.5
    gallery_ids = np.full(len(documents), -1, dtype=np.int64)
    gallery_ids[test_side] = np.arange(int(test_side.sum()))
    doc_of_query = np.array([index[doc] for doc, _ in pairs], dtype=np.int64)
    queries = np.array([query for _, query in pairs])
    on_test = test_side[doc_of_query]
    bank = queries[~on_test]
    test_queries, test_docs = queries[on_test], doc_of_query[on_test]
    is_val = rng.random(len(test_queries)) < 0.25
    return ReverseDictionary(
        gallery=np.array(documents)[test_side],
        bank=bank,
        val_queries=test_queries[is_val],
        val_targets=gallery_ids[test_docs[is_val]],
        test_queries=test_queries[~is_val],
        test_targets=gallery_ids[test_docs[~is_val]],
    )


def default_cache_dir() -> Path:
    return Path(os.environ.get("NNLIFT_CACHE", Path.home() / ".cache" / "nnlift"))


def build_cached(
    name: str,
    files: list[Path],
    parse: Callable[[], list[tuple[str, str]]],
    *,
    seed: int,
    version: int,
    cache_dir: str | os.PathLike | None = None,
) -> ReverseDictionary:
    """The split of ``parse()``'s ``(document, query)`` pairs, read from the cache when its source files are unchanged.

    The cache key covers the files (path, size, modification time), the
    builder's ``version`` and the seed; a stale or foreign cache is never read.
    """
    stamp: list = [name, version, seed]
    for file in files:
        info = file.stat()
        stamp += [str(file.resolve()), info.st_size, int(info.st_mtime)]
    key = hashlib.sha256(json.dumps(stamp).encode()).hexdigest()[:16]
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    file = cache / f"{name}-reverse-dictionary-{key}.npz"
    if file.is_file():
        with np.load(file, allow_pickle=False) as stored:
            return ReverseDictionary(**{field: stored[field] for field in ReverseDictionary.__dataclass_fields__})
    data = split_pairs(parse(), seed)
    cache.mkdir(parents=True, exist_ok=True)
    tmp = file.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(tmp, **{field: getattr(data, field) for field in ReverseDictionary.__dataclass_fields__})
    os.replace(tmp, file)
    logger.info(
        "built the %s reverse dictionary from %s (%s); cached at %s", name, files[0].parent, data.summary(), file
    )
    return data
