"""`nnlift make-data` and `nnlift knn`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer

from .._artifact import check_file_target, publish_file
from .common import OverwriteOption, UserError, app, console, load_matrix, show_neighbors, write_neighbors


@app.command("make-data")
def make_data(
    output: Annotated[Path, typer.Option(help="Folder for database.npy and queries.npy.")] = Path("nnlift-data"),
    n_database: Annotated[int, typer.Option(min=1)] = 20_000,
    n_queries: Annotated[int, typer.Option(min=1)] = 1_000,
    dim: Annotated[int, typer.Option(min=1)] = 128,
    seed: int = 0,
    overwrite: OverwriteOption = False,
) -> None:
    """Write seeded clustered unit vectors (a stand-in for real embeddings) as .npy files."""
    if output.exists() and not output.is_dir():
        raise UserError(f"--output={str(output)!r} is a file; give a folder")
    output.mkdir(parents=True, exist_ok=True)
    targets = {
        name: check_file_target(output / name, overwrite=overwrite, option="--output")
        for name in ("database.npy", "queries.npy")
    }
    from ..datasets import clustered_unit_vectors

    database_rows, query_rows = clustered_unit_vectors(n_database, n_queries, dim, seed=seed)
    for name, rows in (("database.npy", database_rows), ("queries.npy", query_rows)):
        publish_file(
            targets[name], lambda handle, rows=rows: np.save(handle, rows), overwrite=overwrite, option="--output"
        )
    console.print(
        f"wrote {output / 'database.npy'} ({n_database}×{dim}) and {output / 'queries.npy'} ({n_queries}×{dim})"
    )


@app.command()
def knn(
    database: Annotated[Path, typer.Option(help=".npy/.npz embeddings to search.")],
    queries: Annotated[Path, typer.Option(help=".npy/.npz query embeddings.")],
    k: Annotated[int, typer.Option("-k", "--k", min=1, help="Neighbours per query.")] = 10,
    metric: Annotated[str, typer.Option(help="cosine or ip.")] = "cosine",
    output: Annotated[Optional[Path], typer.Option(help="Write ids and scores to this .npz.")] = None,
    show: Annotated[int, typer.Option(help="Rows of results to print.")] = 5,
    overwrite: OverwriteOption = False,
) -> None:
    """Exact top-k search of QUERIES against DATABASE with nnlift's blocked kernel."""
    from ..kernel import topk

    if output is not None:
        check_file_target(output, overwrite=overwrite, option="--output")

    database_array = load_matrix(database, "--database")
    queries_array = load_matrix(queries, "--queries")
    start = time.perf_counter()
    found = topk(queries_array, database_array, k, metric=metric)
    seconds = time.perf_counter() - start
    show_neighbors(found, f"top-{k} {metric} neighbours ({len(found)} queries, {len(database_array)} items)", show)
    console.print(f"{len(found) / seconds:,.0f} queries/s ({seconds:.2f}s)")
    if output is not None:
        write_neighbors(output, found, overwrite)
