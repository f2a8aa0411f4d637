"""Shared helpers for the benchmarks: seeded data, timing, and the RESULTS.md writer."""

from __future__ import annotations

import os
import platform
import re
import resource
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).with_name("RESULTS.md")


def unit_vectors(
    n: int, d: int, seed: int, clusters: int | None = None, spread: float = 1.0, centre_seed: int = 12345
) -> np.ndarray:
    """Seeded unit vectors.

    With ``clusters``, a mixture around random unit centres shared by every call
    with the same ``centre_seed`` (so a database, a bank and queries live in one
    space, as real embeddings do); ``spread`` is the noise norm relative to the
    centre's (1.0: neighbours at cosine ≈ 0.5, clusters overlap).
    """
    rng = np.random.default_rng(seed)
    if clusters is None:
        x = rng.standard_normal((n, d), dtype=np.float32)
    else:
        centres = np.random.default_rng(centre_seed).standard_normal((clusters, d), dtype=np.float32)
        centres /= np.linalg.norm(centres, axis=1, keepdims=True)
        noise = rng.standard_normal((n, d), dtype=np.float32) / np.sqrt(d)
        x = centres[rng.integers(0, clusters, n)] + spread * noise
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x, dtype=np.float32)


def best_time(fn, repeats: int = 3):
    """Best wall time of ``repeats`` runs (the machines are shared; the minimum is the least noisy)."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def interleaved_times(contenders: dict, repeats: int, seconds=None) -> dict:
    """Run each contender ``repeats`` times in turn (A, B, C, A, B, C, ...); per name: (times, fastest run's result).

    Interleaving spreads the machine's slow spells over every contender, and
    the first round pays the process's one-time costs (imports, first touch of
    fresh memory) for each of them alike; report the best and the spread.
    ``seconds(result)``, when given, reads a run's time from its result (for
    contenders that time their own phases); otherwise the call is timed.
    """
    out = {name: ([], None) for name in contenders}
    for _ in range(repeats):
        for name, fn in contenders.items():
            start = time.perf_counter()
            result = fn()
            took = time.perf_counter() - start if seconds is None else seconds(result)
            times, best = out[name]
            out[name] = (times + [took], result if not times or took <= min(times) else best)
    return out


def spread(times: list[float]) -> str:
    """``best`` with the range of all runs when there were several."""
    return f"{min(times):.2f}" + (f" ({min(times):.2f}–{max(times):.2f})" if len(times) > 1 else "")


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def current_rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def machine() -> str:
    model, flags = cpu_model_and_flags()
    blas = os.environ.get("OPENBLAS_CORETYPE")
    return (
        f"{model} ({platform.machine()}, {os.cpu_count()} cores; {flags}), "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, OPENBLAS_CORETYPE={blas or 'unset'}"
    )


def cpu_model_and_flags() -> tuple[str, str]:
    """The CPU's model name and the SIMD/matrix flags that decide which kernels run (from /proc/cpuinfo)."""
    model, flags = platform.processor() or "unknown CPU", set()
    try:
        for line in open("/proc/cpuinfo"):
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
                break
    except OSError:
        pass
    wanted = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "avx512_fp16", "amx_bf16", "amx_int8", "amx_tile")
    return model, " ".join(f for f in wanted if f in flags) or "no AVX2"


def write_section(name: str, command: str, body: str, file: Path | None = None) -> None:
    """Replace (or append) the section ``name`` of benchmarks/RESULTS.md (or of ``file``)."""
    results = RESULTS if file is None else file
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    section = (
        f"<!-- {name}:start -->\n## {name}\n\nCommand: `{command}`  \nRun: {stamp} on {machine()}\n\n{body.strip()}\n"
        f"<!-- {name}:end -->"
    )
    text = (
        results.read_text()
        if results.exists()
        else "# Benchmark results\n\nEach section is the latest output of its benchmark, written by the benchmark itself.\n"
    )
    pattern = re.compile(rf"<!-- {re.escape(name)}:start -->.*?<!-- {re.escape(name)}:end -->", re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section + "\n"
    results.write_text(text)
    print(f"updated {results} [{name}]", file=sys.stderr)


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
