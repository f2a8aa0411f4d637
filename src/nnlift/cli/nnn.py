"""`nnlift nnn fit|search`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .._artifact import check_file_target, check_target
from .common import (
    OverwriteOption,
    UserError,
    app,
    console,
    load_matrix,
    open_artifact,
    show_neighbors,
    write_neighbors,
)

nnn_app = typer.Typer(help="Nearest Neighbor Normalization: fit a bias from a bank, then search.", no_args_is_help=True)

app.add_typer(nnn_app, name="nnn")


@nnn_app.command("fit")
def nnn_fit(
    database: Annotated[Path, typer.Option(help="Database embeddings.")],
    bank: Annotated[Path, typer.Option(help="Bank of reference queries.")],
    output: Annotated[Path, typer.Option(help="Folder for the fitted model (an nnlift artifact).")],
    k: Annotated[int, typer.Option("-k", "--k", min=1)] = 16,
    alpha: float = 0.75,
    approximate: Annotated[bool, typer.Option(help="Shorthand for --index ivf.")] = False,
    index: Annotated[
        str, typer.Option(help="exact, ivf or hnsw; ivf and hnsw are Checked: measured on a sample, exact when low.")
    ] = "exact",
    n_probe: Annotated[int | None, typer.Option(min=1, help="--index ivf: lists probed per query (default 8).")] = None,
    ef_search: Annotated[
        int | None, typer.Option(min=1, help="--index hnsw: the graph's search breadth (default 128).")
    ] = None,
    overwrite: OverwriteOption = False,
    ray: Annotated[
        bool,
        typer.Option(
            "--ray",
            help="Run on Ray Data: --database is shard files or a glob; --output gets one part-NNNNN.parquet of "
            "(id, bias) per shard, and a rerun resumes.",
        ),
    ] = False,
    ray_address: Annotated[
        str | None, typer.Option(help="--ray: the cluster (default RAY_ADDRESS, else a local Ray on this machine).")
    ] = None,
    fold: Annotated[bool, typer.Option(help="--ray: also write the folded [x, b(x)] vectors, for Qdrant.")] = False,
) -> None:
    """Learn each database item's bias (mean of its k most similar bank queries) and save the model."""
    from ..correct import NNN

    chosen = approximate_index("ivf" if approximate else index, n_probe, ef_search)
    if ray:
        fit_on_ray(str(database), bank, output, k, chosen, ray_address, fold, overwrite)
        return
    if ray_address is not None or fold:
        raise UserError("--ray-address and --fold apply to --ray")
    check_target(output, overwrite=overwrite, option="--output")
    model = NNN(k=k, alpha=alpha, index=chosen)
    model.fit(load_matrix(database, "--database"), load_matrix(bank, "--bank"))
    model.save(output, overwrite=overwrite)
    checks = "".join(
        f"; {c['on']} {c['reduction']}: "
        + (f"recall {c['recall']:.3f}" if "recall" in c else f"error {c['error']:.2e}")
        + (f" ({c['action']})" if c["action"] != "none" else "")
        for c in model.checks_
    )
    console.print(
        f"fitted NNN on {model.n_database:,} items (bias mean {model.bias_.mean():.4f}{checks}); saved to {output}"
    )


def fit_on_ray(database: str, bank: Path, output: Path, k: int, index, address, fold: bool, overwrite: bool) -> None:
    """``nnlift nnn fit --ray``: the bias as a resumable Ray Data job, one parquet part per input shard."""
    from .. import distributed

    distributed.start(address)
    checks: list = []
    distributed.nnn_bias(
        database, load_matrix(bank, "--bank"), k, fold=fold, index=index, checks=checks, output=output,
        overwrite=overwrite,
    )
    for line in distributed.last_report().lines():
        console.print(line)
    for record in checks:
        console.print(f"bank index measured: {record}")
    console.print(f"NNN bias written to {output} as parquet parts (id, bias{', folded' if fold else ''})")


def approximate_index(kind: str, n_probe: int | None, ef_search: int | None):
    """The index template for ``--index``: exact, or a Checked IVF or HNSW graph with its own setting."""
    from ..index import Checked, ExactIndex, IVFIndex
    from ..recommend import default_index

    if kind not in ("exact", "ivf", "hnsw"):
        raise UserError(f"--index must be exact, ivf or hnsw; got {kind!r}")
    if n_probe is not None and kind != "ivf":
        raise UserError(f"--n-probe applies to --index ivf; this run uses --index {kind}")
    if ef_search is not None and kind != "hnsw":
        raise UserError(f"--ef-search applies to --index hnsw; this run uses --index {kind}")
    if kind == "exact":
        return ExactIndex()
    if kind == "ivf":
        return Checked(IVFIndex(n_probe=n_probe or 8))
    graph = default_index(1, exact_below=0)  # the seed's HNSW (M=30, efConstruction=100): faiss, else hnswlib
    if not hasattr(graph, "ef_search"):
        raise UserError("--index hnsw needs faiss or hnswlib (pip install 'nnlift[faiss]')")
    graph.ef_search = ef_search or graph.ef_search
    return Checked(graph)


@nnn_app.command("search")
def nnn_search(
    model: Annotated[Path, typer.Option(help="Folder written by `nnlift nnn fit`.")],
    queries: Annotated[Path, typer.Option(help="Query embeddings.")],
    k: Annotated[int, typer.Option("-k", "--k", min=1)] = 10,
    alpha: Annotated[float | None, typer.Option(help="Override the fitted alpha.")] = None,
    output: Annotated[Path | None, typer.Option(help="Write ids and corrected scores to this .npz.")] = None,
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
