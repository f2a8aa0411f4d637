"""Spherical k-means with k-means++ seeding: the lists of nnlift's IVF index."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..errors import InputError
from .routing import nearest_centroid

__all__ = ["kmeans", "seed_centroids"]


def seed_centroids(train: np.ndarray, n_clusters: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding (D² sampling on 1 − cosine) on a pool of ≤ 20 rows per cluster.

    Random seeding can put two seeds in one cluster and leave another cluster
    without; ++ seeding avoids that. Each step is one pass over the pool, so
    it is used for up to 256 clusters; beyond that random rows are used.
    """
    if n_clusters > 256:
        return train[rng.choice(train.shape[0], size=n_clusters, replace=False)].copy()
    pool = train[rng.choice(train.shape[0], size=min(train.shape[0], 20 * n_clusters), replace=False)]
    chosen = [int(rng.integers(pool.shape[0]))]
    distance = 1.0 - pool @ pool[chosen[0]]
    for _ in range(1, n_clusters):
        weights = np.maximum(distance, 0.0).astype(np.float64) ** 2
        total = weights.sum()
        pick = int(rng.choice(pool.shape[0], p=weights / total)) if total > 0 else int(rng.integers(pool.shape[0]))
        chosen.append(pick)
        np.minimum(distance, 1.0 - pool @ pool[pick], out=distance)
    return pool[chosen].copy()


def kmeans(
    vectors: np.ndarray,
    n_clusters: int,
    *,
    n_iter: int = 6,
    sample: int | None = None,
    seed: int = 0,
    init: np.ndarray | None = None,
) -> np.ndarray:
    """Spherical k-means on (a sample of) unit rows; returns unit centroids (n_clusters, d).

    ``init`` (unit rows, one per cluster) replaces the k-means++ seeding, as when
    the rows are a slightly moved version of rows clustered before.
    """
    if init is not None and (init.ndim != 2 or init.shape[1] != vectors.shape[1] or not len(init)):
        raise InputError(f"init must be (n_clusters, {vectors.shape[1]}) centroids; got shape {init.shape}")
    rng = np.random.default_rng(seed)
    n = vectors.shape[0]
    n_clusters = min(n_clusters, n) if init is None else len(init)
    size = min(n, sample if sample is not None else max(32 * n_clusters, 5_000))
    train = vectors[np.sort(rng.choice(n, size=size, replace=False))] if size < n else vectors
    centroids = seed_centroids(train, n_clusters, rng) if init is None else init
    for _ in range(n_iter):
        assign = nearest_centroid(train, centroids)
        members = sp.csr_matrix(
            (np.ones(len(assign), dtype=np.float32), (assign, np.arange(len(assign)))),
            shape=(n_clusters, train.shape[0]),
        )
        sums = np.asarray(members @ train, dtype=np.float32)
        norms = np.linalg.norm(sums, axis=1)
        empty = norms == 0
        if empty.any():  # re-seed empty clusters with random training rows
            sums[empty] = train[rng.choice(train.shape[0], size=int(empty.sum()), replace=False)]
            norms[empty] = np.linalg.norm(sums[empty], axis=1)
        centroids = np.ascontiguousarray(sums / norms[:, None], dtype=np.float32)
    return centroids
