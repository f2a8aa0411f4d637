"""Every correction on real reverse dictionaries: test hit@1, MRR, N10 skew, and paired gains with 95% CIs.

    python benchmarks/quality.py [--sets wordnet,gcide,foldoc] [--embedder wordllama|minilm] [--write]
    python benchmarks/quality.py --sets fashion [--epochs 5] --write      # needs torch (the dev extra)

For each set (WordNet, GCIDE, FOLDOC; wordllama embeddings, or all-MiniLM-L6-v2 with ``--embedder minilm``,
which needs the ``embed`` extra), the same split and sizes as ``nnlift demo``
(bank 10,000, val 2,000, test 3,000; the whole gallery): every method is tuned on val with the do-no-harm
rule (``compare_methods``), then measured on test; ``auto`` is the method and setting best on val. Gains are paired over the same test queries, against
cosine and against tuned NNN. The online bank is measured too: NNN with tuned NNN's setting, refitted
on the served test queries themselves (batches of 500, no curated bank), with and without each batch in
its own bank, against NNN with the disjoint curated bank. Bank diagnostics (``bank_report``): the curated bank
against a bank of the wrong kind (10,000 gallery documents), each with NNN's test hit@1. Writes
benchmarks/QUALITY.md.

``--sets fashion``: corrections on *learned* image embeddings. A SimilarityModel (an MLP, multi-similarity
loss) trains on 50,000 Fashion-MNIST training images; the other 10,000 are the gallery; of the 10,000 test
images, 3,000 are the bank, 2,000 validation and 5,000 test queries. A query is answered by any gallery
image of its class (hit@1: the nearest is of its class).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import markdown_table, write_section

import nnlift
from nnlift.evaluate import bank_report
from nnlift.evaluate.bootstrap import paired_bootstrap
from nnlift.evaluate.compare import METHODS, compare_methods
from nnlift.evaluate.metrics import hit_rate_at_k

QUALITY = Path(__file__).with_name("QUALITY.md")
TITLES = {"wordnet": "WordNet", "gcide": "GCIDE", "foldoc": "FOLDOC", "fashion": "Fashion-MNIST"}
ORDER = ["cosine", "nnn", "dn_nnn", "csls", "is", "qbnorm", "dba", "dba_nnn", "local_scaling", "mutual_proximity",
         "sinkhorn", "mean_bias", "mean_bias_nnn", "invgc", "fusion", "auto"]  # fmt: skip


def gain(d) -> str:
    return f"{100 * d.mean:+.1f} [{100 * d.low:+.1f}, {100 * d.high:+.1f}]"


def online_rows(nnn_params, gallery, bank, test, targets, cosine_hits, nnn_hits):
    k, alpha = nnn_params["k"], nnn_params["alpha"]
    rows = []
    for label, include in (("online bank (served queries)", False), ("online bank, batch included", True)):
        model = nnlift.OnlineBank(nnlift.NNN(k=k, alpha=alpha), capacity=10_000, refit_every=500,
                                  include_batch=include).fit(gallery)  # fmt: skip
        ids = np.concatenate([model.search(test[i : i + 500], 10, progress=False).ids for i in range(0, len(test), 500)])
        hits = hit_rate_at_k(nnlift.Neighbors(ids, np.zeros(ids.shape, np.float32)), targets, 1, per_query=True)
        rows.append([label, f"{100 * hits.mean():.1f}", gain(paired_bootstrap(cosine_hits, hits)),
                     gain(paired_bootstrap(nnn_hits, hits))])  # fmt: skip
    return rows


def bank_rows(nnn_params, gallery, bank, test, targets, documents, images=False):
    rows = []
    labels = ("curated (test-split images)", "gallery images") if images else (
        "curated (ref-side definitions)", "gallery documents (the wrong kind)")  # fmt: skip
    for label, rows_of_bank in zip(labels, (bank, documents)):
        report = bank_report(rows_of_bank, test, gallery, warn=False)
        found = nnlift.NNN(**nnn_params).fit(gallery, rows_of_bank).search(test, 10, progress=False)
        rows.append([label, f"{report.mean_similarity[0]:.3f} / {report.mean_similarity[1]:.3f}",
                     f"{report.mean_shift:.3f} (p {report.mean_shift_p:.3f})",
                     f"{report.hubness[0]:.2f} / {report.hubness[1]:.2f}", f"{report.bias_agreement:.3f}",
                     "yes" if report.likely_to_hurt else "no", f"{100 * hit_rate_at_k(found, targets, 1):.1f}"])  # fmt: skip
    return rows


class _Split:
    """The labelled parts ``compare_methods`` needs, shaped like a reverse dictionary's."""

    def __init__(self, gallery_labels, val_labels, test_labels, n_bank):
        self.val_targets = _class_targets(val_labels, gallery_labels)
        self.test_targets = _class_targets(test_labels, gallery_labels)
        self.sizes = {"gallery": len(gallery_labels), "bank": n_bank, "val": len(val_labels), "test": len(test_labels)}

    def summary(self):
        return self.sizes


