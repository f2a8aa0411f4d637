"""The ``Neighbors`` result type shared by the kernel, every index and every method."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from .errors import InputError

__all__ = ["Neighbors"]


@dataclass(frozen=True, eq=False)
class Neighbors:
    """Top-k neighbours of a batch of queries.

    Attributes
    ----------
    ids : numpy.ndarray
        int64 array of shape (n_queries, k). Each row is sorted by descending
        score, ties broken by the lower id. A row with fewer than k hits is
        padded with id ``-1``.
    scores : numpy.ndarray
        float32 array of shape (n_queries, k); padding is ``-inf``. What a
        score means (raw cosine, corrected score) is said by whoever returns it.
    keys : numpy.ndarray, optional
        The index's own ids (for example strings like ``"V_126H754"``) for
        each entry of ``ids``, with ``None`` in padded slots. ``ids`` then
        holds the index's internal positions.

    Examples
    --------
    >>> import numpy as np
    >>> nb = Neighbors(np.array([[2, 0]]), np.array([[0.9, 0.5]], dtype=np.float32))
    >>> nb.to_lists()[0][0].tolist()
    [2, 0]
    """

    ids: np.ndarray
    scores: np.ndarray
    keys: np.ndarray | None = field(default=None)

    def __post_init__(self) -> None:
        ids = np.ascontiguousarray(self.ids, dtype=np.int64)
        scores = np.ascontiguousarray(self.scores, dtype=np.float32)
        if ids.ndim != 2 or ids.shape != scores.shape:
            raise InputError(f"ids and scores must be 2-D with equal shapes; got {ids.shape} and {scores.shape}")
        object.__setattr__(self, "ids", ids)
        object.__setattr__(self, "scores", scores)
        if self.keys is not None and np.shape(self.keys) != ids.shape:
            raise InputError(f"keys must have the shape of ids {ids.shape}; got {np.shape(self.keys)}")

    @property
    def k(self) -> int:
        """Number of columns (neighbours per query, padding included)."""
        return self.ids.shape[1]

    def __len__(self) -> int:
        return self.ids.shape[0]

    @property
    def valid(self) -> np.ndarray:
        """Boolean mask of real (non-padded) entries."""
        return self.ids >= 0

    def to_lists(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Ragged per-query lists ``(ids, scores)`` with the padding removed."""
        counts = self.valid.sum(axis=1)
        return (
            [self.ids[i, :c].copy() for i, c in enumerate(counts)],
            [self.scores[i, :c].copy() for i, c in enumerate(counts)],
        )

    def to_csr(self, n_columns: int | None = None) -> sp.csr_matrix:
        """The neighbours as a sparse (n_queries, n_columns) matrix of scores.

        Rows keep the sorted order of their entries; padded slots are dropped.
        ``n_columns`` defaults to the largest id plus one.
        """
        valid = self.valid
        counts = valid.sum(axis=1)
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        indices = self.ids[valid]
        data = self.scores[valid]
        if n_columns is None:
            n_columns = int(indices.max()) + 1 if len(indices) else 0
        elif len(indices) and int(indices.max()) >= n_columns:
            raise InputError(f"n_columns={n_columns} is too small for the largest id {int(indices.max())}")
        return sp.csr_matrix((data, indices, indptr), shape=(len(self), n_columns))

    def pairs(self, row: int = 0) -> list[tuple[object, float]]:
        """``(id, score)`` of one query's hits, padding dropped; ids are ``keys`` when present."""
        valid = self.ids[row] >= 0
        labels = self.keys[row][valid] if self.keys is not None else self.ids[row][valid]
        return [
            (label.item() if hasattr(label, "item") else label, float(score))
            for label, score in zip(labels, self.scores[row][valid])
        ]

    def labels(self, row: int = 0) -> list:
        """The ids (or keys) of one query's hits, padding dropped."""
        return [label for label, _ in self.pairs(row)]

    def __iter__(self):
        # Without this, `scores, ids = found` would silently unpack two queries' rows (found[0], found[1]).
        raise TypeError(
            "a Neighbors is not a (scores, ids) pair: use found.ids and found.scores, "
            "or found[i] for the i-th query's row"
        )

    def __getitem__(self, rows) -> Neighbors:
        keys = None if self.keys is None else self.keys[rows]
        ids, scores = self.ids[rows], self.scores[rows]
        if ids.ndim == 1:
            ids, scores = ids[None], scores[None]
            keys = None if keys is None else keys[None]
        return Neighbors(ids, scores, keys)

    @classmethod
    def concatenate(cls, parts: list[Neighbors]) -> Neighbors:
        """The rows of several results of one width, in order (keys kept when every part has them)."""
        if not parts:
            raise InputError("concatenate needs at least one Neighbors")
        keys = None if any(p.keys is None for p in parts) else np.concatenate([p.keys for p in parts])
        return cls(np.concatenate([p.ids for p in parts]), np.concatenate([p.scores for p in parts]), keys)

    def __repr__(self) -> str:
        return f"Neighbors(n_queries={len(self)}, k={self.k}, padded={int((~self.valid).sum())})"


def sort_neighbors(ids: np.ndarray, scores: np.ndarray, keys: np.ndarray | None = None) -> Neighbors:
    """Sort each row by descending score, ties by lower id, padding (id < 0 or -inf) last.

    Approximate backends return their hits in engine order; this gives them
    the same deterministic order as the exact kernel.
    """
    ids = np.asarray(ids, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float32).copy()
    pad = (ids < 0) | ~np.isfinite(scores)
    scores[pad] = -np.inf
    ids = np.where(pad, -1, ids)
    tie_id = np.where(pad, np.iinfo(np.int64).max, ids)
    order = np.lexsort((tie_id, -scores.astype(np.float64)), axis=-1)
    keys_sorted = None if keys is None else np.take_along_axis(np.asarray(keys, dtype=object), order, axis=1)
    return Neighbors(np.take_along_axis(ids, order, axis=1), np.take_along_axis(scores, order, axis=1), keys_sorted)
