"""The per-batch work of each distributed job: small picklable tasks over a state held once per worker.

Each task runs the same index code as the single-machine method it mirrors
(``topk_mean`` for NNN and CSLS, ``logsumexp`` for the inverted softmax and
DBNorm, ``search_arrays`` for search and QB-Norm's activation set), so a
batch's answer is the single-machine answer for those rows. The exact kernel's
selections use canonical scores (float64 sums in a fixed order, ties to the
lower id), so they do not depend on how rows are batched: NNN's bias, search
and the top-k merges are bit for bit those of one process.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._check import normalize_rows
from ..blend.graph import with_self
from ..blend.weights import blend_rows
from ..correct.base import Correction
from ..correct.softmax import dbnorm_bias
from ..index.base import BaseIndex, build_index, quiet
from ..index.exact import ExactIndex
from ..neighbors import Neighbors

__all__ = ["Bank", "BankMean", "BankLogSumExp", "DBNormBias", "TopKOfHeld", "SearchModel", "BlendPass", "blend_members", "merge_topk"]


@dataclass
class Bank:
    """A held state: the index built on the driver over a bank (and a gallery bank for DBNorm), and the metric."""

    index: BaseIndex
    metric: str
    gallery: BaseIndex | None = None

    def prepare(self, rows: np.ndarray) -> np.ndarray:
        return normalize_rows(rows, "dataset rows") if self.metric == "cosine" else rows


def _run(index: BaseIndex, reduction: str, *args, **kwargs):
    with quiet(index):
        return getattr(index, reduction)(*args, **kwargs)


@dataclass(frozen=True)
class BankMean:
    """``b(x)``: the mean of each row's k largest bank similarities (NNN's bias, CSLS's ``r_X``); ``fold`` adds ``[x, b]``."""

    k: int
    fold: bool = False

    def __call__(self, bank: Bank, ids: np.ndarray, rows: np.ndarray) -> dict[str, np.ndarray]:
        unit = bank.prepare(rows)
        bias = _run(bank.index, "topk_mean", unit, self.k) if len(unit) else np.empty(0, np.float32)
        out = {"bias": bias}
        if self.fold:
            out["folded"] = np.hstack([unit, bias[:, None]]).astype(np.float32)
        return out


@dataclass(frozen=True)
class BankLogSumExp:
    """The inverted softmax's normaliser ``(1/β)·log Σ_r exp(β·s(r, x))`` per row."""

    beta: float

    def __call__(self, bank: Bank, ids: np.ndarray, rows: np.ndarray) -> dict[str, np.ndarray]:
        unit = bank.prepare(rows)
        return {"bias": _run(bank.index, "logsumexp", unit, self.beta) if len(unit) else np.empty(0, np.float32)}


@dataclass(frozen=True)
class DBNormBias:
    """DBNorm's bias from a query bank and a gallery bank, combined as :class:`~nnlift.DBNorm` does."""

    beta: float
    gallery_beta: float

    def __call__(self, bank: Bank, ids: np.ndarray, rows: np.ndarray) -> dict[str, np.ndarray]:
        unit = bank.prepare(rows)
        if not len(unit):
            return {"bias": np.empty(0, np.float32)}
        query_side = self.beta * _run(bank.index, "logsumexp", unit, self.beta)
        gallery_side = self.gallery_beta * _run(bank.gallery, "logsumexp", unit, self.gallery_beta)
        return {"bias": dbnorm_bias(query_side, gallery_side, self.beta)}


@dataclass(frozen=True)
class TopKOfHeld:
    """Each held row's top-k among a batch's rows, as (held row, item id, score) triples to merge on the driver.

    The held rows are a bank (QB-Norm's activation set), queries searched
    against a streamed database, or a sample checked against exact search.
    """

    k: int
    own_ids = True  # the output rows are triples, not one per input row

    def __call__(self, held: Bank, ids: np.ndarray, rows: np.ndarray) -> dict[str, np.ndarray]:
        queries = held.index.stored_vectors()
        width = min(self.k, len(rows))
        if width == 0:
            return {"held": np.empty(0, np.int64), "item": np.empty(0, ids.dtype), "score": np.empty(0, np.float32)}
        found = _run(build_index(ExactIndex(progress=False), held.prepare(rows)), "search_arrays", queries, width)
        return {
            "held": np.repeat(np.arange(len(queries), dtype=np.int64), width),
            "item": np.asarray(ids)[found.ids.ravel()],
            "score": found.scores.ravel(),
        }


