"""Figures and the markdown report of a comparison (matplotlib, from the ``plot`` extra)."""

from __future__ import annotations

import json
import math
import os
import textwrap
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._optional import require
from .errors import InputError, InputTypeError
from .evaluate.compare import AUTO, MethodResult
from .evaluate.hubness import k_occurrence
from .evaluate.metrics import hit_rate_at_k
from .neighbors import Neighbors

__all__ = [
    "draw_images",
    "draw_text",
    "plot_gains",
    "plot_hit_rate_curves",
    "plot_k_occurrence",
    "plot_neighbors",
    "plot_walk",
    "plot_recall_curve",
    "results_table",
    "write_report",
]


def _pyplot():
    matplotlib = require("matplotlib", "figures")
    matplotlib.use("Agg")
    return require("matplotlib.pyplot", "figures")


def plot_hit_rate_curves(results: Sequence[MethodResult], targets: Any, path: str | os.PathLike) -> Path:
    """hit_rate@k for k = 1..10, one line per method."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(6, 4))
    ks = np.arange(1, 11)
    for result in results:
        values = [100 * hit_rate_at_k(result.neighbors, targets, int(k)) for k in ks]
        axes.plot(
            ks, values, marker="o", markersize=3, label=result.label, linewidth=2 if result.name == "cosine" else 1
        )
    axes.set_xlabel("k")
    axes.set_ylabel("hit rate@k (%)")
    axes.set_title("Test split: share of queries with the target in the top k")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return Path(path)


def plot_k_occurrence(before: MethodResult, after: MethodResult, n_items: int, path: str | os.PathLike) -> Path:
    """Histograms of N_10 (how often each item is in a top-10) before and after a correction."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(6, 4))
    counts_before = k_occurrence(before.neighbors, n_items, 10)
    counts_after = k_occurrence(after.neighbors, n_items, 10)
    top = max(counts_before.max(), counts_after.max())
    bins = np.arange(0, top + 2) - 0.5
    axes.hist(counts_before, bins=bins, alpha=0.6, label=f"{before.label} (skew {before.hubness['skewness']:.1f})")
    axes.hist(counts_after, bins=bins, alpha=0.6, label=f"{after.label} (skew {after.hubness['skewness']:.1f})")
    axes.set_yscale("log")
    axes.set_xlabel("N_10: times an item appears in a query's top 10")
    axes.set_ylabel("items")
    axes.set_title("Hubness before and after")
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return Path(path)


def plot_gains(results: Sequence[MethodResult], path: str | os.PathLike) -> Path:
    """Gain in hit_rate@1 over cosine per method, with its paired 95% bootstrap interval."""
    plt = _pyplot()
    shown = [r for r in results if r.gain is not None]
    figure, axes = plt.subplots(figsize=(6, 0.5 * len(shown) + 1.5))
    means = np.array([100 * r.gain.mean for r in shown])
    errors = np.array(
        [[100 * (r.gain.mean - r.gain.low) for r in shown], [100 * (r.gain.high - r.gain.mean) for r in shown]]
    )
    colours = ["tab:green" if r.gain.low > 0 else "tab:red" if r.gain.high < 0 else "tab:gray" for r in shown]
    axes.barh([r.label for r in shown], means, xerr=errors, color=colours, capsize=3)
    axes.axvline(0, color="black", linewidth=0.8)
    axes.set_xlabel("hit rate@1 gain over cosine (points, 95% paired bootstrap CI)")
    axes.invert_yaxis()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return Path(path)


