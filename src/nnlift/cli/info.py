"""`nnlift info`: the engines this machine has, their measured speed, and the one chosen."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from .common import UserError, app, console


@app.command("info")
def info_command(
    dim: Annotated[int, typer.Option("--dim", help="Vector dimension to time the engines at.")] = 384,
    recalibrate: Annotated[
        bool, typer.Option("--recalibrate", help="Time the CPU engines again instead of reading the cached timings.")
    ] = False,
) -> None:
    """Print the engines found, each one's single-thread GEMM throughput, the BLAS libraries and the choice."""
    from .. import __version__, engines

    if dim < 1 or dim > 65536:
        raise UserError(f"--dim must be between 1 and 65536; got {dim}")
    report = engines.report(dim, recalibrate=recalibrate)
    console.print(f"nnlift {__version__}; CPU bfloat16 in hardware: {'yes' if report['native_bfloat16'] else 'no'}")
    table = Table(title=f"engines (GEMM 512×{dim} · {dim}×8192, one thread)")
    table.add_column("engine")
    table.add_column("GFLOP/s", justify="right")
    table.add_column("chosen")
    for name, speed in report["gflops_single_thread"].items():
        table.add_row(name, f"{speed:,.0f}", "←" if name == report["chosen"] else "")
    console.print(table)
    cache = report["cache"]
    console.print(
        f"CPU timings cached in {cache} (NNLIFT_CACHE_DIR; --recalibrate times them again)"
        if cache
        else "CPU timings kept in memory only (NNLIFT_CACHE_DIR is empty)"
    )
    console.print(f"setting: {report['setting']} (set_engine, NNLIFT_ENGINE, or engine= on a call); chosen: {report['chosen']}")
    if report["chosen_float32"] != report["chosen"]:
        console.print(
            f"  {report['chosen']} serves top-k with k ≤ {engines.BF16_MAX_K}; larger k, IVF tiles and "
            f"log-sum-exp use {report['chosen_float32']}"
        )
    try:
        from threadpoolctl import threadpool_info
    except ImportError:  # pragma: no cover - threadpoolctl comes with the dev extra
        return
    for pool in threadpool_info():
        console.print(
            f"  {pool.get('internal_api')}: {pool.get('architecture', '?')} kernel, "
            f"{pool.get('num_threads')} threads ({pool.get('filepath', '').rsplit('/', 1)[-1]})"
        )
