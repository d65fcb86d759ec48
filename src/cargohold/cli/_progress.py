"""Progress bars for transfers: one for all the bytes and one for the file in flight."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)


class Bars:
    """A bar for all the bytes and one for the file in flight: total, per file, rate and ETA."""

    def __init__(self, total: int, files: int) -> None:
        self.progress = Progress(
            TextColumn("{task.description}", style="bold"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
            TimeRemainingColumn(), console=Console(stderr=True), disable=files == 0,
        )
        self.total = self.progress.add_task("total", total=total)
        self.moved = 0  # bytes that went over the network

    @contextmanager
    def file(self, name: str, size: int, done: int = 0) -> Iterator[Callable[[int], None]]:
        task: TaskID = self.progress.add_task(_shorten(name), total=size, completed=done)
        self.progress.advance(self.total, done)

        def advance(n: int) -> None:
            self.moved += n
            self.progress.advance(task, n)
            self.progress.advance(self.total, n)

        try:
            yield advance
        finally:
            self.progress.remove_task(task)


def _shorten(name: str, width: int = 40) -> str:
    return name if len(name) <= width else "…" + name[-(width - 1):]


@contextmanager
def bars(total: int, files: int) -> Iterator[Bars]:
    shown = Bars(total, files)
    with shown.progress:
        yield shown
