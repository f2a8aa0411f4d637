"""The ``nnlift`` command: a thin layer over the library that prints tables and progress."""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import numpy as np

try:
    import typer
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text
except ImportError as exc:  # pragma: no cover - the cli extra is missing
    raise ImportError(f"the nnlift command needs the cli extra: pip install 'nnlift[cli]' ({exc})") from None

from . import __version__
from ._artifact import check_file_target, check_target, publish_file
from .errors import MissingExtraError, NnliftError

app = typer.Typer(
    name="nnlift",
    help="Nearest-neighbour corrections for embedding search.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# No markup: paths, collection names and messages are the user's text ("[q, -alpha]" is not a style).
console = Console(markup=False)
errors = Console(stderr=True, soft_wrap=True, markup=False)
OverwriteOption = Annotated[
    bool, typer.Option("--overwrite", help="Replace an existing output (an nnlift artifact or a file).")
]


class UserError(Exception):
    """Bad input from the user: printed as one short line, exit code 2."""


def load_matrix(path: Path, name: str) -> np.ndarray:
    """A 2-D embedding matrix from .npy, .npz or parquet: the one loader of every command."""
    from .datasets import load_embeddings

    return _load(path, name, load_embeddings)[0]


def parse_floats(text: str, option: str) -> tuple[float, ...]:
    """Numbers separated by commas (``--thresholds 0.9,0.8``), or a one-line error naming the option."""
    try:
        values = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise UserError(f"{option} must be numbers separated by commas; got {text!r}") from None
    if not values:
        raise UserError(f"{option} is empty; give numbers separated by commas")
    return values


def _report_folder(report: Path) -> Path:
    """A report folder that can be written (created if needed), checked before the work starts."""
    if report.exists() and not report.is_dir():
        raise UserError(f"--report={str(report)!r} is a file; give a folder")
    try:
        report.mkdir(parents=True, exist_ok=True)
        probe = report / f".nnlift-probe-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise UserError(f"--report={str(report)!r}: cannot write there ({exc.strerror})") from None
    return report


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
    overwrite: OverwriteOption = False,
) -> None:
    """Write seeded clustered unit vectors (a stand-in for real embeddings) as .npy files."""
    if output.exists() and not output.is_dir():
        raise UserError(f"--output={str(output)!r} is a file; give a folder")
    output.mkdir(parents=True, exist_ok=True)
    targets = {name: check_file_target(output / name, overwrite=overwrite, option="--output") for name in ("database.npy", "queries.npy")}
    from .datasets import clustered_unit_vectors

    database_rows, query_rows = clustered_unit_vectors(n_database, n_queries, dim, seed=seed)
    for name, rows in (("database.npy", database_rows), ("queries.npy", query_rows)):
        publish_file(targets[name], lambda handle, rows=rows: np.save(handle, rows), overwrite=overwrite, option="--output")
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
    from .kernel import topk

    if output is not None:
        check_file_target(output, overwrite=overwrite, option="--output")

    database_array = load_matrix(database, "--database")
    queries_array = load_matrix(queries, "--queries")
    start = time.perf_counter()
    found = topk(queries_array, database_array, k, metric=metric)
    seconds = time.perf_counter() - start
    _show_neighbors(found, f"top-{k} {metric} neighbours ({len(found)} queries, {len(database_array)} items)", show)
    console.print(f"{len(found) / seconds:,.0f} queries/s ({seconds:.2f}s)")
    if output is not None:
        _write_neighbors(output, found, overwrite)


def _write_neighbors(output: Path, found, overwrite: bool) -> None:
    publish_file(
        output, lambda handle: np.savez(handle, ids=found.ids, scores=found.scores), overwrite=overwrite, option="--output"
    )
    console.print(f"wrote {output}")


def _print_results(results, title: str) -> None:
    from rich import box

    from .plot import results_table

    rows = results_table(results)
    short = {"hit@1": "@1", "hit@5": "@5", "hit@10": "@10", "N10 skew": "skew", "Δhit@1 [95% CI]": "Δ@1 [95% CI]"}
    table = Table(
        title=title,
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
        title_justify="left",
        caption="hit rate@k and MRR in %; skew: N10 skewness; Δ@1: hit@1 gain over cosine",
        caption_justify="left",
    )
    columns = [c for c in rows[0] if c != "setting (chosen on val)"]
    for column in columns:
        table.add_column(short.get(column, column), justify="left" if column == "method" else "right", no_wrap=True)
    for row in rows:
        table.add_row(*(row[c] for c in columns))
    console.print(table)
    console.print("settings chosen on the validation split:")
    for row in rows[1:]:
        console.print(f"  {row['method']}: {row['setting (chosen on val)']}")