def plot_confidence_histogram(
    scores: Any,
    path: str | os.PathLike | Any,
    *,
    reference: Any = None,
    label: str = "scored items",
    reference_label: str = "collection items (reference)",
    xlabel: str = "confidence (1 − mean normalised block entropy)",
) -> None:
    """A histogram of confidences (PNG), to a path or an open binary file; with ``reference``, both overlaid."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(6, 3.5))
    scores = np.asarray(scores, dtype=np.float64)
    if reference is None:
        axes.hist(scores, bins=50)
    else:
        reference = np.asarray(reference, dtype=np.float64)
        bins = np.histogram_bin_edges(np.r_[scores, reference], bins=50)
        axes.hist(reference, bins=bins, alpha=0.55, density=True, label=reference_label, color="tab:blue")
        axes.hist(scores, bins=bins, alpha=0.55, density=True, label=label, color="tab:orange")
        axes.legend(fontsize=8)
    axes.set_xlabel(xlabel)
    axes.set_ylabel("items" if reference is None else "density")
    figure.tight_layout()
    figure.savefig(path, dpi=120, format="png")
    plt.close(figure)


def _setting(params: dict[str, Any] | None) -> str:
    return ", ".join(f"{k.split('__')[-1]}={v}" for k, v in (params or {}).items()) or "defaults"


def results_table(results: Sequence[MethodResult]) -> list[dict[str, str]]:
    """Rows for printing: metrics in percent, N_10 skewness, gain with CI and the chosen setting."""
    rows = []
    for r in results:
        if r.name == "cosine":
            setting = "—"
        elif r.name == AUTO and r.kept_baseline:
            setting = "cosine: no method beat it on validation"
        elif r.kept_baseline:
            setting = f"cosine kept (best on val {_setting(r.best_params)}: not significant)"
        else:
            setting = _setting(r.params)
        rows.append(
            {
                "method": r.label,
                "hit@1": f"{100 * r.metrics['hit_rate@1']:.1f}",
                "hit@5": f"{100 * r.metrics['hit_rate@5']:.1f}",
                "hit@10": f"{100 * r.metrics['hit_rate@10']:.1f}",
                "MRR": f"{100 * r.metrics['mrr']:.1f}",
                "N10 skew": f"{r.hubness['skewness']:.2f}",
                "Δhit@1 [95% CI]": "—"
                if r.gain is None
                else f"{100 * r.gain.mean:+.1f} [{100 * r.gain.low:+.1f}, {100 * r.gain.high:+.1f}]",
                "setting (chosen on val)": setting,
            }
        )
    return rows


def write_report(
    results: Sequence[MethodResult], targets: Any, n_items: int, folder: str | os.PathLike, meta: dict[str, Any]
) -> Path:
    """Write ``report.md`` with the table and figures (when matplotlib is installed) into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows = results_table(results)
    header = list(rows[0])
    lines = [f"# nnlift comparison: {meta.get('title', 'retrieval')}", ""]
    lines += [f"- {key}: {value}" for key, value in meta.items() if key != "title"]
    lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row[h] for h in header) + " |" for row in rows]
    lines += [
        "",
        "Metrics are in percent on the test split; every setting was chosen on the validation split only, "
        "and a method whose best setting did not beat cosine on validation beyond bootstrap noise keeps cosine. "
        "Gains are paired over the same test queries with a 95% bootstrap interval.",
        "",
    ]
    try:
        figures = [
            ("hit_rate_at_k.png", "hit rate@k per method", lambda p: plot_hit_rate_curves(results, targets, p)),
            ("gains.png", "gain over cosine with 95% CI", lambda p: plot_gains(results, p)),
        ]
        best = max(results[1:], key=lambda r: r.metrics["hit_rate@1"], default=None)
        if best is not None:
            figures.append(
                (
                    "n10_histogram.png",
                    f"N_10 before (cosine) and after ({best.label})",
                    lambda p: plot_k_occurrence(results[0], best, n_items, p),
                )
            )
        for name, caption, draw in figures:
            draw(folder / name)
            lines += [f"![{caption}]({name})", ""]
    except ImportError as exc:
        lines += [f"(figures skipped: {exc})", ""]
    (folder / "report.md").write_text("\n".join(lines))
    summary = {
        r.name: {
            "metrics": r.metrics,
            "hubness": r.hubness,
            "params": r.params,
            "best_params": r.best_params,
            "kept_baseline": r.kept_baseline,
            "gain": None if r.gain is None else [r.gain.mean, r.gain.low, r.gain.high],
        }
        for r in results
    }
    (folder / "results.json").write_text(json.dumps({"meta": meta, "results": summary}, indent=2, default=str))
    return folder / "report.md"


