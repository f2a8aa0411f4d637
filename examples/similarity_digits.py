"""TF Similarity's hello world on digits, with nnlift's SimilarityModel (PyTorch).

    python examples/similarity_digits.py [--epochs 20] [--figure digits_neighbors.png]

Trains a small MLP with a multi-similarity loss on 8×8 digits (scikit-learn's
copy, no download), indexes the training digits, looks up test digits,
calibrates a match distance on the validation split, votes among neighbours,
adds an unseen class without retraining, and draws the neighbour grid.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from nnlift.datasets import load_digits_split
from nnlift.metric import SimilarityModel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--figure", default=None, help="write the neighbour grid to this PNG")
    args = parser.parse_args()

    split = load_digits_split(val_size=0.25, test_size=0.25, seed=0)
    torch.manual_seed(0)
    backbone = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 64), torch.nn.ReLU())
    model = SimilarityModel(backbone, embedding_dim=32, epochs=args.epochs, lr=3e-3, seed=0)
    model.fit(split.x_train, split.y_train, val=(split.x_val, split.y_val))

    model.index(split.x_train, split.y_train)
    print("index:", {key: value for key, value in model.index_summary().items() if key != "per_label"})
    nearest = model.lookup(split.x_test[:3], k=3)
    for query, records in zip(split.y_test[:3], nearest):
        print(f"digit {query}: neighbours", [(r.label, round(r.distance, 3)) for r in records])

    calibration = model.calibrate(split.x_val, split.y_val, targets={"precision": 0.99})
    print("cutpoints:", {name: round(value, 3) for name, value in calibration.cutpoints.items()})
    for k in (1, 5):
        matched = model.match(split.x_test, cutpoint="optimal", k=k)
        decided = matched != None  # noqa: E711 - None marks "no match"
        accuracy = np.mean(matched[decided].astype(int) == split.y_test[decided])
        print(f"match k={k}: {decided.mean():.1%} matched, {accuracy:.1%} of them right")
    print("retrieval:", {name: round(value, 3) for name, value in model.evaluate_retrieval(split.x_test, split.y_test).items()})

    if args.figure:
        from nnlift.plot import plot_neighbors

        lookups = model.single_lookup(split.x_test[0], k=5)
        path = plot_neighbors(
            split.x_test[0], lookups, images=split.x_train, image_shape=(8, 8), path=args.figure,
            query_label=int(split.y_test[0]),
        )
        print("figure:", path)


if __name__ == "__main__":
    main()
