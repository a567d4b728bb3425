"""S3 object metadata and ETags, as plain values: what fsync writes and how it reads it back.

Pure functions, no botocore: the formats here are a contract with other tools. `mtime` is
written exactly as rclone writes it (`X-Amz-Meta-Mtime`, decimal seconds with up to nine
fractional digits), `mode` as rclone's metadata does (octal, unix style: `0100644`),
`md5chksum` as rclone's base64 MD5 of a multipart object's whole content, and `blake3` is
fsync's own digest. ETags come back quoted from some stores and unquoted from others (Ceph's
CopyObject), and empty from Ceph's CompleteMultipartUpload; `normalise_etag` makes them
comparable.
"""

from __future__ import annotations

import base64
import json
import re
import stat
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from fsync.etags import is_plain_md5
from fsync.model import Digest, RemoteEntry
from fsync.remote.base import ObjectMeta

META_BLAKE3 = "blake3"
META_MTIME = "mtime"
META_MODE = "mode"
META_MD5 = "md5chksum"
"""User-metadata keys (sent as `X-Amz-Meta-<key>`; S3 returns them lower-case)."""

_NS_PER_S = 1_000_000_000
_BLAKE3_HEX = re.compile(r"^[0-9a-f]{64}$")
_MTIME = re.compile(r"^(-?)(\d+)(?:\.(\d*))?$")
_TIME_T_LIMIT = 1 << 63
"""Whole seconds no file's time can reach: a 64-bit `time_t` (`os.utime` raises past it).
A file's time may well pass 2262 (2**63 ns), which `touch` gives and a folder remote keeps."""
_MTIME_WHOLE_DIGITS = len(str(_TIME_T_LIMIT))
_MODE_MAX = 0o177777
"""The largest `st_mode`: four bits of file type, twelve of permissions."""


def format_mtime(mtime_ns: int) -> str:
    """Nanoseconds since the epoch as rclone's `mtime` metadata.

    Decimal seconds, fixed point, trailing zeros of the fraction dropped and no dot when
    the fraction is zero: 1600000000123456789 -> "1600000000.123456789",
    1600000000500000000 -> "1600000000.5", 1600000000000000000 -> "1600000000".
    """
    if mtime_ns < 0:
        return "-" + format_mtime(-mtime_ns)
    seconds, fraction = divmod(mtime_ns, _NS_PER_S)
    digits = f"{fraction:09d}".rstrip("0")
    return f"{seconds}.{digits}" if digits else str(seconds)


def parse_mtime(text: str | None) -> int | None:
    """rclone's `mtime` metadata as nanoseconds, or None when absent, not in that format, or
    beyond what a file's time can be (signed 64-bit seconds).

    Exact for up to nine fractional digits; further digits are cut, as rclone does.
    """
    if text is None:
        return None
    match = _MTIME.match(text.strip())
    if match is None:
        return None
    sign, whole, fraction = match.groups()
    whole = whole.lstrip("0") or "0"
    if len(whole) > _MTIME_WHOLE_DIGITS:
        return None  # int() of thousands of digits is slow, and refused past 4300
    if int(whole) >= _TIME_T_LIMIT:
        return None  # no file can be given it (another tool's nonsense)
    ns = int(whole) * _NS_PER_S + int(((fraction or "")[:9]).ljust(9, "0"))
    return -ns if sign else ns


def format_mode(mode: int) -> str:
    """A `st_mode` as rclone's `mode` metadata: octal with a leading zero (`0100644`)."""
    return f"0{mode:o}"


def parse_mode(text: str | None) -> int | None:
    """The `mode` metadata as an integer, or None when absent, not octal, or no file's mode.

    Another tool's `-1` or 22 sevens would reach `stat.S_IMODE`, which raises OverflowError
    beyond 32 bits and ended the whole run: such a value says as little as "rwx" does.
    """
    if not text:
        return None
    try:
        mode = int(text.strip(), 8)
    except ValueError:
        return None
    return mode if 0 <= mode <= _MODE_MAX else None


