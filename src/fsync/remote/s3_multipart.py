"""One multipart upload of one file: continue or create it, send the parts, publish, verify.

s3fs's multipart upload aborts on any error and cannot continue one, so fsync drives the
calls itself (STYLE.md). The upload is journaled (`UploadJournal`) before its first part is
sent; a later run with the same content and metadata (blake3, size, mtime, mode) finds it,
asks the store which parts it holds (ListParts: the store's own record), and re-sends only
the parts whose bytes, re-read from the file in the same single pass that hashes it, do not
match what the store has. A failed upload is never aborted (the next attempt continues it),
except when the source changed: its parts are then worthless and the upload is aborted at
once, as is any journaled upload of the same key with other content or metadata.

Parts are read in order from the source (a hashing stream that must be read exactly once) on
the calling thread and sent by the remote's shared pool; every buffer holds one of the
remote's `transfers` slots until its part is sent, which bounds the memory of all uploads
together at `transfers` x part size.

The whole content's MD5 (`md5chksum`, as rclone writes it) belongs in the metadata, which
CreateMultipartUpload fixes before the first part is read. So it is read ahead, through the
source's descriptor without moving it, as rclone does for a local file, together with the
blake3 that the object will carry: the MD5 is then of the content the caller checks it sent
against that blake3 (`before_publish`), not of a version the file held in between. It used
to be added afterwards by copying the object onto itself, which cost a CopyObject per file
(moto re-hashed 64 MiB in 0.2-0.36 s), stopped at CopyObject's 5 GiB, and left two
versions of every large file in a versioned bucket. A source that is not a regular file, or
content of unknown blake3, gets no `md5chksum`. Since the metadata is fixed at creation, the
journal keeps it, and an upload is continued only when the object still needs the same (a
file touched or chmod-ed since gets a new upload).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import stat
import threading
import time
from concurrent.futures import Future
from concurrent.futures import wait as wait_futures
from typing import TYPE_CHECKING, Any, BinaryIO

from fsync.errors import (
    FileChangedError,
    Halted,
    RemoteChanged,
    TransientError,
    VerificationError,
)
from fsync.hashing import hash_descriptor
from fsync.model import PendingUpload, RemoteEntry
from fsync.remote import chunking
from fsync.remote import s3_meta as sm
from fsync.remote.base import ObjectMeta, same_version
from fsync.remote.retry import HALT_POLL, retrying

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from fsync.remote.s3 import S3Remote

READ_SIZE = 1 << 20
"""Bytes asked of the source per read while filling a buffer (the engine's progress step)."""

Parts = dict[int, tuple[str, int]]
"""Part number -> (ETag as the store gave it, size)."""


def read_part(source: BinaryIO, length: int, what: str) -> bytearray:
    """Exactly `length` bytes from `source`, read in `READ_SIZE` steps into one buffer.

    `readinto` is used where the source has it, so the part is the only allocation: with many
    threads, glibc's arenas keep freed 1 MiB read blocks, and a list of reads joined into
    `bytes` doubles each part while it is built (measured: 1.3 GB peak instead of 0.6 GB for
    eight 64 MiB parts). Raises `FileChangedError` when the source ends first (it shrank).
    """
    buf = bytearray(length)
    view = memoryview(buf)
    filled = 0
    readinto = getattr(source, "readinto", None)
    while filled < length:
        step = min(READ_SIZE, length - filled)
        try:
            got = readinto(view[filled : filled + step]) if readinto is not None else None
        except NotImplementedError:  # io.RawIOBase subclasses that only define read()
            readinto, got = None, None
        if got is None:
            chunk = source.read(step)
            got = len(chunk)
            view[filled : filled + got] = chunk
        if not got:
            raise FileChangedError(f"{what}: the file ended {length - filled} bytes early")
        filled += got
    view.release()
    return buf


class SharedBody(io.BytesIO):
    """A request body that reads a part's buffer in place, never copying it.

    A BytesIO is what aiohttp streams best (in the event loop, 64 KiB at a time) and what
    botocore can seek to sign and measure; but `io.BytesIO(buffer)` copies the buffer, and
    aiohttp's `getbuffer()` on a BytesIO sharing immutable bytes copies them too (measured:
    1.05 GB of Python memory for eight 64 MiB parts). This subclass keeps no data of its
    own: every read, seek and view goes to a read-only view of the caller's buffer, so a part
    in flight costs its own size once.
    """

    def __init__(self, data: bytes | bytearray) -> None:
        super().__init__()
        self._view = memoryview(data).toreadonly()
        self._pos = 0

    def read(self, size: int | None = -1) -> bytes:
        end = len(self._view) if size is None or size < 0 else self._pos + size
        chunk = self._view[self._pos : end].tobytes()
        self._pos += len(chunk)
        return chunk

    read1 = read

    def readinto(self, buffer: Any) -> int:
        target = memoryview(buffer).cast("B")
        chunk = self._view[self._pos : self._pos + len(target)]
        target[: len(chunk)] = chunk
        self._pos += len(chunk)
        return len(chunk)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: len(self._view)}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def getbuffer(self) -> memoryview:  # type: ignore[override]
        """A new read-only view of the body (its holder may release it)."""
        return self._view[:]

    def getvalue(self) -> bytes:
        """The whole body as bytes (a copy; nothing on the upload path asks for it)."""
        return self._view.tobytes()


