"""Control characters in what fsync prints: escaped on the way out, on every display.

Names come from whoever wrote the remote; an ESC in one acted on the user's terminal, a
newline forged a line of fsync's own, and a bidi override showed a line
reordered. `tests/e2e/test_foreign_objects.py` checks the same through the command, against
S3 keys.
"""

from __future__ import annotations

import io
import json
import re
import signal
import unicodedata

import pytest

from fsync import render
from fsync.model import Direction, FileError, RunResult
from fsync.progress import (
    NullReporter,
    PlainReporter,
    PlainWatchDisplay,
    RichReporter,
    RichWatchDisplay,
)
from fsync.terminal import interrupts_held, json_line, printable

HOSTILE = "esc\x1b[2J\x1b]0;pwned\x07\nfsync: push: all OK\t\x7f\x9b31m.txt"
SHOWN = "esc\\x1b[2J\\x1b]0;pwned\\x07\\x0afsync: push: all OK\\x09\\x7f\\x9b31m.txt"
RAW = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f]")
"""A control character other than the newline that ends a line."""


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (HOSTILE, SHOWN),
        ("plain/ünï ç.txt", "plain/ünï ç.txt"),
        ("\x00\x1f\r", "\\x00\\x1f\\x0d"),
        ("no\u00a0break\u3000\ue000", "no\u00a0break\u3000\ue000"),  # not printable, shown
        ("back\\slash", "back\\slash"),
        ("C:\\Users\\me\\new\\temp.txt", "C:\\Users\\me\\new\\temp.txt"),
        ("\\xyz\\u12\\U0001f6", "\\xyz\\u12\\U0001f6"),  # no escape: too few hex digits
        (
            "\u0627\u0644\u0639\u0631\u0628\u064a\u0629.txt",
            "\u0627\u0644\u0639\u0631\u0628\u064a\u0629.txt",
        ),
    ],
)
def test_printable_leaves_text_alone_unless_it_must(text: str, shown: str) -> None:
    assert printable(text) == shown


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("invoice\u202etxt.exe", "invoice\\u202etxt.exe"),  # showed as invoiceexe.txt
        ("\u2066a\u2069 \u200b\u200d\ufeff\u00ad", "\\u2066a\\u2069 \\u200b\\u200d\\ufeff\\xad"),
        ("para\u2028graph\u2029", "para\\u2028graph\\u2029"),
        ("tag\U000e0041", "tag\\U000e0041"),
        ("bad-\udcff", "bad-\\udcff"),
    ],
)
def test_printable_escapes_format_characters_and_separators(text: str, shown: str) -> None:
    """Bidi overrides and isolates reorder a line, zero-width characters make two names
    look one, a lone surrogate has no encoding: none of them may reach a terminal raw."""
    assert printable(text) == shown


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("lit\\x1b.txt", "lit\\\\x1b.txt"),  # was shown as the ESC below is
        ("esc\x1b.txt", "esc\\x1b.txt"),
        ("lit\\u202E", "lit\\\\u202E"),
        ("lit\\U0001F600", "lit\\\\U0001F600"),
        ("two\\\\back", "two\\\\\\\\back"),
        ("dir\\new\x1b", "dir\\\\new\\x1b"),  # once escaped, every backslash is doubled
    ],
)
def test_printable_escapes_backslashes_that_would_read_as_escapes(text: str, shown: str) -> None:
    """A key holding the four characters `\\x1b` printed exactly as one holding an ESC."""
    assert printable(text) == shown


def _unescape(line: str) -> str:
    """What a reader of `printable`'s rule makes of a line: literal unless escaped."""
    if not re.search(r"\\(?:\\|x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8})", line):
        return line
    return line.encode("latin-1", "backslashreplace").decode("unicode_escape")


def test_printable_lines_read_back_as_the_text_they_show() -> None:
    samples = [
        "lit\\x1b.txt",
        "esc\x1b.txt",
        "both \\x1b \x1b",
        "dir\\new\x1b\\",
        "\\",
        "\\\\",
        "\\u202e\u202e",
        "plain",
        "ünï\\temp",
        "bad-\udcff \\xff",
        "tag\U000e0041 \u00a0",
    ]
    shown = [printable(text) for text in samples]
    assert len(set(shown)) == len(samples)
    assert [_unescape(line) for line in shown] == samples


