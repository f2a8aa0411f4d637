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

import os
import re
import zipfile
from pathlib import Path

from .reverse import DatasetNotFound, ReverseDictionary, build_cached

__all__ = ["ReverseDictionary", "load_wordnet", "find_wordnet", "parse_wndb", "WordNetNotFound"]

_PARTS = ("noun", "verb", "adj", "adv")
_BUILD_VERSION = 1
_MARKER = re.compile(r"\([a-z]+\)$")


class WordNetNotFound(DatasetNotFound):
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
    files = [source / f"data.{part}" for part in _PARTS] if source.is_dir() else [source]
    data = build_cached("wordnet", files, lambda: parse_wndb(source), seed=seed, version=_BUILD_VERSION,
                        cache_dir=cache_dir)  # fmt: skip
    return data.subset(n_bank, n_val, n_test, seed=seed, n_gallery=n_gallery)
