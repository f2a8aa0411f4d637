"""Reverse dictionaries from dictd databases: GCIDE and FOLDOC (Debian ``dict-gcide``, ``dict-foldoc``).

A dictd database is an ``.index`` file of ``headword<TAB>offset<TAB>length``
lines (numbers in dictd's base-64 digits ``A–Z a–z 0–9 + /``) and a
``.dict.dz`` file, gzip-compatible (dictzip), holding the entries' text at
those byte offsets. Several index lines may point at one entry (GCIDE indexes
the phrases and Latin names an entry mentions), so entries are read once per
``(offset, length)``.

Each entry gives one document and one query per definition, split as every
reverse dictionary is (:mod:`nnlift.datasets.reverse`):

- **GCIDE** (Webster's 1913, with WordNet 1.5 additions): the document is the
  entry's headword, its capital first letter lowered when nothing else in it
  is capital (Webster capitalises every headword; WordNet's additions do not),
  and entries for the same word share one; a query is one
  sense's definition, with its source marker (``[1913 Webster]``), sense
  number, usage label (``(Zool.)``), quotations, notes, synonyms and phrase
  sub-entries (``{Adam's apple}, ...``) removed.
- **FOLDOC** (computing terms): the document is the headword and its aliases
  (the lines before the body) joined by ", "; the query is the body's first
  paragraph, with its ``<category>`` tags and ``{link}`` braces removed.
  Bodies that only point elsewhere ("See {SIMULA}.") give no query.

A "definition" under three words (a cross-reference) or over 1,000 characters
(GCIDE's lists of "Un-" compounds) is dropped.

In both, the headword's own occurrences in a query are masked with "…": a
reverse dictionary asks for the word from its definition, and a definition
that names the word would be answered by string matching alone (Hill et al.,
TACL 2016, exclude it the same way).
"""

from __future__ import annotations

import gzip
import os
import re
from pathlib import Path

from ..errors import InputError
from .reverse import DatasetNotFound, ReverseDictionary, build_cached

__all__ = ["find_dictd", "read_dictd", "parse_gcide", "parse_foldoc", "load_gcide", "load_foldoc"]

_DIGITS = {c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}
_PACKAGES = {"gcide": "dict-gcide", "foldoc": "dict-foldoc"}
_BUILD_VERSION = 1
_MIN_WORDS = 3  # a shorter "definition" is a cross-reference or a fragment
_MAX_CHARS = 1_000  # a longer one is a word list (GCIDE's "Un-" compounds), not a definition