def test_json_lines_escape_what_json_leaves_raw_and_read_back_the_same() -> None:
    value = {"path": HOSTILE + "\u202e\u2028\U000e0041\udcff", "n": 1}
    line = json_line(value)
    assert not RAW.search(line)
    assert not any(unicodedata.category(c) in ("Cf", "Cs", "Zl") for c in line)
    assert "\n" not in line
    assert "ünï" in json_line({"p": "ünï"})  # non-ASCII is kept as it is
    assert json.loads(line) == value


def test_plain_lines_are_escaped_one_line_each() -> None:
    out, err = io.StringIO(), io.StringIO()
    r = PlainReporter(out, err)
    r.file_done(HOSTILE, "download")
    r.file_done(HOSTILE, "download", f"refused {HOSTILE}")
    r.warning(HOSTILE)
    r.close()
    w = PlainWatchDisplay(out, err)
    w.watching(HOSTILE, HOSTILE)
    w.file_done(HOSTILE, "upload")
    w.file_done(HOSTILE, "upload", "denied")
    NullReporter(err).warning(HOSTILE)
    assert out.getvalue().count("\n") == 2
    assert err.getvalue().count("\n") == 5
    for line in (out.getvalue() + err.getvalue()).splitlines():
        assert SHOWN in line
        assert not RAW.search(line)
        assert not line.startswith("fsync: push")


def test_the_live_displays_escape_too() -> None:
    err = io.StringIO()
    r = RichReporter(io.StringIO(), err)
    r.plan_ready(1, 1 << 20)
    r.file_started(HOSTILE, 1 << 20)  # (large enough for a bar of its own)
    r.file_done(HOSTILE, "download")
    r.file_done(HOSTILE, "download", "denied")
    r.warning(HOSTILE)
    r.close()
    w = RichWatchDisplay(err)
    w.watching(HOSTILE, "memory://x")
    w.file_started(HOSTILE, 3)
    w.file_done(HOSTILE, "upload")
    w.file_done(HOSTILE, "upload", HOSTILE)
    w.warning(HOSTILE)
    from rich.console import Console

    screen = Console(file=io.StringIO(), width=400, color_system=None)
    screen.print(w._render())
    w.stop()
    shown = err.getvalue() + screen.file.getvalue()  # type: ignore[attr-defined]
    assert not RAW.search(shown)
    assert SHOWN in shown
    assert not any(line.startswith("fsync: push") for line in shown.splitlines())


def test_summaries_and_errors_are_escaped(capsys: pytest.CaptureFixture[str]) -> None:
    result = RunResult(downloaded=1, failed=1, errors=[FileError(HOSTILE, HOSTILE)])
    render.print_summary(Direction.PULL, result, verbose=False)
    render.print_errors([FileError(HOSTILE, "x")], None)
    render.echo_json({"errors": [{"path": HOSTILE}]})
    out, err = capsys.readouterr()
    assert not RAW.search(out + err)
    assert f"fsync: error: {SHOWN}: {SHOWN}" in err.splitlines()
    assert json.loads(out.splitlines()[-1]) == {"errors": [{"path": HOSTILE}]}


def test_the_live_displays_show_brackets_in_names_as_they_are() -> None:
    """A file name is not rich markup: `a[/b]c.txt` made the display raise MarkupError, and
    `[bold]x` would have lost its brackets."""
    from rich.console import Console

    name = "a[/b]c [bold]x.txt"
    err = io.StringIO()
    r = RichReporter(io.StringIO(), err)
    r.plan_ready(1, 1 << 20)
    r.file_started(name, 1 << 20)
    screen = Console(file=io.StringIO(), width=400, color_system=None)
    screen.print(r._progress)
    r.close()
    w = RichWatchDisplay(err)
    w.file_started(name, 3)
    screen.print(w._render())
    w.stop()
    assert screen.file.getvalue().count(name) == 2  # type: ignore[attr-defined]


def _rows(reporter: RichReporter) -> list[str]:
    """What a push's live display shows, row by row: the overall bar's text first."""
    return [task.description for task in reporter._progress.tasks]


