"""The ``Index`` protocol and the plumbing every backend shares: validation, ids, padding, persistence."""

from __future__ import annotations

import os
from contextlib import contextmanager
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Iterator, Protocol, runtime_checkable

import numpy as np

from .._artifact import ArtifactError, Contents, init_parameters, load_artifact
from .._artifact import save as save_object
from .._check import check_array, check_ids, check_metric, check_positive_int, normalize_rows
from ..neighbors import Neighbors
from ..errors import InputError, InputTypeError, UnknownIdError

__all__ = ["Index", "BaseIndex", "build_index", "quiet"]


@runtime_checkable
class Index(Protocol):
    """What every nnlift index offers; methods work on any of them."""

    metric: str

    def add(self, vectors: Any, ids: Any = None) -> Index: ...

    def remove(self, ids: Any) -> Index: ...

    def update(self, ids: Any, vectors: Any) -> Index: ...

    def search(self, queries: Any, k: int) -> Neighbors: ...

    def get(self, ids: Any) -> np.ndarray: ...

    def __len__(self) -> int: ...

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path: ...


class BaseIndex(ABC):
    """Shared implementation; a backend implements ``_add``, ``_search``, ``_get`` and its state.

    Vectors are validated and (for ``metric="cosine"``) normalised here, so a
    backend only ever sees float32 unit rows (or raw rows for ``"ip"``) and
    scores them by inner product. External ids are kept here too: ints are
    returned as ``Neighbors.ids``; strings are returned as ``Neighbors.keys``
    with ``Neighbors.ids`` holding internal positions.
    """

    def __init__(self, metric: str = "cosine") -> None:
        self.metric = check_metric(metric)
        self.dim: int | None = None
        self._external: np.ndarray | None = None  # None: ids are positions 0..n-1
        self._lookup: dict | None = None
        self._next_id: int | None = None  # set once removals made positions ids explicit: the next automatic id

    # -- backend hooks ---------------------------------------------------
    @abstractmethod
    def _add(self, vectors: np.ndarray) -> None:
        """Backend hook."""

    @abstractmethod
    def _search(self, queries: np.ndarray, k: int) -> Neighbors:
        """Backend hook."""

    @abstractmethod
    def _get(self, positions: np.ndarray) -> np.ndarray:
        """Backend hook."""

    @abstractmethod
    def _remove(self, positions: np.ndarray) -> None:
        """Backend hook: forget the rows at ``positions`` (unique, ascending); later rows move up."""

    @abstractmethod
    def _count(self) -> int:
        """Backend hook."""

    @abstractmethod
    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Backend hook."""

    @abstractmethod
    def _restore(self, extra: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Backend hook."""

    # -- public API ------------------------------------------------------
    def __len__(self) -> int:
        return self._count()

    @property
    def ids(self) -> np.ndarray:
        """External ids in insertion order (positions when none were given)."""
        if self._external is None:
            return np.arange(len(self), dtype=np.int64)
        return self._external

    def _prepare(self, vectors: Any, name: str) -> np.ndarray:
        array = check_array(vectors, name, width=self.dim)
        return normalize_rows(array, name) if self.metric == "cosine" else array

    def add(self, vectors: Any, ids: Any = None) -> BaseIndex:
        """Add vectors, optionally with unique int or string ids; returns ``self``."""
        array = self._prepare(vectors, "vectors")
        n_old = len(self)
        if ids is None and self._next_id is not None:
            ids = np.arange(self._next_id, self._next_id + array.shape[0], dtype=np.int64)
        if ids is None:
            if self._external is not None:
                raise InputError("this index has explicit ids; pass ids= for the new vectors too")
            new_ids = None
        else:
            new_ids = check_ids(ids, array.shape[0])
            if n_old and self._external is None:
                raise InputError("this index was built without ids; new vectors cannot bring ids")
            if self._external is not None:
                if (self._external.dtype.kind == "U") != (new_ids.dtype.kind == "U"):
                    raise InputTypeError("ids must be all ints or all strings across additions")
                clash = [i for i in new_ids.tolist() if i in self._id_lookup()]
                if clash:
                    raise InputError(f"ids already in the index: {clash[:3]}")
        if self.dim is None:
            self.dim = array.shape[1]
        self._add(array)
        if new_ids is not None:
            self._external = new_ids if self._external is None else np.concatenate([self._external, new_ids])
            self._lookup = None
            if self._next_id is not None and new_ids.dtype.kind == "i" and len(new_ids):
                self._next_id = max(self._next_id, int(new_ids.max()) + 1)
        return self

    def remove(self, ids: Any) -> BaseIndex:
        """Remove items by id; they never come back in a search. Returns ``self``.

        Other items keep their ids: in an index built without ids, where ids
        are positions, the ids become explicit at the first removal (item 7
        stays 7), and vectors added later without ids continue the numbering.
        Unknown or repeated ids raise before anything changes.

        Examples
        --------
        >>> import numpy as np
        >>> from nnlift import ExactIndex
        >>> index = ExactIndex().add(np.eye(3))
        >>> index.remove([0]).search([[1.0, 0.1, 0.0]], k=2).ids.tolist()
        [[1, 2]]
        """
        positions = self._unique_positions(ids, "ids")
        if len(positions) == 0:
            return self
        if self._external is None:
            self._external = np.arange(len(self), dtype=np.int64)
            self._next_id = len(self)
        self._remove(positions)
        self._external = np.delete(self._external, positions)
        self._lookup = None
        return self

    def update(self, ids: Any, vectors: Any) -> BaseIndex:
        """Replace the vectors of existing items, keeping their ids; returns ``self``.

        Equal to ``remove(ids)`` then ``add(vectors, ids)``: every id must
        exist, and the vectors are validated before anything changes.
        """
        positions = self._unique_positions(ids, "ids", ascending=False)  # row i of vectors is the i-th id's
        array = self._prepare(vectors, "vectors")
        if array.shape[0] != len(positions):
            raise InputError(f"update got {len(positions)} ids but {array.shape[0]} vectors; give one vector per id")
        if len(positions) == 0:
            return self
        keys = self.ids[positions] if self._external is not None else positions
        self.remove(keys)
        # Rows are already prepared (normalised): add them as they are.
        self._add(array)
        self._external = np.concatenate([self._external, keys])
        self._lookup = None
        return self

    def _unique_positions(self, ids: Any, name: str, *, ascending: bool = True) -> np.ndarray:
        """Positions of ids that must all exist and not repeat: ascending, or in the order of ``ids``."""
        if isinstance(ids, (str, int, np.integer)):
            ids = [ids]
        values = np.asarray(ids).tolist() if isinstance(ids, np.ndarray) else list(ids)
        positions = self.positions(values) if values else np.empty(0, dtype=np.int64)
        if len(np.unique(positions)) != len(positions):
            seen, repeated = set(), []
            for value in values:
                if value in seen:
                    repeated.append(value)
                seen.add(value)
            raise InputError(f"{name} repeats id(s) {repeated[:3]}; give each id once")
        return np.sort(positions) if ascending else positions

    def remove_positions(self, positions: np.ndarray) -> None:
        """For methods: forget rows by position (validated, unique, ascending); later rows move up."""
        if self._external is not None:
            self._external = np.delete(self._external, positions)
            self._lookup = None
        self._remove(positions)

    def _id_lookup(self) -> dict:
        if self._lookup is None:
            self._lookup = {key: pos for pos, key in enumerate(self.ids.tolist())}
        return self._lookup

    def positions(self, ids: Any) -> np.ndarray:
        """Internal positions of external ids; unknown ids raise ``KeyError`` naming them."""
        if isinstance(ids, (str, int, np.integer)):
            ids = [ids]
        values = np.asarray(ids).tolist()
        lookup = self._id_lookup()
        missing = [v for v in values if v not in lookup]
        if missing:
            raise UnknownIdError(f"unknown id(s): {missing[:5]} (the index has {len(self)} items)")
        return np.array([lookup[v] for v in values], dtype=np.int64)

    def get(self, ids: Any) -> np.ndarray:
        """The stored vectors (normalised for cosine) for the given external ids."""
        return self._get(self.positions(ids))

    def _check_search(self, queries: Any, k: Any) -> tuple[np.ndarray, int, int]:
        if len(self) == 0:
            raise InputError("the index is empty; add vectors before searching")
        k = check_positive_int(k, "k")
        return self._prepare(queries, "queries"), k, min(k, len(self))

    def search(self, queries: Any, k: int) -> Neighbors:
        """Top-k by inner product of (normalised) vectors; rows pad with -1/-inf past the index size."""
        array, k, k_eff = self._check_search(queries, k)
        return self._finish(self._search(array, k_eff), k)

    def _finish(self, found: Neighbors, k: int) -> Neighbors:
        ids, scores = found.ids, found.scores
        if ids.shape[1] < k:
            pad = k - ids.shape[1]
            ids = np.pad(ids, ((0, 0), (0, pad)), constant_values=-1)
            scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
        if self._external is None:
            return Neighbors(ids, scores)
        valid = ids >= 0
        if self._external.dtype.kind == "U":
            keys = np.full(ids.shape, None, dtype=object)
            keys[valid] = self._external[ids[valid]]
            return Neighbors(ids, scores, keys)
        mapped = np.full(ids.shape, -1, dtype=np.int64)
        mapped[valid] = self._external[ids[valid]]
        return Neighbors(mapped, scores)

    # -- persistence -----------------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        return list(init_parameters(cls))

    def _params(self) -> dict[str, Any]:
        """The constructor's parameters, read from its signature (as ``Estimator.get_params``)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Hyper-parameters as a dict."""
        return self._params()

    def clone(self, **overrides: Any) -> BaseIndex:
        """A new, empty index with the same parameters (``overrides`` replace some)."""
        return type(self)(**{**self._params(), **overrides})

    # -- the reductions methods need --------------------------------------
    # Methods hand an index validated float32 rows (already normalised when
    # their metric is cosine) and read positions back, never external ids.
    # A backend answers each reduction natively where it can; this class gives
    # every backend the candidate route: the top-k' by raw score from
    # ``_search``, then the reduction over those candidates (see ``candidates``).
    def search_arrays(
        self, queries: np.ndarray, k: int, *, bias: np.ndarray | None = None, threshold: float | None = None
    ) -> Neighbors:
        """Top-k of ``s(q, x) − bias(x)``, only scores above ``threshold``; ids are positions, padded with -1."""
        from .candidates import rescored_topk

        return rescored_topk(self, queries, k, bias=bias, threshold=threshold)

    def self_join(self, k: int, *, threshold: float | None = None) -> Neighbors:
        """Each stored row's top-k among the other stored rows (itself left out), by position."""
        from .candidates import self_join_by_search

        return self_join_by_search(self, k, threshold=threshold)

    def topk_mean(self, queries: np.ndarray, k: int) -> np.ndarray:
        """Mean of each query's k largest scores (k at most the index size), float32."""
        from .candidates import mean_of_topk

        return mean_of_topk(self, queries, k)

    def logsumexp(self, queries: np.ndarray, beta: float, *, column_best: bool = False):
        """``(1/β)·log Σ_x exp(β·s(q, x))`` over the stored rows, float32.

        With ``column_best``, returns ``(values, best)`` where ``best[j]`` is
        the query (row of ``queries``) scoring highest against stored row
        ``j``, -1 where none was compared with it: the reverse top-1, read
        from the same scores.
        """
        from .candidates import logsumexp_of_candidates

        return logsumexp_of_candidates(self, queries, beta, column_best=column_best)

    def accuracy_hint(self) -> str:
        """What to change for higher recall on this index, naming its own parameter (for warnings)."""
        return "use ExactIndex()"

    def stored_vectors(self) -> np.ndarray:
        """Every stored row in position order (what exact search and checks compare against)."""
        return self._get(np.arange(len(self), dtype=np.int64))

    def _adopt(self, vectors: np.ndarray, like: BaseIndex | None = None) -> None:
        """Take validated rows for a method's own use; backends that can keep them without a copy do.

        ``like`` is another index built from the same template (the bank's, for
        the database): a backend may reuse its structure (IVF lists).
        """
        self.dim = vectors.shape[1]
        self._add(vectors)

    def _id_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """What every artifact adds for ids: the external ids and, after removals, the next automatic id."""
        extra = {} if self._next_id is None else {"next_id": self._next_id}
        return extra, {} if self._external is None else {"external_ids": self._external}

    def _artifact(self) -> Contents:
        extra, arrays = self._state()
        id_extra, id_arrays = self._id_state()
        return Contents(self._params(), {**arrays, **id_arrays}, {**extra, **id_extra, "dim": self.dim})

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Save the index as an nnlift artifact folder (reopen with ``nnlift.load``).

        Atomic; an existing artifact is replaced only with ``overwrite=True``, anything else never.
        """
        return save_object(self, path, overwrite=overwrite)

    @classmethod
    def _from_artifact(cls, manifest: dict, arrays: dict[str, np.ndarray], parts: dict) -> BaseIndex:
        index = cls(**manifest["params"])
        extra = dict(manifest["extra"])
        dim = extra.pop("dim", None)
        if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int) or dim < 1):
            raise ArtifactError(f"{cls.__name__} artifact: extra.dim must be a positive integer; got {dim!r}")
        index.dim = dim
        external = arrays.pop("external_ids", None)
        next_id = extra.pop("next_id", None)
        index._restore(extra, arrays)
        n = len(index)
        if (dim is None) != (n == 0) and next_id is None:
            raise ArtifactError(f"{cls.__name__} artifact: dim {dim!r} does not fit its {n} vectors")
        index._restore_external(external, next_id)
        return index

    def _restore_external(self, external: np.ndarray | None, next_id: Any = None) -> None:
        """Take restored external ids: one int or string per stored vector, unique, else ``ArtifactError``."""
        owner, n = type(self).__name__, len(self)
        if next_id is not None:
            if isinstance(next_id, bool) or not isinstance(next_id, int) or external is None or external.dtype.kind != "i":
                raise ArtifactError(f"{owner} artifact: extra.next_id must be an int beside int external_ids")
            if len(external) and next_id <= int(external.max()):
                raise ArtifactError(f"{owner} artifact: extra.next_id {next_id} is not above every id")
            self._next_id = next_id
        if external is None:
            return
        if external.ndim != 1 or len(external) != n or external.dtype.kind not in "iU":
            raise ArtifactError(f"{owner} artifact: external_ids must be {n} ints or strings")
        if len(np.unique(external)) != n:
            raise ArtifactError(f"{owner} artifact: external_ids has duplicates")
        self._external = external.astype(np.int64) if external.dtype.kind == "i" else external

    def _restored_vectors(self, arrays: dict[str, np.ndarray], name: str = "vectors") -> np.ndarray:
        """A restored array of stored rows: 2-D float32 of the index's width, finite, else ``ArtifactError``."""
        owner = type(self).__name__
        if name not in arrays:
            raise ArtifactError(f"{owner} artifact: the array {name!r} is missing")
        vectors = arrays[name]
        width = self.dim if self.dim is not None else 0
        if vectors.dtype != np.float32 or vectors.ndim != 2 or (len(vectors) and vectors.shape[1] != width):
            raise ArtifactError(
                f"{owner} artifact: {name} must be float32 rows of width {width}; got {vectors.dtype} {vectors.shape}"
            )
        if not np.isfinite(vectors).all():
            raise ArtifactError(f"{owner} artifact: {name} has NaN or inf values")
        return np.ascontiguousarray(vectors)

    @classmethod
    def load(cls, path: str | os.PathLike) -> BaseIndex:
        """Load an index saved by :meth:`save` (``nnlift.load`` works too)."""
        return load_artifact(path, expected_class=cls)

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self._params().items())
        return f"{type(self).__name__}({params}, n={len(self)}, dim={self.dim})"


def build_index(template: Any, vectors: np.ndarray, *, like: BaseIndex | None = None) -> BaseIndex:
    """A fresh clone of the index ``template`` over validated rows, scored by raw inner product.

    Methods prepare (normalise) their rows themselves, so every index they
    build has ``metric="ip"``; the template's own metric is not used.
    """
    if not isinstance(template, BaseIndex):
        raise InputTypeError(
            f"index must be an nnlift index to clone, such as ExactIndex() or Checked(IVFIndex()); got {template!r}"
        )
    index = template.clone(metric="ip")
    index._adopt(vectors, like=like)
    return index


@contextmanager
def quiet(index: BaseIndex, enabled: bool = False) -> Iterator[BaseIndex]:
    """Within the block, ``index`` (and an index it wraps) shows no progress bar unless ``enabled``."""
    owners = [owner for owner in (index, getattr(index, "index", None)) if hasattr(owner, "progress")]
    before = [owner.progress for owner in owners]
    if not enabled:
        for owner in owners:
            owner.progress = False
    try:
        yield index
    finally:
        for owner, value in zip(owners, before):
            owner.progress = value
