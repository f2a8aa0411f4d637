"""IVF-blocked GEMM: approximate top-k that keeps every flop in BLAS.

Spherical k-means splits the database into lists, stored contiguously. Each
query probes its ``n_probe`` nearest lists, as in a classic IVF, but the work
is done list by list: one GEMM between a list and all the queries that probe
it, instead of one scan per query, so the approximate search runs at
matrix-multiply speed. Recall is measured by the callers, never assumed.

The parts live beside it: ``kmeans`` (the lists), ``routing`` (rows to their
nearest lists) and ``recall`` (measuring a result against exact search); this
module holds the index and its self-join, and re-exports the parts' API.
"""

from __future__ import annotations

import logging
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from .._check import check_positive_int, row_norms
from .._progress import progress_bar
from .._threads import default_workers, single_threaded_blas
from ..kernel.keys import KEY_PAD, LOW32, encode_keys, run_positions, smallest_keys
from ..kernel.selection import pairs_above, tile_topk_keys, tile_topk_keys_columns
from ..engines import Prepared, check_engine, prepare
from ..kernel.canonical import canonical_scores
from ..kernel.driver import _count, _epsilon, certify_rows, choose_engine, drop_below, initial_width, scratch_buffer, topk_arrays
from ..kernel.keys import keys_to_neighbors
from ..neighbors import Neighbors
from .._artifact import ArtifactError, require_arrays
from .base import BaseIndex
from .checked import Checked
from .kmeans import kmeans
from .recall import check_rows, neighbor_recall, pooled_recall, recall_counts, recall_standard_error  # noqa: F401
from .routing import nearest_centroid, nearest_lists, order_by_list  # noqa: F401 - the IVF API in one place

__all__ = ["kmeans", "IVFIndex", "neighbor_recall", "pooled_recall", "recall_counts", "recall_standard_error"]
logger = logging.getLogger("nnlift")
# k-means iterations from given centroids: blending moves rows little, and two
# iterations from the previous pass's centroids gave the same recall as six from scratch.
_WARM_ITERATIONS = 2
# Bytes of per-query candidate keys held at once while merging lists.
_MERGE_BUFFER_BYTES = 64 * 2**20


@dataclass(frozen=True)
class SearchPlan:
    """What every tile of one IVF search shares: the queries' probes and, for a self-join, the column side.

    ``symmetric`` marks a self-join served from both directions: then
    ``list_of`` maps each stored row to its own list, and ``columns`` (the one
    mutable part, written row-disjointly by the tiles) collects each member's
    best queries among those probing its list.
    """

    probes: np.ndarray
    n_lists: int
    threshold: float | None
    symmetric: bool
    list_of: np.ndarray | None = None
    columns: np.ndarray | None = None
    prepared: Prepared | None = None


def _probes_reach(context: SearchPlan, members: np.ndarray, local: np.ndarray, partners: np.ndarray) -> np.ndarray:
    """Whether member ``members[local]``'s own probes include its partner's list (``local``, ``partners`` broadcast).

    In a self-join such a pair is found from the member's side, so the partner's
    tile leaves it out of the member's column candidates: no pair counts twice.
    The tile's members × lists table holds about n booleans, as lists hold
    about n / n_lists members.
    """
    probed = np.zeros((len(members), context.n_lists), dtype=bool)
    probed[np.arange(len(members))[:, None], context.probes[members]] = True
    return probed[local, context.list_of[partners]]


