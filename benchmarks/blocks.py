"""Block embeddings on WordNet: confidence against three kinds of outsiders, and sparse pre-fetch recall.

    python benchmarks/blocks.py [--n-collection 15000] [--epochs 150] [--write] [--figure docs/img/prefetch_recall.png]
    python benchmarks/blocks.py --dataset gcide --write --section "Block embeddings on GCIDE"

The collection is a seeded sample of the WordNet gallery's documents (wordllama); 2,000 other documents
are the held-out insiders. The outsiders are random strings through the same embedder, random unit
vectors, and WordNet glosses (another text type: definitions, not lemma lists). ``--dataset gcide`` does the same with GCIDE headwords
and GCIDE definitions. Two encoders train on a
10,000-point sample with a disjoint 2,000-point validation sample and early stopping: the seed's 4×64
and a wider 32×32. Confidence methods: block entropy, the kNN baseline (mean top-10 similarity),
relative density, Mahalanobis support, and their Fisher combination (knn and density at k=10 with support;
the default adds knn at 3 neighbours), calibrated on the collection (``ConfidenceScorer``), with paired
bootstrap intervals of the AUROC gaps.
Pre-fetch: recall@10 of the rescored list against exact dense search, per candidate budget, for
gloss queries (the reverse dictionary's real queries) and held-out document queries.
"""

from __future__ import annotations

import argparse
import string
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import markdown_table, write_section