# -- items on a grid: neighbours of queries, the steps of a walk ----------------------------------------------------

Drawer = Callable[[Any, Any], None]
"""``draw(axis, item)`` puts one item on a matplotlib axis; ``item`` is an id or the item's own data."""

NEW, TARGET, PLAIN, WRONG = "tab:orange", "tab:green", "0.55", "tab:red"


def draw_images(images: Any = None, shape: tuple[int, int] | None = None, cmap: str = "gray_r") -> Drawer:
    """Items as pictures: ``images[item]`` for an id (an array by position, or a mapping by id), else the pixels given.

    ``shape`` reshapes flat rows (default: square when the length is a square).
    """

    def pixels(item: Any) -> np.ndarray:
        if isinstance(item, (str, int, np.integer)):
            if images is None:
                raise InputError(f"item {item!r} is an id, and draw_images was given no images to look it up in")
            try:
                item = images[item]
            except (KeyError, IndexError):
                raise InputError(f"item {item!r} is not in the images given to draw_images") from None
        array = np.asarray(item, dtype=np.float32)
        if shape is not None:
            return array.reshape(shape)
        if array.ndim == 1:
            side = math.isqrt(array.size)
            if side * side != array.size:
                raise InputError(f"an item of {array.size} values is not square; give draw_images(shape=(h, w))")
            return array.reshape(side, side)
        return array

    def draw(axis: Any, item: Any) -> None:
        image = pixels(item)
        axis.imshow(image, cmap=cmap if image.ndim == 2 else None)

    return draw


def draw_text(labels: Any = None, width: int = 16, lines: int = 5) -> Drawer:
    """Items as text: ``labels[item]`` (a mapping, or a sequence by position) when there is one, else the item itself."""

    def draw(axis: Any, item: Any) -> None:
        wrapped = textwrap.wrap(_label(labels, item), width) or [""]
        if len(wrapped) > lines:
            wrapped = wrapped[: lines - 1] + [wrapped[lines - 1][: width - 1] + "…"]
        axis.text(0.5, 0.5, "\n".join(wrapped), ha="center", va="center", fontsize=7, transform=axis.transAxes)

    draw.cell = (1.75, 0.25 + 0.16 * lines)  # inches per tile: text needs no square
    return draw


def _label(labels: Any, item: Any) -> str:
    """``labels[item]`` when ``labels`` has it (a mapping by id, or a sequence by position), else the item itself."""
    if labels is not None:
        if isinstance(labels, Mapping) and item in labels:
            return str(labels[item])
        if not isinstance(labels, Mapping) and isinstance(item, (int, np.integer)) and 0 <= item < len(labels):
            return str(labels[item])
    return str(item)


def _drawer(draw: Drawer | None, images: Any, image_shape: tuple[int, int] | None, labels: Any) -> Drawer:
    if draw is not None:
        if not callable(draw):
            raise InputTypeError(f"draw must be a function draw(axis, item); got {type(draw).__name__}")
        return draw
    if images is not None or image_shape is not None:
        return draw_images(images, image_shape)
    return draw_text(labels)


def _grid(rows: list, draw: Drawer, path: Any, title: str | None = None) -> Any:
    """Draw rows of ``(head, cells)``: head is ``(item or None, caption)``, a cell ``(item, caption, colour, strong)``."""
    plt = _pyplot()
    columns = 1 + max(len(cells) for _, cells in rows)
    width, height = getattr(draw, "cell", (1.55, 1.7))
    figure, axes = plt.subplots(len(rows), columns, figsize=(width * columns, height * len(rows) + 0.4), squeeze=False)
    for r, ((head, caption), cells) in enumerate(rows):
        axis = axes[r, 0]
        if head is None:  # a row title only
            axis.axis("off")
            axis.text(
                0.5, 0.5, caption, ha="center", va="center", fontsize=9, fontweight="bold", transform=axis.transAxes
            )
        else:
            draw(axis, head)
            axis.set_title(caption, fontsize=8, fontweight="bold")
        for c, (item, note, colour, strong) in enumerate(cells, start=1):
            draw(axes[r, c], item)
            axes[r, c].set_title(note, fontsize=7, color=colour)
            for spine in axes[r, c].spines.values():
                spine.set_edgecolor(colour)
                spine.set_linewidth(2.5 if strong else 0.6)
        for c in range(len(cells) + 1, columns):
            axes[r, c].axis("off")
        for axis in axes[r]:
            axis.set_xticks([])
            axis.set_yticks([])
    if title:
        figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    if isinstance(path, (str, os.PathLike)):
        path = Path(path)
    figure.savefig(path, dpi=120, format="png")
    plt.close(figure)
    return path


