"""`nnlift nnn fit|search`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .._artifact import check_file_target, check_target
from .common import OverwriteOption, app, console, load_matrix, open_artifact, show_neighbors, write_neighbors

nnn_app = typer.Typer(help="Nearest Neighbor Normalization: fit a bias from a bank, then search.", no_args_is_help=True)

app.add_typer(nnn_app, name="nnn")


@nnn_app.command("fit")
def nnn_fit(
    database: Annotated[Path, typer.Option(help="Database embeddings.")],
    bank: Annotated[Path, typer.Option(help="Bank of reference queries.")],
    output: Annotated[Path, typer.Option(help="Folder for the fitted model (an nnlift artifact).")],
    k: Annotated[int, typer.Option("-k", "--k", min=1)] = 16,
    alpha: float = 0.75,
    approximate: bool = False,
    overwrite: OverwriteOption = False,
) -> None:
    """Learn each database item's bias (mean of its k most similar bank queries) and save the model."""
    from ..correct import NNN

    check_target(output, overwrite=overwrite, option="--output")
    model = NNN(k=k, alpha=alpha, approximate=approximate)
    model.fit(load_matrix(database, "--database"), load_matrix(bank, "--bank"))
    model.save(output, overwrite=overwrite)
    console.print(f"fitted NNN on {model.n_database:,} items (bias mean {model.bias_.mean():.4f}); saved to {output}")


@nnn_app.command("search")
def nnn_search(
    model: Annotated[Path, typer.Option(help="Folder written by `nnlift nnn fit`.")],
    queries: Annotated[Path, typer.Option(help="Query embeddings.")],
    k: Annotated[int, typer.Option("-k", "--k", min=1)] = 10,
    alpha: Annotated[Optional[float], typer.Option(help="Override the fitted alpha.")] = None,
    output: Annotated[Optional[Path], typer.Option(help="Write ids and corrected scores to this .npz.")] = None,
    show: int = 5,
    overwrite: OverwriteOption = False,
) -> None:
    """Top-k by NNN-corrected score with a saved model."""
    from ..correct import NNN

    if output is not None:
        check_file_target(output, overwrite=overwrite, option="--output")

    fitted = open_artifact(NNN, model, "--model", " (fit one with `nnlift nnn fit`)")
    if alpha is not None:
        fitted.set_params(alpha=alpha)
    found = fitted.search(load_matrix(queries, "--queries"), k)
    show_neighbors(found, f"NNN top-{k} (corrected scores)", show)
    if output is not None:
        write_neighbors(output, found, overwrite)
