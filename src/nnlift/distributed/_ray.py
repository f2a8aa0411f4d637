"""Starting Ray, and the settings every nnlift job gives Ray Data on small and large machines alike."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from .._check import check_positive_int
from .._optional import require
from .. import errors
from ..errors import InputError

__all__ = ["start", "Pool", "pool", "worker_errors"]
logger = logging.getLogger("nnlift.distributed")


def ray_module():
    """``ray`` with Ray Data, or a :class:`~nnlift.MissingExtraError` naming the extra."""
    ray = require("ray", "nnlift.distributed")
    require("ray.data", "nnlift.distributed")
    return ray


def start(address: str | None = None, *, num_cpus: int | None = None, progress: bool = True) -> Any:
    """Connect to Ray, once per process: ``address``, else ``RAY_ADDRESS``, else a local Ray on this machine's cores.

    A Ray already started in this process (by the caller or an earlier job) is
    used as it is. Returns the ``ray`` module. Ray Data's own progress bars are
    shown when ``progress`` is true.

    Examples
    --------
    >>> from nnlift.distributed import start  # doctest: +SKIP
    >>> ray = start()  # local Ray with the machine's cores  # doctest: +SKIP
    """
    ray = ray_module()
    if not ray.is_initialized():
        target = address or os.environ.get("RAY_ADDRESS") or None
        if target is None and num_cpus is None:
            num_cpus = _cores()
        if target is not None and num_cpus is not None:
            raise InputError("num_cpus applies to a local Ray; a cluster at an address has its own CPUs")
        logger.info("starting Ray %s", f"at {target}" if target else f"locally with {num_cpus} CPUs")
        ray.init(
            address=target,
            num_cpus=num_cpus,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
            configure_logging=True,
        )
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = progress
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    return ray


# How a worker's nnlift error reads in Ray's report of the failed task: class, then message up to a blank line.
_RAISED = re.compile(r"^nnlift\.errors\.(\w+): (.*?)(?=\n\s*\n|\Z)", re.M | re.S)


@contextmanager
def worker_errors() -> Iterator[None]:
    """Re-raise an nnlift error that a Ray worker raised as itself, not wrapped in Ray's ``RayTaskError``.

    Ray Data reports a failed batch as ``RayTaskError(UserCodeException)``
    whose chain no longer holds the original exception, only its text; the
    first nnlift error in that text is raised again here, with its message.
    """
    ray = ray_module()
    try:
        yield
    except ray.exceptions.RayTaskError as exc:
        found = _RAISED.search(str(exc))
        kind = getattr(errors, found.group(1), None) if found else None
        if not (isinstance(kind, type) and issubclass(kind, errors.NnliftError)):
            raise
        raise kind(f"on a Ray worker: {found.group(2).strip()}") from None


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class Pool:
    """How a job's actors are laid out: ``size`` actors of ``cpus`` CPUs each, ``threads`` kernel threads apiece."""

    size: int
    cpus: float
    threads: int

    def map_args(self) -> dict[str, Any]:
        """``map_batches`` keywords: a fixed actor pool with fractional CPUs.

        Whole-CPU actors filling every CPU leave Ray Data's reading tasks none,
        and the job stalls ("backpressured: ResourceBudget"); fractional actors
        leave them room on machines of two cores as on large ones.
        """
        ray = ray_module()
        return {"compute": ray.data.ActorPoolStrategy(size=self.size), "num_cpus": self.cpus}


def pool(workers: int | None = None) -> Pool:
    """The actor pool for the cluster Ray is connected to: by default one actor per CPU, at 0.7 CPU each.

    What the actors leave (0.3 CPU each) runs Ray Data's reading tasks, at
    0.25 CPU apiece (``sources.READ_CPUS``).
    """
    ray = ray_module()
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    size = cpus if workers is None else check_positive_int(workers, "workers")
    share = min(0.7, 0.7 * cpus / size)
    return Pool(size=size, cpus=round(share, 3), threads=max(1, cpus // size))
