"""The figures in docs/img: neighbours and walks drawn from real searches (digits pictures, WordNet text).

    python examples/figures.py [--output docs/img] [--n-gallery 20000]

Digits come with scikit-learn; the WordNet figures need Debian's ``wordnet-base`` and are skipped without it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import nnlift
from nnlift.algebra import direction, walk
from nnlift.plot import plot_neighbors, plot_walk


def digits_figures(output: Path) -> list[Path]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    vectors = digits.data.astype(np.float32) - digits.data.mean(axis=0, dtype=np.float32)  # centred pixels
    recommender = nnlift.Recommender().fit(vectors)
    every = nnlift.Neighbors.concatenate([recommender.similar(row) for row in range(400)])
    # The first four queries with at least three of ten neighbours from another digit: where cosine goes wrong.
    wrong = (digits.target[every.ids] != digits.target[:400, None]).sum(axis=1)
    rows = np.flatnonzero(wrong >= 3)[:4]
    found = every[rows]
    same_class = [np.flatnonzero(digits.target == digits.target[row]) for row in rows]
    rows = rows.tolist()
    neighbors = plot_neighbors(
        rows,
        found,
        images=digits.images,
        targets=same_class,
        path=output / "neighbors_digits.png",
        title="digits: 10 nearest (cosine) of queries with 3+ wrong; the same digit framed green",
    )
    zeros, sixes = np.flatnonzero(digits.target == 0)[:30], np.flatnonzero(digits.target == 6)[:30]
    steps = walk(int(zeros[0]), direction(zeros, sixes, recommender), recommender, scales=(0.3, 0.6, 0.9, 1.2), k=8)
    walked = plot_walk(
        steps,
        output / "walk_digits.png",
        start=int(zeros[0]),
        images=digits.images,
        title="a walk from a 0 along centroid(6) − centroid(0): new items framed orange",
    )
    return [neighbors, walked]


def wordnet_figures(output: Path, n_gallery: int) -> list[Path]:
    from nnlift.datasets import WordNetNotFound, load_wordnet
    from nnlift.embed import embed_texts

    try:
        small = n_gallery is not None
        data = load_wordnet(
            n_bank=5_000 if small else 20_000, n_val=100, n_test=n_gallery // 4 if small else 2_000, n_gallery=n_gallery
        )
    except WordNetNotFound as exc:
        print(f"skipped the WordNet figures: {exc}")
        return []
    gallery = embed_texts(data.gallery.tolist(), progress=False)
    bank = embed_texts(data.bank.tolist(), progress=False)
    queries = embed_texts(data.test_queries.tolist(), progress=False)
    cosine = nnlift.Baseline().fit(gallery).search(queries, k=5)
    corrected = nnlift.NNN(k=16, alpha=0.75).fit(gallery, bank).search(queries, k=5)
    # Queries where the two disagree at the top, NNN right and cosine wrong: what the correction changes.
    changed = np.flatnonzero((corrected.ids[:, 0] == data.test_targets) & (cosine.ids[:, 0] != data.test_targets))[:4]
    documents = data.gallery.tolist()
    paths = []
    for name, found in (("cosine", cosine), ("nnn", corrected)):
        paths.append(
            plot_neighbors(
                data.test_queries[changed].tolist(),
                found[changed],
                labels=documents,
                targets=data.test_targets[changed],
                path=output / f"neighbors_wordnet_{name}.png",
                title=f"WordNet glosses → documents, {'cosine' if name == 'cosine' else 'NNN (k=16, α=0.75)'}: "
                "the right document framed green",
            )
        )
    recommender = nnlift.Recommender().fit(gallery, documents)
    first = {doc.split(", ")[0]: doc for doc in reversed(documents)}
    sea = [first[w] for w in ("sea", "ocean", "lake", "river") if w in first]
    land = [first[w] for w in ("desert", "mountain", "forest", "plain") if w in first]
    if not (sea and land):
        print("skipped walk_wordnet.png: this gallery lacks the sea or the land words")
        return paths
    steps = walk(sea[0], direction(sea, land, recommender), recommender, scales=(0.2, 0.5, 0.8, 1.1), k=6)
    title = f"a walk from {sea[0]!r} towards land (centroid of {', '.join(d.split(', ')[0] for d in land)})"
    return paths + [plot_walk(steps, output / "walk_wordnet.png", start=sea[0], title=title)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "img")
    parser.add_argument("--n-gallery", type=int, default=None, help="a smaller WordNet gallery, for a quick look")
    args = parser.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)
    for path in digits_figures(args.output) + wordnet_figures(args.output, args.n_gallery):
        print("wrote", path)


if __name__ == "__main__":
    main()
