"""The one progress helper: a rich progress bar when rich is installed and the work is long."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["progress_bar", "LONG_WORK_SECONDS"]

LONG_WORK_SECONDS = 2.0
logger = logging.getLogger("nnlift")


class _Bar:
    def __init__(self, update) -> None:
        self._update = update

    def advance(self, amount: float = 1) -> None:
        self._update(amount)


@contextmanager
def progress_bar(
    description: str,
    total: float,
    *,
    enabled: bool = True,
    expected_seconds: float | None = None,
) -> Iterator[_Bar]:
    """Show a bar for long work.

    Parameters
    ----------
    description : str
        What is being done, shown beside the bar.
    total : float
        Units of work; call ``bar.advance(n)`` as they complete.
    enabled : bool
        ``progress=False`` from the caller turns the bar off.
    expected_seconds : float, optional
        An estimate of the run time; work expected to take less than
        ``LONG_WORK_SECONDS`` shows no bar.
    """
    start = time.perf_counter()
    show = enabled and (expected_seconds is None or expected_seconds >= LONG_WORK_SECONDS)
    rich_progress = None
    if show:
        try:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
        except ImportError:
            show = False
        else:
            console = Console(stderr=True)
            # A bar redrawn into a pipe or a log file only leaves blank lines behind.
            rich_progress = (
                None
                if not console.is_terminal
                else Progress(
                    TextColumn("{task.description}", markup=False),  # user text ([q, -alpha]) is not markup
                    BarColumn(),
                    TextColumn("{task.percentage:>3.0f}%"),
                    TimeElapsedColumn(),
                    TimeRemainingColumn(),
                    transient=True,
                    console=console,
                )
            )
    if rich_progress is None:
        yield _Bar(lambda amount: None)
    else:
        with rich_progress:
            task = rich_progress.add_task(description, total=total)
            yield _Bar(lambda amount: rich_progress.advance(task, amount))
    logger.debug("%s took %.2fs", description, time.perf_counter() - start)
