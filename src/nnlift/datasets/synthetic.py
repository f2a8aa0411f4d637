"""Seeded stand-in embeddings: clustered unit vectors, for trying the commands without real data."""

from __future__ import annotations

import numpy as np

from .._check import check_positive_int

__all__ = ["clustered_unit_vectors"]


def clustered_unit_vectors(
    n_database: int, n_queries: int, dim: int, *, seed: int = 0, spread: float = 0.6
) -> tuple[np.ndarray, np.ndarray]:
    """A database and queries drawn around the same ``n_database // 50`` random centres, normalised.

    Examples
    --------
    >>> database, queries = clustered_unit_vectors(100, 10, 8, seed=1)
    >>> database.shape, queries.shape, bool(np.allclose(np.linalg.norm(queries, axis=1), 1))
    ((100, 8), (10, 8), True)
    """
    n_database = check_positive_int(n_database, "n_database")
    n_queries = check_positive_int(n_queries, "n_queries")
    dim = check_positive_int(dim, "dim")
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(n_database // 50, 1), dim)).astype(np.float32)

    def sample(n: int) -> np.ndarray:
        x = centres[rng.integers(0, len(centres), n)] + spread * rng.standard_normal((n, dim)).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    return sample(n_database), sample(n_queries)
