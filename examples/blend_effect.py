"""The effect of neighbourhood blending and DBA on real data, reported honestly.

    python examples/blend_effect.py [--wordnet]

1. Digits (scikit-learn): leave-one-out kNN accuracy and cosine silhouette of the
   pixel vectors before and after blending.
2. WordNet reverse dictionary (with --wordnet; WordLlama embeddings, 10k bank,
   2k val, 3k test): hit_rate@1 of cosine, blending, DBA, and each combined with NNN.
"""

from __future__ import annotations

import argparse

import numpy as np

import nnlift
from nnlift.datasets import load_digits_split
from nnlift.evaluate import hit_rate_at_k


def knn_accuracy(vectors: np.ndarray, labels: np.ndarray, k: int = 5) -> float:
    found = nnlift.topk(vectors, vectors, k, exclude_self=True, progress=False)
    votes = labels[found.ids]
    predicted = np.array([np.bincount(row, minlength=10).argmax() for row in votes])
    return float(np.mean(predicted == labels))


def digits() -> None:
    from sklearn.metrics import silhouette_score

    split = load_digits_split(seed=0)
    x = np.vstack([split.x_train, split.x_val, split.x_test])
    y = np.concatenate([split.y_train, split.y_val, split.y_test])
    print("digits (1,797 images, 64 pixels): leave-one-out 5-NN accuracy / cosine silhouette")
    rows = [("raw pixels", x)]
    for thresholds, k in (((0.9,), 5), ((0.9, 0.8), 10), ((0.95, 0.9, 0.85), 10)):
        rows.append(
            (
                f"blended {list(thresholds)}, k={k}",
                nnlift.NeighborhoodBlender(thresholds=thresholds, k=k, progress=False).fit_transform(x),
            )
        )
    rows.append(("DBA n=5, alpha=3", nnlift.DatabaseAugmentation(n=5, alpha=3, progress=False).fit_transform(x)))
    for name, vectors in rows:
        print(
            f"  {name:34s} accuracy {knn_accuracy(vectors, y):.4f}  silhouette {silhouette_score(vectors, y, metric='cosine'):.4f}"
        )


def wordnet() -> None:
    from nnlift.datasets import load_wordnet
    from nnlift.embed import embed_texts

    data = load_wordnet(n_bank=10_000, n_val=2_000, n_test=3_000)
    gallery, bank = embed_texts(data.gallery, progress=False), embed_texts(data.bank, progress=False)
    test = embed_texts(data.test_queries, progress=False)
    print("WordNet reverse dictionary (WordLlama, test split of 3,000 queries): hit_rate@1")
    augmentations = {
        "none": None,
        "blending [0.9, 0.8], k=10": nnlift.NeighborhoodBlender(thresholds=(0.9, 0.8), k=10, progress=False),
        "blending [0.95], k=5": nnlift.NeighborhoodBlender(thresholds=(0.95,), k=5, progress=False),
        "blending [auto], k=10, keep 5": nnlift.NeighborhoodBlender(thresholds=("auto",), k=10, progress=False),
        "blending [auto], k=10, keep 2": nnlift.NeighborhoodBlender(thresholds=("auto",), k=10, keep=2, progress=False),
        "DBA n=2, alpha=3": nnlift.DatabaseAugmentation(n=2, alpha=3, progress=False),
    }
    for name, augmentation in augmentations.items():
        for label, correction in (("alone", None), ("+ NNN k=8, alpha=1", nnlift.NNN(k=8, alpha=1.0))):
            if augmentation is None:
                model = correction if correction is not None else nnlift.Baseline()
            else:
                model = nnlift.AugmentedDatabase(augmentation, correction)
            model.fit(gallery, bank) if model.needs_bank else model.fit(gallery)
            score = hit_rate_at_k(model.search(test, 10, progress=False), data.test_targets, 1)
            print(f"  {name:30s} {label:20s} {100 * score:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wordnet", action="store_true")
    args = parser.parse_args()
    digits()
    if args.wordnet:
        wordnet()