def _one_per_row(value: Any, n: int, name: str) -> list:
    """``value`` as n per-row entries: None, a single entry for one row, or a sequence of n."""
    if value is None:
        return [None] * n
    if n == 1 and (isinstance(value, (str, int, np.integer)) or np.ndim(value) <= 1 and not isinstance(value, list)):
        return [value]
    if isinstance(value, np.ndarray) and value.ndim >= 1 and len(value) == n:
        return list(value)
    if isinstance(value, (list, tuple)) and len(value) == n:
        return list(value)
    size = len(value) if hasattr(value, "__len__") else 1
    raise InputError(f"{name} must hold one entry per query row ({n}); got {type(value).__name__} of {size}")


def plot_neighbors(
    query: Any,
    neighbors: Any,
    *,
    draw: Drawer | None = None,
    images: Any = None,
    image_shape: tuple[int, int] | None = None,
    labels: Any = None,
    targets: Any = None,
    path: Any = None,
    query_label: Any = None,
    max_rows: int = 8,
    title: str | None = None,
) -> Any:
    """Queries and their neighbours on a grid, one row per query: pictures, text labels, or any drawing.

    Parameters
    ----------
    query : item, or a sequence of one item per row
        What each row starts with: an id, pixels, a string (``None`` for a numbered row title).
    neighbors : Neighbors or sequence of Lookup
        Any search result (``topk``, a correction's ``search``, ``Recommender.similar``), or
        ``SimilarityModel.single_lookup``'s list for one query.
    draw : callable, optional
        ``draw(axis, item)``; by default :func:`draw_images` when ``images`` or ``image_shape`` is
        given, else :func:`draw_text` of ``labels`` (a mapping or a sequence by id; the ids themselves
        when omitted).
    targets : optional
        Per row, the right id (or ids): their tiles are framed green. For lookups, ``query_label``
        colours each neighbour green (same label) or red.
    path : path or binary file, optional
        Where the PNG goes (returned). Without it and without any way to draw, the result is
        returned as a text table instead.

    Examples
    --------
    >>> import numpy as np
    >>> from nnlift import topk
    >>> found = topk(np.eye(3)[:1], np.eye(3), k=2)
    >>> print(plot_neighbors(None, found, labels=["cat", "dog", "owl"]))
    row  rank  id  score   label
      0     1   0   1.000  cat
      0     2   1   0.000  dog
    """
    max_rows = int(max_rows)
    if isinstance(neighbors, Neighbors):
        n = min(len(neighbors), max_rows)
        if n == 0:
            raise InputError("neighbors has no rows to draw")
        queries = _one_per_row(query, len(neighbors), "query")[:n]
        wanted = _one_per_row(targets, len(neighbors), "targets")[:n]
        rows = []
        for row in range(n):
            right = set() if wanted[row] is None else set(np.atleast_1d(np.asarray(wanted[row], dtype=object)).tolist())
            cells = [
                (item, f"{score:.3f}", TARGET if item in right else PLAIN, item in right)
                for item, score in neighbors.pairs(row)
            ]
            head = (queries[row], "query") if queries[row] is not None else (None, f"query {row}")
            rows.append((head, cells))
        if path is None and draw is None and image_shape is None:
            return _table(rows, labels)
        return _grid(rows, _drawer(draw, images, image_shape, labels), path or Path("neighbors.png"), title)
    lookups = list(neighbors)
    if not lookups or not all(hasattr(r, "distance") and hasattr(r, "id") for r in lookups):
        raise InputTypeError("neighbors must be a Neighbors or a list of Lookup (from SimilarityModel.single_lookup)")
    if image_shape is None and draw is None and path is None:
        lines = [
            f"query: {query if isinstance(query, str) else np.asarray(query).shape}",
            f"{'rank':>4}  {'id':>10}  {'label':>10}  {'distance':>8}",
        ]
        lines += [
            f"{rank:>4}  {r.id!s:>10}  {r.label!s:>10}  {r.distance:>8.4f}" for rank, r in enumerate(lookups, start=1)
        ]
        return "\n".join(lines)
    cells = [
        (
            r.id if images is not None or r.data is None else r.data,
            f"{r.label}  d={r.distance:.3f}",
            PLAIN if query_label is None else (TARGET if r.label == query_label else WRONG),
            False,
        )
        for r in lookups
    ]
    head = (query, "query" if query_label is None else f"query ({query_label})")
    return _grid([(head, cells)], _drawer(draw, images, image_shape, labels), path or Path("neighbors.png"), title)


