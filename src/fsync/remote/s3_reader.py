"""A streaming reader of one S3 object that survives dropped connections and checks itself.

`S3Reader` is what `S3Remote.open_read` returns. It issues one GetObject and hands out the
body in the sizes asked for, never holding more than one read in memory, or a body of at
most `SMALL_BODY`, read whole with the answer (a cut one is asked for again whole, by the
request's own retries). When the connection breaks mid-body it asks again from the byte
it had reached (`Range: bytes=N-`) with `If-Match` on the ETag of the first answer, so the
pieces always come from one version of the object: if the object was replaced in between,
the store answers 412 and the read fails with `RemoteChanged` instead of splicing two
versions together.

The bytes are also checked as they pass, with the best evidence the object carries: its
`blake3` metadata (written by fsync), else its ETag where that is a plain MD5 (any single-PUT
object), else rclone's `md5chksum` metadata (multipart objects written by rclone). At the end
of the object a mismatch raises `VerificationError`, so even an object written by another
tool is verified where the store gives any means to. `entry` exposes what the GET learnt
(size, ETag, digest and mtime from the metadata) at no extra request.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

from fsync import etags
from fsync.errors import RemoteChanged, TransientError, VerificationError
from fsync.hashing import new_hasher
from fsync.model import Digest
from fsync.remote import s3_meta as sm
from fsync.remote.retry import Clock, RetryPolicy, retrying

if TYPE_CHECKING:
    from collections.abc import Callable

    from _typeshed import WriteableBuffer

    from fsync.model import RemoteEntry

_READALL_STEP = 1 << 20

SMALL_BODY = 1 << 20
"""GetObject bodies up to this size are read whole in the request's own trip to the event
loop (`read_small_body`). Each trip from a transfer thread costs ~140 us of CPU (fsspec's
`sync`), and a small file took three: the request, the read, the release."""


class Transport(Protocol):
    """What the reader needs from `S3Remote`: requests, the event loop, the limits."""

    clock: Clock

    @property
    def retry_policy(self) -> RetryPolicy:
        """How transient failures are retried."""
        ...

    def call(
        self, op: str, what: str, *, body: bytes | bytearray | None = None, **params: Any
    ) -> dict[str, Any]:
        """One S3 operation, retried."""
        ...

    def call_once(self, op: str, what: str, params: dict[str, Any]) -> dict[str, Any]:
        """One S3 operation, one attempt (rate-limited and classified)."""
        ...

    def run_async(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a coroutine function on the client's event loop and return its result."""
        ...

    def classify(self, exc: BaseException, what: str) -> BaseException:
        """The fsync exception for a foreign one."""
        ...

    def throttle(self, nbytes: int) -> None:
        """Wait until the bandwidth limit allows `nbytes`."""
        ...


