"""Neighbourhood blending: nnlift (exact, approximate) against neighborblend 0.3.0, in one process and run.

    python benchmarks/blend.py [--write]            # 50k×384, k=10, thresholds [0.9, 0.8]
    python benchmarks/blend.py --large [--write]    # 1M×384, approximate only

Data: seeded unit vectors in tight clusters of about ten (within-cluster
cosine ≈ 0.92), so both thresholds keep real neighbours.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import interleaved_times, markdown_table, spread, unit_vectors, write_section  # noqa: E402

import nnlift  # noqa: E402
from nnlift.blend import default_lists, neighbor_graph  # noqa: E402


def _explained_by_ties(emb, thresholds, k, rows, tol=1e-6) -> int:
    """How many of ``rows`` have, in some pass, a tie at the k cut or a similarity at a threshold."""
    if len(rows) == 0:
        return 0
    current = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    flagged = np.zeros(len(rows), dtype=bool)
    for threshold in thresholds:
        sims = np.sort(current[rows] @ current.T, axis=1)[:, ::-1][:, : k + 1]
        flagged |= np.abs(sims[:, k - 1] - sims[:, k]) <= tol
        flagged |= (np.abs(sims[:, :k] - threshold) <= tol).any(axis=1)
        current = nnlift.NeighborhoodBlender(thresholds=(threshold,), k=k, progress=False).fit_transform(current)
    return int(flagged.sum())


def recall_everywhere(stage, k, threshold, template) -> float:
    """Recall of the approximate graph of one pass over every row, against the exact graph (self left out)."""
    found, _ = neighbor_graph(stage, k, threshold, index=template.index, progress=False)
    truth, _ = neighbor_graph(stage, k, threshold, progress=False)
    rows = np.arange(len(stage))[:, None]
    others = [nnlift.Neighbors(np.where(g.ids == rows, -1, g.ids), g.scores) for g in (found, truth)]
    return nnlift.neighbor_recall(*others)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--large", action="store_true")
    parser.add_argument("--n-probe", type=int, default=8)
    parser.add_argument("--n-lists", type=int, default=None, help="IVF lists (default 2√n)")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per contender (default 5; 1 at 1M)")
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--section", default=None, help="the RESULTS.md section to write (one per kind of CPU)")
    args = parser.parse_args()
    n = 1_000_000 if args.large else 50_000
    repeats = args.repeats or (1 if args.large else 5)
    d, k, thresholds = 384, 10, [0.9, 0.8]
    emb = unit_vectors(n, d, seed=11, clusters=n // 10, spread=0.3)
    lists = args.n_lists or default_lists(n)
    template = nnlift.Checked(nnlift.IVFIndex(n_lists=lists, n_probe=args.n_probe, progress=False))

    def approximate():
        blender = nnlift.NeighborhoodBlender(thresholds=thresholds, k=k, index=template, progress=False)
        return blender, blender.fit_transform(emb)

    contenders = {}
    if not args.large:
        import faiss
        import NeighborBlend

        faiss.omp_set_num_threads(2)
        contenders["reference"] = lambda: NeighborBlend.iterative_neighborhood_blending(emb.copy(), thresholds, k)[0]
        contenders["exact"] = lambda: nnlift.NeighborhoodBlender(
            thresholds=thresholds, k=k, progress=False
        ).fit_transform(emb)
    contenders["approximate"] = approximate
    runs = interleaved_times(contenders, repeats)
    a_times, (approx, a_out) = runs["approximate"]
    a_s = min(a_times)
    kept = float((approx.neighbors_.ids >= 0).sum(axis=1).mean())
    estimates = ", ".join(f"{c['recall']:.4f} ± {c['standard_error']:.4f}" for c in approx.checks_)
    fallbacks = sum(c["action"] == "exact" for c in approx.checks_)
    estimates += "" if not fallbacks else f"; {fallbacks} pass(es) fell back to exact search"
    timing = f"seconds, best of {repeats} (range)" if repeats > 1 else "seconds"
    rows = []
    if not args.large:
        (r_times, r_out), (e_times, e_out) = runs["reference"], runs["exact"]
        r_s, e_s = min(r_times), min(e_times)
        parity = float(np.abs(e_out - r_out).max())
        differing = np.flatnonzero(np.abs(e_out - r_out).max(axis=1) > 1e-5)
        rows_within = 1.0 - len(differing) / n
        explained = _explained_by_ties(emb, thresholds, k, differing)
        close = float(np.mean(np.abs(a_out - e_out).max(axis=1) <= 1e-5))
        everywhere = [recall_everywhere(s, k, t, template) for s, t in zip(approx.stages_, thresholds)]
        rows.append(["neighborblend 0.3.0 (faiss IndexFlatIP)", spread(r_times), "1.00", "reference"])
        rows.append(
            [
                "nnlift exact (symmetric self-join)",
                spread(e_times),
                f"{r_s / e_s:.2f}",
                f"max |Δ| vs reference {parity:.1e}; rows within 1e-5: {100 * rows_within:.2f}% "
                f"({len(differing)} differ, {explained} of them at a tie within 1e-6: the k-th/(k+1)-th similarity "
                f"or a similarity and a threshold)",
            ]
        )
        rows.append(
            [
                "nnlift index=Checked(IVFIndex(n_lists=2√n))",
                spread(a_times),
                f"{r_s / a_s:.2f}",
                f"recall per pass over all {n:,} rows {', '.join(f'{r:.4f}' for r in everywhere)} (Checked's "
                f"estimate on {template.sample} sampled rows, ± standard error: {estimates}); "
                f"rows equal to exact within 1e-5: {100 * close:.2f}%",
            ]
        )
        body = (
            f"{n:,}×{d}, k={k}, thresholds {thresholds}; on average {kept:.1f} neighbours kept per row in the last pass. "
            f"Each contender ran {repeats} times, in turn, in one process; speed-ups compare best times.\n\n"
            f"{markdown_table(['method', timing, 'speed-up vs reference', 'output'], rows)}\n\n"
            f"Targets: exact ≥ 2× faster with parity (**{r_s / e_s:.2f}×**, max |Δ| {parity:.1e}); "
            f"approximate ≥ 10× faster with recall ≥ 0.99 (**{r_s / a_s:.2f}×**, recall over all rows "
            f"**{min(everywhere):.4f}**)."
        )
        name = "Neighbourhood blending (50k)"
    else:
        # The blender measures each pass on its own sample; check each pass again, untimed, on 2,000 rows.
        wider = nnlift.Checked(template.index, sample=2000, on_low="warn")
        checks = [
            neighbor_graph(s, k, t, index=wider, progress=False)[1].checks_[0] for s, t in zip(approx.stages_, thresholds)
        ]
        rechecked = ", ".join(f"{c['recall']:.4f} ± {c['standard_error']:.4f}" for c in checks)
        rows.append(
            [
                "nnlift index=Checked(IVFIndex(n_lists=2√n))",
                spread(a_times),
                f"recall per pass, ± standard error: {estimates} (Checked's estimate on {template.sample} rows); "
                f"{rechecked} (checked again on 2,000 rows)",
            ]
        )
        body = (
            f"{n:,}×{d}, k={k}, thresholds {thresholds}, n_lists={lists}, "
            f"n_probe={args.n_probe}; {kept:.1f} neighbours kept per row.\n\n"
            f"{markdown_table(['method', timing, 'accuracy'], rows)}\n\n"
            f"Target: ≤ 180 s with recall ≥ 0.99 (**{a_s:.0f} s**, recall on 2,000 rows "
            f"**{min(c['recall'] for c in checks):.4f}**)."
        )
        name = "Neighbourhood blending at 1M (approximate)"
    print(body)
    flags = " --large" if args.large else ""
    flags += f" --n-probe {args.n_probe}" if args.n_probe != 8 else ""
    flags += f" --n-lists {args.n_lists}" if args.n_lists else ""
    flags += f" --repeats {args.repeats}" if args.repeats else ""
    if args.section:
        name, flags = args.section, flags + f' --section "{args.section}"'
    if args.write:
        write_section(name, f"OMP_NUM_THREADS=2 python benchmarks/blend.py{flags} --write", body)


if __name__ == "__main__":
    main()
