"""The certificate's widening rate on real text embeddings: the WordNet gallery, wordllama, every engine.

    python benchmarks/certificate.py [--k 10] [--write]

Searches the WordNet reverse dictionary's test glosses against its gallery
(and the gallery against itself, excluding self, as blending does) on each
engine, checks that ids and scores are identical bit for bit, and counts the
rows whose certificate failed on the first pass and were searched again.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import markdown_table, write_section  # noqa: E402

import nnlift  # noqa: E402
from nnlift.kernel.driver import certificate_counts  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    from nnlift.datasets import load_wordnet
    from nnlift.embed import embed_texts

    data = load_wordnet(seed=0, n_bank=1_000, n_val=1_000, n_test=5_000)
    gallery = embed_texts(data.gallery, "wordllama", description="gallery")
    queries = embed_texts(data.test_queries, "wordllama", description="test queries")
    rows, reference = [], {}
    for engine in ("numpy", "torch", "torch-bf16"):
        for name, run in (
            (f"test glosses → gallery, top-{args.k}", lambda: nnlift.topk(queries, gallery, args.k, engine=engine, progress=False)),
            (f"gallery self-join, top-{args.k}", lambda: nnlift.topk(gallery, gallery, args.k, exclude_self=True, engine=engine, progress=False)),
        ):
            certificate_counts(reset=True)
            start = time.perf_counter()
            found = run()
            seconds = time.perf_counter() - start
            counts = certificate_counts()
            same = name not in reference or (
                np.array_equal(found.ids, reference[name].ids) and found.scores.tobytes() == reference[name].scores.tobytes()
            )
            reference.setdefault(name, found)
            share = counts["widened"] / max(counts["rows"], 1)
            rows.append([name, engine, f"{counts['rows']:,}", f"{counts['widened']:,}", f"{100 * share:.2f}%", f"{seconds:.2f}", "yes" if same else "**no**"])
    table = markdown_table(["search", "engine", "rows", "widened", "share widened", "seconds", "ids+scores = numpy's"], rows)
    summary = (
        f"WordNet gallery {len(gallery):,} × {gallery.shape[1]} (wordllama), {len(queries):,} test glosses. "
        "A widened row failed its first certificate and was searched again with 4× the candidates.\n\n" + table
    )
    print(summary)
    if args.write:
        write_section("Certificate on WordNet", "OMP_NUM_THREADS=2 python benchmarks/certificate.py --write", summary)


if __name__ == "__main__":
    main()
