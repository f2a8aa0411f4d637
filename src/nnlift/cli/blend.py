"""`nnlift blend`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer

from .._artifact import check_file_target, publish_file
from .common import OverwriteOption, app, console, load_matrix, parse_floats


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
    from ..blend import NeighborhoodBlender

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
