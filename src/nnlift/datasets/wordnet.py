"""The WordNet reverse dictionary: find a synset's words from its definition.

Built from WordNet's WNDB files (``data.noun``, ``data.verb``, ``data.adj``,
``data.adv``), as ARCHITECTURE.md §4 specifies:

- query: a synset's gloss with its quoted examples removed (they often contain the word);
- document: the synset's lemmas joined by ", ", underscores as spaces; synsets
  with identical lemma lists share one document;
- splits (seeded): each document goes to the *ref* or *test* side with p = ½,
  together with its queries. The gallery is the test-side documents; the bank
  is the ref-side queries, so no bank query's target is in the gallery.
  Test-side queries are split 25/75 into *val* and *test*.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError

__all__ = ["ReverseDictionary", "load_wordnet", "find_wordnet", "parse_wndb", "WordNetNotFound"]
logger = logging.getLogger("nnlift")

_PARTS = ("noun", "verb", "adj", "adv")
_BUILD_VERSION = 1
_MARKER = re.compile(r"\([a-z]+\)$")


class WordNetNotFound(FileNotFoundError):
    """The WNDB files are not in any standard place."""


def _candidates(path: str | os.PathLike | None) -> list[Path]:
    if path is not None:
        return [Path(path)]
    places = []
    if os.environ.get("WNHOME"):
        places += [Path(os.environ["WNHOME"]) / "dict", Path(os.environ["WNHOME"])]
    places.append(Path("/usr/share/wordnet"))
    nltk_dirs = [
        os.environ.get("NLTK_DATA", ""),
        str(Path.home() / "nltk_data"),
        "/usr/share/nltk_data",
        "/usr/local/share/nltk_data",
        "/usr/lib/nltk_data",
        "/usr/local/lib/nltk_data",
    ]
    for base in filter(None, nltk_dirs):
        for entry in base.split(os.pathsep):
            places += [Path(entry) / "corpora" / "wordnet", Path(entry) / "corpora" / "wordnet.zip"]
    return places


def find_wordnet(path: str | os.PathLike | None = None) -> Path:
    """The first folder (or NLTK zip) holding ``data.noun`` and friends.

    Looks at ``path`` if given, else ``$WNHOME``, Debian's ``/usr/share/wordnet``
    and the NLTK data directories.
    """
    for place in _candidates(path):
        if place.is_dir() and all((place / f"data.{part}").is_file() for part in _PARTS):
            return place
        if place.is_file() and place.suffix == ".zip":
            with zipfile.ZipFile(place) as archive:
                names = archive.namelist()
            if all(any(n.endswith(f"data.{part}") for n in names) for part in _PARTS):
                return place
    where = str(path) if path is not None else "/usr/share/wordnet, $WNHOME or the NLTK data directories"
    raise WordNetNotFound(
        f"WordNet's WNDB files (data.noun, data.verb, data.adj, data.adv) were not found in {where}. "
        "On Debian/Ubuntu: apt-get install wordnet-base (files in /usr/share/wordnet); or with NLTK: "
        "python -m nltk.downloader wordnet; or pass the folder holding them."
    )


def _read(source: Path, part: str) -> str:
    if source.is_dir():
        return (source / f"data.{part}").read_text(encoding="utf-8", errors="replace")
    with zipfile.ZipFile(source) as archive:
        name = next(n for n in archive.namelist() if n.endswith(f"data.{part}"))
        return archive.read(name).decode("utf-8", errors="replace")


def _clean_gloss(gloss: str) -> str:
    """The definition part of a gloss: quoted example segments are dropped."""
    parts = [p.strip() for p in gloss.split(";")]
    kept = [p for p in parts if p and not p.startswith('"')]
    text = "; ".join(kept)
    return re.sub(r'"[^"]*"', "", text).strip(" ;")


def parse_wndb(source: Path) -> list[tuple[str, str]]:
    """``(document, query)`` per synset, in file order (noun, verb, adj, adv)."""
    pairs = []
    for part in _PARTS:
        for line in _read(source, part).splitlines():
            if not line or line.startswith(" "):  # licence header lines start with two spaces
                continue
            head, _, gloss = line.partition("|")
            fields = head.split()
            if len(fields) < 4:
                continue
            count = int(fields[3], 16)
            lemmas = []
            for i in range(count):
                word = _MARKER.sub("", fields[4 + 2 * i]).replace("_", " ")
                if word not in lemmas:
                    lemmas.append(word)
            query = _clean_gloss(gloss)
            if lemmas and query:
                pairs.append((", ".join(lemmas), query))
    return pairs


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
            gallery, val_targets, test_targets = self.gallery[kept], new_position[val_targets], new_position[test_targets]
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


def _split(pairs: list[tuple[str, str]], seed: int) -> ReverseDictionary:
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


def load_wordnet(
    path: str | os.PathLike | None = None,
    *,
    seed: int = 0,
    n_bank: int | None = None,
    n_val: int | None = None,
    n_test: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    n_gallery: int | None = None,
) -> ReverseDictionary:
    """Build (or read from the cache) the WordNet reverse dictionary split, optionally subsampled.

    Examples
    --------
    >>> data = load_wordnet(n_bank=100, n_val=10, n_test=10)  # doctest: +SKIP
    >>> data.summary()  # doctest: +SKIP
    {'gallery': 51..., 'bank': 100, 'val': 10, 'test': 10}
    """
    source = find_wordnet(path)
    stamp = [str(source.resolve()), _BUILD_VERSION, seed]
    for part in _PARTS:
        file = source / f"data.{part}" if source.is_dir() else source
        info = file.stat()
        stamp += [part, info.st_size, int(info.st_mtime)]
    key = hashlib.sha256(json.dumps(stamp).encode()).hexdigest()[:16]
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    file = cache / f"wordnet-reverse-dictionary-{key}.npz"
    if file.is_file():
        with np.load(file, allow_pickle=False) as stored:
            data = ReverseDictionary(**{name: stored[name] for name in ReverseDictionary.__dataclass_fields__})
    else:
        data = _split(parse_wndb(source), seed)
        cache.mkdir(parents=True, exist_ok=True)
        tmp = file.with_suffix(".tmp.npz")
        np.savez(tmp, **{name: getattr(data, name) for name in ReverseDictionary.__dataclass_fields__})
        os.replace(tmp, file)
        logger.info("built the WordNet reverse dictionary from %s (%s); cached at %s", source, data.summary(), file)
    return data.subset(n_bank, n_val, n_test, seed=seed, n_gallery=n_gallery)
