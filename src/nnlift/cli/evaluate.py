"""`nnlift demo` (a reverse dictionary: WordNet, GCIDE or FOLDOC) and `nnlift eval` (your own embeddings)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer
from rich.console import Console

from .common import (
    UserError,
    app,
    console,
    load_with,
    method_choices,
    parse_grids,
    parse_methods,
    print_results,
    report_folder,
)

METHODS_HELP = f"Comma-separated methods: {method_choices()}."
GRID_HELP = (
    "Replace one parameter's validation grid, METHOD.PARAMETER=V1,V2 (repeatable), e.g. nnn.k=8,16,32 "
    "or dn.correction__alpha=0.5,1; a method named here is added to --methods."
)


def report_progress(progress) -> None:
    """One line per finished method, with the estimated time left (on stderr, so tables stay clean)."""
    errors.print(progress.line())


errors = Console(stderr=True, markup=False, highlight=False)

DEMO_METHODS = "cosine,nnn,dn_nnn,csls,is,qbnorm,dba,dba_nnn"
DATASETS = {"wordnet": "WordNet", "gcide": "GCIDE", "foldoc": "FOLDOC"}


@app.command()
def demo(
    model: Annotated[
        str, typer.Option(help="Text embedder: wordllama (fast, default) or minilm (needs torch).")
    ] = "wordllama",
    n_bank: Annotated[int, typer.Option(min=1, help="Bank queries (ref side).")] = 10_000,
    n_val: Annotated[int, typer.Option(min=1, help="Validation queries, for choosing settings.")] = 2_000,
    n_test: Annotated[int, typer.Option(min=1, help="Test queries, for the reported numbers.")] = 3_000,
    n_gallery: Annotated[
        Optional[int],
        typer.Option(min=1, help="Shrink the gallery to N documents for a quick look (every query's answer kept)."),
    ] = None,
    methods: Annotated[str, typer.Option(help=METHODS_HELP)] = DEMO_METHODS,
    dataset: Annotated[
        str,
        typer.Option(
            help="Reverse dictionary: wordnet (apt-get install wordnet-base), gcide (dict-gcide) or foldoc "
            "(dict-foldoc, computing terms)."
        ),
    ] = "wordnet",
    data: Annotated[
        Optional[Path],
        typer.Option("--data", "--wordnet", help="Folder with the dataset's files, if not in the standard place."),
    ] = None,
    report: Annotated[Path, typer.Option(help="Folder for report.md, figures and results.json.")] = Path(
        "nnlift-report"
    ),
    seed: int = 0,
) -> None:
    """A reverse dictionary (WordNet by default): find the words from their definition, with and without corrections."""
    from ..datasets import DatasetNotFound, load_reverse_dictionary
    from ..errors import InputError
    from ..embed import MODELS, embed_texts
    from ..evaluate.compare import compare_methods
    from ..plot import write_report

    if model not in MODELS:
        raise UserError(f"--model must be one of {', '.join(MODELS)}; got {model!r}")
    if dataset not in DATASETS:
        raise UserError(f"--dataset must be one of {', '.join(DATASETS)}; got {dataset!r}")
    names = parse_methods(methods)
    report_folder(report)
    title = DATASETS[dataset]
    start = time.perf_counter()
    try:
        with console.status(f"building the {title} reverse dictionary"):
            data = load_reverse_dictionary(dataset, data, seed=seed, n_bank=n_bank, n_val=n_val, n_test=n_test,
                                           n_gallery=n_gallery)  # fmt: skip
    except (DatasetNotFound, InputError) as exc:
        raise UserError(str(exc)) from None
    sizes = data.summary()
    console.print(
        f"{title} reverse dictionary: gallery {sizes['gallery']:,} documents; bank {sizes['bank']:,}, "
        f"val {sizes['val']:,}, test {sizes['test']:,} queries"
    )
    gallery = embed_texts(data.gallery, model, description="gallery")
    bank = embed_texts(data.bank, model, description="bank")
    val = embed_texts(data.val_queries, model, description="val queries")
    test = embed_texts(data.test_queries, model, description="test queries")
    embedded = time.perf_counter()
    with console.status("tuning on val, evaluating on test") as status:
        results = compare_methods(
            names,
            gallery,
            bank,
            val,
            data.val_targets,
            test,
            data.test_targets,
            on_method=lambda label: status.update(f"tuning and evaluating {label}"),
            on_done=report_progress,
        )
    seconds = time.perf_counter() - start
    print_results(results, f"{title} reverse dictionary, {model}, test split ({sizes['test']:,} queries)")
    meta = {
        "title": f"{title} reverse dictionary ({model})",
        "dataset": dataset,
        "model": model,
        "seed": seed,
        "gallery": sizes["gallery"],
        "bank": sizes["bank"],
        "val": sizes["val"],
        "test": sizes["test"],
        "embedding seconds": round(embedded - start, 1),
        "wall seconds": round(seconds, 1),
    }
    path = write_report(results, data.test_targets, len(gallery), report, meta)
    console.print(f"report: {path} (wall time {seconds:.0f}s)")


@app.command("eval")
def eval_command(
    database: Annotated[Path, typer.Option(help="Database embeddings (.npy/.npz/.parquet).")],
    queries: Annotated[Path, typer.Option(help="Query embeddings.")],
    targets: Annotated[
        Path, typer.Option(help="Relevant database row per query (.npy ints; 2-D padded with -1 for several).")
    ],
    bank: Annotated[Optional[Path], typer.Option(help="Reference queries for bank-based corrections.")] = None,
    methods: Annotated[str, typer.Option(help=METHODS_HELP)] = "cosine,nnn,csls,is,qbnorm",
    grid: Annotated[Optional[list[str]], typer.Option(help=GRID_HELP)] = None,
    val_fraction: Annotated[float, typer.Option(min=0.05, max=0.9, help="Queries held out to choose settings.")] = 0.25,
    report: Annotated[Optional[Path], typer.Option(help="Write a report folder.")] = None,
    seed: int = 0,
) -> None:
    """Compare corrections on your own embeddings; settings are chosen on a held-out share of the queries."""
    from ..datasets import load_embeddings, load_targets
    from ..evaluate.compare import compare_methods

    names = parse_methods(methods)
    grids = parse_grids(grid)
    names += [name for name in grids if name not in names]
    from ..evaluate.compare import method_grid
    from ..errors import InputError

    for name, override in grids.items():
        try:
            method_grid(name, override)
        except InputError as exc:
            raise UserError(f"--grid: {exc}") from None
    if report is not None:
        report_folder(report)
    database_array, _ = load_with(database, "--database", load_embeddings)
    queries_array, _ = load_with(queries, "--queries", load_embeddings)
    if queries_array.shape[1] != database_array.shape[1]:
        raise UserError(
            f"--queries has {queries_array.shape[1]} dimensions but --database has {database_array.shape[1]}"
        )
    try:
        target_array = load_targets(targets, len(queries_array))
    except (FileNotFoundError, ValueError) as exc:
        raise UserError(f"--targets: {exc}") from None
    from ..evaluate.metrics import check_targets

    try:
        check_targets(target_array, len(queries_array), len(database_array), "--targets")
    except ValueError as exc:
        raise UserError(str(exc)) from None
    bank_array = None
    if bank is not None:
        bank_array, _ = load_with(bank, "--bank", load_embeddings)
        if bank_array.shape[1] != database_array.shape[1]:
            raise UserError(f"--bank has {bank_array.shape[1]} dimensions but --database has {database_array.shape[1]}")
    rng = np.random.default_rng(seed)
    is_val = np.zeros(len(queries_array), dtype=bool)
    is_val[rng.choice(len(queries_array), size=max(1, int(val_fraction * len(queries_array))), replace=False)] = True
    results = compare_methods(
        names,
        database_array,
        bank_array,
        queries_array[is_val],
        target_array[is_val],
        queries_array[~is_val],
        target_array[~is_val],
        grids=grids,
        on_done=report_progress,
    )
    print_results(results, f"test split ({int((~is_val).sum()):,} queries; settings chosen on {int(is_val.sum()):,})")
    if report is not None:
        from ..plot import write_report

        path = write_report(
            results,
            target_array[~is_val],
            len(database_array),
            report,
            {"title": str(database), "queries": str(queries), "bank": str(bank)},
        )
        console.print(f"report: {path}")


@app.command("bank-report")
def bank_report_command(
    bank: Annotated[Path, typer.Option(help="The bank of reference queries (.npy/.npz/.parquet).")],
    queries: Annotated[Path, typer.Option(help="A sample of the real queries (no labels needed).")],
    database: Annotated[Path, typer.Option(help="The database embeddings.")],
    k: Annotated[int, typer.Option("-k", "--k", min=1, help="Neighbours for the similarities and NNN's bias.")] = 10,
    sample: Annotated[int, typer.Option(min=2, help="Rows sampled from the bank and from the queries.")] = 2000,
    seed: int = 0,
) -> None:
    """Is this bank like the queries? Warns, and exits with code 1, when NNN or QB-Norm are likely to hurt."""
    from ..datasets import load_embeddings
    from ..errors import InputError
    from ..evaluate import bank_report

    arrays = {name: load_with(path, f"--{name}", load_embeddings)[0]
              for name, path in (("bank", bank), ("queries", queries), ("database", database))}  # fmt: skip
    try:
        report = bank_report(arrays["bank"], arrays["queries"], arrays["database"], k=k, sample=sample, seed=seed,
                             warn=False)  # fmt: skip
    except InputError as exc:
        raise UserError(str(exc)) from None
    console.print(report.summary(), markup=False)
    if report.likely_to_hurt:
        raise typer.Exit(1)