def _table(rows: list, labels: Any) -> str:
    lines = ["row  rank  id  score   label"]
    for r, (_, cells) in enumerate(rows):
        lines += [
            f"{r:>3}  {rank:>4}  {item!s:>2}  {note:>6}  {_label(labels, item)}"
            for rank, (item, note, _, _) in enumerate(cells, start=1)
        ]
    return "\n".join(lines)


def plot_walk(
    steps: Sequence[Any],
    path: Any,
    *,
    start: Any = None,
    draw: Drawer | None = None,
    images: Any = None,
    image_shape: tuple[int, int] | None = None,
    labels: Any = None,
    title: str | None = None,
) -> Any:
    """A walk (``nnlift.algebra.walk``) as a grid: one row per step, its neighbours left to right, the new ones framed.

    ``start`` (an id or the item itself) heads the figure as its own row. Items are drawn as in
    :func:`plot_neighbors`: ``draw``, ``images``/``image_shape``, or text of ``labels``.
    """
    steps = list(steps)
    if not steps or not all(hasattr(step, "scale") and hasattr(step, "new") for step in steps):
        raise InputTypeError("steps must be the non-empty list of Step that nnlift.algebra.walk returns")
    if path is None:
        raise InputError("path is required: where the walk's PNG is written")
    rows = []
    if start is not None:
        rows.append(((None, "start"), [(start, "", PLAIN, False)]))
    for step in steps:
        new = set(step.new)
        cells = [
            (item, f"{'new ' if item in new else ''}{score:.3f}", NEW if item in new else PLAIN, item in new)
            for item, score in zip(step.ids, step.scores)
        ]
        rows.append(((None, f"scale {step.scale:g}\n{len(new)} new"), cells))
    return _grid(rows, _drawer(draw, images, image_shape, labels), path, title)


def plot_recall_curve(
    curves: Any, n_items: int, path: Any, *, k: int = 10, title: str | None = None
) -> Any:
    """recall@k against the candidate budget (as % of the collection): one curve, or ``{label: curve}``."""
    plt = _pyplot()
    if curves and all(isinstance(key, (int, np.integer)) for key in curves):
        curves = {"": curves}
    figure, axes = plt.subplots(figsize=(6, 3.8))
    for label, curve in curves.items():
        budgets = np.array(sorted(curve))
        axes.plot(100 * np.minimum(budgets, n_items) / n_items, [curve[b] for b in budgets], marker="o", label=label)
    axes.axhline(0.95, color="0.6", linestyle="--", linewidth=0.8)
    axes.axvline(5.0, color="0.6", linestyle=":", linewidth=0.8)
    axes.set_xscale("log")
    axes.set_xlabel("candidates rescored (% of the collection)")
    axes.set_ylabel(f"recall@{k} vs exact dense search")
    axes.set_ylim(0, 1.02)
    if any(curves):
        axes.legend(fontsize=8)
    if title:
        axes.set_title(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=120, format="png")
    plt.close(figure)
    return path
