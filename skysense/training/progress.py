"""Rank 0's progress bar: optimizer steps, loss, samples/s and ETA (rich, on stderr)."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class TrainProgress:
    """A context manager showing training progress; a no-op when ``enabled`` is False.

    Args:
        total_steps: optimizer steps of the run.
        start_step: steps already done (resumed runs).
        enabled: show the bar (rank 0 only).
    """

    def __init__(self, total_steps: int, start_step: int = 0, enabled: bool = True) -> None:
        self.enabled = enabled
        self._progress: Progress | None = None
        self._task = None
        if enabled:
            self._progress = Progress(
                TextColumn("[bold]train"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]:.4f}"),
                TextColumn("{task.fields[rate]:.1f} samples/s"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self._task = self._progress.add_task(
                "train", total=total_steps, completed=start_step, loss=float("nan"), rate=0.0
            )

    def __enter__(self) -> Self:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def update(self, step: int, loss: float, samples_per_s: float) -> None:
        """Show that ``step`` optimizer steps are done, with the latest loss and throughput."""
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=step, loss=loss, rate=samples_per_s)
