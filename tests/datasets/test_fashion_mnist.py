"""Fashion-MNIST from its IDX files: a small fixture in the real format, and the real files where installed."""

import gzip
import struct

import numpy as np
import pytest

from nnlift.datasets import DatasetNotFound, load_fashion_mnist, read_idx
from nnlift.datasets.fashion_mnist import CLASSES


def idx(array, kind=0x08):
    """IDX bytes: two zero bytes, the type, the number of dimensions, each dimension big-endian, the values."""
    return bytes([0, 0, kind, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_fashion(folder, n_train=30, n_test=10, rng=None):
    rng = rng or np.random.default_rng(0)
    parts = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": (np.arange(n_train) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": (np.arange(n_test)[::-1] % 10).astype(np.uint8),
    }
    for stem, array in parts.items():
        (folder / f"{stem}.gz").write_bytes(gzip.compress(idx(array)))
    return parts


def test_reads_the_idx_fixture_exactly(tmp_path):
    parts = write_fashion(tmp_path)
    data = load_fashion_mnist(tmp_path)
    np.testing.assert_array_equal(data.train_images, parts["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(data.test_labels, parts["t10k-labels-idx1-ubyte"])
    flat = data.flat("test")
    assert flat.shape == (10, 784) and flat.dtype == np.float32
    np.testing.assert_allclose(flat[3], parts["t10k-images-idx3-ubyte"][3].ravel() / 255.0)
    assert data.classes[data.test_labels[0]] == CLASSES[9] == "Ankle boot"


def test_uncompressed_files_read_too(tmp_path):
    labels = np.arange(5, dtype=np.uint8)
    (tmp_path / "labels").write_bytes(idx(labels))
    np.testing.assert_array_equal(read_idx(tmp_path / "labels"), labels)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x01\x00\x08\x01\x00\x00\x00\x01\x05", "not an IDX file"),
        (b"\x00\x00\x0d\x01\x00\x00\x00\x01\x00\x00\x00\x00", "type 0x0d"),
        (b"\x00\x00\x08\x02\x00\x00\x00\x02", "ends inside its IDX header"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x03\x01\x02", "shape \\(3,\\) \\(3 bytes\\) but 2 follow"),
    ],
)
def test_bad_idx_files_are_named(tmp_path, content, message):
    (tmp_path / "bad").write_bytes(content)
    with pytest.raises(ValueError, match=message):
        read_idx(tmp_path / "bad")


def test_missing_or_mismatched_files_are_named(tmp_path):
    with pytest.raises(DatasetNotFound, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist(tmp_path)
    write_fashion(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx(np.zeros(3, dtype=np.uint8))))
    with pytest.raises(ValueError, match="test images \\(10, 28, 28\\) and labels \\(3,\\) do not pair up"):
        load_fashion_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx(np.full(10, 12, dtype=np.uint8))))
    with pytest.raises(ValueError, match="labels go up to 12"):
        load_fashion_mnist(tmp_path)
    with pytest.raises(ValueError, match="part must be 'train' or 'test'"):
        write_fashion(tmp_path) and load_fashion_mnist(tmp_path).flat("val")


def test_the_installed_files_when_present():
    try:
        data = load_fashion_mnist()
    except DatasetNotFound:
        pytest.skip("dataset-fashion-mnist is not installed")
    assert data.train_images.shape == (60000, 28, 28) and data.test_images.shape == (10000, 28, 28)
    assert np.bincount(data.train_labels).tolist() == [6000] * 10
