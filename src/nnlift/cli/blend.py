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
    from ..blend import NeighborhoodBlender, default_lists
    from ..index import Checked, IVFIndex

    check_file_target(output, overwrite=overwrite, option="--output")

    values = parse_floats(thresholds, "--thresholds")
    emb = load_matrix(input, "--input")
    index = None
    if approximate:
        lists = default_lists(len(emb)) if n_lists is None else n_lists
        index = Checked(IVFIndex(n_lists=lists, n_probe=n_probe), sample=check_sample)
    blender = NeighborhoodBlender(thresholds=values, k=k, index=index)
    out = blender.fit_transform(emb)
    publish_file(output, lambda handle: np.save(handle, out), overwrite=overwrite, option="--output")
    kept = (blender.neighbors_.ids >= 0).sum(axis=1)
    console.print(
        f"blended {len(out):,} rows in {len(values)} pass(es); last pass kept {kept.mean():.1f} neighbours "
        f"per row on average (min {kept.min()}, max {kept.max()})"
    )
    if blender.checks_:
        console.print(
            f"neighbour recall per pass ({check_sample} sampled rows, ± standard error): "
            + ", ".join(f"{c['recall']:.4f} ± {c['standard_error']:.4f}" for c in blender.checks_)
        )
        redone = [c["pass"] for c in blender.checks_ if c["action"] == "exact"]
        if redone:
            console.print(f"recall below {index.min_recall} from pass {redone[0]}: answered by exact search")
    console.print(f"wrote {output}")
