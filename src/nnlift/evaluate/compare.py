"""Comparing corrections on the same data: tune each on validation, evaluate on test, pair against cosine."""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..correct import (
    CSLS,
    NNN,
    AugmentedDatabase,
    Baseline,
    Correction,
    Fusion,
    InvertedSoftmax,
    InvGC,
    MeanBias,
    QBNorm,
    SinkhornNorm,
    WithDN,
)
from ..correct.rerank import LocalScaling, MutualProximity
from ..neighbors import Neighbors
from .bootstrap import PairedDifference, paired_bootstrap
from .hubness import hubness
from .metrics import check_targets, hit_rate_at_k, retrieval_metrics
from .tune import TuneWarning, expand_grid, tune
from ..errors import InputError

__all__ = ["METHODS", "MethodSpec", "MethodResult", "MethodProgress", "compare_methods", "method_grid"]
logger = logging.getLogger("nnlift")
AUTO = "auto"  # the method name that stands for "the best of all on validation"


@dataclass(frozen=True)
class MethodSpec:
    """A method for comparisons: how to build it and the validation grid (whether it needs a bank, it says itself)."""

    label: str
    make: Callable[[], Correction]
    grid: dict[str, list]


def _dba():
    from ..blend import DatabaseAugmentation

    return DatabaseAugmentation(n=3, alpha=3.0)


METHODS: dict[str, MethodSpec] = {
    "cosine": MethodSpec("cosine", Baseline, {}),
    "nnn": MethodSpec("NNN", NNN, {"k": [8, 16, 32], "alpha": [0.5, 0.75, 1.0]}),
    "dn_nnn": MethodSpec("DN+NNN", lambda: WithDN(NNN()), {"correction__k": [8, 16], "correction__alpha": [0.75, 1.0]}),
    "csls": MethodSpec("CSLS", CSLS, {"k": [5, 10, 20]}),
    "is": MethodSpec("inverted softmax", InvertedSoftmax, {"beta": [10.0, 20.0, 40.0]}),
    "qbnorm": MethodSpec("QB-Norm (DIS)", QBNorm, {"beta": [10.0, 20.0, 40.0]}),
    "dba": MethodSpec("DBA", lambda: AugmentedDatabase(_dba()), {"augmentation__n": [2, 5]}),
    "dba_nnn": MethodSpec("DBA+NNN", lambda: AugmentedDatabase(_dba(), NNN(k=16)), {"correction__alpha": [0.75, 1.0]}),
    "local_scaling": MethodSpec("local scaling", LocalScaling, {"k": [5, 10]}),
    "mutual_proximity": MethodSpec("mutual proximity", MutualProximity, {"k": [5, 10]}),
    "mean_bias": MethodSpec("mean-bias", MeanBias, {"mode": ["shift", "projection"], "lambda_": [0.5, 1.0]}),
    "mean_bias_nnn": MethodSpec(
        "mean-bias+NNN",
        lambda: MeanBias(NNN(k=16)),
        {"mode": ["shift", "projection"], "correction__alpha": [0.75, 1.0]},
    ),
    "sinkhorn": MethodSpec("Sinkhorn (DBSN)", SinkhornNorm, {"beta": [10.0, 20.0, 40.0], "iterations": [3, 10]}),
    "invgc": MethodSpec("InvGC (LocalAdj)", InvGC, {"gallery_weight": [0.0, 0.1, 0.2], "bank_weight": [0.1, 0.2, 0.4]}),
    "fusion": MethodSpec(
        "fusion (NNN, CSLS, IS)",
        lambda: Fusion([NNN(k=16), CSLS(k=10), InvertedSoftmax(beta=20.0)]),
        {"method": ["rrf", "zscore"]},
    ),
}


