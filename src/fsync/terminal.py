"""The way out to a person: every line fsync prints passes through `printable` here.

Paths in those lines come from whoever wrote the remote, and a store takes any key: one
holding ESC sequences would clear the screen or retitle the window of the user reading
fsync's output, and one holding a newline would forge a line (`fsync: pull: 0 failed`).
Control characters (C0, DEL, C1) are therefore shown escaped, `\\x1b`, `\\n`, on every line
for a person: errors, warnings, per-file lines, summaries. It is done here, where the text
leaves the process, not where each message is made: a message added later cannot forget
it. The one exception is the alarm's own output, which is the user's command talking.

stdlib only: the progress displays and the run log use it, and they stay cheap to import.
"""

from __future__ import annotations

import json
import re
import sys
from typing import TextIO

_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f]")
"""C0 (newline and tab included), DEL and C1: what a terminal may act on or break a line at."""

_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}

_JSON_UNESCAPED = re.compile("[\x7f-\x9f]")
"""What `json.dumps` leaves raw (it escapes C0 itself): DEL and C1."""


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return _SHORT.get(char) or f"\\x{ord(char):02x}"


def printable(text: str) -> str:
    """`text` with every control character escaped, so it is one line that does only what
    it says. The common case, nothing to escape, costs one `str.isprintable` call: plain
    output of a 20,000-file run prints 20,000 lines."""
    return text if text.isprintable() else _UNPRINTABLE.sub(_escape, text)


def write_line(stream: TextIO, text: str) -> None:
    """`text` made printable, then a newline, on `stream`, flushed (stderr and stdout
    interleave in a terminal; each line must be whole when the other stream writes)."""
    stream.write(printable(text) + "\n")
    stream.flush()


def say(text: str) -> None:
    """One line on stdout (resolved at each call: tests and typer's runner replace it)."""
    write_line(sys.stdout, text)


def complain(text: str) -> None:
    """One line on stderr: an error or a warning, spelt `fsync: error: ...` by the caller."""
    write_line(sys.stderr, text)


def json_line(value: object) -> str:
    """`value` as one line of JSON (non-ASCII kept as is) that is safe on a terminal too.

    `json.dumps` escapes C0 but, with `ensure_ascii=False`, leaves DEL and C1 raw; they get
    `\\u` escapes here, which any JSON reader reads back as the same characters.
    """
    text = json.dumps(value, ensure_ascii=False)
    return _JSON_UNESCAPED.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
