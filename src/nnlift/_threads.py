"""Thread control: one place decides how many workers run and how many BLAS threads each gets.

A process may hold numpy's OpenBLAS, faiss's OpenBLAS/OpenMP and torch's MKL at
once. Letting each use every core oversubscribes the machine, so parallel
kernels run ``n_workers`` Python threads with single-threaded BLAS inside.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

__all__ = ["default_workers", "single_threaded_blas", "HAVE_THREADPOOLCTL"]

try:
    from threadpoolctl import threadpool_limits

    HAVE_THREADPOOLCTL = True
except ImportError:  # pragma: no cover - threadpoolctl comes with the dev extra
    HAVE_THREADPOOLCTL = False


def default_workers() -> int:
    """Worker threads for the kernel: the usable cores, capped by OMP_NUM_THREADS when set."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    env = os.environ.get("OMP_NUM_THREADS")
    if env and env.isdigit() and int(env) > 0:
        cores = min(cores, int(env))
    if not HAVE_THREADPOOLCTL:
        # Without a way to pin BLAS to one thread, parallel Python workers would
        # oversubscribe; one worker lets BLAS use every core instead.
        return 1
    return max(1, cores)


@contextlib.contextmanager
def single_threaded_blas(active: bool = True) -> Iterator[None]:
    """Limit every loaded BLAS/OpenMP pool to one thread while parallel workers run.

    torch keeps its own count (``torch.set_num_threads``, which also sets
    MKL's): when torch is loaded it is set to 1 here and restored after, and
    each worker thread sets it again for itself (``Engine.thread_setup``),
    because OpenMP keeps the count per thread.
    """
    if not active:
        yield
        return
    torch = sys.modules.get("torch")
    held = torch.get_num_threads() if torch is not None else None
    limits = threadpool_limits(limits=1) if HAVE_THREADPOOLCTL else contextlib.nullcontext()
    try:
        if torch is not None:
            torch.set_num_threads(1)
        with limits:
            yield
    finally:
        if torch is not None and held is not None:
            torch.set_num_threads(held)
