"""``Checked``: any index, measured against exact search on a sample, acting by one policy when it falls short."""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np

from .._artifact import ArtifactError, Contents
from .._check import check_finite_scalar, check_positive_int
from ..errors import InputError, InputTypeError, NnliftError
from ..kernel.driver import topk_arrays
from ..neighbors import Neighbors
from .base import BaseIndex
from .recall import pooled_recall, recall_counts, recall_standard_error

__all__ = ["Checked", "LowRecallError", "shorthand"]
logger = logging.getLogger("nnlift")

_POLICIES = ("exact", "warn", "raise")
_STREAM_KEY = 0x636865636B  # "check": the sampled rows never coincide with a seeded k-means sample


class LowRecallError(NnliftError, RuntimeError):
    """A :class:`Checked` index with ``on_low="raise"`` measured less than it was asked for."""


class Checked(BaseIndex):
    """Wrap an index: measure each batch reduction against exact search on a sample, record it, act on it.

    Parameters
    ----------
    index : BaseIndex
        The index measured, usually an approximate one (``IVFIndex()``, ``FaissIndex("HNSW32")``).
    sample : int
        Rows of a call compared with exact search, drawn from this wrapper's own random stream.
    min_recall : float
        Least acceptable recall@k of a search (or self-join) against exact search.
    max_error : float
        Largest acceptable mean absolute error of a mean or log-sum-exp (NNN's bias, the inverted softmax's).
    on_low : {"exact", "warn", "raise"}
        What a measurement below the bar does: ``"exact"`` answers this call by
        exact search and every later one too (the index has shown it does not
        fit the data); ``"warn"`` warns and keeps the approximate answer;
        ``"raise"`` raises :class:`LowRecallError`.
    seed : int
        Seed of the sampling stream.

    Each reduction (search, self-join, mean of the top-k, log-sum-exp) is
    measured once after rows are added: on its first call, and once more on
    the first call of at least ``sample`` rows if the first had fewer. For a
    method that is once per fit: the bank's bias at fit, the database's first
    batch search. Later calls, online searches above all, are served
    unmeasured, so a serving path never pays an exact search per request;
    :meth:`recheck` measures the next call of each kind again (a new batch
    job, new data). Each measurement is appended to ``checks_``.

    Examples
    --------
    >>> import numpy as np
    >>> from nnlift import IVFIndex
    >>> rng = np.random.default_rng(0)
    >>> data = rng.normal(size=(2000, 16)).astype(np.float32)
    >>> index = Checked(IVFIndex(n_lists=8, n_probe=8), sample=64).add(data)
    >>> _ = index.search_arrays(index.stored_vectors()[:100], 5)
    >>> index.checks_[-1]["reduction"], index.checks_[-1]["recall"]
    ('search', 1.0)
    """

    def __init__(
        self,
        index: BaseIndex,
        sample: int = 256,
        min_recall: float = 0.99,
        max_error: float = 1e-3,
        on_low: str = "exact",
        seed: int = 0,
    ) -> None:
        if not isinstance(index, BaseIndex) or isinstance(index, Checked):
            raise InputTypeError(f"Checked wraps one nnlift index such as IVFIndex(); got {index!r}")
        if len(index):
            raise InputError("Checked wraps an empty index; add the vectors through the Checked index")
        super().__init__(index.metric)
        self.index = index
        self.sample = check_positive_int(sample, "sample")
        self.min_recall = check_finite_scalar(min_recall, "min_recall", low=0.0)
        self.max_error = check_finite_scalar(max_error, "max_error", low=0.0)
        if on_low not in _POLICIES:
            raise InputError(f"on_low must be one of {_POLICIES}; got {on_low!r}")
        self.on_low = on_low
        self.seed = check_positive_int(seed, "seed", minimum=0)
        self._rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(_STREAM_KEY,)))
        self.checks_: list[dict[str, Any]] = []
        self.exact_ = False  # set once a measurement fell short under on_low="exact"
        self._seen: dict[str, int] = {}
        self._rows: np.ndarray | None = None  # a method's own rows, when it adopted them (see _adopt)
        self._exact_index: BaseIndex | None = None  # kept once on_low="exact" took over

    # -- an index like any other ---------------------------------------------
    def _settings(self) -> dict[str, Any]:
        """The parameters besides the wrapped index."""
        return {name: getattr(self, name) for name in ("sample", "min_recall", "max_error", "on_low", "seed")}

    def clone(self, **overrides: Any) -> Checked:
        return Checked(self.index.clone(**overrides), **self._settings())

    def _add(self, vectors: np.ndarray) -> None:
        if self.index.dim is None:
            self.index.dim = vectors.shape[1]
        self.index._add(vectors)
        self._rows = None  # from now on the reference is what the index stores
        self._seen.clear()

    def _adopt(self, vectors: np.ndarray, like: BaseIndex | None = None) -> None:
        self.dim = vectors.shape[1]
        self.index._adopt(vectors, like=like)
        # A method's own rows (it never changes them): exact search over them, not over what a lossy
        # index (faiss PQ, SQ) reconstructs, so a check measures the compression's error too.
        self._rows = vectors
        self._seen.clear()

    def _remove(self, positions: np.ndarray) -> None:
        self.index._remove(positions)
        if self._rows is not None:
            self._rows = np.delete(self._rows, positions, axis=0)
        self._exact_index = None
        self._seen.clear()  # measure again: the rows changed

    def _count(self) -> int:
        return len(self.index)

    def _get(self, positions: np.ndarray) -> np.ndarray:
        return self.index._get(positions)

    def stored_vectors(self) -> np.ndarray:
        return self.index.stored_vectors()

    def _search(self, queries: np.ndarray, k: int) -> Neighbors:
        if self.exact_:
            return self._exact().search_arrays(queries, k)
        return self.index._search(queries, k)

    def recheck(self) -> Checked:
        """Measure the next call of each reduction again (for a new batch job); returns ``self``."""
        self._seen.clear()
        return self

    # -- the reductions, measured --------------------------------------------
    def search_arrays(self, queries, k, *, bias=None, threshold=None) -> Neighbors:
        def reference(exact, rows):
            return exact.search_arrays(queries[rows], k, bias=bias, threshold=threshold)

        return self._measured(
            "search",
            len(queries),
            lambda index: index.search_arrays(queries, k, bias=bias, threshold=threshold),
            self._recall(reference),
        )

    def self_join(self, k, *, threshold=None) -> Neighbors:
        def reference(exact, rows):
            vectors = exact.stored_vectors()
            found = topk_arrays(vectors[rows], vectors, min(k + 1, len(vectors)), threshold=threshold, progress=False)
            is_self = found.ids == rows[:, None]
            order = np.argsort(is_self, axis=1, kind="stable")  # self (wherever a tie put it) goes last
            ids = np.take_along_axis(np.where(is_self, -1, found.ids), order, axis=1)[:, :k]
            scores = np.take_along_axis(np.where(is_self, -np.inf, found.scores), order, axis=1)[:, :k]
            return Neighbors(ids, scores.astype(np.float32))

        return self._measured(
            "self_join", len(self), lambda index: index.self_join(k, threshold=threshold), self._recall(reference)
        )

    def topk_mean(self, queries, k) -> np.ndarray:
        return self._measured(
            "topk_mean",
            len(queries),
            lambda index: index.topk_mean(queries, k),
            self._error(lambda exact, rows: exact.topk_mean(queries[rows], k)),
        )

    def logsumexp(self, queries, beta, *, column_best=False):
        error = self._error(lambda exact, rows: exact.logsumexp(queries[rows], beta))
        if not column_best:
            return self._measured("logsumexp", len(queries), lambda index: index.logsumexp(queries, beta), error)

        def measure(found, exact, rows):
            record, failures = error(found[0], exact, rows)
            # Each sampled stored row's best query, by exact scores against every query (ties: equal scores agree).
            stored = exact.stored_vectors()
            columns = np.sort(self._rng.choice(len(stored), size=min(len(stored), self.sample), replace=False))
            scores = queries @ stored[columns].T
            best = found[1][columns]
            got = np.where(best >= 0, scores[np.maximum(best, 0), np.arange(len(columns))], -np.inf)
            agree = float(np.mean(got >= scores.max(axis=0)))
            record["best_recall"] = agree
            if agree < self.min_recall:
                failures.append(f"best-query recall {agree:.4f} < {self.min_recall}")
            return record, failures

        return self._measured(
            "logsumexp", len(queries), lambda index: index.logsumexp(queries, beta, column_best=True), measure
        )

    def _recall(self, reference):
        """A measurement of recall@k against ``reference(exact, rows)``."""

        def measure(found, exact, rows):
            hits, totals = recall_counts(found[rows], reference(exact, rows))
            value = pooled_recall(hits, totals)
            record = {"recall": value, "standard_error": recall_standard_error(hits, totals)}
            return record, [f"recall {value:.4f} < {self.min_recall}"] if value < self.min_recall else []

        return measure

    def _error(self, reference):
        """A measurement of the mean absolute error against ``reference(exact, rows)``."""

        def measure(found, exact, rows):
            value = float(np.abs(found[rows].astype(np.float64) - reference(exact, rows)).mean())
            failures = [f"mean absolute error {value:.2e} > {self.max_error:g}"] if value > self.max_error else []
            return {"error": value}, failures

        return measure

    def _exact(self) -> BaseIndex:
        from .exact import ExactIndex

        if self._exact_index is None or len(self._exact_index) != len(self):
            exact = ExactIndex("ip", progress=False)
            rows = self._rows
            exact._adopt(rows if rows is not None and len(rows) == len(self) else self.index.stored_vectors())
            if not self.exact_:
                return exact  # kept only once this index answers exactly for good
            self._exact_index = exact
        return self._exact_index

    def _measured(self, kind: str, n_rows: int, run, measure):
        if self.exact_:
            return run(self._exact())
        found = run(self.index)
        measured = self._seen.get(kind, 0)  # rows its last measurement had; 0: none since rows were added
        if n_rows == 0 or (measured and (measured >= self.sample or n_rows < self.sample)):
            return found
        rows = np.sort(self._rng.choice(n_rows, size=min(n_rows, self.sample), replace=False))
        self._seen[kind] = len(rows)
        values, failures = measure(found, self._exact(), rows)
        record = {"reduction": kind, "rows": len(rows), **values, "action": self.on_low if failures else "none"}
        self.checks_.append(record)
        logger.info("%s %s on %d sampled rows: %s", type(self.index).__name__, kind, len(rows), values)
        if not failures:
            return found
        message = f"{type(self.index).__name__} {kind}: {'; '.join(failures)} on {len(rows)} sampled rows"
        hint = self.index.accuracy_hint()
        advice = f"; {hint}" + ("" if "ExactIndex" in hint else " or use ExactIndex()")
        if self.on_low == "raise":
            raise LowRecallError(message + advice)
        if self.on_low == "warn":
            warnings.warn(message + advice, stacklevel=4)
            return found
        logger.warning("%s: answering by exact search from now on (for speed: %s)", message, hint)
        self.exact_ = True
        return run(self._exact())

    # -- persistence ---------------------------------------------------------
    # The wrapped index is a nested artifact (its own lists or graph); this one
    # adds what it measured, so a loaded model neither re-measures nor forgets.
    def _state(self):
        return {"checks": self.checks_, "exact": self.exact_, "measured": dict(self._seen)}, {}

    def _restore(self, extra, arrays) -> None:
        checks, exact, measured = extra.get("checks"), extra.get("exact"), extra.get("measured")
        if not isinstance(checks, list) or not all(isinstance(c, dict) for c in checks) or not isinstance(exact, bool):
            raise ArtifactError("Checked artifact: extra.checks must be a list of records and extra.exact a bool")
        if not isinstance(measured, dict) or not all(
            isinstance(m, int) and not isinstance(m, bool) and m > 0 for m in measured.values()
        ):
            raise ArtifactError("Checked artifact: extra.measured must map reductions to the rows last measured")
        self.checks_, self.exact_, self._seen = checks, exact, dict(measured)

    def _artifact(self) -> Contents:
        extra, arrays = self._state()
        id_extra, id_arrays = self._id_state()
        params = {**self._settings(), "index": None}
        return Contents(params, {**arrays, **id_arrays}, {**extra, **id_extra, "dim": self.dim}, {"param_index": self.index})

    @classmethod
    def _from_artifact(cls, manifest: dict, arrays: dict, parts: dict) -> Checked:
        inner = parts.get("param_index")
        if not isinstance(inner, BaseIndex) or isinstance(inner, Checked):
            raise ArtifactError("Checked artifact: its part 'param_index' must be an nnlift index")
        params = {key: value for key, value in manifest["params"].items() if key != "index"}
        index = cls(inner.clone(), **params)
        index.index = inner
        index.dim = inner.dim
        index._restore({key: value for key, value in manifest["extra"].items() if key not in ("dim", "next_id")}, arrays)
        index._restore_external(arrays.get("external_ids"), manifest["extra"].get("next_id"))
        return index

    def __repr__(self) -> str:
        return (
            f"Checked({self.index!r}, sample={self.sample}, min_recall={self.min_recall}, "
            f"max_error={self.max_error}, on_low={self.on_low!r})"
        )


def shorthand(approximate: Any, index: BaseIndex | None, owner: str, **ivf: Any) -> BaseIndex | None:
    """The template a method's ``approximate=True`` stands for, ``Checked(IVFIndex(**ivf))``; else ``index``."""
    if not isinstance(approximate, bool):
        raise InputTypeError(f"{owner}.approximate must be True or False; got {approximate!r}")
    if not approximate:
        return index
    if index is not None:
        raise InputError(
            f"{owner}: give approximate=True or index=..., not both (approximate=True is index=Checked(IVFIndex()))"
        )
    from .ivf import IVFIndex

    return Checked(IVFIndex(**ivf))
