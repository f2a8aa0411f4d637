"""`nnlift qdrant sample|nnn|blend`, and the options every Qdrant command takes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from .._artifact import check_target
from .common import OverwriteOption, UserError, app, console, load_with, parse_floats

qdrant_app = typer.Typer(
    help="Work on a Qdrant collection (a server by --url, or local mode by --path).", no_args_is_help=True
)

app.add_typer(qdrant_app, name="qdrant")

UrlOption = Annotated[
    Optional[str], typer.Option(help="Qdrant server URL (or $QDRANT_URL); API key from $QDRANT_API_KEY.")
]

PathOption = Annotated[Optional[Path], typer.Option(help="qdrant-client local mode folder (instead of --url).")]

CollectionOption = Annotated[str, typer.Option(help="Collection name.")]

UsingOption = Annotated[Optional[str], typer.Option(help="Named vector to read (omit for an unnamed vector).")]


def open_collection(collection: str, url: Optional[str], path: Optional[Path], using: Optional[str]):
    from ..index.qdrant import QdrantIndex

    if url is None and path is None and not os.environ.get("QDRANT_URL"):
        raise UserError("give --url (a Qdrant server) or --path (qdrant-client local mode)")
    index = QdrantIndex(collection, url=url, path=path, using=using)
    if not index.exists():
        raise UserError(f"--collection: no collection {collection!r} at {url or path}")
    try:
        index._vector_params()
    except ValueError as exc:
        raise UserError(f"--using: {exc}") from None
    return index


@qdrant_app.command("sample")
def qdrant_sample(
    collection: CollectionOption,
    output: Annotated[Path, typer.Option(help="Folder for the sample (an nnlift artifact: CSR parts, ids, vectors).")],
    url: UrlOption = None,
    path: PathOption = None,
    using: UsingOption = None,
    sample: Annotated[int, typer.Option(min=2)] = 20_000,
    limit: Annotated[int, typer.Option(min=1)] = 100,
    seed: int = 0,
    overwrite: OverwriteOption = False,
) -> None:
    """Sample points and their nearest neighbours within the sample (the block-embedding target)."""
    from ..qdrant import sample_similarity_matrix

    check_target(output, overwrite=overwrite, option="--output")
    sampled = sample_similarity_matrix(open_collection(collection, url, path, using), sample, limit, seed=seed)
    sampled.save(output, overwrite=overwrite)  # what `nnlift blocks train --target` reads
    console.print(f"sampled {sampled.matrix.shape[0]:,} points, {sampled.matrix.nnz:,} neighbour pairs; wrote {output}")


@qdrant_app.command("nnn")
def qdrant_nnn(
    collection: CollectionOption,
    bank: Annotated[Path, typer.Option(help="Bank of reference queries (.npy/.npz/.parquet).")],
    url: UrlOption = None,
    path: PathOption = None,
    using: UsingOption = None,
    k: Annotated[int, typer.Option("-k", "--k", min=1)] = 16,
    name: Annotated[
        str, typer.Option(help="Named vector (Dot) for [x, b(x)]; a companion collection if absent.")
    ] = "nnn",
) -> None:
    """Write NNN's folded vectors [x, b(x)] back to the collection (idempotent and resumable)."""
    from ..datasets import load_embeddings
    from ..qdrant import write_nnn

    bank_array, _ = load_with(bank, "--bank", load_embeddings)
    report = write_nnn(open_collection(collection, url, path, using), bank_array, k=k, name=name)
    where = report["destination"]
    console.print(
        f"NNN: wrote {report['written']:,} points, skipped {report['skipped']:,} already written, into "
        f"{where.collection!r} vector {where.using!r}; query it with [q, -alpha] (Dot)"
    )


@qdrant_app.command("blend")
def qdrant_blend(
    collection: CollectionOption,
    url: UrlOption = None,
    path: PathOption = None,
    using: UsingOption = None,
    thresholds: Annotated[str, typer.Option(help="Comma-separated thresholds.")] = "0.9,0.8",
    k: Annotated[int, typer.Option("-k", "--k", min=1)] = 10,
    name: Annotated[str, typer.Option(help="Named vector for the blended vectors.")] = "blended",
) -> None:
    """Blend the collection's vectors with their neighbours and write them to a named vector."""
    from ..blend import NeighborhoodBlender
    from ..qdrant import read_records, write_vectors

    values = parse_floats(thresholds, "--thresholds")
    index = open_collection(collection, url, path, using)
    ids, seqs, vectors = read_records(index)
    blended = NeighborhoodBlender(thresholds=values, k=k).fit_transform(vectors)
    report = write_vectors(index, blended, ids, name=name, seqs=seqs)
    where = report["destination"]
    console.print(
        f"blend: wrote {report['written']:,} points, skipped {report['skipped']:,}, into "
        f"{where.collection!r} vector {where.using!r}"
    )
