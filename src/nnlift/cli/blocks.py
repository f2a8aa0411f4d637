"""`nnlift blocks prepare|train|convert|confidence`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer
from rich.table import Table

from .._artifact import check_file_target, check_target, publish_file
from .common import OverwriteOption, UserError, app, console, load_with, open_artifact
from .qdrant import PathOption, UrlOption, UsingOption, open_collection

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
    val_output: Annotated[
        Optional[Path],
        typer.Option(help="Also write a validation sample here, disjoint from the training one (for --val-target)."),
    ] = None,
    val_sample: Annotated[int, typer.Option(min=3, help="Points in the validation sample.")] = 2_000,
    seed: int = 0,
    overwrite: OverwriteOption = False,
) -> None:
    """Sample points and each one's `limit` nearest neighbours within the sample: the training target."""
    from ..datasets import load_embeddings
    from ..sampling import sample_neighbors, split_neighbors

    check_target(output, overwrite=overwrite, option="--output")
    if val_output is not None:
        if val_output.resolve() == output.resolve():
            raise UserError("--val-output must differ from --output")
        check_target(val_output, overwrite=overwrite, option="--val-output")
    if (collection is None) == (input is None):
        raise UserError("give either --collection (a Qdrant collection) or --input (an embeddings file)")
    if collection is not None:
        from ..qdrant import read_collection, sample_similarity_matrix

        index = open_collection(collection, url, path, using)
        if val_output is None:
            sampled = sample_similarity_matrix(index, sample, limit, seed=seed, method="kernel")
        else:
            ids, vectors = read_collection(index)
            sampled, validation = split_neighbors(
                vectors, ids, sample=sample, validation=val_sample, limit=limit, seed=seed, metric=index.metric
            )
    else:
        vectors, ids = load_with(input, "--input", load_embeddings)
        ids = None if ids is None else ids.tolist()
        if val_output is None:
            sampled = sample_neighbors(vectors, ids, sample=sample, limit=limit, seed=seed)
        else:
            sampled, validation = split_neighbors(
                vectors, ids, sample=sample, validation=val_sample, limit=limit, seed=seed
            )
    sampled.save(output, overwrite=overwrite)
    console.print(
        f"sampled {sampled.matrix.shape[0]:,} points with {sampled.matrix.nnz:,} neighbour pairs; wrote {output}"
    )
    if val_output is not None:
        validation.save(val_output, overwrite=overwrite)
        console.print(
            f"validation: {validation.matrix.shape[0]:,} other points with {validation.matrix.nnz:,} pairs; "
            f"wrote {val_output}"
        )
    else:
        console.print("no --val-output: training will validate on its own sample (nothing held out)")