class MultipartPut:
    """Uploads one file in parts to `key` of `remote`'s bucket; use `run` once."""

    def __init__(
        self,
        remote: S3Remote,
        key: str,
        meta: ObjectMeta,
        what: str,
        *,
        halted: threading.Event | None = None,
        stopping: Callable[[], bool] | None = None,
    ) -> None:
        self.remote = remote
        self.key = key
        self.meta = meta
        self.what = what
        self.halted = halted
        """Set when the run is abandoned (Ctrl-C): no part is sent or waited for after it,
        and the upload is left journaled, not completed. Reading the source stops too, but
        only while parts are read: a file of a few parts is read whole at once, and its
        sends then took minutes under `--bw-limit`, with the upload completed at the end."""
        self.stopping = stopping
        """True once the run stops gracefully (a watch's Ctrl-C): no further part is read or
        started, the parts already going out are waited for, and the upload is left
        journaled (`Halted`). Without it, a watch's stop waited for the whole file."""
        self._quit = _Quit(halted, stopping)
        """Set for a part not yet going out by either kind of stop (`--bw-limit` waits)."""
        self.target = f"s3://{remote.bucket}/{key}"
        self.part_size = chunking.part_size_for(meta.size, remote.settings.chunk_size)
        self.held = 0
        """Bytes of the parts the store already held (sent by an earlier run), not sent."""
        self._on_sent: Callable[[int], None] | None = None

    def run(
        self,
        source: BinaryIO,
        expect: RemoteEntry | None,
        before_publish: Callable[[], None],
        on_sent: Callable[[int], None] | None = None,
    ) -> RemoteEntry:
        """Send, check `before_publish` and `expect`, complete, verify; the new entry.
        `on_sent` hears each part's bytes once the store has them (sent, or held)."""
        upload, done = self._begin(
            sm.object_metadata(self.meta, _md5_ahead(source, self.meta, self.what))
        )
        self._on_sent = on_sent
        etags = self._send_all(upload, done, source)
        self._stop_if_halted()
        try:
            before_publish()
        except BaseException:
            self.remote.abort_upload(self.key, upload.upload_id, self.what)
            raise
        if not same_version(self.remote.head(self.key, self.what), expect):
            raise RemoteChanged(f"{self.what}: changed since it was listed (left unpublished)")
        self._complete(upload, etags, expect)
        head = self.remote.head(self.key, self.what)
        meta = self.meta
        if head is None or head.size != meta.size or (meta.digest and head.digest != meta.digest):
            raise VerificationError(
                f"{self.what}: after completing, the object is not what was sent"
            )
        return sm.written_entry(meta, head.fingerprint)

    # -- starting or continuing ------------------------------------------------------------

    def _begin(self, metadata: dict[str, str]) -> tuple[PendingUpload, Parts]:
        """The journaled upload of this very content and `metadata` with its parts on the
        store, or a new upload with `metadata`; every other journaled upload of the key is
        aborted."""
        remote, meta = self.remote, self.meta
        tag = sm.metadata_tag(metadata)
        resumed: tuple[PendingUpload, Parts] | None = None
        journal = remote.journal
        for old in journal.for_target(self.target) if journal is not None else ():
            same = bool(meta.digest) and (old.digest, old.size, old.part_size, old.metadata) == (
                meta.digest,
                meta.size,
                self.part_size,
                tag,
            )
            if resumed is None and same:
                parts = self._list_parts(old.upload_id)
                if parts is not None:
                    resumed = old, parts
                    continue
            remote.abort_upload(self.key, old.upload_id, self.what)
        if resumed is not None:
            return resumed
        answer = remote.call(
            "create_multipart_upload",
            self.what,
            Bucket=remote.bucket,
            Key=self.key,
            Metadata=metadata,
        )
        upload = PendingUpload(
            self.target,
            str(answer["UploadId"]),
            meta.digest,
            meta.size,
            self.part_size,
            time.time(),
            tag,
            remote.key,
        )
        if journal is not None:
            journal.start(upload)
        return upload, {}

    def _list_parts(self, upload_id: str) -> Parts | None:
        """The parts the store holds for an upload, or None when the upload is gone
        (NoSuchUpload; Ceph answers NoSuchKey)."""
        parts: Parts = {}
        params: dict[str, Any] = {"Bucket": self.remote.bucket, "Key": self.key}
        params["UploadId"] = upload_id
        while True:
            try:
                page = self.remote.call("list_parts", self.what, **params)
            except FileNotFoundError:
                return None
            for item in page.get("Parts") or ():
                parts[int(item["PartNumber"])] = (str(item["ETag"]), int(item["Size"]))
            marker = page.get("NextPartNumberMarker")
            if not page.get("IsTruncated") or not marker:
                return parts
            params["PartNumberMarker"] = marker

    # -- sending ---------------------------------------------------------------------------

    def _send_all(self, upload: PendingUpload, done: Parts, source: BinaryIO) -> dict[int, str]:
        """Read every part in order; send those the store lacks, `transfers` at a time.

        Returns each part's ETag. On a failure no part is started after it, the sends
        already running finish, the rest are cancelled, the upload stays journaled, and the
        first error is raised once nothing of it is in flight. A graceful stop (`stopping`)
        likewise reads no further part and raises `Halted` once the parts going out are sent.
        """
        slots = self.remote.slots
        running: dict[Future[tuple[str, bool]], int] = {}
        failures: list[BaseException] = []

        def finished(future: Future[tuple[str, bool]]) -> None:
            error = None if future.cancelled() else future.exception()
            if error is not None:
                failures.append(error)
            slots.release()  # (after: the slot it frees must not start the next part)

        try:
            for number, _, length in chunking.parts(upload.size, upload.part_size):
                if not self._take_slot():
                    break
                try:
                    if failures:  # (the slot a failed send freed: no part after it)
                        raise failures[0]
                    body = read_part(source, length, self.what)
                except BaseException:
                    slots.release()
                    raise
                have = done.get(number)
                future = self.remote.pool.submit(self._send_part, upload, number, body, have)
                running[future] = number
                future.add_done_callback(finished)
            self._wait_for(running)
            if failures:
                raise failures[0]
            if len(running) < chunking.part_count(upload.size, upload.part_size):
                raise Halted(f"{self.what}: stopped; the upload goes on from here next time")
        except BaseException as err:
            for future in running:
                future.cancel()
            if not isinstance(err, Halted):
                # A send left running went on retrying after the upload was given up: beside
                # the next attempt's resume, which could list the parts without it.
                with contextlib.suppress(Halted):
                    self._wait_for(running)
            raise
        return self._etags(running, done)

    def _etags(self, sent: dict[Future[tuple[str, bool]], int], done: Parts) -> dict[int, str]:
        """Each part's ETag from its finished send; the parts the store held count in `held`."""
        etags: dict[int, str] = {}
        for future, number in sent.items():
            etag, was_sent = future.result()
            etags[number] = etag
            if not was_sent:
                self.held += done[number][1]
        return etags

    def _send_part(
        self, upload: PendingUpload, number: int, body: bytearray, have: tuple[str, int] | None
    ) -> tuple[str, bool]:
        """Send one part unless the store already has these bytes (`have`: its ETag and size
        of this part); return the part's ETag once it proved to be the body's MD5, and
        whether it was sent.

        The part's MD5 is taken here, on a pool thread, not by the thread reading the file,
        which hashes every byte with blake3 as it reads: the two run on two cores (hashlib
        lets go of the GIL), not one after the other.
        """
        md5 = hashlib.md5(body, usedforsecurity=False).hexdigest()
        if have is not None and (sm.normalise_etag(have[0]), have[1]) == (md5, len(body)):
            self._sent(len(body))
            return have[0], False
        remote = self.remote
        what = f"writing part {number} of {self.target}"
        params = {
            "Bucket": remote.bucket,
            "Key": self.key,
            "UploadId": upload.upload_id,
            "PartNumber": number,
            "ContentMD5": sm.md5_base64(md5),
        }

        def attempt() -> str:
            self._stop_if_halted()
            if self._quit.is_set():  # a graceful stop: a part not going out yet waits
                raise Halted(f"{what}: stopped")
            remote.throttle(len(body), self._quit)
            answer = remote.call_once("upload_part", what, dict(params, Body=SharedBody(body)))
            etag = str(answer.get("ETag") or "")
            if sm.etag_is_md5(answer) and sm.normalise_etag(etag) not in ("", md5):
                raise TransientError("the store received other bytes than were sent")
            return etag or f'"{md5}"'

        etag = retrying(attempt, remote.retry_policy, what=what, clock=remote.clock)
        self._sent(len(body))
        return etag, True

    def _sent(self, nbytes: int) -> None:
        """Tell `run`'s `on_sent` that the store has `nbytes` more of the file."""
        if self._on_sent is not None:
            self._on_sent(nbytes)

    def _take_slot(self) -> bool:
        """One of the remote's `transfers` slots, once a part in flight frees one; False
        (no slot taken) once the run stops gracefully: no further part is started."""
        poll = None if self.halted is None and self.stopping is None else HALT_POLL
        while True:
            self._stop_if_halted()
            if self.stopping is not None and self.stopping():
                return False
            if self.remote.slots.acquire(timeout=poll):
                return True

    def _wait_for(self, sends: Iterable[Future[tuple[str, bool]]]) -> None:
        """Until every one of `sends` is done (`Halted` once the run is abandoned)."""
        poll = None if self.halted is None else HALT_POLL
        left = set(sends)
        while left:
            self._stop_if_halted()
            left = wait_futures(left, timeout=poll).not_done

    def _stop_if_halted(self) -> None:
        """Raise `Halted` if the run is abandoned."""
        if self.halted is not None and self.halted.is_set():
            raise Halted(f"{self.what}: interrupted")

    # -- publishing ------------------------------------------------------------------------

    def _complete(
        self, upload: PendingUpload, etags: dict[int, str], expect: RemoteEntry | None
    ) -> None:
        """CompleteMultipartUpload with the same condition as a single PUT (Ceph ignores it;
        the HEAD just before narrows the window there), then forget the journal row."""
        remote = self.remote
        parts = [{"PartNumber": n, "ETag": etags[n]} for n in sorted(etags)]
        try:
            remote.call(
                "complete_multipart_upload",
                self.what,
                Bucket=remote.bucket,
                Key=self.key,
                UploadId=upload.upload_id,
                MultipartUpload={"Parts": parts},
                **sm.write_condition(expect),
            )
        except (RemoteChanged, FileNotFoundError) as exc:
            # A retry after a lost answer finds the upload gone and the object ours.
            mine = remote.head(self.key, self.what)
            if mine is None or not sm.is_same_write(mine, self.meta, None):
                if isinstance(exc, FileNotFoundError) and remote.journal is not None:
                    remote.journal.finish(upload.upload_id)
                raise RemoteChanged(f"{self.what}: changed since it was listed") from exc
        if remote.journal is not None:
            remote.journal.finish(upload.upload_id)


