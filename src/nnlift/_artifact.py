"""The one artifact format: a directory with ``manifest.json`` and ``.npy`` arrays, parts nested as artifacts.

The manifest records the format version, the class, its parameters, the
shape, dtype and sha256 of every array, the sha256 of every nested part's
manifest, and the sha256 of its own content (``manifest_sha256``), so an
edited or corrupted manifest is caught as surely as a flipped byte in an array.

**Saving never loses data.** :func:`publish` writes the whole tree (parts
included) into a temporary sibling folder, fsyncs every file and folder, and
makes it appear with one rename (fsynced too, against a power cut). Replacing an existing artifact swaps the two folders atomically
(Linux ``renameat2(RENAME_EXCHANGE)``), so a kill at any moment leaves the old
artifact or the new one at the path, never neither; where the exchange is not
available, the old artifact is renamed aside first and restored by the next
save or load should the process die in between. Anything at the path that is
not an nnlift artifact is never deleted or replaced, and replacing an artifact
needs ``overwrite=True``. Temporary folders left by killed saves are removed
by the next save to the same place.

**Loading never trusts the files.** :func:`read_artifact` checks the
manifest's own checksum, its structure and keys, the class, the parameters
against the class's signature, every array's checksum, shape and dtype, and
that no file or part lies outside the artifact folder. Every problem is an
:class:`ArtifactError`. Nothing is ever unpickled.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import importlib
import inspect
import json
import math
import os
import re
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputTypeError, NnliftError

__all__ = [
    "ArtifactError",
    "Contents",
    "FORMAT_VERSION",
    "check_file_target",
    "check_target",
    "load",
    "probe_writable",
    "publish",
    "publish_file",
    "read_artifact",
    "save",
    "write_artifact",
]

FORMAT_VERSION = 2
MANIFEST = "manifest.json"
_KEYS = {"format", "format_version", "class", "params", "extra", "arrays", "parts", "manifest_sha256"}
_ARRAY_KEYS = {"file", "shape", "dtype", "sha256"}
_PART_NAME = re.compile(r"^[A-Za-z0-9_]{1,64}$")
_ARRAY_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,200}$")
_TMP, _OLD = "nnlift-tmp", "nnlift-old"


class ArtifactError(NnliftError, ValueError):
    """An artifact is missing, corrupted, of an unknown version or class, or a save would destroy data."""


@dataclass(frozen=True)
class Contents:
    """What an object saves: JSON parameters and state, arrays, and nested parts (objects saved as artifacts)."""

    params: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    parts: dict[str, Any] = field(default_factory=dict)


# -- checksums ------------------------------------------------------------------
def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _manifest_digest(manifest: dict[str, Any]) -> str:
    body = {key: value for key, value in manifest.items() if key != "manifest_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _class_name(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


# -- writing --------------------------------------------------------------------
def write_artifact(folder: Path, obj: Any) -> str:
    """Write ``obj``'s artifact (``obj._artifact()``, parts recursively) into the empty ``folder``.

    Returns the sha256 of the manifest written. This writes in place: use
    :func:`save`/:func:`publish` for an atomic save to a user's path.
    """
    contents: Contents = obj._artifact()
    manifest: dict[str, Any] = {
        "format": "nnlift-artifact",
        "format_version": FORMAT_VERSION,
        "class": _class_name(type(obj)),
        "params": contents.params,
        "extra": contents.extra,
        "arrays": {},
        "parts": {},
    }
    for name, array in contents.arrays.items():
        if not _ARRAY_NAME.match(name) or name in (".", ".."):
            raise InputTypeError(f"array name {name!r} cannot be saved (letters, digits and _.:- only)")
        array = np.asarray(array)
        if array.dtype == object:
            raise InputTypeError(f"array {name!r} has dtype object, which cannot be saved without pickle")
        file = folder / f"{name}.npy"
        with open(file, "wb") as handle:
            np.save(handle, array, allow_pickle=False)
            _flush(handle)
        manifest["arrays"][name] = {
            "file": file.name,
            "shape": list(array.shape),
            "dtype": array.dtype.str,
            "sha256": _sha256(file),
        }
    for name, part in contents.parts.items():
        if not _PART_NAME.match(name):
            raise InputTypeError(f"part name {name!r} cannot be saved (letters, digits and _ only)")
        sub = folder / name
        sub.mkdir()
        manifest["parts"][name] = {"folder": name, "manifest_sha256": write_artifact(sub, part)}
    try:
        manifest["manifest_sha256"] = _manifest_digest(manifest)
        text = json.dumps(manifest, indent=2, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InputTypeError(f"{type(obj).__name__} cannot be saved: its parameters are not plain JSON ({exc})") from None
    with open(folder / MANIFEST, "w", encoding="utf-8") as handle:
        handle.write(text)
        _flush(handle)
    _fsync_dir(folder)  # the entries themselves, before the folder is renamed into place
    return manifest["manifest_sha256"]


def is_artifact(path: Path) -> bool:
    """Whether ``path`` is a folder that holds an nnlift manifest (of any version)."""
    manifest = path / MANIFEST
    if not path.is_dir() or not manifest.is_file():
        return False
    try:
        return json.loads(manifest.read_bytes()).get("format") == "nnlift-artifact"
    except (ValueError, AttributeError, OSError):
        return False


def check_target(path: str | os.PathLike, *, overwrite: bool = False, option: str = "path") -> Path:
    """Refuse a save target that would lose data; returns it as a ``Path``.

    Allowed: a path that does not exist (its parent folders are created), an
    empty folder, or an existing nnlift artifact when ``overwrite``. Anything
    else (a file, a folder with other content) is an :class:`ArtifactError`
    naming the path. Call it before long work so that nothing is computed for
    a save that cannot happen.
    """
    path = Path(path)
    if path.name in ("", ".", ".."):
        raise ArtifactError(f"{option}={str(path)!r} names no folder of its own; give a new folder name")
    _recover(path)
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        raise ArtifactError(f"{option}={str(path)!r} exists and is not an nnlift artifact; refusing to replace it")
    if path.is_dir():
        if is_artifact(path):
            if not overwrite:
                raise ArtifactError(
                    f"{option}={str(path)!r} already holds an nnlift artifact; pass overwrite=True (--overwrite) to replace it"
                )
        elif any(path.iterdir()):
            raise ArtifactError(
                f"{option}={str(path)!r} is a folder with other content, not an nnlift artifact; "
                "refusing to replace it (choose a new folder)"
            )
    parent = path.parent
    existing = parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ArtifactError(f"{option}={str(path)!r}: {existing} is a file, not a folder")
    # Named as a temporary of this path, so a kill right here leaves nothing the next save does not remove.
    probe = _sibling(path, _TMP) if existing == parent else existing / f".nnlift-probe-{secrets.token_hex(4)}"
    try:
        probe_writable(probe)
    except OSError as exc:
        raise ArtifactError(f"{option}={str(path)!r}: cannot write in {str(existing)!r} ({exc.strerror})") from None
    return path


def probe_writable(probe: Path) -> None:
    """Create and remove the file ``probe``; raises ``OSError`` where its folder cannot be written.

    ``os.access`` says yes to root on a read-only place, so this tries for real.
    """
    probe.touch(exist_ok=False)
    probe.unlink()


def _flush(handle: Any) -> None:
    """Data on disk before the rename that publishes it: a power cut then leaves the old or the new, never junk."""
    handle.flush()
    os.fsync(handle.fileno())


def _fsync_dir(folder: Path) -> None:
    """Make a folder's entries (a rename, new files) durable; a no-op where folders cannot be opened (Windows)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _sibling(path: Path, kind: str) -> Path:
    return path.parent / f".{path.name}.{kind}-{os.getpid()}-{secrets.token_hex(4)}"