def _class_targets(labels, gallery_labels):
    """Every gallery row of each query's class, padded with -1."""
    rows = [np.flatnonzero(gallery_labels == label) for label in range(10)]
    width = max(len(r) for r in rows)
    table = np.full((10, width), -1, dtype=np.int64)
    for label, r in enumerate(rows):
        table[label, : len(r)] = r
    return table[labels]


def fashion_split(epochs: int):
    import torch

    from nnlift.datasets import load_fashion_mnist
    from nnlift.metric import SimilarityModel

    data = load_fashion_mnist()
    train, test = data.flat("train"), data.flat("test")
    torch.manual_seed(0)
    backbone = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 128), torch.nn.ReLU())
    model = SimilarityModel(backbone, embedding_dim=64, epochs=epochs, lr=2e-3, seed=0, progress=False)
    started = time.perf_counter()
    model.fit(train[:50_000], data.train_labels[:50_000])
    trained = time.perf_counter() - started
    order = np.random.default_rng(0).permutation(len(test))
    bank_rows_, val_rows, test_rows = order[:3_000], order[3_000:5_000], order[5_000:]
    gallery = model.embed(train[50_000:])
    split = _Split(data.train_labels[50_000:], data.test_labels[val_rows], data.test_labels[test_rows], 3_000)
    arrays = (gallery, model.embed(test[bank_rows_]), model.embed(test[val_rows]), model.embed(test[test_rows]))
    line = f"an MLP 784-256-128 → 64, multi-similarity loss, {epochs} epochs on 50,000 images ({trained:.0f} s)"
    return split, arrays, line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", default="wordnet,gcide,foldoc")
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--epochs", type=int, default=5, help="training epochs for --sets fashion")
    parser.add_argument("--embedder", default="wordllama", choices=["wordllama", "minilm"], help="text embedder")
    args = parser.parse_args()
    from nnlift.datasets import load_reverse_dictionary
    from nnlift.embed import embed_texts

    for name in args.sets.split(","):
        start = time.perf_counter()
        if name == "fashion":
            data, (gallery, bank, val, test), model_line = fashion_split(args.epochs)
        else:
            data = load_reverse_dictionary(name, n_bank=10_000, n_val=2_000, n_test=3_000)
            gallery, bank, val, test = (embed_texts(texts, args.embedder, progress=False) for texts in
                                        (data.gallery, data.bank, data.val_queries, data.test_queries))  # fmt: skip
            model_line = {"wordllama": "wordllama", "minilm": "all-MiniLM-L6-v2"}[args.embedder]
        methods = [m for m in ORDER if m in METHODS or m == "auto"]
        results = compare_methods(methods, gallery, bank, val, data.val_targets, test, data.test_targets)
        by_name = {r.name: r for r in results}
        cosine_hits, nnn_hits = by_name["cosine"].per_query_hit1, by_name["nnn"].per_query_hit1
        rows = []
        for r in results:
            setting = "—" if r.name == "cosine" else ("cosine kept" if r.kept_baseline else
                                                       ", ".join(f"{k}={v}" for k, v in (r.params or {}).items()))  # fmt: skip
            rows.append([
                r.label, f"{100 * r.metrics['hit_rate@1']:.1f}", f"{100 * r.metrics['mrr']:.1f}",
                f"{r.hubness['skewness']:.2f}",
                "—" if r.gain is None else gain(r.gain),
                "—" if r.name == "nnn" else gain(paired_bootstrap(nnn_hits, r.per_query_hit1)), setting,
            ])  # fmt: skip
        online = online_rows(by_name["nnn"].params or {"k": 16, "alpha": 1.0}, gallery, bank, test,
                             data.test_targets, cosine_hits, nnn_hits)  # fmt: skip
        picked = np.random.default_rng(1).choice(len(gallery), min(10_000, len(gallery)), replace=False)
        diagnosed = bank_rows(by_name["nnn"].params or {"k": 16, "alpha": 1.0}, gallery, bank, test,
                              data.test_targets, gallery[np.sort(picked)], images=name == "fashion")  # fmt: skip
        auto = by_name["auto"]
        auto_gap = 100 * (auto.metrics["hit_rate@1"] - by_name["cosine"].metrics["hit_rate@1"])
        over_nnn = paired_bootstrap(nnn_hits, auto.per_query_hit1)
        sizes = data.summary()
        what = "Fashion-MNIST, learned embeddings" if name == "fashion" else f"{TITLES[name]} reverse dictionary"
        body = "\n\n".join([
            f"{what}, {model_line}: gallery {sizes['gallery']:,}, bank {sizes['bank']:,}, "
            f"val {sizes['val']:,}, test {sizes['test']:,}. hit@1 and MRR in %, skew: N10 skewness; gains in points "
            "of hit@1 with paired 95% bootstrap CIs; settings chosen on val with the do-no-harm rule.",
            markdown_table(["method", "hit@1", "MRR", "skew", "Δ vs cosine", "Δ vs tuned NNN", "setting"], rows),
            ("Bank of the wrong kind below: 10,000 gallery items used as the bank. " if name == "fashion" else "")
            + "The online bank, NNN with tuned NNN's setting and no curated bank (test queries served in batches of "
            "500, refitted every 500):",
            markdown_table(["bank", "hit@1", "Δ vs cosine", "Δ vs NNN with the curated bank"],
                           [["curated, disjoint (NNN above)", f"{100 * nnn_hits.mean():.1f}",
                             gain(by_name["nnn"].gain), "—"], *online]),  # fmt: skip
            f"Bank diagnostics (`bank_report`, against the test queries; cosine hit@1 "
            f"{100 * cosine_hits.mean():.1f}):",
            markdown_table(["bank", "top-10 similarity, bank / queries", "mean shift", "N10 skew, bank / queries",
                            "NNN bias agreement", "warns", "NNN hit@1"], diagnosed),  # fmt: skip
            f"Targets. The method chosen on validation ({auto.label}) against tuned NNN on test: {gain(over_nnn)} "
            f"(≥ 1 point with the CI above 0: {'met' if over_nnn.mean >= 0.01 and over_nnn.low > 0 else 'not met'}). "
            f"`--methods auto` against cosine: {auto_gap:+.1f} points (never more than 0.3 below: "
            f"{'met' if auto_gap >= -0.3 else 'not met'})."
            + "".join(f" Warning: {line}." for line in auto.warnings)
            + f" Wall time {time.perf_counter() - start:.0f} s.",
        ])  # fmt: skip
        print(body)
        if args.write:
            flags = "" if args.sets == "wordnet,gcide,foldoc" else f" --sets {args.sets}"
            flags += f" --epochs {args.epochs}" if name == "fashion" else ""
            flags += f" --embedder {args.embedder}" if args.embedder != "wordllama" else ""
            write_section(f"{TITLES[name]} ({'learned' if name == 'fashion' else args.embedder})", f"OMP_NUM_THREADS=2 python benchmarks/quality.py --write{flags}",
                          body, file=QUALITY)  # fmt: skip


if __name__ == "__main__":
    main()
