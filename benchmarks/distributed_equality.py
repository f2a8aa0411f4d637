"""The Ray Data jobs against the single-machine methods at 200k × 384 in 8 parquet shards, bank 20k, in one run.

    OMP_NUM_THREADS=2 python benchmarks/distributed_equality.py [--rows 200000] [--write]

Each line runs the distributed job and the single-machine method on the same shards and compares:
- NNN's bias: ``distributed.nnn_bias`` against ``NNN().fit(database, bank).bias_`` (exact engine, canonical scores): bit for bit;
- search: ``distributed.search`` of held queries with the fitted NNN against ``NNN.search``: ids and scores bit for bit;
- exact blending: ``distributed.blend`` against ``NeighborhoodBlender((0.9, 0.8)).fit_transform``: largest difference;
- partitioned blending (``lists="auto"``, ``n_probe`` 8): the recall each pass measured, and the largest difference.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import markdown_table, unit_vectors, write_section  # noqa: E402
from distributed import timed, write_shards  # noqa: E402

from nnlift import NNN, NeighborhoodBlender  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--bank", type=int, default=20_000)
    parser.add_argument("--queries", type=int, default=2_000)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()

    from nnlift import distributed

    database = unit_vectors(args.rows, args.dim, seed=1, clusters=200, spread=0.6)
    bank = unit_vectors(args.bank, args.dim, seed=2, clusters=200, spread=0.6)
    queries = unit_vectors(args.queries, args.dim, seed=3, clusters=200, spread=0.6)
    thresholds = (0.9, 0.8)
    work = Path(tempfile.mkdtemp(prefix="nnlift-equal-"))
    rows = []
    try:
        pattern = write_shards(work, database, args.shards)
        ray = distributed.start(progress=False)
        cpus = int(ray.cluster_resources()["CPU"])

        fit_s, model = timed(lambda: NNN(k=args.k).fit(database, bank))
        bias_s, bias = timed(lambda: distributed.collect(distributed.nnn_bias(pattern, bank, args.k))["bias"])
        rows.append(
            ["NNN bias", f"{fit_s:.1f}", f"{bias_s:.1f}", f"bit for bit: **{np.array_equal(bias, model.bias_)}**"]
        )

        search_s, found = timed(lambda: model.search(queries, args.k, progress=False))
        query_rows = _dataset(ray, {"id": np.arange(args.queries), "embedding": queries})
        ray_search_s, got = timed(lambda: distributed.collect(distributed.search(query_rows, model, args.k)))
        same = np.array_equal(got["neighbors"], found.ids) and np.array_equal(got["scores"], found.scores)
        rows.append(
            [
                "NNN search (held model)",
                f"{search_s:.1f}",
                f"{ray_search_s:.1f}",
                f"ids and scores bit for bit: **{same}**",
            ]
        )

        blend_s, blended = timed(
            lambda: NeighborhoodBlender(thresholds, k=args.k, progress=False).fit_transform(database)
        )
        ray_blend_s, out = timed(lambda: distributed.collect(distributed.blend(pattern, thresholds, args.k)))
        gap = float(np.abs(out["embedding"] - blended).max())
        rows.append(
            [
                "exact blending, 2 passes",
                f"{blend_s:.1f}",
                f"{ray_blend_s:.1f}",
                f"largest difference {gap:.1e} (≤ 1e-6: **{gap <= 1e-6}**)",
            ]
        )

        checks: list = []
        part_s, parted = timed(
            lambda: distributed.collect(distributed.blend(pattern, thresholds, args.k, lists="auto", checks=checks))
        )
        recall = ", ".join(f"pass {c['pass']}: {c['recall']:.4f} ± {c['standard_error']:.4f}" for c in checks)
        part_gap = float(np.abs(parted["embedding"] - blended).max())
        rows.append(
            [
                "partitioned blending (lists 2√n, n_probe 8)",
                "—",
                f"{part_s:.1f}",
                f"measured recall {recall}; largest difference {part_gap:.1e}",
            ]
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)

    body = (
        f"{args.rows:,} × {args.dim} clustered unit vectors in {args.shards} parquet shards, bank {args.bank:,}, "
        f"{args.queries:,} queries, k={args.k}, blending thresholds {thresholds}; local Ray with {cpus} CPUs.\n\n"
        + markdown_table(["job", "one process (s)", "Ray Data (s)", "equality"], rows)
        + "\n"
    )
    print(body)
    if args.write:
        write_section(
            "distributed equality", "OMP_NUM_THREADS=2 python benchmarks/distributed_equality.py --write", body
        )


def _dataset(ray, columns):
    from nnlift.distributed.jobs import arrow_table

    return ray.data.from_arrow(arrow_table(columns))


if __name__ == "__main__":
    main()