import nnlift
from nnlift.blocks import SparsePrefetch, train_blocks
from nnlift.outliers import ConfidenceScorer, auroc, fpr_at_tpr, knn_confidence
from nnlift.sampling import split_neighbors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-collection", type=int, default=15_000)
    parser.add_argument("--epochs", type=int, default=150, help="the most epochs; each encoder stops early")
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--figure", type=Path, default=None)
    parser.add_argument("--section", default="Block embeddings on WordNet", help="the RESULTS.md section to write")
    parser.add_argument("--dataset", default="wordnet", choices=["wordnet", "gcide", "foldoc"],
                        help="the reverse dictionary whose documents are the collection")  # fmt: skip
    args = parser.parse_args()
    from nnlift.datasets import load_reverse_dictionary
    from nnlift.embed import embed_texts

    data = load_reverse_dictionary(args.dataset)
    title = {"wordnet": "WordNet", "gcide": "GCIDE", "foldoc": "FOLDOC"}[args.dataset]
    real = "WordNet glosses" if args.dataset == "wordnet" else f"{title} definitions"
    rng = np.random.default_rng(0)
    if args.n_collection + 2_000 > len(data.gallery):
        parser.error(f"--n-collection {args.n_collection:,} and 2,000 insiders need more than the "
                     f"{len(data.gallery):,} documents of {title}")  # fmt: skip
    order = rng.permutation(len(data.gallery))
    documents = data.gallery[order[: args.n_collection]].tolist()
    held_docs = data.gallery[order[args.n_collection : args.n_collection + 2_000]].tolist()
    collection = embed_texts(documents, progress=False)
    held = embed_texts(held_docs, progress=False)
    letters = np.array(list(string.ascii_lowercase + "     "))
    strings = ["".join(rng.choice(letters, rng.integers(5, 30))) for _ in range(2_000)]
    vectors = rng.standard_normal((2_000, collection.shape[1])).astype(np.float32)
    outsiders = {
        "random strings": embed_texts(strings, progress=False),
        "random vectors": vectors / np.linalg.norm(vectors, axis=1, keepdims=True),
        real: embed_texts(data.test_queries[:2_000].tolist(), progress=False),
    }
    train, val = split_neighbors(collection, sample=10_000, validation=2_000, limit=100, progress=False)
    encoders, training = {}, []
    for blocks, size in ((4, 64), (32, 32)):
        start = time.perf_counter()
        encoder = train_blocks(train, val_target=val, num_blocks=blocks, block_size=size, epochs=args.epochs,
                               progress=False)  # fmt: skip
        name = f"{blocks}×{size}"
        encoders[name] = encoder
        stop = encoder.stop_
        training.append([name, stop["epochs_run"], stop["best_epoch"], f"{stop['best_val_loss']:.4f}", stop["reason"],
                         f"{time.perf_counter() - start:.0f}"])  # fmt: skip
    index = nnlift.ExactIndex().add(collection)
    scorers = {
        "knn (baseline: mean top-10 similarity)": None,
        "density (relative kNN density)": ConfidenceScorer("density").fit(index),
        "support (Mahalanobis)": ConfidenceScorer("support").fit(index),
        "combined at one scale: knn + density (k=10) + support": ConfidenceScorer("combined", scales=(10,)).fit(index),
        "combined (default): knn at 10 and 3, density at 10, support": ConfidenceScorer("combined").fit(index),
    }
    for name, encoder in encoders.items():
        scorers[f"blocks {name} (1 − entropy)"] = ConfidenceScorer("blocks", encoder=encoder).fit(index)
        scorers[f"combined + blocks {name}"] = ConfidenceScorer("combined", encoder=encoder).fit(index)
    rows, measured, scored = [], {}, {}
    for name, scorer in scorers.items():
        score = (lambda x: knn_confidence(x, index)) if scorer is None else scorer.score
        inside = score(held)
        calibrated = "" if scorer is None else f"{np.mean(inside < 0.05):.3f}"
        cells = []
        for kind, outside in outsiders.items():
            values = score(outside)
            scored[name, kind] = (inside, values)
            measured.setdefault(name, []).append(auroc(inside, values))
            cells.append(f"{auroc(inside, values):.4f} / {fpr_at_tpr(inside, values):.3f}")
        rows.append([name, *cells, calibrated])
    budgets = [int(round(args.n_collection * share)) for share in (0.005, 0.01, 0.02, 0.05, 0.1)]
    curves, curve_rows = {}, []
    for name, encoder in encoders.items():
        for threshold in (0.1, 0.02):
            prefetch = SparsePrefetch(encoder, threshold=threshold).fit(collection)
            for label, queries in (("glosses", outsiders[real][:1_000]), ("documents", held[:1_000])):
                curve = prefetch.recall_curve(queries, budgets, k=10)
                curves[f"{name}, τ={threshold:g}, {label}"] = curve
                curve_rows.append([name, f"{threshold:g}", f"{prefetch.sparse_.nnz / len(collection):.1f}", label,
                                   *(f"{curve[b]:.3f}" for b in budgets)])  # fmt: skip
    baseline_name = "knn (baseline: mean top-10 similarity)"
    baseline = measured[baseline_name]
    verdicts = []
    for name, values in measured.items():
        if name.startswith(("blocks", "combined")):
            gaps = ", ".join(
                f"{kind} {v - b:+.4f} [{low:+.4f}, {high:+.4f}]"
                for kind, v, b in zip(outsiders, values, baseline)
                for low, high in [_paired_gap_ci(scored[name, kind], scored[baseline_name, kind])]
            )
            verdicts.append(f"{name}: {'≥' if all(v >= b for v, b in zip(values, baseline)) else 'not ≥'} the "
                            f"baseline on every kind (AUROC minus the baseline's, 95% paired bootstrap CI: {gaps})")  # fmt: skip
    five = budgets[3]
    best = max((curve[five], label) for label, curve in curves.items())
    body = "\n\n".join(
        [
            f"{title} documents (wordllama, {collection.shape[1]} dims): a collection of {args.n_collection:,}, "
            f"2,000 held-out documents as insiders, 2,000 outsiders of each kind. Training: 10,000 sampled points, "
            f"limit 100, a disjoint 2,000-point validation sample, early stopping (at most {args.epochs} epochs).",
            markdown_table(["encoder", "epochs run", "kept epoch", "val loss", "why it stopped", "seconds"], training),
            "Confidence: AUROC / FPR at 95% TPR (insiders: held-out documents). Calibration: the share of the "
            "held-out insiders whose confidence is below 0.05 (a calibrated p-value puts 0.05 there).",
            markdown_table(["method", *outsiders, "insiders < 0.05"], rows),
            "Sparse pre-fetch: recall@10 of the rescored list against exact dense search (1,000 queries), by "
            "candidates rescored as a share of the collection (nnz: block entries kept per item).",
            markdown_table(
                ["encoder", "τ", "nnz", "queries", *(f"{b:,} ({100 * b / args.n_collection:.1f}%)" for b in budgets)],
                curve_rows,
            ),
            "Targets. Confidence (block or combined ≥ the kNN baseline on every outsider kind):\n"
            + "\n".join(f"- {line}" for line in verdicts),
            f"Pre-fetch (recall@10 ≥ 0.95 with at most 5% of the collection as candidates): best {best[0]:.3f} "
            f"({best[1]}) at {five:,} candidates: {'met' if best[0] >= 0.95 else 'not met'}."
            + ("" if args.figure is None else f" Figure: {args.figure}."),
        ]
    )
    print(body)
    if args.figure is not None:
        from nnlift.plot import plot_recall_curve

        plot_recall_curve(curves, args.n_collection, args.figure, title=f"sparse pre-fetch on {title} documents")
        print(f"figure: {args.figure}")
    if args.write:
        flags = "" if args.dataset == "wordnet" else f" --dataset {args.dataset}"
        flags += "" if args.n_collection == 15_000 else f" --n-collection {args.n_collection}"
        flags += f" --figure {args.figure}" if args.figure is not None else ""
        flags += "" if args.section == "Block embeddings on WordNet" else f' --section "{args.section}"'
        write_section(args.section, f"OMP_NUM_THREADS=2 python benchmarks/blocks.py --write{flags}", body)


def _paired_gap_ci(method: tuple, baseline: tuple, draws: int = 400) -> tuple[float, float]:
    """95% bootstrap interval of AUROC(method) − AUROC(baseline), resampling the same insiders and outsiders for both."""
    rng = np.random.default_rng(0)
    gaps = []
    for _ in range(draws):
        i, o = rng.integers(0, len(method[0]), len(method[0])), rng.integers(0, len(method[1]), len(method[1]))
        gaps.append(auroc(method[0][i], method[1][o]) - auroc(baseline[0][i], baseline[1][o]))
    low, high = np.quantile(gaps, [0.025, 0.975])
    return float(low), float(high)


if __name__ == "__main__":
    main()
