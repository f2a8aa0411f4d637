"""Exact top-k: nnlift.topk on each engine against the GEMM-only floors and faiss IndexFlatIP, in one process and run.

    python benchmarks/kernel.py [--n 100000 --queries 10000 --dim 384 --k 10] [--write]

The floors: numpy float32, torch float32 and torch bfloat16 multiplies with
nothing reduced. Ratios are against the faster *float32* floor (the issue's
target) and faiss. Every engine's ids and scores are compared with the float32
engine's, bit for bit. Prints which BLAS each library runs (threadpoolctl),
then the peak memory of nnlift.topk in a fresh child process.
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


def torch_gemm_only(queries, database, dtype, block=1024):
    """torch's floor: the same multiply on torch's own BLAS (MKL for float32, oneDNN for bfloat16)."""
    import torch

    q = torch.from_numpy(queries).to(dtype)
    x = torch.from_numpy(database).to(dtype)
    for start in range(0, len(queries), block):
        q[start : start + block] @ x.T


def blas_libraries() -> str:
    from threadpoolctl import threadpool_info

    import torch  # noqa: F401 - loaded, so its libraries are listed too

    seen = []
    for pool in threadpool_info():
        name = pool.get("filepath", "").rsplit("/", 1)[-1]
        seen.append(f"{pool.get('internal_api')} {pool.get('version') or ''} {pool.get('architecture') or ''} ({name})".strip())
    return "; ".join(seen) + f"; torch {torch.__version__} float32 matmul: {torch.backends.mkldnn.is_available() and 'oneDNN/MKL'}"


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
    """Run in a fresh process: peak RSS of nnlift.topk over inputs + working_memory.

    torch is imported and the engines calibrated first: the interpreter's
    libraries are not the kernel's memory.
    """
    nnlift.engines.resolve(flops=float("inf"), d=args.dim)
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
    parser.add_argument(
        "--section", default="Exact top-k kernel", help="the RESULTS.md section to write (one per kind of CPU)"
    )
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
    import torch

    from nnlift.kernel.driver import certificate_counts

    engines = ["numpy", "torch", "torch-bf16"]
    runs = {
        "numpy float32 GEMM only": lambda: gemm_only(queries, database),
        "numpy float32 GEMM only (1-thread BLAS per worker)": lambda: gemm_only_workers(queries, database),
        "torch float32 GEMM only": lambda: torch_gemm_only(queries, database, torch.float32),
        "torch bfloat16 GEMM only": lambda: torch_gemm_only(queries, database, torch.bfloat16),
        "faiss IndexFlatIP (default)": lambda: faiss_search(queries, database, args.k),
        "faiss IndexFlatIP (blas_database_bs=16384)": lambda: faiss_search(queries, database, args.k, 16384),
    }
    for engine in engines:
        runs[f"nnlift.topk engine={engine}"] = lambda engine=engine: nnlift.topk(
            queries, database, args.k, progress=False, engine=engine
        )
    runs["nnlift.topk (auto)"] = lambda: nnlift.topk(queries, database, args.k, progress=False)
    times, results = {}, {}
    certificate_counts(reset=True)
    for _ in range(args.repeats):  # interleave the contenders so noise hits them alike
        for name, fn in runs.items():
            seconds, result = best_time(fn, repeats=1)
            times[name] = min(times.get(name, np.inf), seconds)
            results[name] = result
    counts = certificate_counts()
    float32_floor_name = min(
        ["numpy float32 GEMM only", "numpy float32 GEMM only (1-thread BLAS per worker)", "torch float32 GEMM only"],
        key=times.get,
    )
    floor = times[float32_floor_name]
    faiss_default = times["faiss IndexFlatIP (default)"]
    reference = results["nnlift.topk engine=numpy"]
    faiss_ids = results["faiss IndexFlatIP (default)"][1]
    agree = float(np.mean(reference.ids == faiss_ids))
    identical = {}
    for name in runs:
        if name.startswith("nnlift.topk"):
            found = results[name]
            identical[name] = bool(
                np.array_equal(found.ids, reference.ids) and found.scores.tobytes() == reference.scores.tobytes()
            )
    chosen = nnlift.engines.resolve(flops=float("inf"), d=args.dim).name

    rows = []
    for name, seconds in times.items():
        rows.append(
            [
                name,
                f"{seconds:.2f}",
                f"{args.queries / seconds:,.0f}",
                f"{floor / seconds:.2f}",
                f"{faiss_default / seconds:.2f}",
                ("yes" if identical[name] else "**no**") if name in identical else "",
            ]
        )
    table = markdown_table(
        ["method", "seconds (best)", "QPS", "vs float32 floor", "vs faiss default", "ids+scores = numpy engine's"], rows
    )
    best_name = min((name for name in times if name.startswith("nnlift.topk")), key=times.get)
    memory = json.loads(child.stdout)
    budget = memory["inputs"] + memory["working_memory"]
    used = memory["peak"] - memory["baseline"]
    memory_text = (
        f"Peak RSS of nnlift.topk in a fresh process: {used / 2**20:.0f} MiB above the interpreter "
        f"(inputs {memory['inputs'] / 2**20:.0f} MiB + working_memory {memory['working_memory'] / 2**20:.0f} MiB "
        f"= {budget / 2**20:.0f} MiB; overhead {100 * (used / budget - 1):+.1f}%)."
    )
    flags = nnlift.engines.cpu_flags()
    target = 2.0 if "amx_bf16" in flags else 1.3 if "avx512_bf16" in flags else 0.95
    widened = counts["widened"] / max(counts["rows"], 1)
    summary = (
        f"{args.n:,}×{args.dim} database, {args.queries:,} queries, k={args.k}, unit vectors, float32. "
        f"The float32 floor is the fastest float32 GEMM-only run ({float32_floor_name}). "
        f"nnlift's ids equal faiss's on {100 * agree:.2f}% of slots (the rest are float ties/rounding). "
        f"`engine=auto` chose {chosen}. Certificate: {counts['widened']:,} of {counts['rows']:,} rows "
        f"({100 * widened:.2f}%) needed a second, wider pass.\n\n"
        f"BLAS: {blas_libraries()}\n\n"
        f"{table}\n\n{memory_text}\n\n"
        f"Target on this CPU ({'AMX' if target == 2.0 else 'AVX512-BF16' if target == 1.3 else 'no bf16'}): "
        f"nnlift.topk ≥ {target}× the float32 floor: best engine ({best_name}) "
        f"**{floor / times[best_name]:.2f}×**, auto **{floor / times['nnlift.topk (auto)']:.2f}×**; "
        f"≥ 2× faiss default: **{faiss_default / times[best_name]:.2f}×**; ids identical on every engine: "
        f"**{all(identical.values())}**; memory overhead ≤ 10% (**{100 * (used / budget - 1):+.1f}%**)."
    )
    print(summary)
    if args.write:
        named = "" if args.section == "Exact top-k kernel" else f' --section "{args.section}"'
        command = f"OMP_NUM_THREADS=2 python benchmarks/kernel.py --write{named}"
        write_section(args.section, command, summary)


if __name__ == "__main__":
    main()
