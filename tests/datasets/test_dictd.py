"""GCIDE and FOLDOC reverse dictionaries from dictd databases, on fixtures in the real file format."""

from pathlib import Path

import numpy as np
import pytest

from nnlift.datasets import DatasetNotFound, load_foldoc, load_gcide, load_reverse_dictionary
from nnlift.datasets.dictd import find_dictd, parse_foldoc, parse_gcide, read_dictd

from .make_dictd_fixtures import b64, dictzip

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def write_dictd(folder, name, entries):
    """A dictd database: an index of headword/offset/length (dictd's base 64) and a dictzip body."""
    text, index = b"", []
    for headword, entry in entries:
        data = entry.encode()
        index.append(f"{headword}\t{b64(len(text))}\t{b64(len(data))}")
        text += data
    (folder / f"{name}.index").write_text("\n".join(index) + "\n")
    (folder / f"{name}.dict.dz").write_bytes(dictzip(text))
    return folder


def foldoc_entries(n):
    for i in range(n):
        term = f"term{i}"
        yield term, (f"{term}\nT{i}\n\n   <topic{i % 7}> A made-up computing idea number {i} of group {i % 23}, "
                     f"unlike {term} itself.\n\n   (2001-01-0{1 + i % 9})\n\n")  # fmt: skip


def test_the_real_files_read_with_their_dictzip_header_and_shared_entries():
    entries = read_dictd(*find_dictd("gcide", FIXTURES))
    packed = (FIXTURES / "gcide.dict.dz").read_bytes()
    assert packed[3] & 4 and packed[12:14] == b"RA"  # FEXTRA with dictzip's RA field, as the real file has
    assert len(entries) == 14  # 15 index lines: two point at one entry, the database's own description is left out
    assert not any(entry.startswith("00-database") for entry in entries)


def test_load_gcide_builds_the_split_from_the_real_files(tmp_path):
    data = load_gcide(FIXTURES, seed=0, cache_dir=tmp_path)
    pairs = parse_gcide(read_dictd(*find_dictd("gcide", FIXTURES)))
    assert sum(data.summary()[part] for part in ("bank", "val", "test")) == len(pairs)
    assert set(data.gallery.tolist()) <= {word for word, _ in pairs}


def test_gcide_senses_are_cleaned_and_the_headword_masked():
    pairs = parse_gcide(read_dictd(*find_dictd("gcide", FIXTURES)))
    by_word = {}
    for word, definition in pairs:
        by_word.setdefault(word, []).append(definition)
    assert by_word["detract"] == [  # both entries (v. t. and v. i.), one document; quotations and synonyms gone
        "To take away a part or something, especially from one's credit; to lessen reputation; to derogate; to "
        "defame; -- often with from.",
        "To take away; to withdraw.",
        "To take credit or reputation from; to defame.",
    ]
    assert by_word["terrier"][0] == "An auger or borer."  # etymology over two lines and [Obs.] removed
    assert by_word["granger stocks"] == ["Stocks or shares of the granger railroads."]  # a two-line header
    assert "Way" not in by_word and any(d.endswith("as, a great …; a long ….") for d in by_word["way"])
    assert "…" in by_word["terrier"][1]  # "Skye terrier" names the word: masked
    assert all("[" not in d and "--" != d[:2] and "{" not in d for ds in by_word.values() for d in ds)


def test_foldoc_documents_join_aliases_and_pointers_give_no_query():
    pairs = dict(parse_foldoc(read_dictd(*find_dictd("foldoc", FIXTURES))))
    assert pairs["Association Française des Utilisateurs d'Unix, AFUU"] == (
        "(et des systèmes ouverts, …) French Association of Unix Users."  # the <body> tag gone, the alias masked
    )
    assert not any("SIMULA" in document for document in pairs)  # "See {SIMULA}." is only a pointer
    assert pairs["CAV"] == "Constant Angular Velocity"
    assert "TTL" not in pairs  # "1. transistor-transistor logic.": two words, a fragment
    assert pairs["!!!Batch"].startswith("A daft way of obfuscating text strings by encoding")
    assert "{" not in pairs["!!!Batch"] and "<" not in pairs["!!!Batch"]


def test_split_keeps_bank_targets_out_of_the_gallery_and_is_cached(tmp_path):
    write_dictd(tmp_path, "foldoc", foldoc_entries(400))
    data = load_foldoc(tmp_path, seed=1, cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("foldoc-reverse-dictionary-*.npz"))) == 1
    again = load_reverse_dictionary("foldoc", tmp_path, seed=1, cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(data.test_queries, again.test_queries)
    gallery = set(data.gallery.tolist())
    # each query names its number; its document is "termN, TN"
    for query in data.bank:
        number = query.split("number ")[1].split()[0]
        assert f"term{number}, T{number}" not in gallery
    for query, target in zip(data.test_queries, data.test_targets):
        assert (
            data.gallery[target]
            == f"term{query.split('number ')[1].split()[0]}, T{query.split('number ')[1].split()[0]}"
        )
        assert "term" not in query and "<" not in query  # the name masked, the tag gone
    assert data.summary()["bank"] + data.summary()["val"] + data.summary()["test"] == 400


def database(folder, index, body):
    (folder / "foldoc.index").write_text(index)
    (folder / "foldoc.dict").write_text(body)  # an uncompressed database, which dictd also reads


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: None, "apt-get install dict-foldoc"),
        (lambda d: database(d, "term\tA\n", "x"), "not a dictd index line"),
        (lambda d: database(d, "term\tA\t!!\n", "x"), "bad base-64"),
        (lambda d: database(d, "term\tA\tZ\n", "x"), "past the end"),
        (lambda d: database(d, "", ""), "no \\(document, query\\)"),
    ],
)
def test_bad_databases_are_named(tmp_path, make, message):
    make(tmp_path)
    with pytest.raises((DatasetNotFound, ValueError), match=message):
        load_foldoc(tmp_path, cache_dir=tmp_path / "cache")


def test_unknown_dictionary_is_named():
    with pytest.raises(ValueError, match="one of wordnet, gcide, foldoc"):
        load_reverse_dictionary("webster")


def test_demo_runs_on_any_reverse_dictionary(tmp_path, monkeypatch, capsys):
    pytest.importorskip("wordllama")
    from ..test_cli import run

    write_dictd(tmp_path, "foldoc", foldoc_entries(600))
    monkeypatch.setenv("NNLIFT_CACHE", str(tmp_path / "cache"))
    code, out = run(monkeypatch, capsys, "demo", "--dataset", "foldoc", "--data", tmp_path, "--n-bank", 200,
                    "--n-val", 60, "--n-test", 100, "--methods", "cosine,nnn", "--report", tmp_path / "report")  # fmt: skip
    assert code == 0, out
    assert "FOLDOC reverse dictionary" in out and "nnn" in out.lower()
    assert '"dataset": "foldoc"' in (tmp_path / "report" / "results.json").read_text()
    code, out = run(monkeypatch, capsys, "demo", "--dataset", "gcide", "--data", tmp_path / "none")
    assert code != 0 and "apt-get install dict-gcide" in out
    code, out = run(monkeypatch, capsys, "demo", "--dataset", "webster")
    assert code != 0 and "--dataset must be one of wordnet, gcide, foldoc" in out