@dataclass
class MethodResult:
    """One method's outcome on the test split."""

    name: str
    label: str
    params: dict[str, Any] | None
    kept_baseline: bool
    best_params: dict[str, Any] | None
    metrics: dict[str, float]
    hubness: dict[str, float]
    gain: PairedDifference | None
    neighbors: Neighbors = field(repr=False)
    per_query_hit1: np.ndarray = field(repr=False)
    seconds: float = 0.0
    note: str = ""
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class MethodProgress:
    """Where a comparison stands after one method: for progress lines with an estimate of the time left."""

    label: str
    done: int
    total: int
    settings: int
    seconds: float
    elapsed: float
    remaining: float

    def line(self) -> str:
        """``[2/5] NNN: 9 settings in 3.1s; about 8s left``."""
        settings = f"{self.settings} setting{'s' if self.settings != 1 else ''}"
        left = f"; about {self.remaining:.0f}s left" if self.done < self.total else f"; {self.elapsed:.0f}s in all"
        return f"[{self.done}/{self.total}] {self.label}: {settings} in {self.seconds:.1f}s{left}"


def method_grid(name: str, override: Mapping[str, Sequence] | None = None) -> dict[str, list]:
    """A method's validation grid, with ``override``'s lists replacing those of the same parameter.

    Parameter names are checked against the method's own (nested ones as ``correction__k``).

    Examples
    --------
    >>> method_grid("nnn", {"k": [4, 8]})
    {'k': [4, 8], 'alpha': [0.5, 0.75, 1.0]}
    """
    if name not in METHODS:
        raise InputError(f"unknown method {name!r}; choose from {sorted(METHODS)}")
    spec = METHODS[name]
    grid = {key: list(values) for key, values in spec.grid.items()}
    for key, values in (override or {}).items():
        valid = sorted(spec.make().get_params(deep=True))
        if key not in valid:
            raise InputError(f"{name} has no parameter {key!r} to tune; valid: {valid}")
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
            raise InputError(f"the grid of {name}.{key} must be a non-empty list of values; got {values!r}")
        grid[key] = list(values)
    return grid


def compare_methods(
    methods: Sequence[str],
    database: np.ndarray,
    bank: np.ndarray | None,
    val_queries: np.ndarray,
    val_targets: Any,
    test_queries: np.ndarray,
    test_targets: Any,
    *,
    k: int = 10,
    metric: str = "hit_rate@1",
    tune_methods: bool = True,
    grids: Mapping[str, Mapping[str, Sequence]] | None = None,
    on_method: Callable[[str], None] | None = None,
    on_done: Callable[[MethodProgress], None] | None = None,
) -> list[MethodResult]:
    """Tune every method on validation (do-no-harm against cosine), then evaluate on test.

    The first result is always raw cosine, the reference for every paired gain.
    ``grids`` replaces some parameters' lists in a method's grid (:func:`method_grid`);
    ``on_method`` hears each method's label as it starts, ``on_done`` a
    :class:`MethodProgress` as it ends (the time left is estimated per
    fitted setting, from the settings done so far).
    """
    auto = AUTO in methods
    if auto:  # choose among every method: all of them are tuned, and the best on validation is reported as auto
        methods = [m for m in methods if m != AUTO] + [m for m in METHODS if m not in methods]
    unknown = [m for m in list(methods) + list(grids or {}) if m not in METHODS]
    if unknown:
        raise InputError(f"unknown method(s) {unknown}; choose from {sorted(METHODS)} or {AUTO!r}")
    check_targets(test_targets, len(test_queries), len(database), "test_targets")
    order = ["cosine"] + [m for m in methods if m != "cosine"]
    method_grids = {name: method_grid(name, (grids or {}).get(name)) if tune_methods else {} for name in order}
    runnable = [name for name in order if bank is not None or not METHODS[name].make().needs_bank]
    for name in order:
        if name not in runnable:
            logger.warning("skipping %s: it needs a bank of reference queries", METHODS[name].label)
    settings = {name: max(1, len(expand_grid(method_grids[name])) if method_grids[name] else 1) for name in runnable}
    results: list[MethodResult] = []
    chosen: dict[str, Correction] = {}
    val_values: dict[str, np.ndarray] = {}  # per-query validation values of what each method chose, from tune
    baseline_hits = None
    began, settings_done = time.perf_counter(), 0
    for name in runnable:
        spec = METHODS[name]
        grid = method_grids[name]
        if on_method is not None:
            on_method(spec.label)
        start = time.perf_counter()
        params, best_params, kept, note = None, None, False, ""
        edges: list[str] = []
        if grid:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", TuneWarning)  # kept on the result, and shown with it
                result = tune(
                    spec.make(), grid, database, bank, val_queries, val_targets, metric=metric, k=k, progress=False
                )
            estimator, params, kept, note = result.estimator, result.params, result.kept_baseline, result.message
            best_params, edges = result.best_params, result.warnings
            val_values.setdefault("cosine", result.baseline_values)
            if not kept:
                val_values[name] = result.best_values
            note += f" (val gain {result.gain})"
        else:
            estimator = spec.make()
            estimator.fit(database, bank)
        found = estimator.search(test_queries, k, progress=False)
        hits = hit_rate_at_k(found, test_targets, 1, per_query=True)
        if baseline_hits is None:
            baseline_hits = hits
        gain = None if name == "cosine" else paired_bootstrap(baseline_hits, hits)
        results.append(
            MethodResult(
                name=name,
                label=spec.label,
                params=params,
                kept_baseline=kept,
                best_params=best_params,
                metrics=retrieval_metrics(found, test_targets, ks=(1, 5, 10)),
                hubness=hubness(found, len(database), k=10),
                gain=gain,
                neighbors=found,
                per_query_hit1=hits,
                seconds=time.perf_counter() - start,
                note=note,
                warnings=edges,
            )
        )
        chosen[name] = estimator
        settings_done += settings[name]
        if on_done is not None:
            elapsed = time.perf_counter() - began
            left = sum(settings[other] for other in runnable[len(results) :])
            on_done(
                MethodProgress(
                    label=spec.label,
                    done=len(results),
                    total=len(runnable),
                    settings=settings[name],
                    seconds=results[-1].seconds,
                    elapsed=elapsed,
                    remaining=elapsed / settings_done * left,
                )
            )
    if auto:
        results.append(_auto(results, chosen, val_values, val_queries, val_targets, metric, k))
    return results


