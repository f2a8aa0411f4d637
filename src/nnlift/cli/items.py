"""`nnlift index|similar|walk`: items by id and embedding algebra."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from .._artifact import check_file_target, check_target, publish_file
from .common import OverwriteOption, UserError, app, console, load_with, open_artifact, parse_floats


@app.command("index")
def index_command(
    vectors: Annotated[
        Path, typer.Option(help="Item embeddings (.npz with 'embeddings' and 'ids', .npy or .parquet).")
    ],
    output: Annotated[Path, typer.Option(help="Folder for the saved recommender.")],
    backend: Annotated[
        str, typer.Option(help="auto (exact below 20k items, else HNSW M=30), exact, hnsw or ivf.")
    ] = "auto",
    overwrite: OverwriteOption = False,
) -> None:
    """Build and save an index of items by id for `nnlift similar` and `nnlift walk`."""
    from ..datasets import load_embeddings
    from ..index import ExactIndex, IVFIndex
    from ..recommend import Recommender, seed_hnsw

    choices = {
        "auto": lambda: None,
        "exact": lambda: ExactIndex(),
        "ivf": lambda: IVFIndex(n_probe=16),
        "hnsw": seed_hnsw,
    }
    if backend not in choices:
        raise UserError(f"--backend must be one of {', '.join(choices)}; got {backend!r}")
    check_target(output, overwrite=overwrite, option="--output")
    matrix, ids = load_with(vectors, "--vectors", load_embeddings)
    recommender = Recommender(index=choices[backend]()).fit(matrix, None if ids is None else ids.tolist())
    recommender.save(output, overwrite=overwrite)
    console.print(f"indexed {len(recommender):,} items with {recommender.index!r}; saved to {output}")


def open_recommender(path: Path):
    from ..recommend import Recommender

    return open_artifact(Recommender, path, "--index", " (build one with `nnlift index`)")


def parse_id(value: str, recommender) -> object:
    """Ids typed on the command line are strings; use ints when the index holds ints."""
    if recommender.index._external is None or recommender.index._external.dtype.kind in "iu":
        try:
            return int(value)
        except ValueError:
            raise UserError(f"this index has integer ids; {value!r} is not one") from None
    return value


def read_ids(values: list[str], option: str, *, split_commas: bool) -> list[str]:
    """Ids from options: ``@FILE`` reads one id per line (so ids may hold commas); others as given.

    With ``split_commas`` a plain value is a comma-separated list.
    """
    out: list[str] = []
    for value in values:
        if value.startswith("@"):
            path = Path(value[1:])
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except OSError as exc:
                raise UserError(f"{option}={value!r}: cannot read {str(path)!r} ({exc.strerror})") from None
            out += [line.strip() for line in lines if line.strip()]
        elif split_commas:
            out += [part.strip() for part in value.split(",") if part.strip()]
        else:
            out.append(value)
    return out


def _plain(value):
    return value.item() if hasattr(value, "item") else value


JsonOption = Annotated[bool, typer.Option("--json", help="Print the results as JSON (for scripts) instead of tables.")]
FigureOption = Annotated[
    Path | None, typer.Option(help="Also draw the results as a PNG here (the ids as text tiles).")
]




def save_figure(figure: Path, plot, overwrite: bool, quiet: bool) -> None:
    """Write a figure through ``plot(handle)`` atomically: the file appears whole or not at all."""
    publish_file(figure, plot, overwrite=overwrite, option="--figure")
    if not quiet:
        console.print(f"figure: {figure}")


@app.command()
def similar(
    index: Annotated[Path, typer.Option(help="Folder written by `nnlift index`.")],
    id: Annotated[list[str], typer.Option("--id", help="Item id (repeat for several; @FILE: one id per line).")],
    k: Annotated[int, typer.Option("-k", "--k", min=1)] = 10,
    as_json: JsonOption = False,
    figure: FigureOption = None,
    overwrite: OverwriteOption = False,
) -> None:
    """The items most similar to an item, the item itself left out."""
    if figure is not None:
        check_file_target(figure, overwrite=overwrite, option="--figure")
    recommender = open_recommender(index)
    results, found = [], []
    for value in read_ids(id, "--id", split_commas=False):
        item = parse_id(value, recommender)
        found.append((item, recommender.similar(item, k)))
        pairs = found[-1][1].pairs()
        results.append({"id": _plain(item), "similar": [{"id": _plain(i), "score": float(s)} for i, s in pairs]})
        if as_json:
            continue
        table = Table(title=f"similar to {item}")
        table.add_column("rank", justify="right")
        table.add_column("id")
        table.add_column("score", justify="right")
        for rank, (label, score) in enumerate(pairs, start=1):
            table.add_row(str(rank), str(label), f"{score:.4f}")
        console.print(table)
    if as_json:
        typer.echo(json.dumps(results))
    if figure is not None:
        from ..neighbors import Neighbors
        from ..plot import plot_neighbors

        stacked = Neighbors.concatenate([n for _, n in found])
        queries = [item for item, _ in found]
        save_figure(
            figure,
            lambda handle: plot_neighbors(queries, stacked, path=handle, max_rows=len(found), title="similar items"),
            overwrite,
            as_json,
        )


@app.command()
def walk(
    index: Annotated[Path, typer.Option(help="Folder written by `nnlift index`.")],
    from_ids: Annotated[
        list[str], typer.Option(help="Ids of the group to walk away from: comma-separated, repeated, or @FILE.")
    ],
    to_ids: Annotated[
        list[str], typer.Option(help="Ids of the group to walk towards: comma-separated, repeated, or @FILE.")
    ],
    start: Annotated[str | None, typer.Option(help="Starting item (default: the centroid of --from-ids).")] = None,
    scales: Annotated[str, typer.Option(help="Comma-separated step sizes.")] = "0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9",
    k: Annotated[int, typer.Option("-k", "--k", min=1)] = 10,
    as_json: JsonOption = False,
    figure: FigureOption = None,
    overwrite: OverwriteOption = False,
) -> None:
    """Walk from a point along the direction between two groups' centroids; show the neighbours at each step."""
    from ..algebra import centroid, direction
    from ..algebra import walk as walk_along

    if figure is not None:
        check_file_target(figure, overwrite=overwrite, option="--figure")
    recommender = open_recommender(index)
    source = [parse_id(v, recommender) for v in read_ids(from_ids, "--from-ids", split_commas=True)]
    target = [parse_id(v, recommender) for v in read_ids(to_ids, "--to-ids", split_commas=True)]
    if not source or not target:
        raise UserError("--from-ids and --to-ids each need at least one id")
    steps_at = list(parse_floats(scales, "--scales"))
    origin = parse_id(start, recommender) if start is not None else centroid(source, recommender)
    steps = walk_along(origin, direction(source, target, recommender), recommender, scales=steps_at, k=k)
    if figure is not None:
        from ..plot import plot_walk

        title = f"walk from {start or 'the --from-ids centroid'} towards the --to-ids centroid"
        save_figure(
            figure,
            lambda handle: plot_walk(steps, handle, start=None if start is None else origin, title=title),
            overwrite,
            as_json,
        )
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {"scale": float(step.scale), "ids": [_plain(i) for i in step.ids], "new": [_plain(i) for i in step.new]}
                    for step in steps
                ]
            )
        )
        return
    table = Table(title=f"walk from {start or 'the --from-ids centroid'} towards the --to-ids centroid")
    table.add_column("scale", justify="right")
    table.add_column("neighbours")
    table.add_column("new at this step")
    for step in steps:
        table.add_row(f"{step.scale:g}", " ".join(map(str, step.ids)), " ".join(map(str, step.new)) or "—")
    console.print(table)
