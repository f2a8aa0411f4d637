"""Choosing hyper-parameters on validation data, with do-no-harm.

``tune`` scores every setting of a grid on validation queries only, then
compares the best with the baseline (raw cosine by default) by a paired
bootstrap. If the best setting's gain is not clearly above zero, the baseline
is kept and the result says so.
"""

from __future__ import annotations

import itertools
import logging
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._base import clone
from .._progress import progress_bar
from ..correct.base import Baseline, Correction
from .bootstrap import PairedDifference, paired_bootstrap
from .metrics import check_targets, hit_rate_at_k, map_at_r, mrr, ndcg_at_k, precision_at_k, recall_at_k
from ..errors import InputError

__all__ = ["tune", "TuneResult", "TuneWarning", "metric_per_query", "expand_grid", "edge_warnings"]
logger = logging.getLogger("nnlift")


class TuneWarning(UserWarning):
    """The choice made on validation is less certain than it looks (an edge of the grid, too few queries)."""


def edge_warnings(grid: Any, chosen: Mapping[str, Any] | None) -> list[str]:
    """One line per numeric parameter whose chosen value is the smallest or largest of three or more in ``grid``.

    Examples
    --------
    >>> edge_warnings({"k": [8, 16, 32], "alpha": [0.5, 1.0]}, {"k": 32, "alpha": 1.0})
    ['k=32 is the largest value of its grid [8, 16, 32]: the best may lie beyond it; widen the grid']
    """
    if not isinstance(grid, Mapping) or not chosen:
        return []
    lines = []
    for name, values in grid.items():
        numeric = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if name not in chosen or len(set(numeric)) < 3 or len(numeric) != len(values):
            continue
        for edge, word in ((min(numeric), "smallest"), (max(numeric), "largest")):
            if chosen[name] == edge:
                lines.append(
                    f"{name}={chosen[name]} is the {word} value of its grid {sorted(numeric)}: "
                    "the best may lie beyond it; widen the grid"
                )
    return lines


def metric_per_query(name: str, ranked: Any, targets: Any) -> np.ndarray:
    """Per-query values of a metric named like ``"hit_rate@1"``, ``"recall@10"``, ``"mrr"``, ``"map@r"``.

    ``"precision@k"`` and ``"ndcg@k"`` are accepted too.
    """
    base, _, cut = name.partition("@")
    functions = {"hit_rate": hit_rate_at_k, "recall": recall_at_k, "precision": precision_at_k, "ndcg": ndcg_at_k}
    if base in functions:
        if not cut.isdigit():
            raise InputError(f"metric {name!r} needs a cut-off, for example '{base}@10'")
        return functions[base](ranked, targets, int(cut), per_query=True)
    if base == "mrr":
        return mrr(ranked, targets, int(cut) if cut.isdigit() else None, per_query=True)
    if name in ("map@r", "map_at_r"):
        return map_at_r(ranked, targets, per_query=True)
    raise InputError(f"unknown metric {name!r}; use hit_rate@k, recall@k, precision@k, ndcg@k, mrr or map@r")


