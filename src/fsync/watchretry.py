"""Retrying failed paths in the background, and the `--on-error` alarm, for `fsync watch`.

A watch never stops for one file: a failed path is tried again after a delay that doubles
from `delay` up to `max_delay`. When a path has failed `retries` more times after its first
failure, the alarm fires once for that streak (the path keeps being retried at `max_delay`,
so a network outage heals by itself). A path whose destination changed under it is tried
again after `delay`, and is not failing, for a few races in a row. No clock is read here:
callers pass `now`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from fsync.alarm import raise_alarm
from fsync.model import Digest, RelPath

RACES_AT_ONCE = 3
"""Races in a row (`Retries.raced`) planned again after the first delay; past them a race
counts as a failure: backing off, and failing once `retries` are spent."""


@dataclass(slots=True)
class _Streak:
    failures: int
    next_at: float
    error: str
    alarmed: bool = False
    races: int = 0
    raced_with: Digest | None = None
    """What `races` counts against: the version of ours that raced (`Retries.raced`)."""


class Retries:
    """The retry schedule of every failing path (few at a time: a dict scan is cheap)."""

    def __init__(self, retries: int, delay: float, max_delay: float) -> None:
        self.retries = retries
        self.delay = delay
        self.max_delay = max_delay
        self._streaks: dict[RelPath, _Streak] = {}

    def __len__(self) -> int:
        return len(self._streaks)

    def failed(self, path: RelPath, error: str, now: float) -> bool:
        """Record a failure of `path`; True when its retries are spent just now (alarm)."""
        streak = self._streaks.get(path)
        if streak is None:
            streak = self._streaks[path] = _Streak(0, now, error)
        streak.failures += 1
        streak.error = error
        streak.next_at = now + min(self.delay * 2 ** (streak.failures - 1), self.max_delay)
        if streak.failures > self.retries and not streak.alarmed:
            streak.alarmed = True
            return True
        return False

    def raced(self, path: RelPath, error: str, now: float, ours: Digest | None = None) -> bool:
        """Try `path` again after `delay`: the destination changed under its action (someone
        else wrote it), no failure of the remote. Counted as one, eight such races in a row
        (each resolved as a conflict) put the settled edit after them 128 s off, shown as
        failing. Past `RACES_AT_ONCE` in a row with one version of `ours` (a new edit here
        starts a new count) it is one (what `failed` returns): a file someone rewrites all
        the time, planned again every second, made a request and a conflict copy a second for
        as long as the watch ran, and never said so."""
        streak = self._streaks.get(path)
        if streak is None:
            streak = self._streaks[path] = _Streak(0, now, error)
        if streak.raced_with != ours:
            streak.races, streak.raced_with = 0, ours
        streak.races += 1
        if streak.races > RACES_AT_ONCE:
            return self.failed(path, error, now)
        streak.error = error
        streak.next_at = now + self.delay
        return False

    def succeeded(self, paths: Iterable[RelPath]) -> None:
        """Forget the streaks of `paths` (missing paths are fine)."""
        if self._streaks:
            for path in paths:
                self._streaks.pop(path, None)

    def due(self, now: float) -> set[RelPath]:
        """Paths whose next attempt is due; each is handed out once per failure."""
        ready = {p for p, s in self._streaks.items() if s.next_at <= now}
        for path in ready:
            self._streaks[path].next_at = float("inf")
        return ready

    def next_due(self) -> float | None:
        """When the next attempt is due, or None if nothing waits."""
        times = [s.next_at for s in self._streaks.values() if s.next_at != float("inf")]
        return min(times, default=None)

    def failing(self) -> dict[RelPath, str]:
        """Every failing path with its latest error (a path that only raced is not)."""
        return {p: s.error for p, s in self._streaks.items() if s.failures}


class Alarm:
    """Runs `alarm.raise_alarm` for `command` off the caller's thread.

    The watch goes on while the command runs; its own failure goes to `warn`, never further.
    """

    def __init__(self, command: str | None, warn: Callable[[str], None]) -> None:
        self.command = command
        self._warn = warn
        self._threads: list[threading.Thread] = []

    def fire(self, summary: Mapping[str, object]) -> None:
        """Start the command with `summary` (does nothing without a command)."""
        if not self.command:
            return
        thread = threading.Thread(
            target=raise_alarm,
            args=(self.command, dict(summary), self._warn),
            name="fsync-alarm",
        )
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def wait(self) -> None:
        """Wait for the commands still running (each is bounded by `ALARM_TIMEOUT`)."""
        for thread in self._threads:
            thread.join()
        self._threads = []