def _auto(
    results: list[MethodResult],
    chosen: Mapping[str, Correction],
    val_values: Mapping[str, np.ndarray],
    val_queries,
    val_targets,
    metric: str,
    k: int,
) -> MethodResult:
    """The method (and setting) best on validation among those that beat cosine there; cosine if none did.

    Its test numbers are that method's. A warning says when validation cannot separate it from the runner-up
    (their paired difference on validation has a CI that includes 0). The validation values come from
    tuning; a method that was not tuned is searched on validation here.
    """
    from .tune import metric_per_query

    scored = {}
    for result in results:
        if result.name == "cosine" or not result.kept_baseline:
            if result.name in val_values:
                scored[result.name] = val_values[result.name]
            else:
                found = chosen[result.name].search(val_queries, k, progress=False)
                scored[result.name] = metric_per_query(metric, found, val_targets)
    ranking = sorted(scored, key=lambda name: (-scored[name].mean(), name != "cosine"))
    best = next(r for r in results if r.name == ranking[0])
    lines = []
    if len(ranking) > 1:
        runner = ranking[1]
        gap = paired_bootstrap(scored[runner], scored[best.name])
        if gap.low <= 0:
            lines.append(
                f"validation ({len(val_queries):,} queries) cannot separate {best.label} from "
                f"{next(r.label for r in results if r.name == runner)} ({metric} gap {gap}); a larger validation "
                "split would make the choice surer"
            )
    label = f"auto → {best.label}" + ("" if best.params is None else f" ({_short(best.params)})")
    return MethodResult(
        name=AUTO,
        label=label,
        params=best.params,
        kept_baseline=best.name == "cosine",
        best_params=best.best_params,
        metrics=best.metrics,
        hubness=best.hubness,
        gain=best.gain,
        neighbors=best.neighbors,
        per_query_hit1=best.per_query_hit1,
        seconds=sum(r.seconds for r in results),
        note=f"chose {best.label} on validation among {len(scored)} that beat cosine there or are cosine",
        warnings=lines + best.warnings,
    )


def _short(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{name.removeprefix('correction__')}={value}" for name, value in params.items())
