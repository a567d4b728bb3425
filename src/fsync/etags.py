"""Match a local file with an S3 ETag, so objects other tools wrote are adopted, not re-sent.

An object fsync wrote carries its blake3; one written by `aws s3 sync`, rclone or s3cmd
carries only its ETag. A single-part ETag is the content's MD5. A multipart ETag is
`md5(md5(part 1) + ... + md5(part N))-N`: it depends on the part size the writer chose,
which the ETag does not say, but `N` and the size narrow it to the sizes with exactly `N`
parts, and writers use few (aws 8 MiB, rclone 5 MiB, s3cmd 15 MiB, 16 MiB here, each grown
to a whole MiB so 10,000 parts hold the file). Every plausible size is tried in one read of
the file. A match is as strong as an MD5 ETag ever is: enough to adopt a file on the first
sync (the alternative is a download, or a conflict copy of identical content).
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hashlib import _Hash

_MIB = 1 << 20
_PLAIN = re.compile(r"[0-9a-f]{32}")
_MULTIPART = re.compile(r"([0-9a-f]{32})-([1-9][0-9]{0,4})")
_COMMON_PART_MIB = (5, 8, 15, 16, 32, 50, 64, 100, 128, 256, 512, 1024)
"""Part sizes (MiB) S3 writers use by default or are commonly told to use."""
_READ = _MIB
"""Bytes per read: every candidate part size is a whole number of reads."""


def is_plain_md5(etag: str) -> bool:
    """True when a normalised ETag looks like the MD5 of the content (32 lower-case hex).

    Multipart ETags end in `-N`. Beware: with SSE-KMS or SSE-C encryption an ETag has this
    shape but is not the MD5, so treat a match as a claim to verify, not as proof.
    """
    return bool(_PLAIN.fullmatch(etag))


def is_md5_etag(etag: str) -> bool:
    """True for an ETag that may be computed from the content: plain MD5 or multipart."""
    return bool(_PLAIN.fullmatch(etag) or _MULTIPART.fullmatch(etag))


def part_sizes(size: int, parts: int) -> list[int]:
    """The part sizes (whole MiB, ascending) that cut `size` bytes into exactly `parts`."""
    if parts < 1 or size < parts:
        return []
    smallest = -(-size // parts)
    grown = -(-smallest // _MIB) * _MIB  # a writer that grows its part size to fit
    tries = {mib * _MIB for mib in _COMMON_PART_MIB} | {grown}
    return sorted(p for p in tries if -(-size // p) == parts)


def matches(path: str, size: int, etag: str) -> bool:
    """True if the file at `path` (of `size` bytes) has the content `etag` was made from.

    Reads the file once, whatever the number of candidate part sizes. Raises `OSError` if
    the file cannot be read.
    """
    if _PLAIN.fullmatch(etag):
        return _read_into(path, [_Cutter(None)])[0] == etag
    found = _MULTIPART.fullmatch(etag)
    if found is None:
        return False
    parts = int(found.group(2))
    cutters = [_Cutter(p) for p in part_sizes(size, parts)]
    if not cutters:
        return False
    return any(f"{digest}-{parts}" == etag for digest in _read_into(path, cutters))


class _Cutter:
    """Running MD5s of one way of cutting the file into parts (None: the whole file's MD5)."""

    def __init__(self, part_size: int | None) -> None:
        self.part_size = part_size or 0
        self.whole = part_size is None
        self.part: _Hash = hashlib.md5(usedforsecurity=False)
        self.filled = 0
        self.digests: list[bytes] = []

    def update(self, chunk: bytes) -> None:
        self.part.update(chunk)
        self.filled += len(chunk)
        if not self.whole and self.filled >= self.part_size:
            self.digests.append(self.part.digest())
            self.part = hashlib.md5(usedforsecurity=False)
            self.filled = 0

    def result(self) -> str:
        if self.whole:
            return self.part.hexdigest()
        if self.filled:
            self.digests.append(self.part.digest())
        return hashlib.md5(b"".join(self.digests), usedforsecurity=False).hexdigest()


def _read_into(path: str, cutters: list[_Cutter]) -> list[str]:
    """Feed the file to every cutter (part sizes are whole reads); their ETag digests."""
    with open(path, "rb") as f:
        while chunk := f.read(_READ):
            for cutter in cutters:
                cutter.update(chunk)
    return [c.result() for c in cutters]
