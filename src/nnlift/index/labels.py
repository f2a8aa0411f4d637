"""``LabelMap``: positions ↔ a backend's own labels, once items have been removed.

nnlift's positions are always 0..n−1 in insertion order. A backend that
removes natively without renumbering (hnswlib's ``mark_deleted``, a faiss IVF
``remove_ids``, a Qdrant delete) keeps its labels with holes in them; the
live labels, kept sorted, map position ``p`` to label ``labels[p]`` and back
by binary search. Until the first removal the map is the identity and costs
nothing.
"""

from __future__ import annotations

import numpy as np

__all__ = ["LabelMap"]


class LabelMap:
    """Sorted live labels of a backend; new items get labels above every label used before.

    Examples
    --------
    >>> labels = LabelMap(5)
    >>> labels.remove(np.array([1, 3])).tolist()
    [1, 3]
    >>> labels.of(np.arange(3)).tolist(), labels.positions(np.array([4, 0, -1])).tolist()
    ([0, 2, 4], [2, 0, -1])
    >>> labels.extend(2).tolist()
    [5, 6]
    """

    def __init__(self, count: int = 0, live: np.ndarray | None = None, next_label: int | None = None) -> None:
        self._live = None if live is None else np.asarray(live, dtype=np.int64)
        self._count = count if live is None else len(self._live)
        if next_label is None:
            next_label = count if live is None else (int(self._live[-1]) + 1 if len(self._live) else 0)
        self.next_label = next_label

    @property
    def identity(self) -> bool:
        """True while labels are the positions (no removal yet)."""
        return self._live is None

    @property
    def live(self) -> np.ndarray:
        """Every live label, ascending (position order)."""
        return np.arange(self._count, dtype=np.int64) if self._live is None else self._live

    def __len__(self) -> int:
        return self._count

    def of(self, positions: np.ndarray) -> np.ndarray:
        """Labels of positions."""
        positions = np.asarray(positions, dtype=np.int64)
        return positions if self._live is None else self._live[positions]

    def positions(self, labels: np.ndarray) -> np.ndarray:
        """Positions of labels; negative labels (padding) stay -1."""
        labels = np.asarray(labels, dtype=np.int64)
        if self._live is None:
            return labels
        found = np.searchsorted(self._live, np.maximum(labels, 0))
        return np.where(labels >= 0, found, -1)

    def extend(self, n: int) -> np.ndarray:
        """Labels for ``n`` new items (appended, so positions stay sorted by label)."""
        new = np.arange(self.next_label, self.next_label + n, dtype=np.int64)
        if self._live is not None:
            self._live = np.concatenate([self._live, new])
        self._count += n
        self.next_label += n
        return new

    def remove(self, positions: np.ndarray) -> np.ndarray:
        """Forget the items at ``positions``; returns their labels."""
        labels = self.of(positions).copy()
        self._live = np.delete(self.live, positions)
        self._count = len(self._live)
        return labels
