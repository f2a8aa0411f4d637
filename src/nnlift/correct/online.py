"""An online query bank: the bank grows from the queries a service sees, so no curated bank is needed.

Every bank correction (NNN, CSLS, inverted softmax, QB-Norm, ...) needs
reference queries from the same distribution as the real ones, and a bank
from another source can hurt (QB-Norm's users found that a training-split
bank made results worse). The queries being served are that distribution.
:class:`OnlineBank` keeps a bounded uniform sample of them (reservoir
sampling, Vitter's Algorithm R, 1985) and refits its correction on it every
``refit_every`` new queries. Until the reservoir holds enough queries for the
correction (its ``k``), searches are plain cosine.

A batch is searched *before* it joins the reservoir, so its results never
depend on itself, unless ``include_batch=True``: then the batch is added to
the bank for its own search (transductive, as QB-Norm's querybank can be),
which helps when batches are large and the reservoir is still small.
Results depend only on the database, the seed and the order of the batches.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._artifact import ArtifactError
from .._base import check_is_fitted, clone
from .._check import check_k, check_positive_int
from ..errors import InputError
from ..index.base import BaseIndex
from ..neighbors import Neighbors
from .base import Baseline, Correction, WrapsCorrection
from .nnn import NNN

__all__ = ["OnlineBank"]


class OnlineBank(WrapsCorrection):
    """A correction whose bank is a reservoir of the queries it has searched.

    Parameters
    ----------
    correction : Correction, optional
        The bank correction to refit (``NNN()`` by default).
    capacity : int
        The most queries the reservoir keeps (a uniform sample of all seen).
    refit_every : int
        Refit the correction after this many new queries.
    include_batch : bool
        Add each batch to the bank for its own search.
    seed : int

    Attributes
    ----------
    reservoir_ : numpy.ndarray
        The bank now (rows: queries, prepared as the correction scores them).
    seen_ : int
        Queries observed so far (the initial bank counts).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> model = OnlineBank(NNN(k=4), capacity=100, refit_every=20).fit(rng.normal(size=(50, 8)))
    >>> first = model.search(rng.normal(size=(30, 8)), k=3)   # cosine: the bank is empty
    >>> model.seen_, len(model.reservoir_), model.correction_ is not None
    (30, 30, True)
    """

    _artifact_arrays = ("database_", "reservoir_")

    def __init__(
        self,
        correction: Correction | None = None,
        capacity: int = 10_000,
        refit_every: int = 1_000,
        include_batch: bool = False,
        seed: int = 0,
        metric: str = "cosine",
        index: BaseIndex | None = None,
    ) -> None:
        self.correction = correction
        self.capacity = capacity
        self.refit_every = refit_every
        self.include_batch = include_batch
        self.seed = seed
        self.metric = metric
        self.index = index

    def _inner_template(self) -> Correction:
        return NNN() if self.correction is None else self.correction

    def _needed(self) -> int:
        """Bank rows the correction needs (its k)."""
        return int(getattr(self._inner_template(), "k", 1))

    def fit(self, database: Any, bank: Any = None, **kwargs: Any) -> OnlineBank:
        """Take the database, and optionally a starting bank (sampled into the reservoir like any queries)."""
        check_positive_int(self.capacity, "OnlineBank.capacity")
        check_positive_int(self.refit_every, "OnlineBank.refit_every")
        if not getattr(self._inner_template(), "needs_bank", True):
            raise InputError(f"OnlineBank needs a bank correction (NNN, CSLS, ...); got {self._inner_template()!r}")
        self.database_ = self._prepare(database, "database")
        if np.shares_memory(self.database_, np.asarray(database)):
            self.database_ = self.database_.copy()
        self.reservoir_ = np.empty((0, self.database_.shape[1]), dtype=np.float32)
        self.seen_, self.pending_ = 0, 0
        self.correction_ = None
        self._baseline = None
        if bank is not None:
            self.observe(bank)
            self._refit()
        return self

    # -- the reservoir --------------------------------------------------------
    def observe(self, queries: Any) -> OnlineBank:
        """Add queries to the reservoir (Algorithm R), refitting when ``refit_every`` new ones have come."""
        check_is_fitted(self, "database_")
        rows = self._prepare(queries, "queries", width=self.database_.shape[1])
        rng = np.random.default_rng([self.seed, self.seen_])  # the same stream for the same history
        room = max(0, self.capacity - len(self.reservoir_))
        head, tail = rows[:room], rows[room:]
        reservoir = np.concatenate([self.reservoir_, head]) if len(head) else self.reservoir_.copy()
        for offset, row in enumerate(tail):  # item number t (0-based) replaces a random slot with p = capacity/(t+1)
            slot = int(rng.integers(0, self.seen_ + len(head) + offset + 1))
            if slot < self.capacity:
                reservoir[slot] = row
        self.reservoir_ = reservoir
        self.seen_ += len(rows)
        self.pending_ += len(rows)
        if self.pending_ >= self.refit_every:
            self._refit()
        return self

    def _refit(self) -> None:
        self.pending_ = 0
        if len(self.reservoir_) >= self._needed():
            self.correction_ = self._fitted_on(self.reservoir_)

    def _fitted_on(self, bank: np.ndarray) -> Correction:
        overrides = {"metric": self.metric} if self.index is None else {"metric": self.metric, "index": self.index}
        return clone(self._inner_template(), **overrides).fit(self.database_, bank)

    # -- search -----------------------------------------------------------------
    def _current(self, queries: np.ndarray) -> Correction:
        if self.include_batch and len(self.reservoir_) + len(queries) >= self._needed():
            return self._fitted_on(np.concatenate([self.reservoir_, queries]))
        if self.correction_ is not None:
            return self.correction_
        if self._baseline is None:
            self._baseline = Baseline(metric=self.metric, index=self.index).fit(self.database_)
        return self._baseline

    def search(self, queries: Any, k: int = 10, *, progress: bool = True, observe: bool = True) -> Neighbors:
        """Search with the bank as it stands (plus the batch, with ``include_batch``), then observe the batch."""
        check_is_fitted(self, "database_")
        rows = self._prepare(queries, "queries", width=self.database_.shape[1])
        k = check_k(k, self.database_.shape[0])
        found = self._current(rows).search(rows, k, progress=progress)
        if observe:
            self.observe(rows)
        return found

    def _score_arrays(self, queries, ids, raw):
        return self._current(queries)._score_arrays(queries, ids, raw)

    @property
    def checks_(self) -> list[dict[str, Any]]:  # type: ignore[override]
        return [] if self.correction_ is None else self.correction_.checks_

    # -- persistence ----------------------------------------------------------------
    def _artifact_extra(self) -> dict[str, Any]:
        return {"seen": int(self.seen_), "pending": int(self.pending_)}

    def _restore_extra(self, extra: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        seen, pending = extra.get("seen"), extra.get("pending")
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (seen, pending)):
            raise ArtifactError("OnlineBank artifact: extra.seen and extra.pending must be counts")
        self.seen_, self.pending_ = seen, pending
        self._baseline = None

    def _artifact_parts(self) -> dict[str, Any]:
        return {} if self.correction_ is None else {"correction": self.correction_}

    def _restore_parts(self, parts: dict[str, Any]) -> None:
        inner = parts.get("correction")
        if inner is not None and not isinstance(inner, Correction):
            raise ArtifactError("OnlineBank artifact: its part 'correction' must be a fitted correction")
        self.correction_ = inner

    def _check_state(self) -> None:
        database, reservoir = self.database_, self.reservoir_
        if database.ndim != 2 or reservoir.ndim != 2 or reservoir.shape[1] != database.shape[1]:
            raise ArtifactError("OnlineBank artifact: database_ and reservoir_ must be 2-D with one width")
        if len(reservoir) > self.capacity or len(reservoir) > self.seen_:
            raise ArtifactError("OnlineBank artifact: the reservoir holds more rows than its capacity or than seen")