@blocks_app.command("train")
def blocks_train(
    target: Annotated[
        Path, typer.Option(help="The sample written by `nnlift blocks prepare` or `nnlift qdrant sample`.")
    ],
    output: Annotated[Path, typer.Option(help="Folder for the best encoder (an nnlift artifact).")],
    val_target: Annotated[
        Optional[Path], typer.Option(help="The validation sample (`blocks prepare --val-output`): held out.")
    ] = None,
    num_blocks: Annotated[int, typer.Option(min=1)] = 4,
    block_size: Annotated[int, typer.Option(min=2)] = 64,
    epochs: Annotated[int, typer.Option(min=1, help="The most epochs; training stops early on a plateau.")] = 200,
    stop_patience: Annotated[
        int, typer.Option(min=1, help="Stop after this many epochs without a better validation loss.")
    ] = 10,
    min_delta: Annotated[float, typer.Option(min=0.0, max=1.0, help="Relative gain that counts as better.")] = 1e-3,
    lr: float = 2e-3,
    factor: float = 0.5,
    patience: Annotated[int, typer.Option(min=0, help="Epochs before the learning rate is cut (plateau).")] = 5,
    triplets: Annotated[int, typer.Option(min=1, help="Triplets per epoch.")] = 3200,
    batch_size: Annotated[int, typer.Option(min=1)] = 32,
    seed: int = 0,
    overwrite: OverwriteOption = False,
) -> None:
    """Train the block-softmax encoder with margin-weighted triplets; saves the best epoch."""
    from ..blocks import train_blocks
    from ..sampling import SampledMatrix

    check_target(output, overwrite=overwrite, option="--output")

    def read(where: Path, option: str):
        try:
            return SampledMatrix.load(where)
        except (OSError, ValueError) as exc:
            raise UserError(f"{option}: {exc}") from None

    sampled = read(target, "--target")
    held = None if val_target is None else read(val_target, "--val-target")
    if held is not None and set(map(str, held.ids)) & set(map(str, sampled.ids)):
        raise UserError("--val-target shares points with --target; write both with `blocks prepare --val-output`")
    encoder = train_blocks(
        sampled,
        val_target=held,
        num_blocks=num_blocks,
        block_size=block_size,
        epochs=epochs,
        stop_patience=stop_patience,
        min_delta=min_delta,
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
    stop = encoder.stop_
    console.print(
        f"stopped after {stop['epochs_run']} epochs: {stop['reason']}; kept epoch {stop['best_epoch']} "
        f"(val loss {stop['best_val_loss']:.4f}, {'held out' if held is not None else 'not held out'})"
    )
    console.print(f"best encoder saved to {output}")


def open_encoder(path: Path):
    from ..blocks import BlocksEncoder

    return open_artifact(BlocksEncoder, path, "--model", " (train one with `nnlift blocks train`)")


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
    from ..blocks import to_sparse
    from ..datasets import load_embeddings

    if (collection is None) == (input is None):
        raise UserError("give either --input (an embeddings file) or --collection (a Qdrant collection)")
    if collection is None and output is None:
        raise UserError("give --output (an .npz) for converted embeddings from --input")
    if output is not None:
        check_file_target(output, overwrite=overwrite, option="--output")
    encoder = open_encoder(model)
    if collection is not None:
        from ..qdrant import read_records, write_sparse

        index = open_collection(collection, url, path, using)
        ids, seqs, vectors = read_records(index)
    else:
        vectors, ids = load_with(input, "--input", load_embeddings)
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
    model: Annotated[Optional[Path], typer.Option(help="Folder written by `nnlift blocks train`.")] = None,
    input: Annotated[Path, typer.Option("--input", help="Embeddings to score.")] = ...,
    method: Annotated[
        str, typer.Option(help="blocks (entropy), knn (untrained baseline) or combined (calibrated, with --against).")
    ] = "blocks",
    against: Annotated[
        Optional[Path], typer.Option(help="The collection's embeddings: what knn and combined compare with.")
    ] = None,
    reference: Annotated[
        Optional[Path],
        typer.Option(help="Embeddings known to belong (held-out collection items): AUROC, and overlaid histograms."),
    ] = None,
    k: Annotated[int, typer.Option("-k", "--k", min=1, help="Neighbours for knn and combined.")] = 10,
    histogram: Annotated[Optional[Path], typer.Option(help="Save a histogram of the scores (PNG).")] = None,
    overwrite: OverwriteOption = False,
) -> None:
    """Per-item confidence: low scores flag out-of-collection items (--method blocks, knn or combined)."""
    from ..blocks import confidence
    from ..datasets import load_embeddings
    from ..index import ExactIndex
    from ..outliers import ConfidenceScorer, auroc, fpr_at_tpr, knn_confidence

    if method not in ("blocks", "knn", "combined"):
        raise UserError(f"--method must be blocks, knn or combined; got {method!r}")
    if method != "blocks" and against is None:
        raise UserError(f"--method {method} needs --against (the collection's embeddings)")
    if method != "knn" and model is None:
        raise UserError(f"--method {method} needs --model (a trained encoder)")
    if histogram is not None:
        check_file_target(histogram, overwrite=overwrite, option="--histogram")
    encoder = None if model is None else open_encoder(model)
    vectors, _ = load_with(input, "--input", load_embeddings)
    collection = None if against is None else load_with(against, "--against", load_embeddings)[0]
    inside = None if reference is None else load_with(reference, "--reference", load_embeddings)[0]
    for name, array in (("--input", vectors), ("--against", collection), ("--reference", inside)):
        width = vectors.shape[1] if encoder is None else encoder.input_dim
        if array is not None and array.shape[1] != width:
            raise UserError(f"{name} has {array.shape[1]} dimensions; expected {width}")
    if method == "blocks":
        score = lambda x: confidence(encoder, x)[0]  # noqa: E731
    elif method == "knn":  # one index of the collection for the input and the reference
        index = ExactIndex().add(collection)
        score = lambda x: knn_confidence(x, index, k)  # noqa: E731
    else:  # one calibration for both
        score = ConfidenceScorer("combined", k=k, encoder=encoder).fit(collection).score
    scores = score(vectors)
    known = None if inside is None else score(inside)
    quantiles = np.quantile(scores, [0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0])
    table = Table(title=f"{method} confidence of {len(scores):,} items")
    for label in ("min", "5%", "25%", "median", "75%", "95%", "max"):
        table.add_column(label, justify="right")
    table.add_row(*(f"{q:.3g}" for q in quantiles))
    console.print(table)
    if known is not None:
        console.print(
            f"against the {len(known):,} --reference items: AUROC {auroc(known, scores):.3f}, "
            f"FPR at 95% TPR {fpr_at_tpr(known, scores):.3f} (the --input items taken as outsiders)"
        )
    if histogram is not None:
        from ..plot import plot_confidence_histogram

        xlabel = {"blocks": "confidence (1 − mean normalised block entropy)", "knn": f"mean similarity of the {k} nearest",
                  "combined": "combined confidence (calibrated p-value)"}[method]  # fmt: skip
        publish_file(
            histogram,
            lambda handle: plot_confidence_histogram(scores, handle, reference=known, label="--input", xlabel=xlabel),
            overwrite=overwrite,
            option="--histogram",
        )
        console.print(f"histogram: {histogram}")