def merge_topk(batches, n_held: int, k: int) -> Neighbors:
    """The top-k (ties to the lower id, padding -1/-inf) of each held row over every batch of triples."""
    held, items, scores = [np.empty(0, np.int64)], [np.empty(0, np.int64)], [np.empty(0, np.float32)]
    best = Neighbors(np.full((n_held, k), -1, np.int64), np.full((n_held, k), -np.inf, np.float32))

    def fold() -> Neighbors:
        h, i, s = np.concatenate(held), np.concatenate(items), np.concatenate(scores)
        valid = best.ids.ravel() >= 0
        h = np.concatenate([h, np.repeat(np.arange(n_held), k)[valid]])
        i = np.concatenate([i, best.ids.ravel()[valid]])
        s = np.concatenate([s, best.scores.ravel()[valid]])
        order = np.lexsort((i, -s, h))
        h, i, s = h[order], i[order], s[order]
        starts = np.searchsorted(h, np.arange(n_held))
        rank = np.arange(len(h)) - starts[h]
        keep = rank < k
        ids = np.full((n_held, k), -1, np.int64)
        out = np.full((n_held, k), -np.inf, np.float32)
        ids[h[keep], rank[keep]], out[h[keep], rank[keep]] = i[keep], s[keep]
        return Neighbors(ids, out)

    pending = 0
    for batch in batches:
        held.append(np.asarray(batch["held"], np.int64))
        items.append(np.asarray(batch["item"], np.int64))
        scores.append(np.asarray(batch["score"], np.float32))
        pending += len(batch["held"])
        if pending > 8 * n_held * k:  # bounded memory: fold what came into the running best
            best = fold()
            held, items, scores, pending = held[:1], items[:1], scores[:1], 0
    return fold()


@dataclass(frozen=True)
class SearchModel:
    """A fitted correction's top-k for each row of a batch of queries (row numbers of its database, and scores)."""

    k: int

    def __call__(self, model: Correction, ids: np.ndarray, rows: np.ndarray) -> dict[str, np.ndarray]:
        if not len(rows):
            return {"neighbors": np.empty((0, self.k), np.int64), "scores": np.empty((0, self.k), np.float32)}
        found = model.search(rows, self.k, progress=False)
        return {"neighbors": found.ids, "scores": found.scores}


@dataclass
class PassState:
    """One exact blending pass's held state: the pass's unit rows and the exact index over them."""

    unit: np.ndarray
    index: BaseIndex


@dataclass(frozen=True)
class BlendPass:
    """One pass of exact blending for a batch of row positions: ``normalize(W·X)`` as :class:`~nnlift.NeighborhoodBlender`."""

    k: int
    threshold: float
    positions_only = True  # the batch holds positions; the rows are the held matrix's

    def __call__(self, state: PassState, ids: np.ndarray, rows: np.ndarray | None) -> dict[str, np.ndarray]:
        _, blended = blend_members(state.unit, state.index, np.asarray(ids, dtype=np.int64), self.k, self.threshold)
        return {"embedding": blended}


def blend_members(
    unit: np.ndarray, index: BaseIndex, positions: np.ndarray, k: int, threshold: float
) -> tuple[Neighbors, np.ndarray]:
    """One blending pass for rows ``positions`` of ``unit`` (``index`` holds ``unit``): their graph rows and ``normalize(W·X)``.

    Each row's other neighbours are its top-k among all rows with itself
    taken out, which is the exact self-join's top-(k−1): canonical scores are
    symmetric and ties go to the lower position in both. Returns each row's
    neighbours, itself included (positions of ``unit``, padded with -1), and
    the blended rows.
    """
    members = unit[positions]
    others = k - 1
    if others == 0 or not len(positions):
        found = Neighbors(np.empty((len(positions), 0), np.int64), np.empty((len(positions), 0), np.float32))
    else:
        width = min(others + 1, len(unit))
        top = _run(index, "search_arrays", members, width, threshold=threshold)
        is_self = top.ids == positions[:, None]
        # Drop self where found, else the last entry: what is left is the top-(k−1) of the other rows.
        drop = np.where(is_self.any(axis=1), is_self.argmax(axis=1), width - 1)
        keep = np.ones(top.ids.shape, dtype=bool)
        keep[np.arange(len(positions)), drop] = False
        shape = (len(positions), width - 1)
        found = Neighbors(top.ids[keep].reshape(shape), top.scores[keep].reshape(shape))
        if width - 1 < others:  # fewer rows than k: pad as the self-join does
            pad = others - (width - 1)
            found = Neighbors(
                np.pad(found.ids, ((0, 0), (0, pad)), constant_values=-1),
                np.pad(found.scores, ((0, 0), (0, pad)), constant_values=-np.inf),
            )
    found = with_self(members, positions, found, threshold)
    return found, blend_rows(unit, found.to_csr(n_columns=len(unit)), inputs=members)
