"""Exact top-k: nnlift.topk against the GEMM-only floor and faiss IndexFlatIP, in one process and run.

    python benchmarks/kernel.py [--n 100000 --queries 10000 --dim 384 --k 10] [--write]

Prints QPS and ratios (higher is better for nnlift), then the peak memory of
nnlift.topk measured in a fresh child process against inputs + working_memory.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import best_time, current_rss_bytes, markdown_table, peak_rss_bytes, unit_vectors, write_section  # noqa: E402

import nnlift  # noqa: E402
from nnlift._threads import default_workers, single_threaded_blas  # noqa: E402
from nnlift.kernel import DEFAULT_WORKING_MEMORY  # noqa: E402


def gemm_only(queries, database, block=1024):
    """The floor: the same multiply with nothing reduced (BLAS on every core)."""
    for start in range(0, len(queries), block):
        queries[start : start + block] @ database.T


def gemm_only_workers(queries, database, block=256):
    """The floor as nnlift runs it: one single-threaded BLAS per worker thread."""

    def one(start: int) -> None:
        queries[start : start + block] @ database.T  # result dropped at once, as nnlift drops tiles

    with single_threaded_blas(), ThreadPoolExecutor(default_workers()) as pool:
        list(pool.map(one, range(0, len(queries), block)))


def faiss_search(queries, database, k, block_size=None):
    import faiss

    faiss.omp_set_num_threads(default_workers())
    if block_size is not None:
        old = faiss.cvar.distance_compute_blas_database_bs
        faiss.cvar.distance_compute_blas_database_bs = block_size
    index = faiss.IndexFlatIP(database.shape[1])
    index.add(database)
    result = index.search(queries, k)
    if block_size is not None:
        faiss.cvar.distance_compute_blas_database_bs = old
    return result


def child_memory(args) -> dict:
    """Run in a fresh process: peak RSS of nnlift.topk over inputs + working_memory."""
    baseline = current_rss_bytes()
    database = unit_vectors(args.n, args.dim, seed=1)
    queries = unit_vectors(args.queries, args.dim, seed=2)
    inputs = database.nbytes + queries.nbytes
    before = current_rss_bytes()
    nnlift.topk(queries, database, args.k, progress=False)
    peak = peak_rss_bytes()
    return {
        "baseline": baseline,
        "inputs": inputs,
        "after_inputs": before,
        "peak": peak,
        "working_memory": DEFAULT_WORKING_MEMORY,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    parser.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        print(json.dumps(child_memory(args)))
        return

    # First, before this process grows: Linux carries ru_maxrss over fork and exec.
    child = subprocess.run(
        [
            sys.executable,
            __file__,
            "--memory-child",
            "--n",
            str(args.n),
            "--queries",
            str(args.queries),
            "--dim",
            str(args.dim),
            "--k",
            str(args.k),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    database = unit_vectors(args.n, args.dim, seed=1)
    queries = unit_vectors(args.queries, args.dim, seed=2)
    runs = {
        "GEMM only (BLAS threads)": lambda: gemm_only(queries, database),
        "GEMM only (1-thread BLAS per worker)": lambda: gemm_only_workers(queries, database),
        "faiss IndexFlatIP (default)": lambda: faiss_search(queries, database, args.k),
        "faiss IndexFlatIP (blas_database_bs=16384)": lambda: faiss_search(queries, database, args.k, 16384),
        "nnlift.topk": lambda: nnlift.topk(queries, database, args.k, progress=False),
    }
    times, results = {}, {}
    for _ in range(args.repeats):  # interleave the contenders so noise hits them alike
        for name, fn in runs.items():
            seconds, result = best_time(fn, repeats=1)
            times[name] = min(times.get(name, np.inf), seconds)
            results[name] = result
    floor = min(times["GEMM only (BLAS threads)"], times["GEMM only (1-thread BLAS per worker)"])
    faiss_default = times["faiss IndexFlatIP (default)"]
    ours = results["nnlift.topk"]
    faiss_ids = results["faiss IndexFlatIP (default)"][1]
    agree = float(np.mean(ours.ids == faiss_ids))

    rows = []
    for name, seconds in times.items():
        rows.append(
            [
                name,
                f"{seconds:.2f}",
                f"{args.queries / seconds:,.0f}",
                f"{floor / seconds:.2f}",
                f"{faiss_default / seconds:.2f}",
            ]
        )
    table = markdown_table(["method", "seconds (best)", "QPS", "vs GEMM floor", "vs faiss default"], rows)

    memory = json.loads(child.stdout)
    budget = memory["inputs"] + memory["working_memory"]
    used = memory["peak"] - memory["baseline"]
    memory_text = (
        f"Peak RSS of nnlift.topk in a fresh process: {used / 2**20:.0f} MiB above the interpreter "
        f"(inputs {memory['inputs'] / 2**20:.0f} MiB + working_memory {memory['working_memory'] / 2**20:.0f} MiB "
        f"= {budget / 2**20:.0f} MiB; overhead {100 * (used / budget - 1):+.1f}%)."
    )
    summary = (
        f"{args.n:,}×{args.dim} database, {args.queries:,} queries, k={args.k}, unit vectors, float32. "
        f"nnlift ids equal faiss's on {100 * agree:.2f}% of slots (the rest are float ties/rounding).\n\n"
        f"{table}\n\n{memory_text}\n\n"
        f"Targets: nnlift.topk ≥ 0.9× the GEMM floor (**{floor / times['nnlift.topk']:.2f}×**) and ≥ 1.1× faiss "
        f"default (**{faiss_default / times['nnlift.topk']:.2f}×**); memory overhead ≤ 10% "
        f"(**{100 * (used / budget - 1):+.1f}%**)."
    )
    print(summary)
    if args.write:
        command = "OMP_NUM_THREADS=2 python benchmarks/kernel.py --write"
        write_section("Exact top-k kernel", command, summary)


if __name__ == "__main__":
    main()