class S3Reader(io.RawIOBase):
    """A non-seekable binary reader of `s3://bucket/key` from byte `offset` on; raises
    `FileNotFoundError` at construction when the object is absent, and `RemoteChanged` when
    `expect` is given and the object is another version (If-Match answered 412).

    Read from its start, the content is checked against the object's own hash at the end;
    from an offset it cannot be (the reader never sees the prefix), so the caller checks it.
    """

    def __init__(
        self,
        transport: Transport,
        bucket: str,
        key: str,
        what: str,
        *,
        offset: int = 0,
        expect: RemoteEntry | None = None,
    ) -> None:
        super().__init__()
        self._t = transport
        self._params: dict[str, Any] = {"Bucket": bucket, "Key": key}
        self._what = what
        first = dict(self._params)
        if offset:
            first["Range"] = f"bytes={offset}-"
        if expect is not None and expect.fingerprint:
            first["IfMatch"] = expect.fingerprint
        self._body: Any = None

        def opened() -> tuple[dict[str, Any], RemoteEntry]:
            answer = transport.call_once("get_object", what, first)
            self._body = answer["Body"]
            if offset:
                self._check_range(answer, offset)
            entry = sm.entry_from_head(answer)
            if offset:
                entry = replace(entry, size=_total_size(answer.get("ContentRange"), entry.size))
            if expect is not None and expect.fingerprint and entry.size != expect.size:
                self._drop_body()
                if entry.fingerprint and entry.fingerprint != expect.fingerprint:
                    # A store that does not honour If-Match served another version.
                    raise RemoteChanged(f"{what}: changed since it was listed")
                # The version listed, so a length other than its size is a broken answer (a
                # store or proxy answering with nothing), not its content: asked again.
                raise TransientError(
                    f"the store answered with {entry.size} bytes of an object of {expect.size}"
                )
            return answer, entry

        answer, entry = retrying(opened, transport.retry_policy, what=what, clock=transport.clock)
        self.entry: RemoteEntry = entry
        """Size, ETag, and the digest and mtime from the metadata, as the GET answered."""
        self._pos = offset
        self._check = None if offset else _Check.for_object(answer, self.entry)

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        """Up to `size` bytes (all that is left when negative or None); b"" at the end.

        Raises `VerificationError` at the end when the content does not match the object's
        recorded hash, and `RemoteChanged` when the object was replaced during the read.
        """
        if size is None or size < 0:
            return self.readall()
        left = self.entry.size - self._pos
        if size == 0 or left <= 0:
            self._verify()
            return b""
        want = min(size, left)
        data: bytes = retrying(
            lambda: self._read_some(want),
            self._t.retry_policy,
            what=self._what,
            clock=self._t.clock,
        )
        self._pos += len(data)
        if self._check is not None:
            self._check.update(data)
        self._t.throttle(len(data))
        if self._pos >= self.entry.size:
            self._verify()
        return data

    def readall(self) -> bytes:
        """Everything that is left."""
        parts = []
        while block := self.read(_READALL_STEP):
            parts.append(block)
        return b"".join(parts)

    def readinto(self, buffer: WriteableBuffer) -> int:
        """Read into `buffer`; the number of bytes read (0 at the end)."""
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        """Release the connection (a body not read to its end is discarded)."""
        if not self.closed:
            try:
                self._drop_body()
            finally:
                super().close()

    def _read_some(self, want: int) -> bytes:
        """One attempt at the next `want` bytes, re-opening the body where it broke."""
        if self._body is None:
            params = dict(self._params, Range=f"bytes={self._pos}-")
            if self.entry.fingerprint:
                params["IfMatch"] = self.entry.fingerprint
            answer = self._t.call_once("get_object", self._what, params)
            self._body = answer["Body"]
            self._check_range(answer, self._pos)
        body = self._body
        if isinstance(body, bytes | memoryview):  # read with the answer (`read_small_body`)
            if not body:  # a store that answered a range with nothing: as a cut connection
                self._body = None
                raise TransientError("the connection ended early")
            if len(body) <= want:
                self._body = None
                return bytes(body)
            view = memoryview(body)
            self._body = view[want:]  # the rest, without copying it at every read
            return bytes(view[:want])
        try:
            data: bytes = self._t.run_async(_read_up_to, self._body, want)
        except Exception as exc:
            self._drop_body()
            translated = self._t.classify(exc, self._what)
            if translated is exc:
                raise
            raise translated from exc
        if not data:
            self._drop_body()
            raise TransientError("the connection ended early")
        if len(data) < want:
            self._drop_body()  # the body ended before its length: re-open for the rest
        return data

    def _check_range(self, answer: dict[str, Any], offset: int) -> None:
        """Refuse a ranged answer that does not start at `offset` (a store or proxy that
        ignores `Range` sends the whole object: its first bytes must not land mid-file)."""
        if not (answer.get("ContentRange") or "").startswith(f"bytes {offset}-"):
            self._drop_body()
            raise VerificationError(
                f"{self._what}: asked for the bytes from {offset} on, the store answered "
                f"with others ({answer.get('ContentRange') or 'no Content-Range'})"
            )

    def _drop_body(self) -> None:
        body, self._body = self._body, None
        if body is not None and not isinstance(body, bytes | memoryview):
            try:
                self._t.run_async(body.aclose)
            except Exception:
                return

    def _verify(self) -> None:
        check, self._check = self._check, None
        if check is None:
            return
        failed = check.failure()
        if failed is not None:
            raise VerificationError(
                f"{self._what}: the content does not match its {failed} "
                "(corrupted in transit or at rest; nothing was written)"
            )
        if check.stale_metadata():  # the metadata is of other bytes: none of it holds
            self.entry = replace(self.entry, digest=check.blake3(), mtime_ns=None, mode=None)


