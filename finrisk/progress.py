"""Progress of long work, reported once and shown twice: as log lines (in the Prefect UI, through
PREFECT_LOGGING_EXTRA_LOGGERS=finrisk, and in flow-run logs) and as Rich progress bars in the CLI,
which listens for the same records."""
from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.text import Text
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

PROGRESS = "finrisk_progress"
LOGGER = logging.getLogger("finrisk.progress")
# Where progress records are emitted: library code, and Prefect flow / task run loggers.
SOURCES = ("finrisk", "prefect.flow_runs", "prefect.task_runs")


def report(what: str, done: int, total: int, logger: logging.Logger | logging.LoggerAdapter | None = None) -> None:
    """`done` of `total` steps of `what` are finished."""
    (logger or LOGGER).info("%s: %d/%d", what, done, total, extra={PROGRESS: (what, done, total)})


class _Steps(MofNCompleteColumn):
    """done/total, blank for the title line (which has no total)."""

    def render(self, task):
        return super().render(task) if task.total is not None else Text("")


class _BarHandler(logging.Handler):
    def __init__(self, progress: Progress):
        super().__init__(logging.INFO)
        self.progress = progress
        self.bars: dict[str, int] = {}

    def emit(self, record: logging.LogRecord) -> None:
        what, done, total = getattr(record, PROGRESS, (None, 0, 0))
        if what is None:
            return
        if what not in self.bars:
            self.bars[what] = self.progress.add_task(what, total=total)
        self.progress.update(self.bars[what], completed=done, total=total)


@contextmanager
def progress_bars(console: Console, title: str) -> Iterator[None]:
    """Show a bar per kind of progress reported while the block runs (a spinner with the title first)."""
    progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), _Steps(),
                        TimeElapsedColumn(), console=console, transient=False)
    handler = _BarHandler(progress)
    loggers = [logging.getLogger(name) for name in SOURCES]
    progress.add_task(title, total=None)
    for logger in loggers:
        logger.addHandler(handler)
    if LOGGER.getEffectiveLevel() > logging.INFO:
        LOGGER.setLevel(logging.INFO)
    try:
        with progress:
            yield
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
