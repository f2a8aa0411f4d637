"""What every command group shares: the app, the consoles, the one loader, parsers, output checks and tables."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated, Optional

import numpy as np

from ..errors import MissingExtraError, NnliftError

try:
    import typer
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text
except ImportError as exc:  # pragma: no cover - the cli extra is missing
    raise MissingExtraError(f"the nnlift command needs the cli extra: pip install 'nnlift[cli]' ({exc})") from None

from .. import __version__
from .._artifact import probe_writable, publish_file

__all__ = ["app", "console", "errors", "Text", "typer", "UserError", "load_matrix", "parse_floats"]

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
    from ..datasets import load_embeddings

    return load_with(path, name, load_embeddings)[0]


def parse_floats(text: str, option: str) -> tuple[float, ...]:
    """Numbers separated by commas (``--thresholds 0.9,0.8``), or a one-line error naming the option."""
    try:
        values = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise UserError(f"{option} must be numbers separated by commas; got {text!r}") from None
    if not values:
        raise UserError(f"{option} is empty; give numbers separated by commas")
    return values


def report_folder(report: Path) -> Path:
    """A report folder that can be written (created if needed), checked before the work starts."""
    if report.exists() and not report.is_dir():
        raise UserError(f"--report={str(report)!r} is a file; give a folder")
    try:
        report.mkdir(parents=True, exist_ok=True)
        probe_writable(report / f".nnlift-probe-{os.getpid()}")
    except OSError as exc:
        raise UserError(f"--report={str(report)!r}: cannot write there ({exc.strerror})") from None
    return report


def show_version(value: bool) -> None:
    if value:
        console.print(f"nnlift {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what the library does.")] = False,
    version: Annotated[
        Optional[bool], typer.Option("--version", callback=show_version, is_eager=True, help="Show the version.")
    ] = None,
) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s")


def write_neighbors(output: Path, found, overwrite: bool) -> None:
    """Ids and scores of a search to an .npz, atomically, at exactly ``output``."""
    publish_file(
        output,
        lambda handle: np.savez(handle, ids=found.ids, scores=found.scores),
        overwrite=overwrite,
        option="--output",
    )
    console.print(f"wrote {output}")


def print_results(results, title: str) -> None:
    from rich import box

    from ..plot import results_table

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
    for row, result in zip(rows[1:], results[1:]):
        console.print(f"  {row['method']}: {row['setting (chosen on val)']}")
        for line in getattr(result, "warnings", []):
            console.print(f"    warning: {line}", markup=False)


# Short names for --methods, beside the full ones.
METHOD_ALIASES = {"ls": "local_scaling", "mp": "mutual_proximity", "dn": "dn_nnn", "qb": "qbnorm"}


def method_choices() -> str:
    """The names --methods takes, for its help: each method, with its short name where it has one."""
    from ..evaluate.compare import METHODS

    short = {full: alias for alias, full in METHOD_ALIASES.items()}
    names = ", ".join(f"{name} ({short[name]})" if name in short else name for name in METHODS)
    return f"{names}; or auto (every method tuned, the best on validation reported as auto)"


def parse_methods(methods: str) -> list[str]:
    from ..evaluate.compare import AUTO, METHODS

    names = [METHOD_ALIASES.get(m.strip(), m.strip()) for m in methods.split(",") if m.strip()]
    unknown = [m for m in names if m not in METHODS and m != AUTO]
    if unknown:
        raise UserError(f"--methods: unknown {unknown}; choose from {method_choices()}")
    return list(dict.fromkeys(names))


def parse_grids(options: list[str] | None) -> dict[str, dict[str, list]]:
    """``--grid nnn.k=8,16,32`` (repeatable) as ``{"nnn": {"k": [8, 16, 32]}}``; values are ints, floats or words."""
    from ..evaluate.compare import METHODS

    grids: dict[str, dict[str, list]] = {}
    for option in options or []:
        target, equals, values = option.partition("=")
        method, dot, parameter = target.strip().partition(".")
        method = METHOD_ALIASES.get(method, method)
        if not equals or not dot or not parameter or not values.strip():
            raise UserError(f"--grid {option!r}: expected METHOD.PARAMETER=V1,V2,... such as nnn.k=8,16,32")
        if method not in METHODS:
            raise UserError(f"--grid {option!r}: unknown method {method!r}; choose from {method_choices()}")
        grids.setdefault(method, {})[parameter.strip()] = [_grid_value(v.strip()) for v in values.split(",") if v.strip()]
    return grids


def _grid_value(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None}.get(text.lower(), text)


def load_with(path: Path, name: str, loader):
    try:
        return loader(path)
    except (FileNotFoundError, NnliftError) as exc:
        raise UserError(f"{name}: {exc}") from None
    except (OSError, EOFError, ValueError) as exc:  # numpy or pyarrow could not read the file
        raise UserError(f"{name}: cannot read {path} ({exc})") from None


def open_artifact(cls, path: Path, option: str, hint: str = ""):
    """Load a saved artifact of ``cls``, or fail with one line naming the option."""
    from .._artifact import ArtifactError

    try:
        return cls.load(path)
    except ArtifactError as exc:
        raise UserError(f"{option}: {exc}{hint}") from None


def show_neighbors(found, title: str, show: int) -> None:
    table = Table(title=title)
    table.add_column("query", justify="right")
    table.add_column("ids")
    table.add_column("scores")
    for row in range(min(show, len(found))):
        table.add_row(str(row), " ".join(map(str, found.ids[row])), " ".join(f"{s:.3f}" for s in found.scores[row]))
    console.print(table)