class _Quit:
    """Set (`is_set`) once either a halt or a graceful stop is asked for."""

    def __init__(self, halted: threading.Event | None, stopping: Callable[[], bool] | None):
        self._halted = halted
        self._stopping = stopping

    def is_set(self) -> bool:
        """True once the run is abandoned or stops gracefully."""
        return (self._halted is not None and self._halted.is_set()) or (
            self._stopping is not None and self._stopping()
        )


def _md5_ahead(source: BinaryIO, meta: ObjectMeta, what: str) -> str | None:
    """The MD5 of the content `meta` describes, read from the regular file behind `source`
    without moving `source`; None when there is no such file or `meta` has no digest.

    Raises `FileChangedError` when the file does not hold that content any more (its blake3
    or its size differ): the caller hashes it again and starts over.
    """
    if not meta.digest:
        return None
    try:
        fd = source.fileno()
        regular = stat.S_ISREG(os.fstat(fd).st_mode)
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both
        return None
    if not regular:
        return None  # a pipe or a device: nothing to read ahead
    md5 = hashlib.md5(usedforsecurity=False)
    read, digest = hash_descriptor(fd, meta.size, also=md5.update)
    if read != meta.size or digest != meta.digest:
        raise FileChangedError(f"{what}: the file changed since it was hashed")
    return md5.hexdigest()