def _parse_methods(methods: str) -> list[str]:
    from .evaluate.compare import METHODS

    names = [m.strip() for m in methods.split(",") if m.strip()]
    unknown = [m for m in names if m not in METHODS]
    if unknown:
        raise UserError(f"--methods: unknown {unknown}; choose from {', '.join(METHODS)}")
    return names


DEMO_METHODS = "cosine,nnn,dn_nnn,csls,is,qbnorm,dba,dba_nnn"


@app.command()
def demo(
    model: Annotated[
        str, typer.Option(help="Text embedder: wordllama (fast, default) or minilm (needs torch).")
    ] = "wordllama",
    n_bank: Annotated[int, typer.Option(min=1, help="Bank queries (ref side).")] = 10_000,
    n_val: Annotated[int, typer.Option(min=1, help="Validation queries, for choosing settings.")] = 2_000,
    n_test: Annotated[int, typer.Option(min=1, help="Test queries, for the reported numbers.")] = 3_000,
    methods: Annotated[str, typer.Option(help="Comma-separated methods.")] = DEMO_METHODS,
    wordnet: Annotated[Optional[Path], typer.Option(help="Folder with WordNet's data.* files.")] = None,
    report: Annotated[Path, typer.Option(help="Folder for report.md, figures and results.json.")] = Path(
        "nnlift-report"
    ),
    seed: int = 0,
) -> None:
    """The WordNet reverse dictionary: find a synset's words from its definition, with and without corrections."""
    from .datasets import WordNetNotFound, load_wordnet
    from .embed import MODELS, embed_texts
    from .evaluate.compare import compare_methods
    from .plot import write_report

    if model not in MODELS:
        raise UserError(f"--model must be one of {', '.join(MODELS)}; got {model!r}")
    names = _parse_methods(methods)
    _report_folder(report)
    start = time.perf_counter()
    try:
        with console.status("building the WordNet reverse dictionary"):
            data = load_wordnet(wordnet, seed=seed, n_bank=n_bank, n_val=n_val, n_test=n_test)
    except WordNetNotFound as exc:
        raise UserError(str(exc)) from None
    sizes = data.summary()
    console.print(
        f"WordNet reverse dictionary: gallery {sizes['gallery']:,} documents; bank {sizes['bank']:,}, "
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
        )
    seconds = time.perf_counter() - start
    _print_results(results, f"WordNet reverse dictionary, {model}, test split ({sizes['test']:,} queries)")
    meta = {
        "title": f"WordNet reverse dictionary ({model})",
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
    methods: Annotated[str, typer.Option(help="Comma-separated methods.")] = "cosine,nnn,csls,is,qbnorm",
    val_fraction: Annotated[float, typer.Option(min=0.05, max=0.9, help="Queries held out to choose settings.")] = 0.25,
    report: Annotated[Optional[Path], typer.Option(help="Write a report folder.")] = None,
    seed: int = 0,
) -> None:
    """Compare corrections on your own embeddings; settings are chosen on a held-out share of the queries."""
    from .datasets import load_embeddings, load_targets
    from .evaluate.compare import compare_methods

    names = _parse_methods(methods)
    if report is not None:
        _report_folder(report)
    database_array, _ = _load(database, "--database", load_embeddings)
    queries_array, _ = _load(queries, "--queries", load_embeddings)
    if queries_array.shape[1] != database_array.shape[1]:
        raise UserError(
            f"--queries has {queries_array.shape[1]} dimensions but --database has {database_array.shape[1]}"
        )
    try:
        target_array = load_targets(targets, len(queries_array))
    except (FileNotFoundError, ValueError) as exc:
        raise UserError(f"--targets: {exc}") from None
    from .evaluate.metrics import check_targets

    try:
        check_targets(target_array, len(queries_array), len(database_array), "--targets")
    except ValueError as exc:
        raise UserError(str(exc)) from None
    bank_array = None
    if bank is not None:
        bank_array, _ = _load(bank, "--bank", load_embeddings)
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
    )
    _print_results(results, f"test split ({int((~is_val).sum()):,} queries; settings chosen on {int(is_val.sum()):,})")
    if report is not None:
        from .plot import write_report

        path = write_report(
            results,
            target_array[~is_val],
            len(database_array),
            report,
            {"title": str(database), "queries": str(queries), "bank": str(bank)},
        )
        console.print(f"report: {path}")


