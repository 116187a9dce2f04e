"""A rich progress display for pipeline steps, shown on standard error."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class RichProgress:
    """A ProgressSink that draws one bar per step while the step runs."""

    def __init__(self) -> None:
        self._progress = Progress(
            TextColumn("{task.description:<12}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._task: TaskID | None = None

    def __enter__(self) -> RichProgress:
        self._progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def start(self, step: str, total: int | None) -> None:
        """Add a bar for `step`."""
        self._task = self._progress.add_task(step, total=total)

    def advance(self, units: int) -> None:
        """Move the current bar on by `units`."""
        if self._task is not None:
            self._progress.advance(self._task, units)

    def finish(self) -> None:
        """Complete the current bar."""
        if self._task is not None:
            task = self._progress.tasks[-1]
            self._progress.update(self._task, completed=task.total or task.completed)
            self._task = None