def test_a_push_shows_a_few_bars_of_large_files_and_counts_the_rest() -> None:
    """A bar for every file in flight, small or sent and waiting to be published, made a
    push of 1,500 small files to a terminal draw 1,500 rows at every line it printed (4
    minutes, not 0.6 s)."""
    mib = 1 << 20
    r = RichReporter(io.StringIO(), io.StringIO())
    r.plan_ready(1_020, 1_000 * 10 + 20 * 2 * mib)
    for i in range(1_000):
        r.file_started(f"small/{i}", 10)
    for i in range(20):
        r.file_started(f"big/{i}", 2 * mib)
    assert _rows(r) == ["0/1020 files, 1020 in flight"] + [f"big/{i}" for i in range(8)]
    r.advance("big/9", mib)  # (waiting for a place: counted, no bar yet)
    r.advance("big/0", 2 * mib)  # all sent: its place goes to the first waiting
    r.file_done("big/1", "upload")
    assert _rows(r)[1:] == [f"big/{i}" for i in (2, 3, 4, 5, 6, 7, 8, 9)]
    assert r._progress.tasks[-1].completed == mib  # big/9 shows what it sent while waiting
    for i in range(1_000):
        r.file_done(f"small/{i}", "upload")
    assert _rows(r)[0] == "1001/1020 files, 19 in flight"
    r.close()


def test_a_file_sent_again_keeps_one_bar() -> None:
    """An upload started again (the file changed while sent) left its first bar on screen
    to the end of the run."""
    r = RichReporter(io.StringIO(), io.StringIO())
    r.plan_ready(1, 2 << 20)
    r.file_started("big", 2 << 20)
    r.advance("big", 1 << 20)
    r.file_started("big", 2 << 20)
    assert _rows(r) == ["0/1 files, 1 in flight", "big"]
    assert r._progress.tasks[-1].completed == 0
    r.file_done("big", "upload")
    assert _rows(r) == ["1/1 files, 0 in flight"]
    r.close()


def test_a_push_to_a_terminal_prints_every_line_in_order() -> None:
    """The lines above the display are held and printed together (each print redraws it),
    never lost nor put after a warning that came later."""
    err = io.StringIO()
    r = RichReporter(io.StringIO(), err)
    r.plan_ready(3, 30)
    for name in ("a", "b"):
        r.file_started(name, 10)
        r.file_done(name, "upload")
    r.warning("careful")
    r.file_started("c", 10)
    r.file_done("c", "upload")
    r.close()
    assert [line for line in err.getvalue().splitlines() if line.strip()] == [
        "upload a",
        "upload b",
        "fsync: warning: careful",
        "upload c",
    ]


# --- Ctrl-C while output is written ----------------------------------------------------------


def _held_block(presses: int, done: list[str]) -> None:
    """Press Ctrl-C `presses` times (a real SIGINT to this process) inside a held block."""
    with interrupts_held():
        for _ in range(presses):
            signal.raise_signal(signal.SIGINT)
        done.append("the rest of the block")


def test_a_ctrl_c_in_a_held_block_is_raised_once_the_block_has_ended() -> None:
    before = signal.getsignal(signal.SIGINT)
    done: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        _held_block(1, done)
    assert done == ["the rest of the block"]
    assert signal.getsignal(signal.SIGINT) is before


def test_a_second_ctrl_c_in_a_held_block_is_raised_at_once() -> None:
    """A user who presses Ctrl-C again is not kept waiting (on a reader that never reads)."""
    before = signal.getsignal(signal.SIGINT)
    done: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        _held_block(2, done)
    assert done == []
    assert signal.getsignal(signal.SIGINT) is before


def test_a_sigterm_in_a_held_block_is_handed_on_once_the_block_has_ended() -> None:
    """`fsync.cli` makes SIGTERM stop a run as Ctrl-C does: one landing between writing the
    held lines and letting go of them had them written a second time at the close."""
    seen: list[str] = []

    def stop(signum: int, frame: object) -> None:
        seen.append("stopped")

    before = signal.signal(signal.SIGTERM, stop)
    try:
        with interrupts_held():
            signal.raise_signal(signal.SIGTERM)
            seen.append("the rest of the block")
        assert signal.getsignal(signal.SIGTERM) is stop
    finally:
        signal.signal(signal.SIGTERM, before)
    assert seen == ["the rest of the block", "stopped"]
