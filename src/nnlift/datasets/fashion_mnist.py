"""Fashion-MNIST (Debian ``dataset-fashion-mnist``): 70,000 28×28 greyscale images of clothes in 10 classes.

The files are MNIST's IDX format, gzipped: a big-endian header (two zero
bytes, a type code, the number of dimensions, then each dimension as a
32-bit integer) and the values, row-major. Images are type ``0x08``
(unsigned bytes) with three dimensions, labels the same with one.

For similarity learning on images beyond digits, and for corrections on
learned image embeddings: query by one image, find the others of its class.
"""

from __future__ import annotations

import gzip
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from .reverse import DatasetNotFound

__all__ = ["FashionMNIST", "CLASSES", "find_fashion_mnist", "load_fashion_mnist", "read_idx"]

CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
_UBYTE = 0x08


@dataclass(frozen=True)
class FashionMNIST:
    """The official split: 60,000 training and 10,000 test images (uint8, 28×28) and their labels (0–9)."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    classes: tuple[str, ...] = CLASSES

    def flat(self, part: str = "train") -> np.ndarray:
        """A part's images as float32 rows in [0, 1], 784 columns: the input a model or an index takes."""
        if part not in ("train", "test"):
            raise InputError(f"part must be 'train' or 'test'; got {part!r}")
        images = getattr(self, f"{part}_images")
        return images.reshape(len(images), -1).astype(np.float32) / 255.0


def _file(folder: Path, stem: str) -> Path | None:
    for name in (f"{stem}.gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def find_fashion_mnist(path: str | os.PathLike | None = None) -> Path:
    """The folder holding the four IDX files: ``path``, or Debian's /usr/share/datasets/fashion-mnist."""
    folders = [Path(path)] if path is not None else [Path("/usr/share/datasets/fashion-mnist")]
    for folder in folders:
        if all(_file(folder, stem) is not None for stem in _FILES.values()):
            return folder
    where = str(path) if path is not None else "/usr/share/datasets/fashion-mnist"
    raise DatasetNotFound(
        f"Fashion-MNIST's IDX files ({', '.join(f + '.gz' for f in _FILES.values())}) were not found in {where}. "
        "On Debian/Ubuntu: apt-get install dataset-fashion-mnist; or pass the folder holding them."
    )


def read_idx(file: str | os.PathLike) -> np.ndarray:
    """One IDX file (gzipped or not) as a uint8 array of the shape its header gives."""
    file = Path(file)
    raw = file.read_bytes()
    data = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    if len(data) < 4 or data[:2] != b"\x00\x00":
        raise InputError(f"{file} is not an IDX file (it must start with two zero bytes)")
    kind, ndim = data[2], data[3]
    if kind != _UBYTE:
        raise InputError(f"{file} holds IDX type 0x{kind:02x}; only unsigned bytes (0x08) are read")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise InputError(f"{file} ends inside its IDX header")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    expected = int(np.prod(shape, dtype=np.int64))
    if len(data) - header != expected:
        raise InputError(f"{file}: its header gives shape {shape} ({expected} bytes) but {len(data) - header} follow")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def load_fashion_mnist(path: str | os.PathLike | None = None) -> FashionMNIST:
    """Read Fashion-MNIST's official split from its IDX files.

    Examples
    --------
    >>> data = load_fashion_mnist()  # doctest: +SKIP
    >>> data.train_images.shape, data.classes[data.test_labels[0]]  # doctest: +SKIP
    ((60000, 28, 28), 'Ankle boot')
    """
    folder = find_fashion_mnist(path)
    parts = {name: read_idx(_file(folder, stem)) for name, stem in _FILES.items()}
    for part in ("train", "test"):
        images, labels = parts[f"{part}_images"], parts[f"{part}_labels"]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise InputError(
                f"{folder}: the {part} images {images.shape} and labels {labels.shape} do not pair up "
                "(expected (n, rows, columns) images and n labels)"
            )
        if labels.size and labels.max() >= len(CLASSES):
            raise InputError(f"{folder}: {part} labels go up to {labels.max()}; Fashion-MNIST has 10 classes")
    return FashionMNIST(**parts)