def _total_size(content_range: str | None, fallback: int) -> int:
    """The object's whole length from a ranged GET's `Content-Range: bytes A-B/TOTAL`."""
    _, _, total = (content_range or "").rpartition("/")
    return int(total) if total.isdigit() else fallback


async def read_small_body(answer: dict[str, Any]) -> None:
    """Replace the streaming body of a GetObject `answer` by its bytes, read to the end,
    when it is at most `SMALL_BODY` long; the connection goes back to the pool at once.

    Raises `TransientError` when the body ends before its length (a dropped connection):
    the request is then retried whole, as a failed request is.
    """
    length = answer.get("ContentLength")
    if not isinstance(length, int) or length > SMALL_BODY:
        return
    body = answer["Body"]
    try:
        data = await _read_up_to(body, length)
    finally:
        await body.aclose()
    if len(data) != length:
        raise TransientError("the connection ended early")
    answer["Body"] = data


async def _read_up_to(body: Any, want: int) -> bytes:
    """Read from an aiobotocore body until `want` bytes or its end."""
    parts = []
    got = 0
    while got < want:
        chunk = await body.read(want - got)
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


class _Check:
    """Running hashes of the bytes read, and the values the object says they should reach:
    its `blake3` metadata, and the MD5 the store computed (a plain, unencrypted ETag) or
    else rclone's `md5chksum` metadata."""

    def __init__(self, blake3: str | None, md5: str | None, md5_label: str) -> None:
        self._blake3 = (blake3, new_hasher()) if blake3 else None
        self._md5 = (md5, hashlib.md5(usedforsecurity=False)) if md5 else None
        self._md5_label = md5_label

    @classmethod
    def for_object(cls, answer: dict[str, Any], entry: RemoteEntry) -> _Check | None:
        """The checks the object allows, or None when it carries no usable hash."""
        if etags.is_plain_md5(entry.fingerprint) and sm.etag_is_md5(answer):
            return cls(entry.digest, entry.fingerprint, "MD5 ETag")
        if entry.digest is not None:
            return cls(entry.digest, None, "")
        md5 = sm.md5_hex_from_base64((answer.get("Metadata") or {}).get(sm.META_MD5))
        return cls(None, md5, "md5chksum metadata") if md5 is not None else None

    def update(self, data: bytes) -> None:
        for check in (self._blake3, self._md5):
            if check is not None:
                check[1].update(data)

    def failure(self) -> str | None:
        """The hash the bytes read do not match (None: they match one of the two).

        Either match vouches for the bytes: a `blake3` the store's MD5 contradicts is stale
        metadata (`stale_metadata`), and an ETag that only looks like an MD5 where the
        `blake3` matches is a store's own kind of ETag (some encrypt without saying so).
        """
        md5_ok = self._md5 is None or self._md5[1].hexdigest() == self._md5[0]
        blake3_ok = self._blake3 is None or self._blake3_matches()
        if md5_ok and (blake3_ok or self._md5 is not None):
            return None
        if not md5_ok and self._blake3 is not None and blake3_ok:
            return None
        return self._md5_label if not md5_ok else "blake3 metadata"

    def blake3(self) -> Digest | None:
        """The blake3 of the bytes read, where it was computed."""
        return Digest(self._blake3[1].hexdigest()) if self._blake3 is not None else None

    def stale_metadata(self) -> bool:
        """True when the bytes match the store's MD5 but not the `blake3` metadata: the
        object was rewritten by a tool that kept fsync's metadata, which is then stale."""
        return self._blake3 is not None and self._md5 is not None and not self._blake3_matches()

    def _blake3_matches(self) -> bool:
        assert self._blake3 is not None
        return bool(self._blake3[1].hexdigest() == self._blake3[0])