def find_dictd(name: str, path: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """The ``(index, dict.dz)`` files of dictd database ``name``: in ``path`` (a folder) or /usr/share/dictd."""
    folders = [Path(path)] if path is not None else [Path("/usr/share/dictd"), Path("/usr/local/share/dictd")]
    for folder in folders:
        index, body = folder / f"{name}.index", folder / f"{name}.dict.dz"
        if not body.is_file():
            body = folder / f"{name}.dict"  # an uncompressed database
        if index.is_file() and body.is_file():
            return index, body
    where = str(path) if path is not None else "/usr/share/dictd"
    raise DatasetNotFound(
        f"the {name} dictd database ({name}.index and {name}.dict.dz) was not found in {where}. "
        f"On Debian/Ubuntu: apt-get install {_PACKAGES.get(name, 'dict-' + name)}; or pass the folder holding them."
    )


def _number(text: str, line: str) -> int:
    value = 0
    for character in text:
        if character not in _DIGITS:
            raise InputError(f"not a dictd index line (bad base-64 number {text!r}): {line!r}")
        value = value * 64 + _DIGITS[character]
    return value


def read_dictd(index: Path, body: Path) -> list[str]:
    """Every entry's text, once each, in the order of the database file."""
    data = gzip.decompress(body.read_bytes()) if body.suffix == ".dz" else body.read_bytes()
    spans = set()
    for line in index.read_text(encoding="utf-8", errors="replace").splitlines():
        fields = line.split("\t")
        if len(fields) < 3:
            if line.strip():
                raise InputError(f"not a dictd index line (headword, offset, length): {line!r} in {index}")
            continue
        if fields[0].startswith("00-database") or fields[0].startswith("00database"):
            continue  # the database's own description
        start, length = _number(fields[1], line), _number(fields[2], line)
        if start + length > len(data):
            raise InputError(f"{index} points past the end of {body} ({start} + {length} > {len(data)} bytes)")
        spans.add((start, length))
    return [data[start : start + length].decode("utf-8", errors="replace") for start, length in sorted(spans)]


def _mask(text: str, words: list[str]) -> str:
    for word in sorted(words, key=len, reverse=True):
        if word.lower() not in text.lower():
            continue  # most definitions: no pattern to compile
        text = re.sub(rf"(?<!\w){re.escape(word)}(?!\w)", "…", text, flags=re.IGNORECASE)
    return text


def _flat(text: str) -> str:
    """One line: ``{link}`` braces dropped, whitespace collapsed."""
    return " ".join(text.replace("{", "").replace("}", "").split())


# ---------------------------------------------------------------------- GCIDE

_GCIDE_SOURCE = re.compile(r"\[(?:[^\[\]]*?(?:Webster|WordNet|PJC|Century|Suppl\.)[^\[\]]*?)\]")
_GCIDE_HEAD = re.compile(r"^(?P<word>[^\\\n]+?) \\")
_GCIDE_LABEL = re.compile(r"^(?:\d+\.\s*|\([a-z]\)\s*|\((?:[A-Z][\w.]*\s?)+\)\s*,?\s*)+")
_GCIDE_QUOTE = re.compile(r"--\s*[A-Z][\w.' ]*\.?\s*$")
_BRACKETED = re.compile(r"\[[^\[\]]*\]")
_QUOTE_INDENT = 8  # quotations sit deeper than definitions (3 to 6 spaces)


def _gcide_header_end(entry: str) -> int:
    """Where the header (headword, pronunciation, part of speech, etymology) ends: after its first line and
    any lines its pronunciation (between backslashes) or square brackets stay open over."""
    depth, slashes, position = 0, 0, 0
    for line in entry.splitlines(keepends=True):
        position += len(line)
        depth += line.count("[") - line.count("]")
        slashes += line.count("\\")
        if depth <= 0 and slashes % 2 == 0:
            return position
    return position


def _unbracket(text: str) -> str:
    """Square-bracketed etymologies and labels ([Obs.], [L. ...]) removed, innermost first."""
    while True:
        stripped = _BRACKETED.sub("", text)
        if stripped == text:
            return text
        text = stripped


def parse_gcide(entries: list[str]) -> list[tuple[str, str]]:
    """``(headword, definition)`` per sense of each GCIDE entry, headword masked in the definition."""
    pairs = []
    for entry in entries:
        entry = entry.lstrip("\n")
        head = _GCIDE_HEAD.match(entry)
        if head is None:
            continue  # a quotation or note with no headword line
        word = head.group("word").strip().replace('"', "").replace("`", "").replace("*", "")
        if not any(c.isupper() for c in word[1:]):
            word = word[:1].lower() + word[1:]  # Webster capitalises every headword: "Way" and "way" are one word
        for chunk in _GCIDE_SOURCE.split(entry[_gcide_header_end(entry) :]):
            paragraph = chunk.strip("\n").split("\n\n")[0]
            indent = len(paragraph) - len(paragraph.lstrip(" "))
            text = _flat(_unbracket(paragraph))
            if not text or indent >= _QUOTE_INDENT or _GCIDE_QUOTE.search(text):
                continue  # a quotation
            if text.startswith(("Note:", "Syn:", "Syn.", "See ", "Cf.", "Etym:")) or paragraph.lstrip().startswith("{"):
                continue  # a note, synonyms, a pointer, or a phrase defined under this entry
            definition = _GCIDE_LABEL.sub("", text)
            definition = _mask(definition, [word])
            if len(definition.split()) >= _MIN_WORDS and len(definition) <= _MAX_CHARS:
                pairs.append((word, definition))
    return pairs


# --------------------------------------------------------------------- FOLDOC

_FOLDOC_TAG = re.compile(r"^\s*<[^<>]*>\s*")
_FOLDOC_LABEL = re.compile(r"^\s*1\.\s*(?:<[^<>]*>\s*)?")  # "1. <category>": the first of several senses
_FOLDOC_DATE = re.compile(r"^\(\d{4}-\d{2}-\d{2}\)$")


def parse_foldoc(entries: list[str]) -> list[tuple[str, str]]:
    """``(headword, aliases…, first paragraph)`` per FOLDOC entry, names masked in the definition."""
    pairs = []
    for entry in entries:
        paragraphs = [p for p in re.split(r"\n\s*\n", entry.strip("\n")) if p.strip()]
        if len(paragraphs) < 2:
            continue
        names = [line.strip() for line in paragraphs[0].splitlines() if line.strip()]
        body = _FOLDOC_LABEL.sub("", _FOLDOC_TAG.sub("", paragraphs[1]))
        if _FOLDOC_DATE.match(body.strip()) or body.lstrip().startswith("See "):
            continue  # a date line or a pointer to another entry
        definition = _flat(_mask(body, names))
        if names and len(definition.split()) >= _MIN_WORDS and len(definition) <= _MAX_CHARS:
            pairs.append((", ".join(dict.fromkeys(names)), definition))
    return pairs


def _load(name: str, parse, path, seed, n_bank, n_val, n_test, cache_dir, n_gallery) -> ReverseDictionary:
    index, body = find_dictd(name, path)
    data = build_cached(name, [index, body], lambda: parse(read_dictd(index, body)), seed=seed,
                        version=_BUILD_VERSION, cache_dir=cache_dir)  # fmt: skip
    return data.subset(n_bank, n_val, n_test, seed=seed, n_gallery=n_gallery)


def load_gcide(
    path: str | os.PathLike | None = None,
    *,
    seed: int = 0,
    n_bank: int | None = None,
    n_val: int | None = None,
    n_test: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    n_gallery: int | None = None,
) -> ReverseDictionary:
    """The GCIDE reverse dictionary (Debian ``dict-gcide``), split and optionally subsampled like WordNet's.

    Examples
    --------
    >>> data = load_gcide(n_bank=100, n_val=10, n_test=10)  # doctest: +SKIP
    >>> data.summary()  # doctest: +SKIP
    {'gallery': 5..., 'bank': 100, 'val': 10, 'test': 10}
    """
    return _load("gcide", parse_gcide, path, seed, n_bank, n_val, n_test, cache_dir, n_gallery)


def load_foldoc(
    path: str | os.PathLike | None = None,
    *,
    seed: int = 0,
    n_bank: int | None = None,
    n_val: int | None = None,
    n_test: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    n_gallery: int | None = None,
) -> ReverseDictionary:
    """The FOLDOC reverse dictionary of computing terms (Debian ``dict-foldoc``), split like WordNet's."""
    return _load("foldoc", parse_foldoc, path, seed, n_bank, n_val, n_test, cache_dir, n_gallery)