def expand_grid(grid: Mapping[str, Sequence] | Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A dict of lists becomes its Cartesian product; a list of dicts is used as given."""
    if isinstance(grid, Mapping):
        for name, values in grid.items():
            if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) == 0:
                raise InputError(f"grid[{name!r}] must be a non-empty list of values; got {values!r}")
        names = list(grid)
        return [dict(zip(names, combo)) for combo in itertools.product(*(grid[n] for n in names))]
    settings = [dict(setting) for setting in grid]
    if not settings:
        raise InputError("grid is empty")
    return settings


@dataclass
class TuneResult:
    """What ``tune`` chose and why.

    Attributes
    ----------
    estimator : Correction
        The fitted choice (the baseline when no setting beat it on validation).
    params : dict or None
        The chosen setting; ``None`` when the baseline was kept.
    best_params : dict
        The best setting on validation, whether or not it was chosen.
    kept_baseline : bool
        True when no setting beat the baseline by more than its CI noise.
    scores : list of (dict, float)
        Every setting with its validation score.
    baseline_score : float
    gain : PairedDifference
        Best setting minus baseline on validation, with its bootstrap interval.
    message : str
    warnings : list of str
        Why the choice is less certain than it looks (a chosen value on the edge of its grid).
    best_values, baseline_values : numpy.ndarray
        Per-query validation values of the best setting and of the baseline (for paired comparisons).
    """

    estimator: Correction
    params: dict[str, Any] | None
    best_params: dict[str, Any]
    kept_baseline: bool
    scores: list[tuple[dict[str, Any], float]]
    baseline_score: float
    gain: PairedDifference
    metric: str
    message: str = field(default="")
    warnings: list[str] = field(default_factory=list)
    best_values: np.ndarray | None = field(default=None, repr=False)
    baseline_values: np.ndarray | None = field(default=None, repr=False)

    def table(self) -> list[dict[str, Any]]:
        return [{**params, self.metric: score} for params, score in self.scores]


def _search_params(estimator: Correction) -> set[str]:
    return set(getattr(estimator, "search_params", ()))


def tune(
    correction: Correction,
    grid: Mapping[str, Sequence] | Sequence[Mapping[str, Any]],
    database: Any,
    bank: Any,
    val_queries: Any,
    val_targets: Any,
    *,
    metric: str = "hit_rate@1",
    baseline: Correction | None = None,
    k: int = 10,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    fit_kwargs: Mapping[str, Any] | None = None,
    progress: bool = True,
) -> TuneResult:
    """Pick the best setting of ``grid`` for ``correction`` on validation data only.

    Parameters
    ----------
    correction : Correction
        Any correction, including compositions (``WithDN(NNN())``: grid keys
        like ``"correction__alpha"`` reach the inner one).
    grid : dict of lists, or list of dicts
    database, bank : array-like
        What the corrections are fitted on.
    val_queries, val_targets :
        Validation queries and their relevant database rows. Never the test split.
    metric : str
        ``"hit_rate@1"`` (default), ``"recall@k"``, ``"mrr"``, ``"ndcg@k"``, ``"map@r"``...
    baseline : Correction, optional
        What must be beaten; raw cosine (``Baseline``) by default.

    Returns
    -------
    TuneResult

    Examples
    --------
    >>> import numpy as np
    >>> from nnlift import NNN
    >>> rng = np.random.default_rng(0)
    >>> database, bank = rng.normal(size=(200, 8)), rng.normal(size=(100, 8))
    >>> queries = database[:50] + 0.5 * rng.normal(size=(50, 8))
    >>> result = tune(NNN(), {"k": [4, 8], "alpha": [0.5, 1.0]}, database, bank, queries, np.arange(50), progress=False)
    >>> result.kept_baseline in (True, False)
    True
    """
    settings = expand_grid(grid)
    fit_kwargs = dict(fit_kwargs or {})
    check_targets(val_targets, len(val_queries), len(database), "val_targets")
    baseline = Baseline(metric=getattr(correction, "metric", "cosine")) if baseline is None else baseline

    def evaluate(estimator: Correction) -> np.ndarray:
        found = estimator.search(val_queries, k, progress=False)
        return metric_per_query(metric, found, val_targets)

    base_fitted = clone(baseline)
    base_fitted.fit(database, bank)
    base_values = evaluate(base_fitted)
    searchable = _search_params(correction)
    ordered = sorted(settings, key=lambda s: repr(sorted((n, v) for n, v in s.items() if n not in searchable)))
    scores: list[tuple[dict[str, Any], float]] = []
    best: tuple[float, dict[str, Any], np.ndarray] | None = None
    fitted, fitted_key = None, None
    with progress_bar(f"tuning {type(correction).__name__}", len(ordered), enabled=progress) as bar:
        for setting in ordered:
            fit_part = {n: v for n, v in setting.items() if n not in searchable}
            key = repr(sorted(fit_part.items()))
            if key != fitted_key:  # refit only when a fit-time parameter changes
                fitted = clone(correction)
                fitted.set_params(**fit_part)
                fitted.fit(database, bank, **fit_kwargs)
                fitted_key = key
            fitted.set_params(**{n: v for n, v in setting.items() if n in searchable})
            values = evaluate(fitted)
            score = float(values.mean())
            scores.append((setting, score))
            logger.info("tune %s %s: %s=%.4f", type(correction).__name__, setting, metric, score)
            if best is None or score > best[0]:
                best = (score, setting, values)
            bar.advance(1)
    assert best is not None
    gain = paired_bootstrap(base_values, best[2], n_resamples=n_resamples, confidence=confidence)
    scores.sort(key=lambda item: -item[1])
    if gain.low > 0:
        chosen = clone(correction)
        chosen.set_params(**best[1])
        chosen.fit(database, bank, **fit_kwargs)
        message = (
            f"chose {best[1]}: {metric} {best[0]:.4f} vs baseline {float(base_values.mean()):.4f} "
            f"on validation (gain {gain})"
        )
        edges = edge_warnings(grid, best[1])
        for line in edges:
            warnings.warn(f"{type(correction).__name__}: {line}", TuneWarning, stacklevel=2)
        return TuneResult(
            chosen, best[1], best[1], False, scores, float(base_values.mean()), gain, metric, message, edges,
            best[2], base_values,
        )  # fmt: skip
    message = (
        f"kept the baseline: the best setting {best[1]} scored {best[0]:.4f} vs {float(base_values.mean()):.4f}, "
        f"a gain of {gain} that is within noise"
    )
    logger.info(message)
    return TuneResult(
        base_fitted, None, best[1], True, scores, float(base_values.mean()), gain, metric, message,
        best_values=best[2], baseline_values=base_values,
    )  # fmt: skip