def _load(path: Path, name: str, loader):
    try:
        return loader(path)
    except (FileNotFoundError, NnliftError) as exc:
        raise UserError(f"{name}: {exc}") from None
    except (OSError, EOFError, ValueError) as exc:  # numpy or pyarrow could not read the file
        raise UserError(f"{name}: cannot read {path} ({exc})") from None


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
    from .correct import NNN

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
    from .correct import NNN

    if output is not None:
        check_file_target(output, overwrite=overwrite, option="--output")

    fitted = _open(NNN, model, "--model", " (fit one with `nnlift nnn fit`)")
    if alpha is not None:
        fitted.set_params(alpha=alpha)
    found = fitted.search(load_matrix(queries, "--queries"), k)
    _show_neighbors(found, f"NNN top-{k} (corrected scores)", show)
    if output is not None:
        _write_neighbors(output, found, overwrite)


@app.command()
def blend(
    input: Annotated[Path, typer.Option("--input", help="Embeddings to blend.")],
    output: Annotated[Path, typer.Option(help="Where to write the blended embeddings (.npy).")],
    thresholds: Annotated[str, typer.Option(help="Comma-separated thresholds, one pass each.")] = "0.9,0.8",
    k: Annotated[int, typer.Option("-k", "--k", min=1, help="Neighbours per row, itself included.")] = 10,
    approximate: Annotated[bool, typer.Option(help="IVF neighbour graph (large inputs); recall is reported.")] = False,
    n_probe: Annotated[int, typer.Option(min=1, help="--approximate: lists probed per row.")] = 8,
    n_lists: Annotated[Optional[int], typer.Option(min=1, help="--approximate: IVF lists (default 2√rows).")] = None,
    check_sample: Annotated[
        int, typer.Option(min=1, help="--approximate: rows sampled per pass to measure recall against exact search.")
    ] = 1000,
    overwrite: OverwriteOption = False,
) -> None:
    """Iterative neighbourhood blending: each row becomes the similarity-weighted mean of its neighbours."""
    from .blend import NeighborhoodBlender

    check_file_target(output, overwrite=overwrite, option="--output")

    values = parse_floats(thresholds, "--thresholds")
    blender = NeighborhoodBlender(
        thresholds=values,
        k=k,
        approximate=approximate,
        n_probe=n_probe,
        n_lists=n_lists,
        check_sample=check_sample,
    )
    out = blender.fit_transform(load_matrix(input, "--input"))
    publish_file(output, lambda handle: np.save(handle, out), overwrite=overwrite, option="--output")
    kept = (blender.neighbors_.ids >= 0).sum(axis=1)
    console.print(
        f"blended {len(out):,} rows in {len(values)} pass(es); last pass kept {kept.mean():.1f} neighbours "
        f"per row on average (min {kept.min()}, max {kept.max()})"
    )
    if blender.recall_:
        measured = zip(blender.recall_, blender.recall_standard_error_)
        console.print(
            f"neighbour recall per pass ({blender.check_sample} sampled rows, ± standard error): "
            + ", ".join(f"{r:.4f} ± {se:.4f}" for r, se in measured)
        )
    console.print(f"wrote {output}")


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
    from .datasets import load_embeddings
    from .index import ExactIndex, FaissIndex, IVFIndex
    from .recommend import SEED_HNSW, Recommender

    choices = {
        "auto": lambda: None,
        "exact": lambda: ExactIndex(),
        "ivf": lambda: IVFIndex(n_probe=16),
        "hnsw": lambda: FaissIndex(
            f"HNSW{SEED_HNSW['M']}", ef_construction=SEED_HNSW["ef_construction"], ef_search=128
        ),
    }
    if backend not in choices:
        raise UserError(f"--backend must be one of {', '.join(choices)}; got {backend!r}")
    check_target(output, overwrite=overwrite, option="--output")
    matrix, ids = _load(vectors, "--vectors", load_embeddings)
    recommender = Recommender(index=choices[backend]()).fit(matrix, None if ids is None else ids.tolist())
    recommender.save(output, overwrite=overwrite)
    console.print(f"indexed {len(recommender):,} items with {recommender.index!r}; saved to {output}")


def _open(cls, path: Path, option: str, hint: str = ""):
    """Load a saved artifact of ``cls``, or fail with one line naming the option."""
    from ._artifact import ArtifactError

    try:
        return cls.load(path)
    except ArtifactError as exc:
        raise UserError(f"{option}: {exc}{hint}") from None


