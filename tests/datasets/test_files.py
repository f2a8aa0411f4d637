import numpy as np
import pytest

from nnlift.datasets import load_digits_split, load_embeddings, load_targets


def test_npy_npz_parquet_round_trip(tmp_path, rng):
    vectors = rng.standard_normal((5, 3)).astype(np.float32)
    np.save(tmp_path / "a.npy", vectors)
    np.savez(tmp_path / "b.npz", embeddings=vectors, ids=np.array(["x1", "x2", "x3", "x4", "x5"]))
    a, none = load_embeddings(tmp_path / "a.npy")
    b, ids = load_embeddings(tmp_path / "b.npz")
    np.testing.assert_array_equal(a, vectors)
    np.testing.assert_array_equal(b, vectors)
    assert none is None and ids.tolist()[0] == "x1"
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"id": [1, 2, 3, 4, 5], "embedding": vectors.tolist()}), tmp_path / "c.parquet")
    c, ids = load_embeddings(tmp_path / "c.parquet")
    np.testing.assert_allclose(c, vectors)
    assert ids.tolist() == [1, 2, 3, 4, 5]


def test_file_errors(tmp_path):
    np.save(tmp_path / "one_d.npy", np.zeros(3))
    with pytest.raises(ValueError, match="2-D"):
        load_embeddings(tmp_path / "one_d.npy")
    with pytest.raises(FileNotFoundError):
        load_embeddings(tmp_path / "missing.npy")
    (tmp_path / "x.csv").write_text("1,2")
    with pytest.raises(ValueError, match="unsupported file type"):
        load_embeddings(tmp_path / "x.csv")
    np.save(tmp_path / "t.npy", np.array([0.5, 1.0]))
    with pytest.raises(ValueError, match="integers"):
        load_targets(tmp_path / "t.npy")
    np.save(tmp_path / "t2.npy", np.array([1, 2]))
    with pytest.raises(ValueError, match="2 targets for 3 queries"):
        load_targets(tmp_path / "t2.npy", 3)


def test_digits_split_is_stratified_and_seeded():
    pytest.importorskip("sklearn")
    a, b = load_digits_split(seed=1), load_digits_split(seed=1)
    np.testing.assert_array_equal(a.x_test, b.x_test)
    assert a.x_train.dtype == np.float32 and a.x_train.max() <= 1.0
    assert len(a.y_train) + len(a.y_val) + len(a.y_test) == 1797
    assert set(np.bincount(a.y_test)) <= {35, 36, 37}
    with pytest.raises(ValueError, match="sum below 1"):
        load_digits_split(val_size=0.6, test_size=0.5)
