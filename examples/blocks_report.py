"""Block embeddings on the WordNet gallery (WordLlama): training, confidence, sparse pre-fetch, features, steering.

    python examples/blocks_report.py [--epochs 150] [--blocks 32 --block-size 32] [--n-collection 15000]

Trains on a sample of the collection with a disjoint validation sample and early stopping; compares block
confidence with the untrained kNN baseline and their calibrated combination; measures sparse pre-fetch;
then reads a few features (their top items and marking words) and steers a query along one of them.
"""

from __future__ import annotations

import argparse

import numpy as np

import nnlift
from nnlift.blocks import SparsePrefetch, describe_features, steer, train_blocks
from nnlift.datasets import load_wordnet
from nnlift.embed import embed_texts
from nnlift.outliers import ConfidenceScorer, auroc, fpr_at_tpr
from nnlift.sampling import split_neighbors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=150, help="the most epochs: training stops on a plateau")
    parser.add_argument("--blocks", type=int, default=32)
    parser.add_argument("--block-size", type=int, default=32)
    parser.add_argument("--threshold", type=float, default=0.02, help="block entries kept for pre-fetch")
    parser.add_argument("--n-collection", type=int, default=15_000)
    args = parser.parse_args()
    data = load_wordnet()
    rng = np.random.default_rng(0)
    order = rng.permutation(len(data.gallery))
    documents = data.gallery[order[: args.n_collection]].tolist()
    collection = embed_texts(documents, progress=False)
    held = embed_texts(data.gallery[order[args.n_collection : args.n_collection + 2_000]].tolist(), progress=False)
    train, val = split_neighbors(collection, sample=min(10_000, args.n_collection - 2_000), validation=2_000,
                                 limit=100, progress=False)  # fmt: skip
    encoder = train_blocks(train, val_target=val, num_blocks=args.blocks, block_size=args.block_size,
                           epochs=args.epochs, progress=False)  # fmt: skip
    stop = encoder.stop_
    print(f"trained {args.blocks}×{args.block_size}: {stop['epochs_run']} epochs, kept epoch {stop['best_epoch']} "
          f"(held-out val loss {stop['best_val_loss']:.4f}); {stop['reason']}")  # fmt: skip

    glosses = embed_texts(data.test_queries[:2_000].tolist(), progress=False)
    index = nnlift.ExactIndex().add(collection)
    print("\nconfidence, AUROC / FPR@95%TPR of held-out documents against WordNet glosses:")
    methods = {"knn": ("knn", None), "density": ("density", None), "support": ("support", None),
               "blocks": ("blocks", encoder), "combined": ("combined", None), "combined + blocks": ("combined", encoder)}
    for label, (method, with_encoder) in methods.items():
        scorer = ConfidenceScorer(method, encoder=with_encoder).fit(index)
        inside, outside = scorer.score(held), scorer.score(glosses)
        print(f"  {label:17s} {auroc(inside, outside):.3f} / {fpr_at_tpr(inside, outside):.3f}")

    prefetch = SparsePrefetch(encoder, threshold=args.threshold).fit(collection, documents)
    budgets = [int(args.n_collection * share) for share in (0.01, 0.02, 0.05, 0.1)]
    curve = prefetch.recall_curve(glosses[:500], budgets, k=10)
    print(f"\nsparse pre-fetch ({prefetch.sparse_.nnz / len(collection):.0f} entries per item), recall@10 of 500 glosses:")
    for budget, recall in curve.items():
        print(f"  {budget:6,} candidates ({100 * budget / args.n_collection:4.1f}%): {recall:.3f}")

    features = describe_features(encoder, collection, documents, top=4, words=4, min_share=0.01)
    busiest = sorted(features, key=lambda f: -f.share)[:6]
    print("\nsix of the busiest features:")
    for feature in busiest:
        print(f"  {feature}")

    query_text = "a musical instrument played with a bow"
    query = embed_texts([query_text], progress=False)
    print(f"\nsteering {query_text!r}: its 5 best of 10 candidates, as it is and pushed towards a feature")
    plain = prefetch.search(query, 5, candidates=10).labels(0)
    print(f"  as it is: {plain}")
    for feature in busiest[:3]:
        pushed = prefetch.search(query, 5, candidates=10, blocks=steer(encoder, query, feature.feature, 1.0))
        new = [label for label in pushed.labels(0) if label not in plain]
        print(f"  towards {feature.feature} ({', '.join(w for w, _ in feature.words[:3])}): new {new}")


if __name__ == "__main__":
    main()
