"""Figures and the markdown report of a comparison (matplotlib, from the ``plot`` extra)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._optional import require
from .evaluate.compare import MethodResult
from .evaluate.hubness import k_occurrence
from .evaluate.metrics import hit_rate_at_k

__all__ = ["plot_neighbors", "plot_hit_rate_curves", "plot_k_occurrence", "plot_gains", "write_report", "results_table"]


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


def plot_confidence_histogram(scores: Any, path: str | os.PathLike | Any) -> None:
    """A histogram of block-embedding confidences (PNG), to a path or an open binary file."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(6, 3.5))
    axes.hist(np.asarray(scores), bins=50)
    axes.set_xlabel("confidence (1 − mean normalised block entropy)")
    axes.set_ylabel("items")
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


def plot_neighbors(
    query: Any,
    lookups: Sequence[Any],
    *,
    images: Any = None,
    image_shape: tuple[int, int] | None = None,
    path: str | os.PathLike | None = None,
    query_label: Any = None,
) -> Any:
    """A query and its neighbours: an image grid when ``image_shape`` is given, else a text table.

    Parameters
    ----------
    query : array-like or str
        The query item (pixels for image data).
    lookups : sequence of Lookup
        From ``SimilarityModel.single_lookup``; ``images[lookup.id]`` are the neighbours' pixels
        (``lookup.data`` is used when ``images`` is not given).
    image_shape : (height, width), optional
    path : path, optional
        Where to save the PNG (image mode); the figure path is returned.

    Returns
    -------
    Path for an image grid, or the table as a string.
    """
    if image_shape is None:
        lines = [
            f"query: {query if isinstance(query, str) else np.asarray(query).shape}",
            f"{'rank':>4}  {'id':>10}  {'label':>10}  {'distance':>8}",
        ]
        lines += [
            f"{rank:>4}  {str(r.id):>10}  {str(r.label):>10}  {r.distance:>8.4f}"
            for rank, r in enumerate(lookups, start=1)
        ]
        return "\n".join(lines)
    plt = _pyplot()
    figure, axes = plt.subplots(1, len(lookups) + 1, figsize=(1.6 * (len(lookups) + 1), 2.0))
    axes[0].imshow(np.asarray(query, dtype=np.float32).reshape(image_shape), cmap="gray_r")
    axes[0].set_title("query" if query_label is None else f"query ({query_label})", fontsize=9)
    for axis, record in zip(axes[1:], lookups):
        pixels = images[record.id] if images is not None else record.data
        axis.imshow(np.asarray(pixels, dtype=np.float32).reshape(image_shape), cmap="gray_r")
        colour = "green" if query_label is None or record.label == query_label else "red"
        axis.set_title(f"{record.label}  d={record.distance:.3f}", fontsize=8, color=colour)
    for axis in axes:
        axis.set_xticks([])
        axis.set_yticks([])
    figure.tight_layout()
    target = Path(path) if path is not None else Path("neighbors.png")
    figure.savefig(target, dpi=120)
    plt.close(figure)
    return target
