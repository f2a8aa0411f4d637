"""Engines: who multiplies. numpy float32, torch float32 or bfloat16 on the CPU, and torch on CUDA.

Every exact reduction takes its candidates from an engine and then rescores
them canonically (``kernel.canonical``), so the engine changes the speed and
never the answer: ids and scores are identical, bit for bit, on every engine.

Choosing one, most specific first:

1. the ``engine=`` (or ``device=``) keyword of :func:`nnlift.topk`,
   :class:`~nnlift.index.ExactIndex` or :class:`~nnlift.index.IVFIndex`;
2. :func:`set_engine`, for the whole process;
3. the ``NNLIFT_ENGINE`` environment variable;
4. ``"auto"``: numpy for small work (no torch import); otherwise the engine
   with the highest single-thread GEMM throughput, timed once per machine and
   shape class, among numpy, torch float32 and, where the CPU multiplies
   bfloat16 natively (AMX or AVX512-BF16) and k ≤ 32, torch bfloat16.

The CPU timings are kept in ``engines.json`` under ``NNLIFT_CACHE_DIR``
(default ``$XDG_CACHE_HOME/nnlift``, else ``~/.cache/nnlift``; an empty value
keeps them in memory only), keyed by a fingerprint of the CPU (model, flags,
cores) and of numpy's, torch's and nnlift's versions: a later process on the
same machine starts without a second of timing, and without importing torch
when numpy won. A new CPU or library version is timed afresh;
``nnlift info --recalibrate`` times this one again.

Examples
--------
>>> import nnlift
>>> nnlift.set_engine("numpy")
>>> nnlift.engines.resolve().name
'numpy'
>>> nnlift.set_engine(None)  # back to NNLIFT_ENGINE or "auto"
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import math
import os
import tempfile
import threading
import time
import weakref
from typing import Any

import numpy as np

from ..errors import InputError, InputTypeError, MissingExtraError
from .base import Engine, NumpyEngine, Prepared

__all__ = [
    "ENGINE_NAMES",
    "Engine",
    "Prepared",
    "set_engine",
    "resolve",
    "prepare",
    "available",
    "report",
    "cpu_flags",
    "check_engine",
    "calibrate",
    "cache_path",
    "fingerprint",
]

ENGINE_NAMES = ("auto", "numpy", "torch", "torch-bf16", "cuda", "cuda-bf16")
# Work below this many flops is not worth a torch import or a calibration (about 30 ms of GEMM).
AUTO_MIN_FLOPS = 5e9
# auto takes bfloat16 only when its GEMM is this much faster: the certificate keeps more
# candidates and rescores them, which a small gain would not pay for.
_BF16_MARGIN = 1.5
# ... and only for small k: every one of the k + 24 candidates is rescored canonically (one
# float32 row read per candidate), which at k=128 cost more than bf16 saved on the GEMM
# (NNN's bias, 50k × 20k bank on an AMX host: 10.5 s bf16 against 8.4 s float32).
BF16_MAX_K = 32

_chosen: str | None = None
_instances: dict[tuple[str, str], Engine] = {}
_calibrated: dict[tuple[str, int], dict[str, float]] = {}
_lock = threading.Lock()


def check_engine(engine: Any, device: Any = None) -> tuple[str | None, str | None]:
    """Validate an ``engine=``/``device=`` pair; returns them normalised (None: not given)."""
    if engine is not None:
        if not isinstance(engine, str) or engine not in ENGINE_NAMES:
            raise InputError(f"engine must be one of {', '.join(ENGINE_NAMES)}; got {engine!r}")
    if device is not None:
        if not isinstance(device, str):
            raise InputTypeError(f"device must be a string such as 'cpu', 'cuda' or 'cuda:1'; got {device!r}")
        ok = device == "cpu" or device == "cuda" or (device.startswith("cuda:") and device[5:].isdigit())
        if not ok:
            raise InputError(f"device must be 'cpu', 'cuda' or 'cuda:N'; got {device!r}")
        if device == "cpu" and engine in ("cuda", "cuda-bf16"):
            raise InputError(f"engine={engine!r} runs on a GPU; it cannot take device='cpu'")
        if device.startswith("cuda") and engine in ("numpy", "torch", "torch-bf16"):
            raise InputError(f"engine={engine!r} runs on the CPU; for device={device!r} use engine='cuda' or 'auto'")
    return engine, device


def set_engine(engine: str | None, device: str | None = None) -> None:
    """Choose the engine for the whole process (None: back to ``NNLIFT_ENGINE`` or ``"auto"``).

    ``set_engine("cuda", "cuda:1")`` or ``set_engine("auto", "cuda")`` puts
    every reduction on a GPU. The choice is checked now: an engine this
    machine cannot run raises here, not in the middle of a search.
    """
    global _chosen
    engine, device = check_engine(engine, device)
    if engine is None and device is None:
        _chosen = None
        return
    spec = f"{engine or 'auto'}@{device}" if device else engine
    _build(*_split(spec))  # fail now
    _chosen = spec


def _split(spec: str) -> tuple[str, str | None]:
    name, _, device = spec.partition("@")
    return name, device or None


def _environment() -> str | None:
    value = os.environ.get("NNLIFT_ENGINE")
    if not value:
        return None
    name, device = _split(value)
    try:
        check_engine(name, device)
    except (InputError, InputTypeError) as exc:
        raise InputError(f"NNLIFT_ENGINE={value!r}: {exc} (use NAME or NAME@DEVICE, e.g. cuda@cuda:1)") from None
    return value


def _torch_installed() -> bool:
    return importlib.util.find_spec("torch") is not None


def cpu_flags() -> set[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo; empty elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:  # pragma: no cover - not Linux
        pass
    return set()


def native_bfloat16() -> bool:
    """Whether the CPU multiplies bfloat16 in hardware (AMX-BF16 or AVX512-BF16)."""
    return bool({"amx_bf16", "avx512_bf16"} & cpu_flags())


def _cuda_devices() -> int:
    if not _torch_installed():
        return 0
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _build(name: str, device: str | None) -> Engine:
    """The engine ``name`` on ``device`` (cached), or a clear error where this machine lacks it."""
    if name == "auto":
        return _auto(device, None, 0)
    if name in ("cuda", "cuda-bf16") and device is None:
        device = "cuda"
    device = device or "cpu"
    key = (name, device)
    with _lock:
        if key in _instances:
            return _instances[key]
    if name == "numpy":
        engine: Engine = NumpyEngine()
    else:
        if not _torch_installed():
            raise MissingExtraError(f"engine={name!r} needs torch: pip install 'nnlift[train]' (torch==2.13.0)")
        if device.startswith("cuda"):
            count = _cuda_devices()
            wanted = int(device[5:]) if device.startswith("cuda:") else 0
            if wanted >= count:
                raise InputError(
                    f"engine={name!r} on {device!r} needs a CUDA GPU; this machine has {count} visible to torch"
                )
        from .torch import TorchEngine

        engine = TorchEngine("bfloat16" if name.endswith("bf16") else "float32", device)
    with _lock:
        return _instances.setdefault(key, engine)


def _candidates(device: str | None) -> list[str]:
    if device is not None and device.startswith("cuda"):
        return ["cuda", "cuda-bf16"]
    names = ["numpy"]
    if _torch_installed():
        names.append("torch")
        if native_bfloat16():
            names.append("torch-bf16")
    return names


def _throughput(engine: Engine, d: int) -> float:
    """Single-thread GEMM GFLOP/s of ``engine`` on a 512×d · d×8192 tile (the kernel's own shape)."""
    from .._threads import single_threaded_blas

    rng = np.random.default_rng(0)
    block = rng.standard_normal((512, d), dtype=np.float32)
    database = rng.standard_normal((8192, d), dtype=np.float32)
    out = np.empty((512, 8192), dtype=np.float32)
    with single_threaded_blas():
        engine.thread_setup()
        prepared = engine.prepare(database)
        handle = prepared.queries(block)
        prepared.multiply(handle, 0, 8192, out)  # warm up: first touch, library init
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            prepared.multiply(handle, 0, 8192, out)
            best = min(best, time.perf_counter() - start)
    return 2 * 512 * 8192 * d / best / 1e9


def calibrate(device: str | None, d: int, refresh: bool = False) -> dict[str, float]:
    """GFLOP/s of every candidate engine for vectors of about ``d`` dimensions, timed once per machine.

    On the CPU the timings come from the cache file (see the module doc) when it
    holds this machine's; ``refresh`` times them again and rewrites it. A GPU is
    timed once per process.
    """
    shape_class = max(64, -(-d // 64) * 64)
    key = (device or "cpu", shape_class)
    if refresh or key not in _calibrated:
        on_gpu = device is not None and device.startswith("cuda")
        names = _candidates(device)
        stored = None if refresh or on_gpu else _stored_speeds(shape_class, names)
        if stored is None:
            stored = {name: _throughput(_build(name, device), shape_class) for name in names}
            if not on_gpu:
                _store_speeds(shape_class, stored)
        _calibrated[key] = stored
    return _calibrated[key]


def cache_path() -> str | None:
    """The file CPU engine timings are kept in, or None where ``NNLIFT_CACHE_DIR`` is set empty."""
    directory = os.environ.get("NNLIFT_CACHE_DIR")
    if directory is None:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        directory = os.path.join(base, "nnlift")
    return os.path.join(directory, "engines.json") if directory else None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:  # pragma: no cover - not Linux
        pass
    import platform

    return platform.processor() or platform.machine()


def fingerprint() -> str:
    """What a CPU timing depends on: the CPU's model, flags and cores, and the numpy, torch and nnlift versions."""
    from .. import __version__

    try:
        torch_version = importlib.metadata.version("torch") if _torch_installed() else "none"
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - torch on the path without metadata
        torch_version = "unknown"
    parts = [_cpu_model(), " ".join(sorted(cpu_flags())), str(os.cpu_count()), np.__version__, torch_version, __version__]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _read_cache(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            content = json.load(handle)
    except (OSError, ValueError):  # absent or unreadable: time afresh
        return {}
    return content if isinstance(content, dict) else {}


def _stored_speeds(shape_class: int, names: list[str]) -> dict[str, float] | None:
    path = cache_path()
    if path is None:
        return None
    entry = _read_cache(path).get(f"{fingerprint()}/{shape_class}")
    if not isinstance(entry, dict) or sorted(entry) != sorted(names):
        return None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0 for v in entry.values()):
        return None
    return {name: float(entry[name]) for name in names}


def _store_speeds(shape_class: int, speeds: dict[str, float]) -> None:
    """Add this machine's timings to the cache file, replacing it atomically (a reader never sees half a file)."""
    path = cache_path()
    if path is None:
        return
    try:
        directory = os.path.dirname(path)
        os.makedirs(directory, exist_ok=True)
        content = _read_cache(path)
        content[f"{fingerprint()}/{shape_class}"] = speeds
        handle, temporary = tempfile.mkstemp(dir=directory, prefix=".engines.", suffix=".json")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(content, out, indent=1, sort_keys=True)
            os.replace(temporary, path)
        except BaseException:
            os.unlink(temporary)
            raise
    except OSError:  # a read-only home: the timings stay in this process's memory
        pass


def _auto(device: str | None, flops: float | None, d: int, k: int | None = None, reduced: bool = True) -> Engine:
    on_gpu = device is not None and device.startswith("cuda")
    if not on_gpu and flops is not None and flops < AUTO_MIN_FLOPS:
        return _build("numpy", None)
    speeds = calibrate(device if on_gpu else None, d or 384)
    best_float32 = max((name for name in speeds if not name.endswith("bf16")), key=speeds.get)
    few = k is None or k <= BF16_MAX_K
    lower = [name for name in speeds if name.endswith("bf16")] if reduced else []
    if lower and few and speeds[lower[0]] >= _BF16_MARGIN * speeds[best_float32]:
        return _build(lower[0], device if on_gpu else None)
    return _build(best_float32, device if on_gpu else None)


def resolve(
    engine: str | None = None,
    device: str | None = None,
    *,
    flops: float | None = None,
    d: int = 0,
    k: int | None = None,
    reduced: bool = True,
) -> Engine:
    """The engine a top-``k`` reduction of ``flops`` over ``d``-dimensional vectors runs on (see the module doc).

    ``reduced=False`` keeps ``"auto"`` to float32 engines (IVF's small tiles, where
    converting each gathered block to bfloat16 costs more than the faster GEMM saves).
    """
    engine, device = check_engine(engine, device)
    if engine is None and device is None:
        spec = _chosen or _environment() or "auto"
        engine, device = _split(spec)
    name = engine or "auto"
    if name == "auto":
        return _auto(device, flops, d, k, reduced)
    return _build(name, device)


# --------------------------------------------------------------------------- prepared databases
_prepared: list[tuple[Any, Engine, Prepared]] = []
_PREPARED_KEEP = 4


def prepare(engine: Engine, database: np.ndarray) -> Prepared:
    """``engine.prepare(database)``, reused while the same read-only array is searched again.

    Only read-only arrays are reused (an index's stored vectors): a writeable
    one may change between calls, and its old copy would give wrong answers.
    The cache holds the array weakly; the numpy engine's entry keeps only the
    norms, since its "copy" is the array itself.
    """
    if database.flags.writeable:
        return engine.prepare(database)
    with _lock:
        _prepared[:] = [entry for entry in _prepared if entry[0]() is not None]
        for ref, held_engine, prepared in _prepared:
            if ref() is database and held_engine is engine:
                handle = database if prepared.handle is None else prepared.handle
                return Prepared(engine, handle, prepared.norm_max, prepared.residual_max)
    prepared = engine.prepare(database)
    kept = Prepared(engine, None if prepared.handle is database else prepared.handle, prepared.norm_max, prepared.residual_max)
    with _lock:
        _prepared.insert(0, (weakref.ref(database), engine, kept))
        del _prepared[_PREPARED_KEEP:]
    return prepared


def available() -> list[str]:
    """The engines this machine can run (without timing them)."""
    names = ["numpy"]
    if _torch_installed():
        names += ["torch", "torch-bf16"]
        if _cuda_devices():
            names += ["cuda", "cuda-bf16"]
    return names


def report(d: int = 384, recalibrate: bool = False) -> dict[str, Any]:
    """What ``nnlift info`` prints: the engines found, their measured GFLOP/s, the choice and why.

    ``recalibrate`` times the CPU engines again (and rewrites the cache file) instead of reading it.
    """
    speeds = dict(calibrate(None, d, refresh=recalibrate))
    if "torch-bf16" not in speeds and _torch_installed():
        speeds["torch-bf16"] = _throughput(_build("torch-bf16", None), max(64, -(-d // 64) * 64))
    if _cuda_devices():
        speeds.update({f"{name} (cuda)": value for name, value in calibrate("cuda", d).items()})
    chosen = resolve(flops=float("inf"), d=d)
    float32 = resolve("auto", flops=float("inf"), d=d, reduced=False)
    return {
        "chosen_float32": float32.name,
        "engines": available(),
        "gflops_single_thread": speeds,
        "chosen": chosen.name,
        "setting": _chosen or _environment() or "auto",
        "native_bfloat16": native_bfloat16(),
        "d": d,
        "cache": cache_path(),
    }
