"""The three ways a watch is shown (silent, plain log lines, the live rich display), and how
a one-shot run's plain lines reach a pipe."""

from __future__ import annotations

import io
import re

from fsync.model import FileError, RunResult
from fsync.progress import NullWatchDisplay, PlainReporter, PlainWatchDisplay, RichWatchDisplay


def test_plain_lines_have_the_time_and_no_terminal_codes() -> None:
    out, err = io.StringIO(), io.StringIO()
    d = PlainWatchDisplay(out, err)
    d.watching("/data", "s3://bucket/data")
    d.file_started("a.txt", 3)
    d.advance("a.txt", 3)
    d.file_done("a.txt", "upload")
    d.file_done("b.txt", "upload", "permission denied")
    d.warning("watch limit reached")
    d.queued(3)
    d.totals(RunResult(uploaded=1), {"b.txt": "permission denied"})
    d.close()  # sent after every plan: ends nothing
    d.stop()
    assert re.fullmatch(r"\d\d:\d\d:\d\d upload a\.txt\n", out.getvalue())
    lines = err.getvalue().splitlines()
    assert lines[0] == "fsync: watching /data -> s3://bucket/data (Ctrl-C to stop)"
    assert re.fullmatch(
        r"fsync: error: \d\d:\d\d:\d\d upload b\.txt: permission denied .*", lines[1]
    )
    assert lines[2] == "fsync: warning: watch limit reached"
    assert "\x1b" not in out.getvalue() + err.getvalue()
    assert "\r" not in out.getvalue() + err.getvalue()


def test_the_null_display_shows_only_warnings() -> None:
    err = io.StringIO()
    d = NullWatchDisplay(err)
    d.watching("/data", "remote")
    d.file_done("a.txt", "upload")
    d.warning("careful")
    d.stop()
    assert err.getvalue() == "fsync: warning: careful\n"


def test_the_live_display_shows_queued_in_flight_and_failing_under_the_files_synced() -> None:
    """Each file synced is a line above the display, kept in the terminal's scrollback: the
    display showed the last eight only, so a watch left running kept no record."""
    err = io.StringIO()
    d = RichWatchDisplay(err)
    d.watching("/data", "file:///backup")
    d.queued(4)
    d.file_started("big.iso", 1000)
    d.advance("big.iso", 500)
    for i in range(20):
        d.file_done(f"a{i}.txt", "upload")
    d.file_done("b.txt", "upload", "permission denied")
    d.close()  # (the engine's, after each plan)
    d.totals(
        RunResult(uploaded=1, moved=2, bytes_sent=2048, errors=[FileError("b.txt", "x")]),
        {"b.txt": "permission denied"},
    )
    from rich.console import Console

    screen = Console(file=io.StringIO(), width=80, color_system=None)  # (a terminal's least)
    screen.print(d._render())
    text = screen.file.getvalue()  # type: ignore[attr-defined]
    d.stop()
    d.stop()  # twice is fine
    rows = [row.rstrip() for row in text.splitlines()]
    assert "watching /data → file:///backup  (Ctrl-C to stop)" in rows
    assert any(row.startswith("queued 4 · in flight 1 · ") for row in rows)
    assert "up 1 · down 0 · moved 2 · deleted 0 · 2.0 KiB · failed 1" in rows
    assert "big.iso" in text
    synced = [line.split(" ", 1)[1] for line in err.getvalue().splitlines()]
    assert synced == [f"upload a{i}.txt" for i in range(20)]
    assert "failing b.txt: permission denied" in text


def test_the_live_display_shows_how_far_a_plan_is() -> None:
    """The totals move once a plan is done: a startup push of 5,000 files read "queued 0 ·
    up 0" for all its 26 s."""
    from rich.console import Console

    def head(d: RichWatchDisplay) -> str:
        screen = Console(file=io.StringIO(), width=200, color_system=None)
        screen.print(d._render())
        return screen.file.getvalue().splitlines()[1]  # type: ignore[attr-defined]

    d = RichWatchDisplay(io.StringIO())
    d.watching("/data", "file:///backup")
    assert head(d).startswith("queued 0 · in flight 0")
    d.plan_ready(3, 30)
    d.file_started("a", 10)
    d.file_done("a", "upload")
    d.file_done("b", "upload", "denied")
    assert head(d).startswith("sending 2/3 · queued 0 · in flight 0")
    d.close()  # (the engine's, after the plan)
    assert head(d).startswith("queued 0 · in flight 0")
    d.plan_ready(1, 10)
    d.file_done("doc", "upload")
    d.file_done("doc.conflict-1", "upload")  # (a conflict copy: one more than planned)
    assert head(d).startswith("sending 2/2 · ")
    d.stop()


class _Flushes(io.StringIO):
    """A stream that logs what each flush hands on, into a log shared with another."""

    def __init__(self, name: str, log: list[tuple[str, str]]) -> None:
        super().__init__()
        self._name, self._log, self._sent = name, log, 0

    def flush(self) -> None:
        text = self.getvalue()[self._sent :]
        self._sent += len(text)
        if text:
            self._log.append((self._name, text))


def test_plain_run_lines_reach_the_pipe_in_order_with_the_warnings() -> None:
    """A one-shot run's lines are flushed in bunches, not one by one; but before any line
    on stderr and at the end, so a reader of both streams (`2>&1`) sees them in order."""
    log: list[tuple[str, str]] = []
    r = PlainReporter(_Flushes("out", log), _Flushes("err", log))
    r.FLUSH_EVERY = 3600.0
    r.file_done("a", "upload")
    r.file_done("b", "upload")
    assert log == []  # one write for both, later
    r.warning("slow")
    r.file_done("c", "upload", "permission denied")
    r.file_done("d", "download")
    r.close()
    assert log == [
        ("out", "upload a\nupload b\n"),
        ("err", "fsync: warning: slow\n"),
        ("err", "fsync: error: upload c: permission denied\n"),
        ("out", "download d\n"),
    ]
    r.FLUSH_EVERY = 0.0
    r.file_done("e", "upload")
    assert log[-1] == ("out", "upload e\n")
