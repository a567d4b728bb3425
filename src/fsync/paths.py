"""Turn OS and remote names into `RelPath`s: the one gate every name passes through.

A name that could escape a root or mean different things on different systems is refused
here, once, so nothing downstream has to think about `..`, backslashes or Unicode forms.
"""

from __future__ import annotations

import itertools
import random
import re
import unicodedata
from collections.abc import Container, Iterator

from fsync.errors import UnsafePathError
from fsync.model import RelPath

MAX_NAME_BYTES = 255
"""The longest single name (UTF-8 bytes) that common filesystems hold."""

TEMP_PREFIX = ".fsync-"
TEMP_SUFFIX = ".tmp"
"""Temporary names (`.fsync-<hex>.tmp`) that writers publish by rename; scans skip them."""

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_TEMP = re.compile(re.escape(TEMP_PREFIX) + "[0-9a-f]{16}" + re.escape(TEMP_SUFFIX))


_temp_names = random.Random()  # seeded from os.urandom

TEMP_TOKEN = f"{_temp_names.getrandbits(32):08x}"
"""This process's token: the first 8 of the 16 hex digits of every temp name it makes.

Each run records it (`Manifest.start_run`), so a later run of the same root can tell the temp
files a killed run of that root left behind (`temp_token`), and remove them, from those of
anyone else: another root's run writing into this folder as its remote, an older fsync, or a
user's file that happens to have such a name."""

_temp_serials = itertools.count(_temp_names.getrandbits(32))


def temp_name() -> str:
    """A fresh temporary name (`.fsync-<TEMP_TOKEN><8 hex serial>.tmp`) to write a file
    under before it is renamed into place.

    Writers open it with `O_EXCL`, so a clash fails rather than clobbers: the name needs to
    be unlikely to clash, not secret. A serial after the process's token keeps this
    process's names apart without the system call per name that `secrets` makes (20,000 of
    them in a 20,000-file push).
    """
    return f"{TEMP_PREFIX}{TEMP_TOKEN}{next(_temp_serials) & 0xFFFFFFFF:08x}{TEMP_SUFFIX}"


def temp_token(name: str) -> str | None:
    """The `TEMP_TOKEN` of the process that made the temp name `name` (a path's last
    segment), or None if `name` is not a temp name."""
    if not is_temp_name(name):
        return None
    return name[len(TEMP_PREFIX) : len(TEMP_PREFIX) + len(TEMP_TOKEN)]


def is_temp_name(name: str) -> bool:
    """True for the last segment of a path that is an fsync temporary file: exactly what
    `temp_name` makes, as scans skip these and `cleanup` deletes them (a user's own
    `.fsync-notes.tmp` is a file like any other)."""
    return name.startswith(TEMP_PREFIX) and _TEMP.fullmatch(name) is not None


def to_relpath(name: str) -> RelPath:
    """Validate and normalise a slash-separated relative name into a `RelPath`.

    The result is NFC-normalised and has no empty, `.` or `..` segments. Raises
    `UnsafePathError` for an empty, absolute or escaping name, a backslash (a separator on
    Windows, so it would mean a different file there), a NUL or another control character,
    or bytes that were not UTF-8.
    """
    if name.isascii() and name.isprintable() and "\\" not in name and name[:1] not in ("", "/"):
        # The common case, in a few C-level scans (every scanned and listed name comes here):
        # printable ASCII has no control character and is already NFC. Anything else, or any
        # bad segment, takes the full path below, which says what is wrong.
        wrapped = f"/{name}/"
        if "//" not in wrapped and "/./" not in wrapped and "/../" not in wrapped:
            return RelPath(name)
    if not name:
        raise UnsafePathError("empty name")
    if "\x00" in name:
        raise UnsafePathError(f"{name!r}: contains a NUL byte")
    if "\\" in name:
        raise UnsafePathError(f"{name!r}: contains a backslash")
    if _CONTROL.search(name):
        raise UnsafePathError(f"{name!r}: contains a control character")
    if _SURROGATE.search(name):  # bytes that were not UTF-8 (`os.fsdecode`): nothing can
        # store or send the name (the state database included, where a watch queued it)
        raise UnsafePathError(f"{name!r}: the name is not valid UTF-8")
    if name.startswith("/"):
        raise UnsafePathError(f"{name!r}: is absolute")
    parts = name.split("/")
    for part in parts:
        if part in ("", ".", ".."):
            raise UnsafePathError(f"{name!r}: has an empty, '.' or '..' segment")
    return RelPath(unicodedata.normalize("NFC", name))


def check_name_lengths(path: RelPath, limit: int = MAX_NAME_BYTES) -> None:
    """Raise `UnsafePathError` when a segment of `path` is longer than `limit` UTF-8 bytes."""
    for part in path.split("/"):
        if len(part.encode("utf-8")) > limit:
            raise UnsafePathError(
                f"{path!r}: name is {len(part.encode('utf-8'))} bytes, longer than the "
                f"{limit} the target can hold"
            )


def join(root: str, path: RelPath) -> str:
    """`root` and `path` joined with one slash (roots may or may not end in one)."""
    if not root:
        return path
    return f"{root.rstrip('/')}/{path}"


def ancestors(path: str) -> Iterator[RelPath]:
    """The folders above `path`, shortest first ("a", "a/b" for "a/b/c")."""
    end = path.find("/")
    while end != -1:
        yield RelPath(path[:end])
        end = path.find("/", end + 1)


def under_any(path: RelPath, paths: Container[str]) -> bool:
    """True if `path` or a folder above it is in `paths`."""
    return path in paths or any(a in paths for a in ancestors(path))


def conflict_name(path: RelPath, stamp: str, host: str) -> RelPath:
    """`NAME.conflict-STAMP-HOST.EXT` beside `path`, keeping the extension last.

    `stamp` is `YYYYMMDD-HHMMSS`. A leading-dot name (`.bashrc`) has no extension.
    """
    host = "".join(c if c.isalnum() or c in "-_" else "-" for c in host) or "host"
    return stamped_name(path, f"conflict-{stamp}-{host}")


def stamped_name(path: RelPath, stamp: str) -> RelPath:
    """`NAME.STAMP.EXT` beside `path`: the stamp before the extension (none for `.bashrc`),
    so the copy still opens with the program the original opens with.

    NAME is shortened to keep the whole within `MAX_NAME_BYTES`: a name near the limit made
    a copy no disk could hold, and the conflict failed at every run.
    """
    folder, _, name = path.rpartition("/")
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        stem, ext = name, ""
    tail = f".{stamp}" + (f".{ext}" if ext else "")
    if len(tail.encode()) >= MAX_NAME_BYTES:  # an extension too long to keep
        stem, tail = name, f".{stamp}"
    new = _clipped(stem, MAX_NAME_BYTES - len(tail.encode())) + tail
    return RelPath(f"{folder}/{new}" if folder else new)


def _clipped(text: str, limit: int) -> str:
    """The longest start of `text` within `limit` UTF-8 bytes, cut between characters."""
    data = text.encode()
    if len(data) <= limit:
        return text
    return unicodedata.normalize("NFC", data[:limit].decode(errors="ignore"))
