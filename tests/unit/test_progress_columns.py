"""The rate and time-left columns of a push's display, on a real rich `Progress` whose
clock the test moves."""

from __future__ import annotations

from rich.progress import Progress

from fsync.progress_columns import RateColumn, TimeLeftColumn

MiB = 1 << 20


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def shown(progress: Progress, task: int) -> tuple[str, str]:
    t = progress.tasks[task]
    return RateColumn().render(t).plain, TimeLeftColumn().render(t).plain


def test_the_rate_is_in_the_units_of_the_sizes() -> None:
    clock = Clock()
    progress = Progress(get_time=clock)
    task = progress.add_task("x", total=300 * MiB)
    for _ in range(10):
        clock.now += 0.1
        progress.advance(task, 5 * MiB)
    assert shown(progress, task)[0] == "50.0 MiB/s"  # (rich's own column: "52.4 MB/s")


def test_the_time_left_waits_for_a_rate_that_means_something() -> None:
    """A few bytes in the first second made rich's estimate "62:20:05" for a 6 s upload."""
    clock = Clock()
    progress = Progress(get_time=clock)
    task = progress.add_task("x", total=300 * MiB)
    progress.start_task(task)
    clock.now += 1.0
    progress.advance(task, 10_000)
    assert shown(progress, task)[1] == "-:--:--"
    for _ in range(20):
        clock.now += 0.1
        progress.advance(task, 5 * MiB)
    left = shown(progress, task)[1]
    assert left != "-:--:--"
    assert left.startswith("0:00:")
    assert 1 <= int(left[-2:]) <= 10
