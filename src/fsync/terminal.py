"""The way out to a person: every line fsync prints passes through `printable` here.

Paths in those lines come from whoever wrote the remote, and a store takes any key: one
holding ESC sequences would clear the screen or retitle the window of the user reading
fsync's output, one holding a newline would forge a line (`fsync: pull: 0 failed`), and one
holding a RIGHT-TO-LEFT OVERRIDE would show the rest of the line reversed (`a\\u202etxt.exe`
shows as `aexe.txt`). So the characters a terminal acts on, or that change a line without
showing themselves, are shown escaped, `\\x1b`, `\\x0a`, `\\u202e`, on every line for a
person: errors, warnings, per-file lines, summaries. It is done here, where the text leaves
the process, not where each message is made: a message added later cannot forget it. The
one exception is the alarm's own output, which is the user's command talking.

stdlib only: the progress displays and the run log use it, and they stay cheap to import.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
import sys
import threading
import unicodedata
from collections.abc import Iterator
from types import FrameType
from typing import TextIO

_HIDDEN = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
"""The Unicode categories shown escaped: controls (C0, DEL, C1: what a terminal acts on or
breaks a line at), format characters (bidi overrides and isolates, zero-width spaces and
joiners, soft hyphen: invisible, and some reorder the line), lone surrogates (an undecodable
byte in a local name; no terminal encoding holds them) and the line and paragraph
separators. Spaces (no-break, ideographic), private-use and unassigned characters are not:
they show as themselves, and two names alike to the eye are no more than the homoglyphs no
escaping can tell apart."""

_LOOKS_ESCAPED = re.compile(r"\\(?:\\|x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8})")
"""A backslash that a reader would take for the start of one of `printable`'s escapes."""

_MAY_CHANGE = re.compile(r"[^\x20-\x5b\x5d-\x7e]")
"""What an escaped line may show otherwise: all but printable ASCII other than the backslash."""

_JSON_MAY_CHANGE = re.compile(r"[^\x00-\x7e]")
"""What `json.dumps` may leave raw (it escapes C0 itself): DEL and beyond."""


def _hidden(char: str) -> bool:
    return unicodedata.category(char) in _HIDDEN


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char == "\\":
        return "\\\\"
    if not _hidden(char):
        return char
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def printable(text: str) -> str:
    """`text` as one line that does only what it says, and says it unambiguously.

    A line is shown as it is unless it holds a hidden character (`_HIDDEN`) or a backslash
    that reads as an escape (`\\\\`, `\\x1b`, `\\u202e`, `\\U000e0001`); then the whole
    line is shown escaped: each hidden character as `\\xHH`, `\\uHHHH` or `\\UHHHHHHHH`, each
    backslash doubled. So a name with the four characters `\\x1b` never prints as one with an
    ESC in it, and a reader can undo it: a line with no such sequence is literal, and one
    with any is escaped throughout. Everything else is left alone, so `C:\\Users\\me\\notes`
    and `dir\\temp.txt` print as they are. There are no short forms such as `\\n`: each
    escape letter would turn a backslash name (`dir\\new.txt`) into an escaped line too.

    The common case, nothing to escape, costs one `str.isprintable` call and one search for
    a backslash: plain output of a 20,000-file run prints 20,000 lines.
    """
    if "\\" in text and _LOOKS_ESCAPED.search(text):
        return _MAY_CHANGE.sub(_escape, text)
    if text.isprintable() or not any(map(_hidden, text)):
        return text
    return _MAY_CHANGE.sub(_escape, text)


def write_line(stream: TextIO, text: str) -> None:
    """`text` made printable, then a newline, on `stream`, flushed (stderr and stdout
    interleave in a terminal; each line must be whole when the other stream writes)."""
    _write(stream, printable(text))


def _write(stream: TextIO, line: str) -> None:
    try:
        stream.write(line + "\n")
        stream.flush()
    except BrokenPipeError:
        _reader_gone(stream)


