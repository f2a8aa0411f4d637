"""The one artifact format: a directory with ``manifest.json`` and ``.npy`` arrays.

The manifest records the format version, the class, its parameters, and the
shape, dtype and sha256 of every array. Writing goes to a temporary sibling
directory that is renamed into place, so a crash never leaves half an
artifact. Loading verifies the version and every checksum, and never unpickles.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["save_artifact", "read_artifact", "load", "ArtifactError", "FORMAT_VERSION"]

FORMAT_VERSION = 1
MANIFEST = "manifest.json"


class ArtifactError(ValueError):
    """An artifact is missing, corrupted, or of an unknown version or class."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_artifact(
    path: str | os.PathLike,
    obj: Any,
    params: dict[str, Any],
    arrays: dict[str, np.ndarray],
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``obj``'s artifact atomically; replaces an existing artifact at ``path``.

    ``params`` and ``extra`` must be JSON-serialisable. Object arrays are refused
    (they would need pickle).
    """
    path = Path(path)
    cls = type(obj)
    manifest: dict[str, Any] = {
        "format": "nnlift-artifact",
        "format_version": FORMAT_VERSION,
        "class": f"{cls.__module__}:{cls.__qualname__}",
        "params": params,
        "extra": extra or {},
        "arrays": {},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        for name, array in arrays.items():
            array = np.asarray(array)
            if array.dtype == object:
                raise TypeError(f"array {name!r} has dtype object, which cannot be saved without pickle")
            file = tmp / f"{name}.npy"
            np.save(file, array, allow_pickle=False)
            manifest["arrays"][name] = {
                "file": file.name,
                "shape": list(array.shape),
                "dtype": array.dtype.str,
                "sha256": _sha256(file),
            }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", dir=path.parent))
            os.replace(path, old / "a")
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def read_artifact(path: str | os.PathLike, expected_class: type | None = None) -> tuple[dict, dict[str, np.ndarray]]:
    """Read and verify an artifact; returns ``(manifest, arrays)``."""
    path = Path(path)
    manifest_file = path / MANIFEST
    if not manifest_file.is_file():
        raise ArtifactError(f"{path} is not an nnlift artifact (no {MANIFEST})")
    try:
        manifest = json.loads(manifest_file.read_text())
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{manifest_file} is corrupted: {exc}") from None
    if manifest.get("format") != "nnlift-artifact":
        raise ArtifactError(f"{manifest_file} is not an nnlift manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(
            f"{path} has format version {manifest.get('format_version')}; this nnlift reads version {FORMAT_VERSION}"
        )
    if expected_class is not None:
        expected = f"{expected_class.__module__}:{expected_class.__qualname__}"
        if manifest.get("class") != expected:
            raise ArtifactError(f"{path} holds a {manifest.get('class')}, not a {expected}")
    arrays = {}
    for name, info in manifest.get("arrays", {}).items():
        file = path / info["file"]
        if file.parent != path or not file.is_file():
            raise ArtifactError(f"{path}: array {name!r} is missing ({info['file']})")
        if _sha256(file) != info["sha256"]:
            raise ArtifactError(f"{path}: array {name!r} fails its checksum; the artifact is corrupted")
        array = np.load(file, allow_pickle=False)
        if list(array.shape) != info["shape"] or array.dtype.str != info["dtype"]:
            raise ArtifactError(f"{path}: array {name!r} has shape/dtype {array.shape}/{array.dtype}, not as recorded")
        arrays[name] = array
    return manifest, arrays


def load(path: str | os.PathLike) -> Any:
    """Reopen any saved nnlift object (an index, a correction, a model).

    Examples
    --------
    >>> import nnlift, numpy as np, tempfile, os
    >>> index = nnlift.ExactIndex().add(np.eye(3))
    >>> folder = os.path.join(tempfile.mkdtemp(), "index")
    >>> _ = index.save(folder)
    >>> len(nnlift.load(folder))
    3
    """
    manifest, arrays = read_artifact(path)
    module_name, _, qualname = str(manifest.get("class", "")).partition(":")
    if not module_name.startswith("nnlift.") and module_name != "nnlift":
        raise ArtifactError(f"{path}: class {manifest.get('class')!r} is not an nnlift class")
    try:
        cls = getattr(importlib.import_module(module_name), qualname)
    except (ImportError, AttributeError) as exc:
        raise ArtifactError(f"{path}: cannot find class {manifest.get('class')!r}: {exc}") from None
    if hasattr(cls, "_load_folder"):
        return cls._load_folder(Path(path))
    return cls._from_artifact(manifest, arrays)
