"""How long NNN write-back takes in qdrant-client's local mode (a pure-Python stand-in for a server).

    python benchmarks/qdrant_writeback.py [--n 100000 --dim 128] [--write]

Times: loading the collection (upsert), NNN write-back (fit + write [x, b(x)]
to a companion collection), and the idempotent re-run (nothing left to write).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import markdown_table, unit_vectors, write_section  # noqa: E402

from nnlift.index.qdrant import QdrantIndex  # noqa: E402
from nnlift.qdrant import write_nnn  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    vectors = unit_vectors(args.n, args.dim, seed=1, clusters=100)
    bank = unit_vectors(10_000, args.dim, seed=2, clusters=100)
    ids = [f"item-{i}" for i in range(args.n)]
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        index = QdrantIndex("items", path=folder, using="dense", batch_size=1024, progress=False)
        start = time.perf_counter()
        index.add(vectors, ids)
        rows.append(["load the collection (upsert)", f"{time.perf_counter() - start:.0f}"])
        start = time.perf_counter()
        report = write_nnn(index, bank, k=16)
        rows.append([f"NNN write-back ({report['written']:,} points written)", f"{time.perf_counter() - start:.0f}"])
        start = time.perf_counter()
        again = write_nnn(index, bank, k=16)
        rows.append(
            [f"re-run ({again['skipped']:,} skipped, {again['written']} written)", f"{time.perf_counter() - start:.0f}"]
        )
    body = (
        f"{args.n:,} points × {args.dim} dims, string ids, on-disk local mode (`path=`), batches of 1,024; "
        f"bank of 10,000, k=16.\n\n{markdown_table(['step', 'seconds'], rows)}\n\n"
        "Local mode is a Python stand-in for a server: use it for correctness, not speed."
    )
    print(body)
    if args.write:
        write_section(
            "Qdrant write-back in local mode", "OMP_NUM_THREADS=2 python benchmarks/qdrant_writeback.py --write", body
        )


if __name__ == "__main__":
    main()