def _stale(path: Path, kind: str) -> list[Path]:
    """Leftovers of saves to ``path`` by processes that no longer run."""
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.{kind}-(\d+)-[0-9a-f]{{8}}$")
    found = []
    if not path.parent.is_dir():
        return found
    for entry in path.parent.iterdir():
        match = pattern.match(entry.name)
        if match and not entry.is_symlink() and not _alive(int(match.group(1))):
            found.append(entry)
    return found


def _remove(entry: Path) -> None:
    if entry.is_dir():
        shutil.rmtree(entry, ignore_errors=True)
    else:
        entry.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _recover(path: Path) -> None:
    """Undo a save killed between the two renames of the fallback swap: put the old artifact back."""
    if path.exists() or path.is_symlink():
        return
    for old in sorted(_stale(path, _OLD)):
        if old.is_dir() and is_artifact(old):
            os.replace(old, path)
            return


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 with RENAME_EXCHANGE); False where unsupported."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    result = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), ctypes.c_uint(rename_exchange))
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def publish(path: str | os.PathLike, write: Callable[[Path], Any], *, overwrite: bool = False) -> Path:
    """Run ``write(folder)`` into a fresh temporary folder, then make it appear at ``path`` atomically.

    ``path`` is checked first (:func:`check_target`). The folder gets the
    umask's permissions. Leftovers of killed saves to the same path are
    removed. On any error the temporary folder is removed and ``path`` is
    untouched.
    """
    path = check_target(path, overwrite=overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    for leftover in _stale(path, _TMP) + _stale(path, _OLD):
        _remove(leftover)
    tmp = _sibling(path, _TMP)
    os.mkdir(tmp)  # not mkdtemp: its 0700 would hide the artifact from the user's group
    try:
        write(tmp)
        check_target(path, overwrite=overwrite)  # the path may have changed while we wrote
        if path.is_dir() and any(path.iterdir()):
            if _exchange(tmp, path):
                _fsync_dir(path.parent)
                shutil.rmtree(tmp, ignore_errors=True)  # tmp now holds the old artifact
                return path
            old = _sibling(path, _OLD)
            os.replace(path, old)
            os.replace(tmp, path)
            _fsync_dir(path.parent)
            shutil.rmtree(old, ignore_errors=True)
        else:
            if path.is_dir():
                path.rmdir()  # an empty folder: nothing is lost
            os.replace(tmp, path)
            _fsync_dir(path.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def check_file_target(path: str | os.PathLike, *, overwrite: bool = False, option: str = "path") -> Path:
    """Refuse an output file that cannot be written, or that exists (unless ``overwrite``); returns it.

    The folder must exist and accept a new file: this is probed by creating
    and removing one, so a read-only place fails here, before any work.
    """
    path = Path(path)
    if path.name in ("", ".", ".."):
        raise ArtifactError(f"{option}={str(path)!r} names no file; give a file name")
    if path.is_dir():
        raise ArtifactError(f"{option}={str(path)!r} is a folder; give a file name")
    if path.exists() or path.is_symlink():
        if not overwrite:
            raise ArtifactError(f"{option}={str(path)!r} already exists; pass overwrite=True (--overwrite) to replace it")
    if not path.parent.is_dir():
        raise ArtifactError(f"{option}={str(path)!r}: the folder {str(path.parent)!r} does not exist")
    try:
        probe_writable(_sibling(path, _TMP))
    except OSError as exc:
        raise ArtifactError(f"{option}={str(path)!r}: cannot write in {str(path.parent)!r} ({exc.strerror})") from None
    return path


def publish_file(
    path: str | os.PathLike, write: Callable[[Any], Any], *, overwrite: bool = False, option: str = "path"
) -> Path:
    """Write one file atomically: ``write(handle)`` into a temporary sibling, then rename it onto ``path``.

    The file is written exactly at ``path`` (numpy would add ``.npy`` to a
    name without it). A failure leaves any existing file untouched.
    """
    path = check_file_target(path, overwrite=overwrite, option=option)
    for leftover in _stale(path, _TMP):
        _remove(leftover)
    tmp = _sibling(path, _TMP)
    try:
        with open(tmp, "wb") as handle:
            write(handle)
            _flush(handle)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def save(obj: Any, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Save ``obj`` (anything with ``_artifact()``) as an artifact folder at ``path``, atomically."""
    return publish(path, lambda folder: write_artifact(folder, obj), overwrite=overwrite)


# -- reading ----------------------------------------------------------------------
def _fail(path: Path, message: str) -> ArtifactError:
    return ArtifactError(f"{path}: {message}")


def _read_manifest(path: Path) -> dict[str, Any]:
    manifest_file = path / MANIFEST
    if not path.is_dir() or not manifest_file.is_file():
        raise ArtifactError(f"{path} is not an nnlift artifact (no {MANIFEST})")
    try:
        manifest = json.loads(manifest_file.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise _fail(path, f"{MANIFEST} is not valid UTF-8; the artifact is corrupted") from None
    except json.JSONDecodeError as exc:
        raise _fail(path, f"{MANIFEST} is corrupted: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != "nnlift-artifact":
        raise ArtifactError(f"{manifest_file} is not an nnlift manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise _fail(
            path, f"format version {manifest.get('format_version')!r}; this nnlift reads version {FORMAT_VERSION}"
        )
    if set(manifest) != _KEYS:
        raise _fail(path, f"the manifest's keys are {sorted(manifest)}, not {sorted(_KEYS)}")
    if manifest["manifest_sha256"] != _manifest_digest(manifest):
        raise _fail(path, f"{MANIFEST} fails its own checksum; it was edited or corrupted")
    for key, kind in (("params", dict), ("extra", dict), ("arrays", dict), ("parts", dict), ("class", str)):
        if not isinstance(manifest[key], kind):
            raise _fail(path, f"manifest entry {key!r} must be a {kind.__name__}")
    return manifest


def _read_arrays(path: Path, entries: dict[str, Any]) -> dict[str, np.ndarray]:
    arrays = {}
    for name, info in entries.items():
        if not isinstance(info, dict) or set(info) != _ARRAY_KEYS:
            raise _fail(path, f"array entry {name!r} must have exactly {sorted(_ARRAY_KEYS)}")
        if not _ARRAY_NAME.match(name) or info["file"] != f"{name}.npy":
            raise _fail(path, f"array {name!r} names the file {info['file']!r}, not {name + '.npy'!r}")
        file = path / info["file"]
        if file.is_symlink() or not file.is_file():
            raise _fail(path, f"array {name!r} is missing ({info['file']})")
        if _sha256(file) != info["sha256"]:
            raise _fail(path, f"array {name!r} fails its checksum; the artifact is corrupted")
        try:
            array = np.load(file, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise _fail(path, f"array {name!r} cannot be read: {exc}") from None
        if list(array.shape) != info["shape"] or array.dtype.str != info["dtype"]:
            raise _fail(path, f"array {name!r} has shape/dtype {array.shape}/{array.dtype}, not as recorded")
        arrays[name] = array
    return arrays


def _check_params(path: Path, cls: type, params: dict[str, Any]) -> None:
    """The manifest's parameters are exactly ``cls.__init__``'s, each of its default's JSON kind."""
    expected = init_parameters(cls)
    saved_names = getattr(cls, "_saved_params", None)
    names = set(saved_names) if saved_names is not None else set(expected)
    if set(params) != names:
        raise _fail(path, f"parameters {sorted(params)} do not match {cls.__name__}'s {sorted(names)}")
    for name, value in params.items():
        default = expected[name].default if name in expected else inspect.Parameter.empty
        if not _same_kind(value, default):
            raise _fail(path, f"parameter {name}={value!r} is not valid for {cls.__name__} (default {default!r})")
    if "metric" in params and params["metric"] not in ("cosine", "ip"):
        raise _fail(path, f"parameter metric={params['metric']!r} is not 'cosine' or 'ip'")


def init_parameters(cls: type) -> dict[str, inspect.Parameter]:
    """The named parameters of ``cls.__init__`` (what ``get_params`` returns and an artifact saves)."""
    signature = inspect.signature(cls.__init__)
    return {
        name: p
        for name, p in signature.parameters.items()
        if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }


def _same_kind(value: Any, default: Any) -> bool:
    if default is inspect.Parameter.empty or default is None:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if isinstance(default, str):
        return isinstance(value, str)
    if isinstance(default, (tuple, list)):
        return isinstance(value, list)
    return True


def _resolve_class(path: Path, name: str) -> type:
    module_name, _, qualname = name.partition(":")
    if not (module_name == "nnlift" or module_name.startswith("nnlift.")) or not qualname:
        raise _fail(path, f"class {name!r} is not an nnlift class")
    try:
        cls = getattr(importlib.import_module(module_name), qualname)
    except (ImportError, AttributeError) as exc:
        raise _fail(path, f"cannot find class {name!r}: {exc}") from None
    if not isinstance(cls, type) or not hasattr(cls, "_from_artifact"):
        raise _fail(path, f"{name!r} is not a saveable nnlift class")
    return cls


def read_artifact(
    path: str | os.PathLike, expected_class: type | None = None, *, manifest: dict[str, Any] | None = None
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read and verify one artifact folder (not its parts' contents); returns ``(manifest, arrays)``.

    ``manifest`` is the folder's manifest when the caller has already read it.
    """
    path = Path(path)
    if manifest is None:
        _recover(path)
        manifest = _read_manifest(path)
    if expected_class is not None:
        expected = _class_name(expected_class)
        if manifest["class"] != expected:
            raise ArtifactError(f"{path} holds a {manifest['class']}, not a {expected}")
        _check_params(path, expected_class, manifest["params"])
    for name, info in manifest["parts"].items():
        if (
            not _PART_NAME.match(name)
            or not isinstance(info, dict)
            or set(info) != {"folder", "manifest_sha256"}
            or info["folder"] != name
        ):
            raise _fail(path, f"part {name!r} must be a subfolder of the same name inside the artifact")
        part = path / name
        if part.is_symlink() or not (part / MANIFEST).is_file():
            raise _fail(path, f"part {name!r} is missing")
    return manifest, _read_arrays(path, manifest["arrays"])


def load_artifact(
    path: str | os.PathLike, expected_class: type | None = None, *, _saved_as: str | None = None, **context: Any
) -> Any:
    """Load an artifact and its parts; ``expected_class`` (or a subclass check) guards what comes back.

    Each part is checked against the manifest digest its parent recorded
    (``_saved_as``), so a part swapped in from another artifact is refused.
    """
    path = Path(path)
    _recover(path)
    manifest = _read_manifest(path)
    if _saved_as is not None and manifest["manifest_sha256"] != _saved_as:
        raise _fail(path.parent, f"part {path.name!r} is not the one this artifact was saved with")
    cls = _resolve_class(path, manifest["class"])
    if expected_class is not None and not issubclass(cls, expected_class):
        raise ArtifactError(f"{path} holds a {cls.__name__}, not a {expected_class.__name__}")
    missing = [name for name in getattr(cls, "_load_needs", ()) if context.get(name) is None]
    if missing:
        raise InputTypeError(f"a {cls.__name__} needs its {', '.join(missing)}: {cls.__name__}.load(path, {missing[0]}=...)")
    manifest, arrays = read_artifact(path, expected_class=cls, manifest=manifest)
    parts = {
        name: load_artifact(path / name, _saved_as=info["manifest_sha256"]) for name, info in manifest["parts"].items()
    }
    try:
        return cls._from_artifact(manifest, arrays, parts, **context)
    except ArtifactError:
        raise
    except (KeyError, IndexError, TypeError, ValueError, AttributeError, RuntimeError) as exc:
        raise _fail(path, f"the artifact does not describe a valid {cls.__name__}: {type(exc).__name__}: {exc}") from None


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
    return load_artifact(path)


def require_arrays(
    arrays: dict[str, np.ndarray], required: tuple[str, ...], optional: tuple[str, ...] = (), *, owner: str
) -> None:
    """An artifact's arrays are exactly ``required`` plus any of ``optional``, else :class:`ArtifactError`."""
    names = set(arrays)
    missing = [n for n in required if n not in names]
    unexpected = sorted(names - set(required) - set(optional))
    if missing or unexpected:
        raise ArtifactError(f"{owner} artifact: missing arrays {missing}, unexpected arrays {unexpected}")
