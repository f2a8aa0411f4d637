"""One local Ray for the whole session, and small parquet/.npy shards in the real file formats."""

from __future__ import annotations

import numpy as np
import pytest

ray = pytest.importorskip("ray")
pa = pytest.importorskip("pyarrow")
parquet = pytest.importorskip("pyarrow.parquet")


@pytest.fixture(scope="session")
def ray_cluster():
    from nnlift.distributed import start

    started = not ray.is_initialized()
    start(num_cpus=2, progress=False)
    yield ray
    if started:
        ray.shutdown()


def unit_rows(rng, n, d):
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def write_parquet_shards(folder, vectors, n_shards, ids=None):
    """``n_shards`` parquet files with an int ``id`` column and a fixed-size-list ``embedding`` column."""
    folder.mkdir(parents=True, exist_ok=True)
    ids = np.arange(len(vectors)) if ids is None else ids
    for number, part in enumerate(np.array_split(np.arange(len(vectors)), n_shards)):
        flat = pa.array(np.ascontiguousarray(vectors[part]).ravel())
        table = pa.table(
            {"id": pa.array(ids[part]), "embedding": pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1])}
        )
        parquet.write_table(table, folder / f"shard-{number:02d}.parquet")
    return sorted(folder.glob("*.parquet"))


@pytest.fixture(scope="session")
def collection(tmp_path_factory):
    """A clustered 6,000 × 32 database in 8 parquet shards, a 600-row bank and 300 queries."""
    rng = np.random.default_rng(7)
    centers = unit_rows(rng, 40, 32)
    database = centers[rng.integers(0, 40, 6000)] + 0.35 * rng.standard_normal((6000, 32)).astype(np.float32)
    bank = centers[rng.integers(0, 40, 600)] + 0.35 * rng.standard_normal((600, 32)).astype(np.float32)
    queries = centers[rng.integers(0, 40, 300)] + 0.35 * rng.standard_normal((300, 32)).astype(np.float32)
    folder = tmp_path_factory.mktemp("shards")
    write_parquet_shards(folder, database.astype(np.float32), 8)
    qfolder = tmp_path_factory.mktemp("queries")
    write_parquet_shards(qfolder, queries.astype(np.float32), 2)
    return {
        "database": database.astype(np.float32),
        "bank": bank.astype(np.float32),
        "queries": queries.astype(np.float32),
        "glob": str(folder / "*.parquet"),
        "folder": folder,
        "query_glob": str(qfolder / "*.parquet"),
    }