def normalise_etag(etag: object) -> str:
    """An ETag without surrounding quotes or whitespace ("" when absent)."""
    if not isinstance(etag, str):
        return ""
    return etag.strip().strip('"')


def md5_base64(md5_hex: str) -> str:
    """A hex MD5 as base64, the form of `Content-MD5` and of `md5chksum`."""
    return base64.b64encode(bytes.fromhex(md5_hex)).decode("ascii")


def md5_hex_from_base64(value: str | None) -> str | None:
    """A base64 MD5 (`md5chksum`) as hex, or None when absent or malformed."""
    if not value:
        return None
    try:
        raw = base64.b64decode(value, validate=True)
    except ValueError:
        return None
    return raw.hex() if len(raw) == 16 else None


def object_metadata(meta: ObjectMeta, md5_hex: str | None = None) -> dict[str, str]:
    """The user metadata fsync writes for content described by `meta`.

    `blake3` is left out when `meta.digest` is empty (a caller that does not know it);
    `md5chksum` only when `md5_hex` is given. rclone reads it on multipart objects, whose
    ETag is not an MD5; on a single-part one it ties the metadata to the content
    (`entry_from_head`).
    """
    out = {META_MTIME: format_mtime(meta.mtime_ns), META_MODE: format_mode(meta.mode)}
    if meta.digest:
        out[META_BLAKE3] = meta.digest
    if md5_hex:
        out[META_MD5] = md5_base64(md5_hex)
    return out


def metadata_tag(metadata: Mapping[str, str]) -> str:
    """`metadata` in one canonical spelling: what the upload journal keeps of an upload's
    metadata, to continue it only when the object still needs exactly the same."""
    return json.dumps(dict(metadata), sort_keys=True, separators=(",", ":"))


def digest_from_metadata(metadata: Mapping[str, str] | None) -> Digest | None:
    """The `blake3` metadata as a `Digest`, or None when absent or malformed."""
    value = (metadata or {}).get(META_BLAKE3, "").strip().lower()
    return Digest(value) if _BLAKE3_HEX.match(value) else None


def entry_from_head(response: Mapping[str, Any]) -> RemoteEntry:
    """A `RemoteEntry` from a HeadObject or GetObject response (botocore's dict shape).

    Unlike a listing entry it carries the digest and mtime from the metadata, where the
    object has them. `LastModified` is never used as the mtime: it is when the object was
    written, in whole seconds on some stores, not when the file was modified.
    """
    metadata = response.get("Metadata") or {}
    etag = normalise_etag(response.get("ETag"))
    size = int(response.get("ContentLength") or 0)
    written = response.get("LastModified")
    written_ns = int(written.timestamp() * 1e9) if isinstance(written, datetime) else None
    if _stale(metadata, etag, response):
        return RemoteEntry(size=size, fingerprint=etag, written_ns=written_ns)
    mode = parse_mode(metadata.get(META_MODE))
    return RemoteEntry(
        size=size,
        fingerprint=etag,
        digest=digest_from_metadata(metadata),
        mtime_ns=parse_mtime(metadata.get(META_MTIME)),
        mode=None if mode is None else stat.S_IMODE(mode),
        written_ns=written_ns,
    )


def _stale(metadata: Mapping[str, str], etag: str, response: Mapping[str, Any]) -> bool:
    """True when the metadata describes other content than the object holds: its
    `md5chksum` is not the MD5 the store computed (a plain ETag, unencrypted). A tool that
    rewrites an object keeping its user metadata (as some FUSE mounts do) leaves fsync's
    `blake3` on other bytes; believed, it would make the new content pass for the old."""
    md5 = md5_hex_from_base64(metadata.get(META_MD5))
    return md5 is not None and is_plain_md5(etag) and etag_is_md5(response) and md5 != etag