def _reader_gone(stream: TextIO) -> None:
    """The reader of `stream` has gone (`fsync push | head -1`, a pager quit): what is left
    to say goes nowhere, and the run goes on to its end. It used to stop there, at whatever
    file it had reached, with "[Errno 32] Broken pipe" and exit 1, over output nobody would
    read. The stream's descriptor is pointed at /dev/null, so the text still buffered, every
    later line, and the interpreter's own flush at exit all succeed without a word."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def write_whole(stream: TextIO, text: str) -> None:
    """Write `text` to `stream` (as it is: no `printable`) and flush it, all of it even where
    a signal interrupts the write.

    A write blocked on a reader that lags (a pipe) and cut by a signal whose handler returns
    comes back short from CPython's buffered writer, and the text layer above it drops the
    rest without a word (3.11: 8 KiB of 200 KiB arrived, the handler having run once). So
    where the stream has a file descriptor, it is flushed and the bytes go to the descriptor
    directly, written again from where each short write stopped; elsewhere (a `StringIO`,
    a test runner's capture), the stream writes them.
    """
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        stream.write(text)
        stream.flush()
        return
    encoding = getattr(stream, "encoding", None) or "utf-8"
    rest = memoryview(text.encode(encoding, getattr(stream, "errors", None) or "strict"))
    try:
        stream.flush()
        while rest:
            rest = rest[os.write(fd, rest) :]
    except BrokenPipeError:
        _reader_gone(stream)


def say(text: str) -> None:
    """One line on stdout (resolved at each call: tests and typer's runner replace it)."""
    write_line(sys.stdout, text)


def complain(text: str) -> None:
    """One line on stderr: an error or a warning, spelt `fsync: error: ...` by the caller."""
    write_line(sys.stderr, text)


def say_json(value: object) -> None:
    """`value` as one line of JSON on stdout: `json_line` makes it safe, and it must not pass
    through `printable`, whose doubled backslashes would change the values a reader gets."""
    _write(sys.stdout, json_line(value))


def json_line(value: object, *, compact: bool = False) -> str:
    """`value` as one line of JSON (non-ASCII kept as is) that is safe on a terminal too,
    and in any UTF-8 file (`compact`: without spaces after separators, for a log file).

    `json.dumps` escapes C0 but, with `ensure_ascii=False`, leaves the rest of `_HIDDEN`
    raw; those get `\\u` escapes here (a pair for one beyond the BMP), which any JSON reader
    reads back as the same characters. JSON escapes every backslash, so it is unambiguous.
    Lone surrogates (an undecodable byte in a local name) are among them: raw, no UTF-8
    stream can take them.
    """
    separators = (",", ":") if compact else None
    text = json.dumps(value, ensure_ascii=False, separators=separators)
    return text if text.isprintable() else _JSON_MAY_CHANGE.sub(_json_escape, text)


def _json_escape(match: re.Match[str]) -> str:
    char = match.group()
    if not _hidden(char):
        return char
    code = ord(char)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


_HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM)
"""Ctrl-C, and SIGTERM, which `fsync.cli` makes stop a run as Ctrl-C does."""


@contextlib.contextmanager
def interrupts_held() -> Iterator[None]:
    """Hold a Ctrl-C (or SIGTERM) that lands inside the block until the block has ended, then
    hand it on.

    For a block that writes output and then records it as written: a `KeyboardInterrupt`
    raised between the two (as the write returns, or from inside a write blocked on a slow
    reader) left the output unrecorded, and it was written a second time. A second signal
    while the first is held is handed on at once: a user who insists is not kept waiting
    for a reader that may never read. Only the main thread receives `KeyboardInterrupt`
    (and may set a handler); elsewhere, or where neither signal has a Python handler, the
    block just runs.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in _HELD_SIGNALS}
    handlers = {sig: handler for sig, handler in previous.items() if callable(handler)}
    if not handlers:
        yield
        return
    held: list[tuple[int, FrameType | None]] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        if held:
            handlers[signal.Signals(signum)](signum, frame)
        held.append((signum, frame))

    for sig in handlers:
        signal.signal(sig, hold)
    try:
        yield
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    if held:
        signum, frame = held[0]
        handlers[signal.Signals(signum)](signum, frame)


def human_bytes(n: float) -> str:
    """`n` bytes in B, KiB, MiB or GiB, as the summaries and the displays show sizes and
    rates (binary units everywhere: a display read "150.0/300.0 MiB 52.4 MB/s")."""
    size = float(n)
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"
