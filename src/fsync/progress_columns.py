"""The columns of a push's or pull's live display that rich's own get wrong for fsync.

Kept apart from `fsync.progress` so that rich is imported only when a display is drawn.
"""

from __future__ import annotations

from rich.progress import ProgressColumn, Task
from rich.text import Text

from fsync.terminal import human_bytes


class RateColumn(ProgressColumn):
    """The rate in the sizes' units: rich's `TransferSpeedColumn` is decimal, so a display
    read "150.0/300.0 MiB 52.4 MB/s", two units side by side."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        shown = "?" if speed is None else f"{human_bytes(speed)}/s"
        return Text(shown, style="progress.data.speed")


class TimeLeftColumn(ProgressColumn):
    """The time left, once the rate means something: in a run's first seconds rich's
    estimate rests on a few bytes, and a display read "62:20:05" for a 300 MiB upload that
    took 6 s."""

    SETTLED = 3.0
    """Seconds of a run before its time left is shown."""

    def render(self, task: Task) -> Text:
        left = task.time_remaining
        if task.total is None or left is None or (task.elapsed or 0.0) < self.SETTLED:
            return Text("-:--:--", style="progress.remaining")
        minutes, seconds = divmod(int(left), 60)
        hours, minutes = divmod(minutes, 60)
        return Text(f"{hours:d}:{minutes:02d}:{seconds:02d}", style="progress.remaining")