def _open_recommender(path: Path):
    from .recommend import Recommender

    return _open(Recommender, path, "--index", " (build one with `nnlift index`)")


def _id(value: str, recommender) -> object:
    """Ids typed on the command line are strings; use ints when the index holds ints."""
    if recommender.index._external is None or recommender.index._external.dtype.kind in "iu":
        try:
            return int(value)
        except ValueError:
            raise UserError(f"this index has integer ids; {value!r} is not one") from None
    return value


@app.command()
def similar(
    index: Annotated[Path, typer.Option(help="Folder written by `nnlift index`.")],
    id: Annotated[list[str], typer.Option("--id", help="Item id (repeat for several).")],
    k: Annotated[int, typer.Option("-k", "--k", min=1)] = 10,
) -> None:
    """The items most similar to an item, the item itself left out."""
    recommender = _open_recommender(index)
    for value in id:
        item = _id(value, recommender)
        table = Table(title=f"similar to {item}")
        table.add_column("rank", justify="right")
        table.add_column("id")
        table.add_column("score", justify="right")
        for rank, (label, score) in enumerate(recommender.similar(item, k).pairs(), start=1):
            table.add_row(str(rank), str(label), f"{score:.4f}")
        console.print(table)


@app.command()
def walk(
    index: Annotated[Path, typer.Option(help="Folder written by `nnlift index`.")],
    from_ids: Annotated[str, typer.Option(help="Comma-separated ids of the group to walk away from.")],
    to_ids: Annotated[str, typer.Option(help="Comma-separated ids of the group to walk towards.")],
    start: Annotated[Optional[str], typer.Option(help="Starting item (default: the centroid of --from-ids).")] = None,
    scales: Annotated[str, typer.Option(help="Comma-separated step sizes.")] = "0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9",
    k: Annotated[int, typer.Option("-k", "--k", min=1)] = 10,
) -> None:
    """Walk from a point along the direction between two groups' centroids; show the neighbours at each step."""
    from .algebra import centroid, direction
    from .algebra import walk as walk_along

    recommender = _open_recommender(index)
    source = [_id(v.strip(), recommender) for v in from_ids.split(",") if v.strip()]
    target = [_id(v.strip(), recommender) for v in to_ids.split(",") if v.strip()]
    if not source or not target:
        raise UserError("--from-ids and --to-ids each need at least one id")
    steps_at = list(parse_floats(scales, "--scales"))
    origin = _id(start, recommender) if start is not None else centroid(source, recommender)
    steps = walk_along(origin, direction(source, target, recommender), recommender, scales=steps_at, k=k)
    table = Table(title=f"walk from {start or 'the --from-ids centroid'} towards the --to-ids centroid")
    table.add_column("scale", justify="right")
    table.add_column("neighbours")
    table.add_column("new at this step")
    for step in steps:
        table.add_row(f"{step.scale:g}", " ".join(map(str, step.ids)), " ".join(map(str, step.new)) or "—")
    console.print(table)


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


def _qdrant(collection: str, url: Optional[str], path: Optional[Path], using: Optional[str]):
    from .index.qdrant import QdrantIndex

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
    from .qdrant import sample_similarity_matrix

    check_target(output, overwrite=overwrite, option="--output")
    sampled = sample_similarity_matrix(_qdrant(collection, url, path, using), sample, limit, seed=seed)
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
    from .datasets import load_embeddings
    from .qdrant import write_nnn

    bank_array, _ = _load(bank, "--bank", load_embeddings)
    report = write_nnn(_qdrant(collection, url, path, using), bank_array, k=k, name=name)
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
    from .blend import NeighborhoodBlender
    from .qdrant import read_records, write_vectors

    values = parse_floats(thresholds, "--thresholds")
    index = _qdrant(collection, url, path, using)
    ids, seqs, vectors = read_records(index)
    blended = NeighborhoodBlender(thresholds=values, k=k).fit_transform(vectors)
    report = write_vectors(index, blended, ids, name=name, seqs=seqs)
    where = report["destination"]
    console.print(
        f"blend: wrote {report['written']:,} points, skipped {report['skipped']:,}, into "
        f"{where.collection!r} vector {where.using!r}"
    )


blocks_app = typer.Typer(
    help="Block embeddings: prepare a neighbour sample, train, convert to sparse vectors.", no_args_is_help=True
)
app.add_typer(blocks_app, name="blocks")