class IVFIndex(BaseIndex):
    """Approximate inner-product/cosine search by IVF-blocked GEMM (numpy only).

    Parameters
    ----------
    n_lists : int, optional
        k-means lists; default ``√n`` (lists of about √n vectors).
    n_probe : int
        Lists searched per query group (a group is the queries nearest one centroid).
    n_iter : int
        k-means iterations.
    seed : int
        Seed of the k-means sample and initialisation.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> data = rng.normal(size=(2000, 16)).astype(np.float32)
    >>> index = IVFIndex(n_lists=8, n_probe=8).add(data)
    >>> bool((index.search(data[:5], 1).ids[:, 0] == np.arange(5)).all())
    True
    """

    def __init__(
        self,
        metric: str = "cosine",
        n_lists: int | None = None,
        n_probe: int = 8,
        n_iter: int = 6,
        seed: int = 0,
        progress: bool = True,
        engine: str | None = None,
        device: str | None = None,
    ) -> None:
        super().__init__(metric)
        check_engine(engine, device)
        self.engine, self.device = engine, device
        self.n_lists = n_lists
        self.n_probe = n_probe
        self.n_iter = n_iter
        self.seed = seed
        self.progress = progress
        self._vectors = np.empty((0, 0), dtype=np.float32)
        self._centroids: np.ndarray | None = None
        self._init: np.ndarray | None = None  # centroids to start k-means from (see _adopt)
        self._routed: tuple[np.ndarray, np.ndarray] | None = None  # the last rows topk_mean routed, and their probes
        self._means: tuple[np.ndarray, np.ndarray] | None = None  # per-list mean and spread (logsumexp)

    # -- structure -----------------------------------------------------------
    def _add(self, vectors: np.ndarray) -> None:
        self._vectors = vectors.copy() if len(self._vectors) == 0 else np.concatenate([self._vectors, vectors])
        self._centroids = None  # rebuilt lazily on the next search

    def _remove(self, positions: np.ndarray) -> None:
        # The lists keep their centroids: the remaining rows stay where they were, so their neighbours do not move.
        self._vectors = np.delete(self._vectors, positions, axis=0)
        self._routed = None
        if self._centroids is not None and len(self._vectors):
            self._set_lists(self._centroids, np.delete(self._own_probes, positions, axis=0))
        else:
            self._centroids = None

    def _count(self) -> int:
        return self._vectors.shape[0]

    def _get(self, positions: np.ndarray) -> np.ndarray:
        return self._vectors[positions].copy()

    def _build(self) -> None:
        n = len(self._vectors)
        n_lists = self.n_lists if self.n_lists is not None else max(1, int(round(math.sqrt(n))))
        n_lists = min(check_positive_int(n_lists, "n_lists"), n)
        unit = self._vectors
        # Cluster by direction (scores stay raw inner products); unit rows, as blending's, need no copy.
        if self.metric == "ip" and not np.allclose(row_norms(unit), 1.0, rtol=0.0, atol=1e-5):
            unit = self._unit(unit)
        if self._init is not None and len(self._init) == n_lists:
            n_iter = min(self.n_iter, _WARM_ITERATIONS)
            self._centroids = kmeans(unit, n_lists, n_iter=n_iter, seed=self.seed, init=self._init)
        else:
            self._centroids = kmeans(unit, n_lists, n_iter=self.n_iter, seed=self.seed)
        # Each stored vector's n_probe nearest lists: the first is its own list, and a
        # self-join reuses them all as its probes instead of multiplying again.
        own_probes = min(check_positive_int(self.n_probe, "n_probe"), n_lists)
        self._set_lists(self._centroids, nearest_lists(unit, self._centroids, own_probes))

    def _set_lists(self, centroids: np.ndarray, own_probes: np.ndarray) -> None:
        """Store the vectors list by list, given the centroids and each vector's nearest lists (first: its own)."""
        self._centroids = centroids
        self._own_probes = own_probes
        self._means = None
        assign = own_probes[:, 0]
        # Stored in list order (ids ascending within a list), so a list is a contiguous slice.
        self._order = order_by_list(assign, len(centroids))
        self._offsets = np.searchsorted(assign[self._order], np.arange(len(centroids) + 1))
        self._sorted = np.ascontiguousarray(self._vectors[self._order])
        self._sorted.flags.writeable = False  # read-only: engines may keep their copy of it between searches
        logger.info(
            "IVF: %d lists, largest %d, over %d vectors",
            len(centroids),
            int(np.diff(self._offsets).max()),
            len(self._vectors),
        )

    def _adopt(self, vectors: np.ndarray, like: BaseIndex | None = None) -> None:
        """Keep a method's validated rows without a copy, and take what a related IVF index knows.

        ``like`` built from the same template: when it has just routed these
        very rows (NNN's bias pass routes the database among the bank's
        lists), its lists are filled with them and no k-means runs; otherwise
        its centroids start this index's k-means (blending's next pass, over
        slightly moved rows), which then needs only a few iterations.
        """
        self.dim = vectors.shape[1]
        self._vectors = vectors
        self._centroids = None
        if isinstance(like, Checked):
            like = like.index
        if not isinstance(like, IVFIndex) or like._centroids is None:
            return
        routed = like._routed
        like._routed = None
        if routed is not None and routed[0] is vectors and self.use_lists(like._centroids, routed[1]):
            return
        self._init = like._centroids

    def use_lists(self, centroids: np.ndarray, probes: np.ndarray) -> bool:
        """List this index's vectors by another index's centroids, given their probes into it.

        NNN computes each database item's nearest bank lists while fitting the
        bias; the same lists, filled with the database, serve its search with
        no second k-means. Returns False (and changes nothing) when the
        vectors would pile into few lists, as when bank and database lie in
        different regions (a modality gap); the index then builds its own.
        """
        if len(probes) != len(self._vectors) or len(self._vectors) == 0:
            return False
        sizes = np.bincount(probes[:, 0], minlength=len(centroids))
        if sizes.max() > 8 * len(probes) / len(centroids):
            return False
        self._set_lists(centroids, probes)
        return True

    def accuracy_hint(self) -> str:
        return f"raise n_probe (now {self.n_probe}; lists: {self.n_lists or 'about √n'})"

    # -- search --------------------------------------------------------------
    def _search(self, queries: np.ndarray, k: int) -> Neighbors:
        return self.search_arrays(queries, k)

    def stored_vectors(self) -> np.ndarray:
        return self._vectors

    def self_join(self, k: int, *, threshold: float | None = None) -> Neighbors:
        """Native: each list's GEMM serves both directions of its pairs (see :meth:`search_arrays`)."""
        return self.search_arrays(self._vectors, k, exclude_self=True, threshold=threshold)

    def search_arrays(
        self,
        queries: np.ndarray,
        k: int,
        *,
        bias: np.ndarray | None = None,
        exclude_self: bool = False,
        threshold: float | None = None,
    ) -> Neighbors:
        """Approximate top-k of ``s(q, x) − bias(x)`` on validated arrays.

        Each query probes its own ``n_probe`` nearest lists. Work is done list
        by list: one GEMM between a list and every query that probes it, whose
        top-k candidates go to a per-query buffer merged at the end (in query
        chunks, so the buffer stays small). With ``exclude_self``, query row i
        is database row i (a self-join) and is left out of its own results.
        With a ``threshold`` only scores strictly above it are returned (the
        rest is padding), and a tile with few such scores skips top-k
        selection: its entries above the threshold are the candidates.
        """
        limit = len(self._vectors) - (1 if exclude_self else 0)
        if self._centroids is None:
            self._build()
        engine = self._engine(len(queries), queries.shape[1], k)
        prepared = prepare(engine, self._sorted)
        # The engine's candidates (``wide``, plus the best one left out) are rescored canonically
        # and certified (kernel.canonical): rows that fail are rescored over all their probed lists.
        width = initial_width(engine, k, limit)
        wide = width + 1
        # Probes as for k itself: the extra candidates come from the same lists (where those
        # hold fewer, all their members are candidates and nothing is left out).
        n_probe = self._probe_count(k + (1 if exclude_self else 0))
        n_lists = len(self._centroids)
        if exclude_self and len(queries) == len(self._vectors) and self._own_probes.shape[1] == n_probe:
            probes = self._own_probes  # query i is stored vector i: its probes are already known
        elif exclude_self and len(queries) == len(self._vectors):
            # a self-join routes the stored rows, always as one batch: the float32 routing is
            # already the same every time, and 5× cheaper than canonical routing here
            probes = nearest_lists(queries, self._centroids, n_probe)  # see topk_mean: no unit copy
        else:
            probes = self._route(queries, n_probe)
        sorted_bias = None if bias is None else bias[self._order]
        n_queries = len(queries)
        epsilon = _epsilon(queries, prepared, bias)
        lowered = None if threshold is None else threshold - 2 * float(epsilon.max(initial=0.0))
        # Lists of at most 2k vectors are passed whole to the final merge: selecting k of
        # them would cost more than merging the few extra candidates.
        largest = int(np.diff(self._offsets).max())
        slot_width = largest if largest <= 2 * wide else wide
        chunk = max(1, int(_MERGE_BUFFER_BYTES // (8 * n_probe * slot_width)))
        # A self-join serves both directions from each tile: members of a list also get
        # candidates among the queries probing it, so a pair is found when either side
        # probes the other's list, at no extra multiply.
        symmetric = exclude_self and bias is None and n_queries == len(self._vectors)
        own_list = columns = None
        if symmetric:
            own_list = np.empty(n_queries, dtype=np.int64)
            own_list[self._order] = np.repeat(np.arange(n_lists), np.diff(self._offsets))
            columns = np.full((n_queries, wide), KEY_PAD, dtype=np.uint64)
        context = SearchPlan(probes, n_lists, lowered, symmetric, own_list, columns, prepared)
        keys = np.empty((n_queries, wide), dtype=np.uint64)
        workers = default_workers()
        flops = 2.0 * n_queries * len(self._vectors) * queries.shape[1] * n_probe / n_lists
        with progress_bar("IVF search", n_queries, enabled=self.progress, expected_seconds=flops / 80e9) as bar:
            with single_threaded_blas(workers > 1), ThreadPoolExecutor(workers) as pool:
                for start in range(0, n_queries, chunk):
                    stop = min(start + chunk, n_queries)
                    keys[start:stop] = self._search_chunk(
                        queries, context, start, stop, wide, slot_width, sorted_bias, exclude_self, pool
                    )
                    bar.advance(stop - start)
        if symmetric:
            keys = smallest_keys(np.concatenate([keys, context.columns], axis=1), wide)
        if lowered is not None:
            drop_below(keys, lowered)
        final, done = certify_rows(queries, self._vectors, keys, k, width, prepared, bias, threshold, epsilon)
        failed = np.flatnonzero(~done)
        _count(n_queries, len(failed))
        if len(failed):
            final[failed] = self._rescore_probed(queries, failed, probes, keys, k, bias, exclude_self)
        return keys_to_neighbors(final, threshold)

    def _engine(self, n_queries: int, d: int, k: int):
        """The engine of this search (``engine``/``device``, else the process's choice), by the work it has."""
        per_query = len(self._vectors) * min(self.n_probe, len(self._centroids)) / len(self._centroids)
        # Small tiles: auto stays float32 (50k × 20k NNN search: 0.41 s numpy, 0.59 s bf16).
        return choose_engine(self.engine, n_queries, int(per_query), d, self.device, k, reduced=False)

    def _route(self, queries: np.ndarray, n_probe: int) -> np.ndarray:
        """Each query's ``n_probe`` lists by canonical scores, so that a query probes the same lists in any batch."""
        return topk_arrays(self._unit(queries), self._centroids, n_probe, progress=False, engine="numpy").ids

    def _rescore_probed(self, queries, rows, probes, wide, k, bias, exclude_self) -> np.ndarray:
        """Canonical top-k keys of ``rows`` over every member of their probed lists (and their column candidates).

        The rows whose certificate failed: the engine's error straddles their
        k-th score, so each is scored exactly against every item its probes
        reach, which is what a certified row returns too.
        """
        out = np.empty((len(rows), k), dtype=np.uint64)
        found_ids = (wide & LOW32).astype(np.int64)
        for slot, row in enumerate(rows):
            members = [self._order[self._offsets[lst] : self._offsets[lst + 1]] for lst in probes[row]]
            members.append(found_ids[row][wide[row] != KEY_PAD])
            members = np.unique(np.concatenate(members))
            if exclude_self:
                members = members[members != row]
            scores = canonical_scores(queries, self._vectors, np.full(len(members), row), members, bias)
            out[slot] = smallest_keys(encode_keys(scores, members)[None, :], k)[0] if len(members) >= k else np.pad(
                np.sort(encode_keys(scores, members)), (0, k - len(members)), constant_values=KEY_PAD
            )
        return out

    def _each_list(self, chunk_probes: np.ndarray, pool: ThreadPoolExecutor, work) -> None:
        """Call ``work(lst, rows, slots)`` for every list probed by a chunk of queries, in the pool.

        ``rows`` are the chunk's queries that probe ``lst`` and ``slots`` which of their probes it is;
        each list is handled by one task, so tasks never write to the same place.
        """
        n_probe = chunk_probes.shape[1]
        flat = chunk_probes.ravel()
        by_list = order_by_list(flat, len(self._centroids))
        bounds = np.searchsorted(flat[by_list], np.arange(len(self._centroids) + 1))

        def run(lst: int) -> None:
            entries = by_list[bounds[lst] : bounds[lst + 1]]
            if len(entries) and self._offsets[lst + 1] > self._offsets[lst]:
                work(lst, entries // n_probe, entries % n_probe)

        for _ in pool.map(run, np.flatnonzero(np.diff(bounds))):
            pass

    def _probe_count(self, need: int) -> int:
        """Lists each query probes: ``n_probe``, raised so that even the smallest lists hold ``need`` candidates."""
        if self._centroids is None:
            self._build()
        smallest_total = np.cumsum(np.sort(np.diff(self._offsets)))
        wanted = max(check_positive_int(self.n_probe, "n_probe"), int(np.searchsorted(smallest_total, need)) + 1)
        return min(wanted, len(self._centroids))

    def topk_mean(self, queries: np.ndarray, k: int) -> np.ndarray:
        """Approximate mean of each query's k largest scores (NNN's bias), on validated arrays.

        Only the mean is needed, so candidates are merged as float32 scores with one
        partition: no ids, no order and no tie rule (ties do not change a mean).
        Each query probes ``n_probe`` lists; only the rare query whose lists
        hold fewer than k vectors probes as many as the smallest lists need.
        The queries' probes are kept for an index built next over the same
        rows from the same template (see :meth:`_adopt`).
        """
        if self._centroids is None:
            self._build()
        n_probe = min(check_positive_int(self.n_probe, "n_probe"), len(self._centroids))
        # A row's best centroids by q·c are its best by (q/‖q‖)·c: routing needs no unit copy of the
        # rows (a tenth of this pass on 50k×384 rows), and a zero row ties everywhere either way.
        probes = nearest_lists(queries, self._centroids, n_probe)
        out, short = self._topk_mean(queries, k, probes)
        if len(short):
            wide = nearest_lists(queries[short], self._centroids, self._probe_count(k))
            out[short], _ = self._topk_mean(queries[short], k, wide)
        self._routed = (queries, probes)
        return out

    def logsumexp(self, queries: np.ndarray, beta: float, *, column_best: bool = False):
        """Native: exact over each query's ``n_probe`` lists, plus an estimate of every other list.

        With ``column_best`` it also returns each stored row's best query
        among the queries that probe its list, read from the same tiles (no
        extra multiply): QB-Norm's activation set from its bias pass.

        The scores of an unprobed list ``l``'s members are taken as normal,
        with mean ``q·m_l`` (``m_l`` its mean member) and variance
        ``‖q‖²·v_l``, where ``v_l = tr(Cov_l)/d`` is the list's spread per
        dimension; the list then adds ``|l|·exp(β·q·m_l + ½·β²·‖q‖²·v_l)``.
        It costs one multiply by the centroids, as routing does. Without the
        variance term (the Jensen lower bound) the mean absolute error was
        2.9e-3 on 50k×384 mixture data, bank 20k, β = 20; with it, 3.6e-5.
        The queries' probes are kept, as :meth:`topk_mean` keeps them.
        """
        if self._centroids is None:
            self._build()
        n_lists = len(self._centroids)
        n_probe = min(check_positive_int(self.n_probe, "n_probe"), n_lists)
        probes = nearest_lists(queries, self._centroids, n_probe)  # as topk_mean: no unit copy
        sizes = np.diff(self._offsets)
        means, spreads = self._list_moments()
        with np.errstate(divide="ignore"):
            log_sizes = np.log(sizes.astype(np.float64))
        chunk = max(1, min(int(_MERGE_BUFFER_BYTES // (16 * n_probe)), 2**22 // n_lists))
        out = np.empty(len(queries), dtype=np.float32)
        workers = default_workers()
        buffers = threading.local()
        beta32 = np.float32(beta)
        # Each stored row's best query so far (by position); a list's members are written by its task only.
        best_values = np.full(len(self._vectors) if column_best else 0, -np.inf, dtype=np.float32)
        best_rows = np.full(len(self._vectors) if column_best else 0, -1, dtype=np.int64)
        with single_threaded_blas(workers > 1), ThreadPoolExecutor(workers) as pool:
            for start in range(0, len(queries), chunk):
                stop = min(start + chunk, len(queries))
                chunk_probes = probes[start:stop]
                maxes = np.full((stop - start, n_probe), -np.inf)
                sums = np.zeros((stop - start, n_probe))

                def run(lst: int, rows: np.ndarray, slots: np.ndarray) -> None:
                    tile = self._list_scores(buffers, queries, start + rows, lst)
                    if column_best:  # before the tile is exponentiated in place
                        members = self._order[self._offsets[lst] : self._offsets[lst + 1]]
                        first = tile.argmax(axis=0)  # rows ascend: ties go to the lower query
                        values = tile[first, np.arange(tile.shape[1])]
                        better = values > best_values[members]  # chunks ascend too
                        best_values[members[better]] = values[better]
                        best_rows[members[better]] = start + rows[first[better]]
                    top = tile.max(axis=1)
                    tile -= top[:, None]
                    tile *= beta32
                    np.exp(tile, out=tile)
                    maxes[rows, slots] = top
                    sums[rows, slots] = tile.sum(axis=1, dtype=np.float64)

                self._each_list(chunk_probes, pool, run)
                with np.errstate(divide="ignore"):
                    probed = beta * maxes + np.log(sums)
                block = queries[start:stop]
                norms = np.einsum("ij,ij->i", block, block).astype(np.float64)[:, None]
                rest = beta * (block @ means.T).astype(np.float64) + log_sizes + 0.5 * beta**2 * norms * spreads
                rest[np.arange(stop - start)[:, None], chunk_probes] = -np.inf
                terms = np.concatenate([probed, rest], axis=1)
                top = terms.max(axis=1, keepdims=True)
                out[start:stop] = (top[:, 0] + np.log(np.exp(terms - top).sum(axis=1))) / beta
        self._routed = (queries, probes)
        return (out, best_rows) if column_best else out

    def _list_moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Each list's mean member and spread per dimension ``tr(Cov)/d`` (zeros for an empty list), cached."""
        if self._means is None:
            sizes = np.diff(self._offsets)
            filled = sizes > 0
            starts = self._offsets[:-1][filled]
            sums = np.zeros((len(sizes), self._sorted.shape[1]), dtype=np.float64)
            sums[filled] = np.add.reduceat(self._sorted, starts, axis=0, dtype=np.float64)
            squares = np.zeros(len(sizes))
            squares[filled] = np.add.reduceat(np.einsum("ij,ij->i", self._sorted, self._sorted, dtype=np.float64), starts)
            count = np.maximum(sizes, 1)
            means = sums / count[:, None]
            spreads = np.maximum(squares / count - (means**2).sum(axis=1), 0.0) / self._sorted.shape[1]
            self._means = (means.astype(np.float32), spreads)
        return self._means

    def _topk_mean(self, queries: np.ndarray, k: int, probes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Top-k means over the given lists per query, and the queries whose lists held fewer than k."""
        n_probe = probes.shape[1]
        largest = int(np.diff(self._offsets).max())
        width = min(largest, k)
        chunk = max(1, int(_MERGE_BUFFER_BYTES // (4 * n_probe * width)))
        out = np.empty(len(queries), dtype=np.float32)
        workers = default_workers()
        buffers = threading.local()
        # One candidate buffer for every chunk: a fresh one page-faults on each touch (a third of the
        # time on 50k queries), and the final partition runs in place, in the pool, by row blocks.
        merged = np.empty((min(chunk, len(queries)), n_probe, width), dtype=np.float32)
        with single_threaded_blas(workers > 1), ThreadPoolExecutor(workers) as pool:
            for start in range(0, len(queries), chunk):
                stop = min(start + chunk, len(queries))
                chunk_probes = probes[start:stop]
                candidates = merged[: stop - start]
                candidates.fill(-np.inf)

                def run(lst: int, rows: np.ndarray, slots: np.ndarray) -> None:
                    tile = self._list_scores(buffers, queries, start + rows, lst)
                    if tile.shape[1] > width:
                        tile.partition(tile.shape[1] - width, axis=1)  # in place: the tile is scratch
                        tile = tile[:, -width:]
                    candidates[rows, slots, : tile.shape[1]] = tile

                self._each_list(chunk_probes, pool, run)
                flat_scores = candidates.reshape(stop - start, -1)
                step = -(-(stop - start) // (4 * workers))

                def merge(first: int) -> None:
                    block = flat_scores[first : first + step]
                    block.partition(block.shape[1] - k, axis=1)
                    out[start + first : start + first + len(block)] = block[:, -k:].mean(axis=1, dtype=np.float64)

                for _ in pool.map(merge, range(0, stop - start, step)):
                    pass
        short = np.flatnonzero(np.diff(self._offsets)[probes].sum(axis=1) < k)
        return out, short

    def _list_scores(
        self, buffers: threading.local, queries: np.ndarray, query_ids: np.ndarray, lst: int, prepared=None
    ) -> np.ndarray:
        """Scores of the given queries against list ``lst``, in this worker's reusable buffers (scratch)."""
        lo, hi = self._offsets[lst], self._offsets[lst + 1]
        gathered = scratch_buffer(buffers, "gathered", len(query_ids), queries.shape[1])
        np.take(queries, query_ids, axis=0, out=gathered)
        tile = scratch_buffer(buffers, "tile", len(query_ids), hi - lo)
        if prepared is None:
            np.matmul(gathered, self._sorted[lo:hi].T, out=tile)
        else:
            if not getattr(buffers, "ready", False):
                prepared.engine.thread_setup()
                buffers.ready = True
            prepared.multiply(prepared.queries(gathered), lo, hi, tile)
        return tile

    def _unit(self, queries: np.ndarray) -> np.ndarray:
        if self.metric != "ip":
            return queries
        norms = row_norms(queries)[:, None]
        return queries / np.where(norms == 0, 1, norms)

    def _search_chunk(self, queries, context, start, stop, k, width, sorted_bias, exclude_self, pool) -> np.ndarray:
        probes = context.probes
        chunk_probes = probes[start:stop]
        n_rows, n_probe = chunk_probes.shape
        candidates = np.full((n_rows, n_probe, width), KEY_PAD, dtype=np.uint64)
        buffers = threading.local()  # per-worker buffers: fresh ones would page-fault on every tile

        def run(lst: int, rows: np.ndarray, slots: np.ndarray) -> None:
            lo, hi = self._offsets[lst], self._offsets[lst + 1]
            tile = self._list_scores(buffers, queries, start + rows, lst, context.prepared)
            if sorted_bias is not None:
                tile -= sorted_bias[lo:hi]
            members = self._order[lo:hi]
            if exclude_self:
                position = np.searchsorted(members, start + rows)
                inside = position < len(members)
                hit = inside & (members[np.minimum(position, len(members) - 1)] == start + rows)
                tile[np.flatnonzero(hit), position[hit]] = -np.inf
            if context.threshold is not None and self._candidates_above_threshold(
                tile, rows, slots, members, start + rows, k, candidates, context
            ):
                return
            if tile.shape[1] <= width and width > k:  # small list: every member is a candidate
                keys = encode_keys(tile, np.broadcast_to(members, tile.shape))
            else:
                keys = tile_topk_keys(tile, k, 0)
                local = (keys & LOW32).astype(np.int64)
                keys = (keys & ~LOW32) | members[local].astype(np.uint64)
            candidates[rows, slots, : keys.shape[1]] = keys
            if context.symmetric:
                self._column_candidates(tile, members, start + rows, k, context)

        self._each_list(chunk_probes, pool, run)
        return smallest_keys(candidates.reshape(n_rows, n_probe * width), k)

    @staticmethod
    def _candidates_above_threshold(tile, rows, slots, members, query_ids, k, candidates, context) -> bool:
        """Fill a tile's candidates from its entries above the threshold; False when they are too many.

        Only entries above the threshold can be returned, so when they are few
        a row's best ``width`` of them are its candidates and no top-k
        selection runs. For self-joins the same entries go to the members'
        column candidates.
        """
        width = candidates.shape[2]
        found = pairs_above(tile, context.threshold, budget=width * tile.shape[0])
        if found is None:
            return False
        tile_rows, tile_columns, values = found  # ordered by row
        if not len(values):
            return True
        keys = encode_keys(values, members[tile_columns])
        place = run_positions(tile_rows)
        if place.max() < width:  # no row has more than ``width``: each keeps all
            candidates[rows[tile_rows], slots[tile_rows], place] = keys
        else:
            # A row with at most ``width`` (≥ k) entries keeps them all, each in its place in the row;
            # a crowded row keeps its best ``width``, which hold its top-k in this tile.
            crowded = (np.bincount(tile_rows) > width)[tile_rows]
            few = ~crowded
            candidates[rows[tile_rows[few]], slots[tile_rows[few]], place[few]] = keys[few]
            crowded_rows, index = np.unique(tile_rows[crowded], return_inverse=True)
            dense = np.full((len(crowded_rows), int(place.max()) + 1), KEY_PAD, dtype=np.uint64)
            dense[index, place[crowded]] = keys[crowded]
            candidates[rows[crowded_rows], slots[crowded_rows]] = smallest_keys(dense, width)
        if context.symmetric:
            IVFIndex._merge_column_hits(tile_rows, tile_columns, values, members, query_ids, k, context)
        return True

    @staticmethod
    def _merge_column_hits(tile_rows, tile_columns, values, members, query_ids, k, context) -> None:
        """Give a tile's hits to its members' column candidates (self-joins), leaving out pairs their probes reach.

        Hits come ordered by row; a radix sort by column groups them per member,
        and one selection merges them with what the member holds.
        """
        partners = query_ids[tile_rows]
        kept = ~_probes_reach(context, members, tile_columns, partners)
        if not kept.any():
            return
        columns = tile_columns[kept]
        order = order_by_list(columns, len(members))
        columns = columns[order]
        keys = encode_keys(values[kept][order], partners[kept][order])
        place = run_positions(columns)
        touched = columns[place == 0]  # each member once, ascending
        dense = np.full((len(members), int(place.max()) + 1), KEY_PAD, dtype=np.uint64)
        dense[columns, place] = keys
        held = context.columns
        owners = members[touched]
        held[owners] = smallest_keys(np.concatenate([held[owners], dense[touched]], axis=1), k)

    @staticmethod
    def _column_candidates(tile: np.ndarray, members: np.ndarray, query_ids: np.ndarray, k: int, context: SearchPlan) -> None:
        """Give each member of a list its best queries among those probing the list (self-joins).

        A pair the member's own probes will also find is dropped here, so no pair is
        counted twice. Each member lies in one list, so only this task touches its row.
        """
        keys = tile_topk_keys_columns(tile, k, 0)
        local = (keys & LOW32).astype(np.int64)
        valid = keys != KEY_PAD
        partners = query_ids[np.where(valid, local, 0)]
        seen = _probes_reach(context, members, np.arange(len(members))[:, None], partners)
        keys = np.where(valid & ~seen, (keys & ~LOW32) | partners.astype(np.uint64), KEY_PAD)
        columns = context.columns
        columns[members] = smallest_keys(np.concatenate([columns[members], keys], axis=1), k)

    # -- persistence ---------------------------------------------------------
    # The lists are saved with the vectors: rebuilt after loading (or taken from
    # a bank, as NNN does), they could differ and so give other neighbours.
    def _state(self):
        if self._centroids is None:
            return {}, {"vectors": self._vectors}
        return {}, {"vectors": self._vectors, "centroids": self._centroids, "own_probes": self._own_probes}

    def _restore(self, extra, arrays) -> None:
        require_arrays(arrays, ("vectors",), ("centroids", "own_probes"), owner="IVFIndex")
        self._vectors = self._restored_vectors(arrays)
        self._centroids = None
        if ("centroids" in arrays) != ("own_probes" in arrays):
            raise ArtifactError("IVFIndex artifact: centroids and own_probes come together")
        if "centroids" in arrays:
            centroids = self._restored_vectors(arrays, "centroids")
            probes = arrays["own_probes"]
            if (
                len(centroids) == 0
                or probes.ndim != 2
                or probes.shape[0] != len(self._vectors)
                or probes.dtype.kind not in "iu"
                or (probes.size and (probes.min() < 0 or probes.max() >= len(centroids)))
            ):
                raise ArtifactError("IVFIndex artifact: own_probes must be list numbers of every stored vector")
            self._set_lists(centroids, probes.astype(np.int64, copy=False))
