"""`nnlift blend`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer

from .._artifact import check_file_target, publish_file
from .common import OverwriteOption, UserError, app, console, load_matrix, parse_floats


@app.command()
def blend(
    input: Annotated[Path, typer.Option("--input", help="Embeddings to blend.")],
    output: Annotated[
        Optional[Path], typer.Option(help="Where to write the blended embeddings (.npy); not needed with --inspect.")
    ] = None,
    thresholds: Annotated[
        str,
        typer.Option(
            help="Comma-separated thresholds, one pass each; 'auto' picks a pass's threshold so rows keep --keep "
            "neighbours (e.g. auto,auto)."
        ),
    ] = "0.9,0.8",
    k: Annotated[int, typer.Option("-k", "--k", min=1, help="Neighbours per row, itself included.")] = 10,
    keep: Annotated[
        Optional[float], typer.Option(min=1.0, help="Neighbours an 'auto' pass keeps per row on average (default k/2).")
    ] = None,
    inspect: Annotated[
        bool,
        typer.Option(
            help="Print the distribution of each row's k-th neighbour similarity and what each threshold keeps; "
            "blend nothing."
        ),
    ] = False,
    approximate: Annotated[bool, typer.Option(help="IVF neighbour graph (large inputs); recall is reported.")] = False,
    n_probe: Annotated[int, typer.Option(min=1, help="--approximate: lists probed per row.")] = 8,
    n_lists: Annotated[Optional[int], typer.Option(min=1, help="--approximate: IVF lists (default 2√rows).")] = None,
    check_sample: Annotated[
        int, typer.Option(min=1, help="--approximate: rows sampled per pass to measure recall against exact search.")
    ] = 1000,
    overwrite: OverwriteOption = False,
    ray: Annotated[
        bool,
        typer.Option(
            "--ray",
            help="Blend on Ray Data: --input is shard files or a glob; --output is a .npy (in id order) or "
            ".parquet file of id and embedding written on this machine, or a new folder that the workers "
            "write parquet parts into (nothing gathered here). With --approximate each pass's graph "
            "comes from an IVF partition join (--n-lists, --n-probe) and its recall is measured.",
        ),
    ] = False,
    ray_address: Annotated[
        Optional[str], typer.Option(help="--ray: the cluster (default RAY_ADDRESS, else a local Ray on this machine).")
    ] = None,
) -> None:
    """Iterative neighbourhood blending: each row becomes the similarity-weighted mean of its neighbours."""
    from ..blend import NeighborhoodBlender, default_lists
    from ..index import Checked, IVFIndex

    values = parse_thresholds(thresholds)
    if ray:
        if inspect or "auto" in values:
            raise UserError("--ray blends with numeric --thresholds; --inspect and 'auto' run without it")
        if output is None:
            raise UserError("--output is required")
        partition = {"lists": n_lists or "auto", "n_probe": n_probe, "check_sample": check_sample} if approximate else None
        blend_on_ray(str(input), output, values, k, ray_address, overwrite, partition)
        return
    if ray_address is not None:
        raise UserError("--ray-address applies to --ray")
    if inspect:
        emb = load_matrix(input, "--input")
        if k > len(emb):
            raise UserError(f"-k {k} is larger than the {len(emb)} rows of --input")
        from ..blend import neighbor_profile
        from ..blend.thresholds import CANDIDATES

        asked = tuple(v for v in values if v != "auto")
        if keep is not None and keep > k:
            raise UserError(f"--keep {keep} is more than -k {k} neighbours per row")
        wanted = (keep or k / 2) if "auto" in values else None
        profile = neighbor_profile(emb, k, sorted(set(CANDIDATES + asked)), keep=wanted)
        for line in profile.lines():
            console.print(line)
        return
    if output is None:
        raise UserError("--output is required (or use --inspect)")
    check_file_target(output, overwrite=overwrite, option="--output")
    emb = load_matrix(input, "--input")
    index = None
    if approximate:
        lists = default_lists(len(emb)) if n_lists is None else n_lists
        index = Checked(IVFIndex(n_lists=lists, n_probe=n_probe), sample=check_sample)
    if keep is not None and keep > k:
        raise UserError(f"--keep {keep} is more than -k {k} neighbours per row")
    blender = NeighborhoodBlender(thresholds=values, k=k, index=index, keep=keep)
    out = blender.fit_transform(emb)
    publish_file(output, lambda handle: np.save(handle, out), overwrite=overwrite, option="--output")
    kept = (blender.neighbors_.ids >= 0).sum(axis=1)
    used = ", ".join(f"{t:.4f}" for t in blender.thresholds_)
    console.print(
        f"blended {len(out):,} rows in {len(values)} pass(es) at thresholds {used}; last pass kept "
        f"{kept.mean():.1f} neighbours per row on average (min {kept.min()}, max {kept.max()})"
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


def blend_on_ray(
    source: str, output: Path, values: tuple, k: int, address: str | None, overwrite: bool, partition: dict | None
) -> None:
    """``nnlift blend --ray``: exact blending on the Ray workers, or (``partition``) on an IVF partition join."""
    from .. import distributed
    from .._optional import require
    from ..distributed.jobs import arrow_table, check_new_folder

    folder = output.suffix == ""
    if folder:  # refused now, before the job, as write_folder would after it
        check_new_folder(output, option="--output")
    else:
        check_file_target(output, overwrite=overwrite, option="--output")
    distributed.start(address)
    checks: list = []
    options = {} if partition is None else {**partition, "checks": checks}
    blended = distributed.blend(source, values, k, **options)
    if folder:  # written by the workers: nothing is gathered here
        distributed.write_folder(blended, output)
        _print_checks(checks)
        console.print(f"blended in {len(values)} pass(es) on Ray; wrote the parts into {output}/")
        return
    columns = distributed.collect(blended)
    if output.suffix.lower() == ".parquet":
        parquet = require("pyarrow.parquet", "writing parquet")
        write = lambda handle: parquet.write_table(arrow_table(columns), handle)  # noqa: E731
    else:
        write = lambda handle: np.save(handle, columns["embedding"])  # noqa: E731
    publish_file(output, write, overwrite=overwrite, option="--output")
    _print_checks(checks)
    console.print(f"blended {len(columns['id']):,} rows in {len(values)} pass(es) on Ray; wrote {output}")


def _print_checks(checks: list) -> None:
    if checks:
        console.print(
            f"neighbour recall per pass ({checks[0]['rows']} sampled rows, ± standard error): "
            + ", ".join(f"{c['recall']:.4f} ± {c['standard_error']:.4f}" for c in checks)
        )


def parse_thresholds(text: str) -> tuple:
    """``--thresholds``: numbers or ``auto``, separated by commas."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts:
        raise UserError("--thresholds is empty; give numbers separated by commas, or auto")
    numbers = [part for part in parts if part != "auto"]
    parsed = iter(parse_floats(",".join(numbers), "--thresholds")) if numbers else iter(())
    return tuple("auto" if part == "auto" else next(parsed) for part in parts)
