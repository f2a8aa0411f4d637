"""The ``nnlift`` command: a thin layer over the library that prints tables and progress."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import numpy as np

try:
    import typer
    from rich.console import Console
    from rich.table import Table
except ImportError as exc:  # pragma: no cover - the cli extra is missing
    raise ImportError(f"the nnlift command needs the cli extra: pip install 'nnlift[cli]' ({exc})") from None

from . import __version__

app = typer.Typer(
    name="nnlift",
    help="Nearest-neighbour corrections for embedding search.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
errors = Console(stderr=True)


class UserError(Exception):
    """Bad input from the user: printed as one short line, exit code 2."""


def load_matrix(path: Path, name: str) -> np.ndarray:
    """Read a 2-D embedding matrix from .npy, or the first array of an .npz."""
    if not path.exists():
        raise UserError(f"{name}: no such file {path}")
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise UserError(f"{name}: cannot read {path} as a numpy array file ({exc})") from None
    if isinstance(data, np.lib.npyio.NpzFile):
        key = "embeddings" if "embeddings" in data.files else data.files[0]
        data = data[key]
    if data.ndim != 2:
        raise UserError(f"{name}: {path} holds an array of shape {data.shape}; expected (rows, dimensions)")
    return data


def _version(value: bool) -> None:
    if value:
        console.print(f"nnlift {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what the library does.")] = False,
    version: Annotated[
        Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = None,
) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s")


@app.command("make-data")
def make_data(
    output: Annotated[Path, typer.Option(help="Folder for database.npy and queries.npy.")] = Path("nnlift-data"),
    n_database: Annotated[int, typer.Option(min=1)] = 20_000,
    n_queries: Annotated[int, typer.Option(min=1)] = 1_000,
    dim: Annotated[int, typer.Option(min=1)] = 128,
    seed: int = 0,
) -> None:
    """Write seeded clustered unit vectors (a stand-in for real embeddings) as .npy files."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((max(n_database // 50, 1), dim)).astype(np.float32)

    def sample(n: int) -> np.ndarray:
        x = centers[rng.integers(0, len(centers), n)] + 0.6 * rng.standard_normal((n, dim)).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    output.mkdir(parents=True, exist_ok=True)
    np.save(output / "database.npy", sample(n_database))
    np.save(output / "queries.npy", sample(n_queries))
    console.print(f"wrote {output / 'database.npy'} ({n_database}×{dim}) and {output / 'queries.npy'} ({n_queries}×{dim})")


@app.command()
def knn(
    database: Annotated[Path, typer.Option(help=".npy/.npz embeddings to search.")],
    queries: Annotated[Path, typer.Option(help=".npy/.npz query embeddings.")],
    k: Annotated[int, typer.Option("-k", "--k", min=1, help="Neighbours per query.")] = 10,
    metric: Annotated[str, typer.Option(help="cosine or ip.")] = "cosine",
    output: Annotated[Optional[Path], typer.Option(help="Write ids and scores to this .npz.")] = None,
    show: Annotated[int, typer.Option(help="Rows of results to print.")] = 5,
) -> None:
    """Exact top-k search of QUERIES against DATABASE with nnlift's blocked kernel."""
    from .kernel import topk

    database_array = load_matrix(database, "--database")
    queries_array = load_matrix(queries, "--queries")
    start = time.perf_counter()
    found = topk(queries_array, database_array, k, metric=metric)
    seconds = time.perf_counter() - start
    table = Table(title=f"top-{k} {metric} neighbours ({len(found)} queries, {len(database_array)} items)")
    table.add_column("query", justify="right")
    table.add_column("ids")
    table.add_column("scores")
    for row in range(min(show, len(found))):
        table.add_row(str(row), " ".join(map(str, found.ids[row])), " ".join(f"{s:.3f}" for s in found.scores[row]))
    console.print(table)
    console.print(f"{len(found) / seconds:,.0f} queries/s ({seconds:.2f}s)")
    if output is not None:
        np.savez(output, ids=found.ids, scores=found.scores)
        console.print(f"wrote {output}")


def main() -> None:
    """Entry point: run the app, turning bad input into one short line instead of a traceback."""
    try:
        app(standalone_mode=False)
    except UserError as exc:
        errors.print(f"[red]error:[/red] {exc}")
        sys.exit(2)
    except (ValueError, TypeError, KeyError) as exc:
        errors.print(f"[red]error:[/red] {exc}")
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        errors.print("aborted")
        sys.exit(1)
    except Exception as exc:
        # Usage errors from typer's (vendored) click carry show() and exit_code.
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):
            exc.show()
            sys.exit(exc.exit_code)
        raise

if __name__ == "__main__":  # pragma: no cover
    main()