@blocks_app.command("prepare")
def blocks_prepare(
    output: Annotated[Path, typer.Option(help="Folder for the sampled neighbour matrix (an nnlift artifact).")],
    collection: Annotated[Optional[str], typer.Option(help="Qdrant collection (with --url or --path).")] = None,
    input: Annotated[Optional[Path], typer.Option("--input", help="Or embeddings from a file.")] = None,
    url: UrlOption = None,
    path: PathOption = None,
    using: UsingOption = None,
    sample: Annotated[int, typer.Option(min=3)] = 20_000,
    limit: Annotated[int, typer.Option(min=1)] = 100,
    seed: int = 0,
    overwrite: OverwriteOption = False,
) -> None:
    """Sample points and each one's `limit` nearest neighbours within the sample: the training target."""
    from .datasets import load_embeddings
    from .sampling import sample_neighbors

    check_target(output, overwrite=overwrite, option="--output")
    if (collection is None) == (input is None):
        raise UserError("give either --collection (a Qdrant collection) or --input (an embeddings file)")
    if collection is not None:
        from .qdrant import sample_similarity_matrix

        sampled = sample_similarity_matrix(
            _qdrant(collection, url, path, using), sample, limit, seed=seed, method="kernel"
        )
    else:
        vectors, ids = _load(input, "--input", load_embeddings)
        sampled = sample_neighbors(
            vectors, None if ids is None else ids.tolist(), sample=sample, limit=limit, seed=seed
        )
    sampled.save(output, overwrite=overwrite)
    console.print(
        f"sampled {sampled.matrix.shape[0]:,} points with {sampled.matrix.nnz:,} neighbour pairs; wrote {output}"
    )


@blocks_app.command("train")
def blocks_train(
    target: Annotated[Path, typer.Option(help="The sample written by `nnlift blocks prepare` or `nnlift qdrant sample`.")],
    output: Annotated[Path, typer.Option(help="Folder for the best encoder (an nnlift artifact).")],
    num_blocks: Annotated[int, typer.Option(min=1)] = 4,
    block_size: Annotated[int, typer.Option(min=2)] = 64,
    epochs: Annotated[int, typer.Option(min=1)] = 10,
    lr: float = 2e-3,
    factor: float = 0.5,
    patience: Annotated[int, typer.Option(min=0)] = 5,
    triplets: Annotated[int, typer.Option(min=1, help="Triplets per epoch.")] = 3200,
    batch_size: Annotated[int, typer.Option(min=1)] = 32,
    seed: int = 0,
    overwrite: OverwriteOption = False,
) -> None:
    """Train the block-softmax encoder with margin-weighted triplets; saves the best epoch."""
    from .blocks import train_blocks
    from .sampling import SampledMatrix

    try:
        sampled = SampledMatrix.load(target)
    except (OSError, ValueError) as exc:
        raise UserError(f"--target: {exc}") from None
    encoder = train_blocks(
        sampled,
        num_blocks=num_blocks,
        block_size=block_size,
        epochs=epochs,
        lr=lr,
        factor=factor,
        patience=patience,
        triplets_per_epoch=triplets,
        batch_size=batch_size,
        seed=seed,
        checkpoint=output,
        overwrite=overwrite,
    )
    table = Table(title="training")
    for column in ("epoch", "train loss", "val loss", "lr", "seconds"):
        table.add_column(column, justify="right")
    for h in encoder.history_:
        table.add_row(
            str(h["epoch"]), f"{h['train_loss']:.4f}", f"{h['val_loss']:.4f}", f"{h['lr']:.1e}", f"{h['seconds']:.2f}"
        )
    console.print(table)
    console.print(f"best encoder saved to {output}")


def _open_encoder(path: Path):
    from .blocks import BlocksEncoder

    return _open(BlocksEncoder, path, "--model", " (train one with `nnlift blocks train`)")