@blocks_app.command("search")
def blocks_search(
    model: Annotated[Path, typer.Option(help="Folder written by `nnlift blocks train`.")],
    queries: Annotated[Path, typer.Option(help="Query embeddings.")],
    input: Annotated[Optional[Path], typer.Option("--input", help="The collection's embeddings (or --collection).")] = None,
    collection: Annotated[
        Optional[str], typer.Option(help="A Qdrant collection with block vectors from `blocks convert`.")
    ] = None,
    url: UrlOption = None,
    path: PathOption = None,
    using: UsingOption = None,
    name: Annotated[str, typer.Option(help="The named sparse vector of the block vectors (Qdrant).")] = "blocks",
    k: Annotated[int, typer.Option("-k", "--k", min=1)] = 10,
    candidates: Annotated[int, typer.Option(min=1, help="Items rescored on the dense vectors per query.")] = 1000,
    threshold: Annotated[float, typer.Option(min=0.0, max=1.0, help="--input: block entries kept.")] = 0.1,
    curve: Annotated[
        Optional[str], typer.Option(help="--input: candidate budgets to measure recall@k at, e.g. 100,500,1000.")
    ] = None,
    figure: Annotated[Optional[Path], typer.Option(help="--curve: draw recall against the budget (PNG).")] = None,
    output: Annotated[Optional[Path], typer.Option(help="Write ids and scores to this .npz.")] = None,
    overwrite: OverwriteOption = False,
) -> None:
    """Sparse pre-fetch by block vectors, then exact rescoring on the dense vectors: locally or as one Qdrant query."""
    from ..blocks import SparsePrefetch, qdrant_prefetch_search
    from ..datasets import load_embeddings
    from .common import parse_floats, write_neighbors

    if (collection is None) == (input is None):
        raise UserError("give either --input (the collection's embeddings) or --collection (a Qdrant collection)")
    if curve is not None and input is None:
        raise UserError("--curve measures against exact search over --input; give --input")
    if figure is not None and curve is None:
        raise UserError("--figure draws the --curve; give --curve")
    for target, option in ((output, "--output"), (figure, "--figure")):
        if target is not None:
            check_file_target(target, overwrite=overwrite, option=option)
    budgets = [] if curve is None else [int(b) for b in parse_floats(curve, "--curve")]
    if any(b < 1 for b in budgets):
        raise UserError(f"--curve budgets must be positive; got {curve!r}")
    encoder = open_encoder(model)
    asked, _ = load_with(queries, "--queries", load_embeddings)
    if asked.shape[1] != encoder.input_dim:
        raise UserError(f"the encoder takes {encoder.input_dim} dimensions; --queries have {asked.shape[1]}")
    if collection is not None:
        found = qdrant_prefetch_search(
            open_collection(collection, url, path, using), encoder, asked, k, candidates=candidates, name=name
        )
    else:
        vectors, ids = load_with(input, "--input", load_embeddings)
        if vectors.shape[1] != encoder.input_dim:
            raise UserError(f"the encoder takes {encoder.input_dim} dimensions; --input has {vectors.shape[1]}")
        prefetch = SparsePrefetch(encoder, threshold=threshold, candidates=candidates).fit(
            vectors, None if ids is None else ids.tolist()
        )
        found = prefetch.search(asked, k)
        console.print(
            f"{len(vectors):,} items, {prefetch.sparse_.nnz / len(vectors):.1f} block entries each; "
            f"{candidates:,} candidates per query ({100 * min(candidates, len(vectors)) / len(vectors):.1f}%)"
        )
        if budgets:
            measured = prefetch.recall_curve(asked, budgets, k)
            table = Table(title=f"recall@{k} against exact dense search, {len(asked):,} queries")
            for column in ("candidates", "% of the collection", f"recall@{k}"):
                table.add_column(column, justify="right")
            for budget, recall in measured.items():
                table.add_row(f"{budget:,}", f"{100 * min(budget, len(vectors)) / len(vectors):.2f}", f"{recall:.4f}")
            console.print(table)
            if figure is not None:
                from ..plot import plot_recall_curve

                publish_file(
                    figure,
                    lambda handle: plot_recall_curve(measured, len(vectors), handle, k=k),
                    overwrite=overwrite,
                    option="--figure",
                )
                console.print(f"figure: {figure}")
    labels = found.keys if found.keys is not None else found.ids
    console.print("first query: " + " ".join(str(label) for label in labels[0] if label is not None))
    if output is not None:
        write_neighbors(output, found, overwrite)
