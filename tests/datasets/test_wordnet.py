import numpy as np
import pytest

from nnlift.datasets import WordNetNotFound, find_wordnet, load_wordnet, parse_wndb
from nnlift.datasets.wordnet import _clean_gloss

HEADER = "  1 This software and database is being provided to you, the LICENSEE, by  \n  2 Princeton University  \n"


def write_wndb(folder, n_synsets=400):
    """A small WNDB-format fixture: synsets with shared lemma lists, markers and quoted examples."""
    for part, code in (("noun", "n"), ("verb", "v"), ("adj", "a"), ("adv", "r")):
        lines = [HEADER.rstrip("\n")]
        for i in range(n_synsets // 4):
            words = [f"{part}_word_{i}", f"alt_{part}_{i % 37}"]
            if part == "adj":
                words[0] += "(p)"
            fields = " ".join(f"{w} 0" for w in words)
            gloss = f'meaning number {i} of {part}; "an example with {part}_word_{i}"'
            lines.append(f"{10000 + i:08d} 03 {code} {len(words):02x} {fields} 000 | {gloss}  ")
        # a synset sharing its lemma list with synset 0 (same document)
        lines.append(
            f"{99999:08d} 03 {code} 02 {part}_word_0 0 alt_{part}_0 0 000 | another sense of {part} word zero  "
        )
        (folder / f"data.{part}").write_text("\n".join(lines) + "\n")
    return folder


def test_parse_and_clean(tmp_path):
    pairs = parse_wndb(write_wndb(tmp_path))
    assert ("adj word 0, alt adj 0", "meaning number 0 of adj") in pairs  # marker stripped, example removed
    assert all('"' not in query and "_" not in doc for doc, query in pairs)
    assert _clean_gloss(' a thing "quoted aside"; "example one"; "example two"') == "a thing"


def test_split_rules_and_determinism(tmp_path):
    (tmp_path / "wn").mkdir()
    folder = write_wndb(tmp_path / "wn")
    data = load_wordnet(folder, seed=3, cache_dir=tmp_path / "cache")
    again = load_wordnet(folder, seed=3, cache_dir=tmp_path / "cache2")
    for name in ("gallery", "bank", "val_queries", "val_targets", "test_queries", "test_targets"):
        np.testing.assert_array_equal(getattr(data, name), getattr(again, name))
    pairs = parse_wndb(folder)
    doc_of = {}
    for doc, query in pairs:
        doc_of.setdefault(query, set()).add(doc)
    gallery = set(data.gallery.tolist())
    # the gallery never holds a bank query's target
    for query in data.bank:
        assert not (doc_of[query] & gallery)
    # every val/test target is its query's own document
    for queries, targets in ((data.val_queries, data.val_targets), (data.test_queries, data.test_targets)):
        for query, target in zip(queries, targets):
            assert data.gallery[target] in doc_of[query]
    # the two senses of word zero share one document, on the same side
    assert len(set(data.gallery.tolist())) == len(data.gallery)
    total = len(data.bank) + len(data.val_queries) + len(data.test_queries)
    assert total == len(pairs)
    assert 0.1 < len(data.val_queries) / (len(data.val_queries) + len(data.test_queries)) < 0.45
    other = load_wordnet(folder, seed=4, cache_dir=tmp_path / "cache")
    assert not np.array_equal(other.gallery, data.gallery)
    small = load_wordnet(folder, seed=3, n_bank=20, n_val=5, n_test=7, cache_dir=tmp_path / "cache")
    assert small.summary()["bank"] == 20 and small.summary()["test"] == 7
    assert set(small.bank.tolist()) <= set(data.bank.tolist())


def test_missing_files_say_how_to_get_them(tmp_path):
    with pytest.raises(WordNetNotFound, match="apt-get install wordnet-base"):
        find_wordnet(tmp_path)


def test_a_smaller_gallery_keeps_every_querys_answer(tmp_path):
    (tmp_path / "wn").mkdir()
    folder = write_wndb(tmp_path / "wn")
    full = load_wordnet(folder, seed=3, n_val=5, n_test=7, cache_dir=tmp_path / "cache")
    small = load_wordnet(folder, seed=3, n_val=5, n_test=7, n_gallery=30, cache_dir=tmp_path / "cache")
    assert len(small.gallery) == 30 < len(full.gallery)
    assert set(small.gallery.tolist()) <= set(full.gallery.tolist())
    for queries, targets, full_targets in (
        (small.val_queries, small.val_targets, full.val_targets),
        (small.test_queries, small.test_targets, full.test_targets),
    ):
        np.testing.assert_array_equal(small.gallery[targets], full.gallery[full_targets])  # the same answers
    with pytest.raises(Exception, match="n_gallery=3 is smaller than"):
        load_wordnet(folder, seed=3, n_val=5, n_test=7, n_gallery=3, cache_dir=tmp_path / "cache")