@blocks_app.command("convert")
def blocks_convert(
    model: Annotated[Path, typer.Option(help="Folder written by `nnlift blocks train`.")],
    input: Annotated[Optional[Path], typer.Option("--input", help="Embeddings to convert (or --collection).")] = None,
    output: Annotated[Optional[Path], typer.Option(help="Write indices/values to this .npz.")] = None,
    collection: Annotated[
        Optional[str], typer.Option(help="Convert a Qdrant collection and write a sparse vector.")
    ] = None,
    url: UrlOption = None,
    path: PathOption = None,
    using: UsingOption = None,
    name: Annotated[str, typer.Option(help="Named sparse vector to write.")] = "blocks",
    threshold: float = 0.1,
    overwrite: OverwriteOption = False,
) -> None:
    """Block embeddings as sparse vectors (entries above --threshold), to .npz or a Qdrant named sparse vector."""
    from .blocks import to_sparse
    from .datasets import load_embeddings

    if (collection is None) == (input is None):
        raise UserError("give either --input (an embeddings file) or --collection (a Qdrant collection)")
    if collection is None and output is None:
        raise UserError("give --output (an .npz) for converted embeddings from --input")
    if output is not None:
        check_file_target(output, overwrite=overwrite, option="--output")
    encoder = _open_encoder(model)
    if collection is not None:
        from .qdrant import read_records, write_sparse

        index = _qdrant(collection, url, path, using)
        ids, seqs, vectors = read_records(index)
    else:
        vectors, ids = _load(input, "--input", load_embeddings)
        ids = list(range(len(vectors))) if ids is None else ids.tolist()
    if vectors.shape[1] != encoder.input_dim:
        raise UserError(f"the encoder takes {encoder.input_dim} dimensions; the vectors have {vectors.shape[1]}")
    indices, values = to_sparse(encoder.encode(vectors), threshold)
    nnz = np.array([len(i) for i in indices])
    if collection is not None:
        report = write_sparse(index, indices, values, ids, name=name, seqs=seqs)
        where = report["destination"]
        console.print(
            f"wrote {report['written']:,} sparse vectors ({nnz.mean():.1f} non-zeros on average) to "
            f"{where.collection!r} sparse vector {name!r}; skipped {report['skipped']:,}"
        )
    if output is not None:
        parts = {
            "ids": np.asarray([str(i) for i in ids]),
            "indptr": np.r_[0, np.cumsum(nnz)],
            "indices": np.concatenate(indices),
            "values": np.concatenate(values),
        }
        publish_file(output, lambda handle: np.savez(handle, **parts), overwrite=overwrite, option="--output")
        console.print(f"wrote {len(indices):,} sparse vectors ({nnz.mean():.1f} non-zeros on average) to {output}")


@blocks_app.command("confidence")
def blocks_confidence(
    model: Annotated[Path, typer.Option(help="Folder written by `nnlift blocks train`.")],
    input: Annotated[Path, typer.Option("--input", help="Embeddings to score.")],
    histogram: Annotated[Optional[Path], typer.Option(help="Save a histogram of the scores (PNG).")] = None,
    overwrite: OverwriteOption = False,
) -> None:
    """Per-item confidence (1 − mean normalised block entropy): low scores flag out-of-collection items."""
    from .blocks import confidence
    from .datasets import load_embeddings

    if histogram is not None:
        check_file_target(histogram, overwrite=overwrite, option="--histogram")
    encoder = _open_encoder(model)
    vectors, _ = _load(input, "--input", load_embeddings)
    if vectors.shape[1] != encoder.input_dim:
        raise UserError(f"the encoder takes {encoder.input_dim} dimensions; the vectors have {vectors.shape[1]}")
    scores, _ = confidence(encoder, vectors)
    quantiles = np.quantile(scores, [0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0])
    table = Table(title=f"confidence of {len(scores):,} items")
    for label in ("min", "5%", "25%", "median", "75%", "95%", "max"):
        table.add_column(label, justify="right")
    table.add_row(*(f"{q:.3f}" for q in quantiles))
    console.print(table)
    if histogram is not None:
        from .plot import plot_confidence_histogram

        publish_file(
            histogram, lambda handle: plot_confidence_histogram(scores, handle), overwrite=overwrite, option="--histogram"
        )
        console.print(f"histogram: {histogram}")


def _show_neighbors(found, title: str, show: int) -> None:
    table = Table(title=title)
    table.add_column("query", justify="right")
    table.add_column("ids")
    table.add_column("scores")
    for row in range(min(show, len(found))):
        table.add_row(str(row), " ".join(map(str, found.ids[row])), " ".join(f"{s:.3f}" for s in found.scores[row]))
    console.print(table)


def _say_error(message: str) -> None:
    errors.print(Text.assemble(("error:", "red"), " ", message))


def main() -> None:
    """Entry point: nnlift's own errors (bad input, a refused save) become one line and exit code 2.

    Any other exception is a bug and keeps its traceback.
    """
    try:
        app(standalone_mode=False)
    except MissingExtraError as exc:
        _say_error(str(exc))
        sys.exit(3)
    except (UserError, NnliftError) as exc:
        _say_error(str(exc))
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
