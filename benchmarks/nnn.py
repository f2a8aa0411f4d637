"""NNN: nnlift (exact and approximate) against nnn-retrieval's NNNRanker (torch path), in one process and run.

    python benchmarks/nnn.py [--write]                 # N=50k, M=20k, Q=5k, d=384, k=128, alpha=0.75
    python benchmarks/nnn.py --large [--write]         # 1M×384 database, 100k bank, approximate only

Data: seeded unit vectors from a shared mixture of 100 overlapping clusters
(database, bank and queries drawn alike, as real embeddings are).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import interleaved_times, markdown_table, unit_vectors, write_section  # noqa: E402

import nnlift  # noqa: E402
from nnlift.correct.nnn import nnn_bias  # noqa: E402


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def reference(database, bank, queries, k, alpha, top):
    import torch

    here = str(Path(__file__).resolve().parent)
    saved = sys.path[:]
    sys.path[:] = [p for p in sys.path if p not in ("", here)]  # this file is also called nnn.py
    sys.modules.pop("nnn", None)
    with contextlib.redirect_stdout(io.StringIO()):
        import nnn
    sys.path[:] = saved
    torch.set_num_threads(2)
    retriever = nnn.NNNRetriever(database.shape[1])
    with contextlib.redirect_stderr(io.StringIO()):  # its tqdm bars
        fit_s, ranker = timed(
            lambda: nnn.NNNRanker(retriever, database, bank, alternate_ks=k, batch_size=128, alternate_weight=alpha)
        )
        search_s, (scores, ids) = timed(lambda: ranker.search(queries, top))
    return fit_s, search_s, (ids, scores, ranker.alignment_means.numpy()[:, 0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--large", action="store_true", help="1M database, 100k bank, approximate only")
    parser.add_argument(
        "--n-probe", type=int, nargs="+", default=[8], help="lists probed; one approximate row each (--large: first)"
    )
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per contender (default 3; 1 at 1M)")
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--section", default=None, help="the RESULTS.md section to write (one per kind of CPU)")
    args = parser.parse_args()
    repeats = args.repeats or (1 if args.large else 3)
    k, alpha, top, d, clusters, spread = 128, 0.75, 10, 384, 100, 1.5
    if args.large:
        n, m, q = 1_000_000, 100_000, 5_000
    else:
        n, m, q = 50_000, 20_000, 5_000
    database = unit_vectors(n, d, seed=1, clusters=clusters, spread=spread)
    bank = unit_vectors(m, d, seed=2, clusters=clusters, spread=spread)
    queries = unit_vectors(q, d, seed=3, clusters=clusters, spread=spread)

    rows = []
    sample = np.random.default_rng(7).choice(n, size=2000, replace=False)
    exact_sample_bias = nnn_bias(database[sample], bank, k)

    def nnlift_run(**params):
        model = nnlift.NNN(k=k, alpha=alpha, **params)
        fit_s, _ = timed(lambda: model.fit(database, bank, progress=False))
        search_s, found = timed(lambda: model.search(queries, top, progress=False))
        return fit_s, search_s, (model, found)

    probes = args.n_probe[:1] if args.large else args.n_probe
    contenders = {
        ("approximate", p): (lambda p=p: nnlift_run(index=nnlift.Checked(nnlift.IVFIndex(n_probe=p)))) for p in probes
    }
    if not args.large:
        contenders["exact"] = lambda: nnlift_run()
        contenders["reference"] = lambda: reference(database, bank, queries, k, alpha, top)
    runs = interleaved_times(contenders, repeats, seconds=lambda run: run[0] + run[1])  # fit + search
    totals = {name: times for name, (times, _) in runs.items()}
    best = {name: run for name, (_, run) in runs.items()}
    approximate = []  # (n_probe, model, fit s, search s, found, bias MAE)
    for p in probes:
        a_fit, a_search, (approx, a_found) = best["approximate", p]
        bias_mae = float(np.abs(exact_sample_bias - approx.bias_[sample]).mean())
        approximate.append((p, approx, a_fit, a_search, a_found, bias_mae))

    if not args.large:
        e_fit, e_search, (exact, e_found) = best["exact"]
        r_fit, r_search, (r_ids, r_scores, r_bias) = best["reference"]
        r_total = r_fit + r_search
        ids_equal = float(np.mean(e_found.ids == r_ids))
        bias_diff = float(np.abs(exact.bias_ - r_bias).max())
        score_diff = float(np.abs(e_found.scores - r_scores).max())
        rows.append(
            [
                "nnn-retrieval NNNRanker (torch)",
                f"{r_fit:.2f}",
                f"{r_search:.2f}",
                f"{r_total:.2f}",
                "1.00",
                "reference",
            ]
        )
        rows.append(
            [
                "nnlift NNN exact",
                f"{e_fit:.2f}",
                f"{e_search:.2f}",
                f"{e_fit + e_search:.2f}",
                f"{r_total / (e_fit + e_search):.2f}",
                f"ids equal on {100 * ids_equal:.2f}% of slots; max |Δbias| {bias_diff:.1e}; max |Δscore| {score_diff:.1e}",
            ]
        )
        results = []
        for n_probe, _, a_fit, a_search, a_found, bias_mae in approximate:
            agreement = float(np.mean(a_found.ids[:, 0] == e_found.ids[:, 0]))
            recall10 = nnlift.neighbor_recall(a_found, e_found)
            results.append((r_total / (a_fit + a_search), agreement, n_probe))
            rows.append(
                [
                    f"nnlift NNN index=Checked(IVFIndex(n_probe={n_probe}))",
                    f"{a_fit:.2f}",
                    f"{a_search:.2f}",
                    f"{a_fit + a_search:.2f}",
                    f"{r_total / (a_fit + a_search):.2f}",
                    f"agreement@1 with exact {agreement:.4f}; recall@10 {recall10:.4f}; bias MAE {bias_mae:.1e}",
                ]
            )
        names = {"reference": "reference", "exact": "exact", **{("approximate", p): f"n_probe={p}" for p in probes}}
        ranges = "; ".join(f"{label} {', '.join(f'{t:.2f}' for t in totals[name])}" for name, label in names.items())
        approx_claims = "; ".join(f"n_probe={p}: **{x:.2f}×**, agreement **{a:.4f}**" for x, a, p in results)
        header = ["method", "fit s", "search s", "total s", "speed-up vs reference", "output"]
        body = (
            f"N={n:,}, M={m:,}, Q={q:,}, d={d}, k={k}, alpha={alpha}, top-{top}; mixture of {clusters} clusters "
            f"(spread {spread}). Each contender ran {repeats} times, in turn, in one process; each row is its "
            f"fastest run (total seconds of all runs: {ranges}).\n\n{markdown_table(header, rows)}\n\n"
            f"Targets: exact ≥ 2.5× faster than the reference in total with identical output "
            f"(**{r_total / (e_fit + e_search):.2f}×**); approximate ≥ 10× faster with agreement@1 ≥ 0.99 "
            f"({approx_claims}). n_probe=8 is the default."
        )
        name = "NNN (50k database, 20k bank)"
    else:
        n_probe, approx, a_fit, a_search, a_found, bias_mae = approximate[0]
        measured = {c["reduction"]: c for c in approx.checks_}
        rows.append(
            [
                "nnlift NNN index=Checked(IVFIndex())",
                f"{a_fit:.1f}",
                f"{a_search:.1f}",
                f"{a_fit + a_search:.1f}",
                f"bias MAE {bias_mae:.1e} (2,000 sampled items); search recall@{top} {measured['search']['recall']:.4f} (Checked, {measured['search']['rows']} sampled queries)",
            ]
        )
        body = (
            f"N={n:,}, M={m:,}, Q={q:,}, d={d}, k={k}, alpha={alpha}; mixture of {clusters} clusters (spread {spread}); "
            f"n_probe={n_probe}.\n\n"
            f"{markdown_table(['method', 'fit s', 'search s', 'total s', 'accuracy'], rows)}\n\n"
            f"Target: ≤ 120 s with bias MAE ≤ 1e-3 (**{a_fit + a_search:.0f} s**, MAE **{bias_mae:.1e}**)."
        )
        name = "NNN at 1M (approximate)"
    print(body)
    flags = " --large" if args.large else ""
    flags += "" if args.n_probe == [8] else " --n-probe " + " ".join(map(str, args.n_probe))
    flags += f" --repeats {args.repeats}" if args.repeats else ""
    if args.section:
        name, flags = args.section, flags + f' --section "{args.section}"'
    if args.write:
        write_section(name, f"OMP_NUM_THREADS=2 python benchmarks/nnn.py{flags} --write", body)


if __name__ == "__main__":
    main()
