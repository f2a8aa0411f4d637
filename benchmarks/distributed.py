"""NNN's bias on Ray Data against one process, on the same parquet shards, in one run.

    OMP_NUM_THREADS=2 python benchmarks/distributed.py [--rows 1000000] [--write]

Contenders, all over the same shards and bank:
- one process: read every shard with nnlift's loader, then ``nnlift.correct.nnn.nnn_bias``;
- ``nnlift.distributed.nnn_bias(..., output=FOLDER)`` on a local Ray with this machine's cores, which reads,
  reduces and writes one parquet part per shard (Ray already started: its start-up is not timed);
- the bare float32 multiply database × bankᵀ of numpy and of torch (no top-k), as the floor.

It prints the ratios (Ray job ÷ one process) and the rows/s per worker that the job reports.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import markdown_table, unit_vectors, write_section  # noqa: E402

from nnlift.correct.nnn import nnn_bias  # noqa: E402
from nnlift.datasets import load_embeddings  # noqa: E402


def write_shards(folder: Path, database: np.ndarray, shards: int) -> str:
    import pyarrow as pa
    import pyarrow.parquet as parquet

    for number, rows in enumerate(np.array_split(np.arange(len(database)), shards)):
        flat = pa.array(database[rows].ravel())
        table = pa.table(
            {"id": pa.array(rows), "embedding": pa.FixedSizeListArray.from_arrays(flat, database.shape[1])}
        )
        parquet.write_table(table, folder / f"shard-{number:03d}.parquet")
    return str(folder / "*.parquet")


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--bank", type=int, default=10_000)
    parser.add_argument("--shards", type=int, default=16)
    parser.add_argument("-k", type=int, default=16)
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()

    from nnlift import distributed

    database = unit_vectors(args.rows, args.dim, seed=1, clusters=100)
    bank = unit_vectors(args.bank, args.dim, seed=2, clusters=100)
    work = Path(tempfile.mkdtemp(prefix="nnlift-bench-"))
    try:
        pattern = write_shards(work, database, args.shards)
        paths = sorted(work.glob("*.parquet"))
        ray = distributed.start(progress=False)
        cpus = int(ray.cluster_resources()["CPU"])

        def one_process():
            rows = np.concatenate([load_embeddings(p)[0] for p in paths])
            return nnn_bias(rows, bank, args.k)

        single_s, single = timed(one_process)
        ray_s, _ = timed(
            lambda: distributed.nnn_bias(pattern, bank, args.k, metric="ip", output=work / "out", overwrite=True)
        )
        report = distributed.last_report()
        got = distributed.collect(distributed.read_output(work / "out"))["bias"]
        blocks = range(0, len(database), 65536)  # the whole product would not fit in memory

        def multiply(a, b):
            for lo in blocks:
                a[lo : lo + 65536] @ b.T  # each block's product is dropped at once

        numpy_s, _ = timed(lambda: multiply(database, bank))
        import torch

        torch.set_num_threads(cpus)
        tdb, tbank = torch.from_numpy(database), torch.from_numpy(bank)
        torch_s, _ = timed(lambda: multiply(tdb, tbank))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    equal = np.array_equal(got, single)
    rows = [
        ["one process (load shards + nnn_bias)", f"{single_s:.2f}", "1.00"],
        [f"Ray Data job, {len(report.workers)} worker(s), parts written", f"{ray_s:.2f}", f"{ray_s / single_s:.2f}"],
        ["numpy float32 multiply only", f"{numpy_s:.2f}", f"{numpy_s / single_s:.2f}"],
        ["torch float32 multiply only", f"{torch_s:.2f}", f"{torch_s / single_s:.2f}"],
    ]
    body = (
        f"{args.rows:,} × {args.dim} database in {args.shards} parquet shards, bank {args.bank:,}, k={args.k}, "
        f"inner product; local Ray with {cpus} CPUs.\n\n"
        + markdown_table(["contender", "seconds", "÷ one process"], rows)
        + f"\n\nRay bias equals the one-process bias bit for bit: **{equal}**.\n\nRows/s per worker (the job's report):\n\n"
        + "\n".join(f"- {line.strip()}" for line in report.lines())
        + "\n"
    )
    print(body)
    if args.write:
        command = f"OMP_NUM_THREADS=2 python benchmarks/distributed.py --rows {args.rows} --write"
        write_section("distributed", command, body)


if __name__ == "__main__":
    main()