def written_entry(meta: ObjectMeta, fingerprint: str) -> RemoteEntry:
    """The entry of an object just written from `meta`: what a HEAD of it would give."""
    return RemoteEntry(
        size=meta.size,
        fingerprint=fingerprint,
        digest=meta.digest or None,
        mtime_ns=meta.mtime_ns,
        mode=stat.S_IMODE(meta.mode),
    )


def entry_from_listing(item: Mapping[str, Any]) -> RemoteEntry:
    """A `RemoteEntry` from one ListObjectsV2 `Contents` item: size and ETag only."""
    return RemoteEntry(
        size=int(item.get("Size") or 0), fingerprint=normalise_etag(item.get("ETag"))
    )


_ISO_TIME = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d+))?Z")
_HTTP_TIME = re.compile(
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\d\d) ([A-Z][a-z]{2}) (\d{4}) (\d\d):(\d\d):(\d\d) GMT"
)
_MONTHS = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}


def parse_time(text: str) -> datetime | None:
    """The instant an S3 answer's timestamp names, if it has one of the two forms stores use:
    ISO 8601 in UTC as in listings (`2026-11-26T17:33:59.123Z`), or an HTTP date as in
    headers (`Thu, 26 Nov 2026 17:33:59 GMT`). None for any other form or an impossible date.

    botocore reads every timestamp with dateutil's general parser: 33 µs a time, a quarter
    of a LIST's time here (every listed key carries one). This takes ~3 µs; the caller falls
    back to botocore's parser where this returns None, and refuses what dateutil would read
    otherwise (a two-digit year). Digits past the microseconds are dropped, as dateutil
    drops them.
    """
    if iso := _ISO_TIME.fullmatch(text):
        year, month, day, hour, minute, second, fraction = iso.groups()
        micros = int(fraction[:6].ljust(6, "0")) if fraction else 0
        fields = (int(year), int(month), int(day), int(hour), int(minute), int(second), micros)
    elif (
        (http := _HTTP_TIME.fullmatch(text))
        and (number := _MONTHS.get(http[2]))
        and int(http[3]) >= 100  # dateutil takes years 0001-0099 for 2001-2099: its call
    ):
        day, _, year, hour, minute, second = http.groups()
        fields = (int(year), number, int(day), int(hour), int(minute), int(second), 0)
    else:
        return None
    try:
        return datetime(*fields, tzinfo=UTC)
    except ValueError:  # a 31st of April, a leap second: botocore's parser decides
        return None


def seconds_since(when: object, now: float) -> float | None:
    """Seconds from a listed datetime (`Initiated`, `LastModified`) to `now` (epoch seconds)."""
    if not isinstance(when, datetime):
        return None
    return now - when.timestamp()


def write_condition(expect: RemoteEntry | None) -> dict[str, str]:
    """The request condition for writing over `expect`: absent, or still its ETag.

    `If-Match` carries the ETag without quotes: Ceph honours it only so (moto takes either).
    An `expect` without a fingerprint gives no condition (the caller checks by HEAD).
    """
    if expect is None:
        return {"IfNoneMatch": "*"}
    return {"IfMatch": expect.fingerprint} if expect.fingerprint else {}


def etag_is_md5(answer: Mapping[str, Any]) -> bool:
    """False when an answer shows KMS (`aws:kms`, `aws:kms:dsse`) or customer-key
    encryption: its ETag is then not the MD5 of the content, so it proves nothing about the
    bytes (and checked as one, every read of such an object failed)."""
    kms = str(answer.get("ServerSideEncryption") or "").startswith("aws:kms")
    return not kms and not answer.get("SSECustomerAlgorithm")


def is_same_write(entry: RemoteEntry, meta: ObjectMeta, md5: str | None) -> bool:
    """True when `entry` (from a HEAD) is the write of `meta` just attempted.

    Used after a retried request met its own earlier success (a lost answer): the same
    size, mtime and blake3 metadata, and, when `md5` is given, an ETag equal to it.
    """
    if entry.size != meta.size or entry.mtime_ns != meta.mtime_ns:
        return False
    if meta.digest and entry.digest != meta.digest:
        return False
    return md5 is None or entry.fingerprint == md5
