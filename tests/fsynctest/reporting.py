"""Reporters that keep what a run said, for tests that check its warnings."""

from __future__ import annotations

from fsync.progress import NullReporter


class Warnings(NullReporter):
    """Keeps the run's warnings."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def warning(self, message: str) -> None:
        self.lines.append(message)
