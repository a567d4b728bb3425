"""The S3 remote: one listing per run, verified single PUTs, resumable multipart uploads.

Built on s3fs's client (its session, credentials and event loop), but every S3 operation is
called here directly on the aiobotocore client, so that nothing retries behind fsync's back:
botocore's own retries are off (`total_max_attempts=1`), s3fs's `_error_wrapper` is not on
the path (it sleeps and retries on its own, translates errors into bare `OSError`s, and its
multipart upload aborts on any error and cannot continue). Each request goes through
`S3Remote.call`: rate limits, one attempt, `s3_errors.classify`, and `retrying` around it.

Writes follow DESIGN.md: a file up to the chunk size is one PutObject carrying Content-MD5
and a condition (`If-None-Match: *` for a new object, `If-Match: <etag>` for an overwrite),
and the ETag that comes back must equal the MD5 computed while reading; nothing else is
requested. A larger file is a multipart upload: its MD5 is read ahead from the file (for
the `md5chksum` metadata), then its parts are read in order from the source and sent in
parallel; the upload is journaled so a killed run continues it.
Memory in flight is bounded by one semaphore per remote: at most `transfers` buffers of one
part (or one whole small file) exist at once, whatever mix of files is being sent (plus,
briefly, the read buffer of a part being filled).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import os
import sys
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import urlsplit, urlunsplit

import s3fs
from aiobotocore.session import AioSession
from botocore.utils import parse_timestamp as botocore_timestamp
from fsspec.asyn import sync

from fsync import __version__
from fsync.errors import (
    ConfigError,
    PermanentError,
    RemoteChanged,
    RemoteUnavailable,
    SettingError,
    StorageOptionError,
    TransientError,
    UnsafePathError,
    VerificationError,
    one_line,
)
from fsync.model import RelPath, RemoteEntry
from fsync.paths import join
from fsync.redact import redact_url
from fsync.remote import chunking
from fsync.remote import s3_meta as sm
from fsync.remote.base import (
    IN_USE_SECONDS,
    Capabilities,
    Listing,
    ObjectMeta,
    UploadJournal,
    is_temp_name,
    relpath_from_key,
    same_version,
)
from fsync.remote.retry import REAL_CLOCK, Clock, Flag, RateLimiter, RetryPolicy, retrying
from fsync.remote.s3_errors import Unsupported, classify
from fsync.remote.s3_multipart import MultipartPut, SharedBody, read_part
from fsync.remote.s3_reader import S3Reader, read_small_body

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from fsync.model import Digest, PendingUpload

MIB = 1 << 20

CAPABILITIES = Capabilities(
    stores_digest=True,
    sets_mtime=False,
    server_side_copy=True,
    reports_sent=True,
)


@dataclass(frozen=True, slots=True)
class S3Settings:
    """The transfer knobs of one S3 remote (from the command line)."""

    chunk_size: int = 16 * MIB
    transfers: int = 8
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: float | None = None
    """Seconds for connecting and for each read from a socket; None keeps botocore's 60."""
    tps_limit: float = 0
    bw_limit: float = 0
    """Bytes per second over all bodies sent and received; 0 is unlimited."""

    def __post_init__(self) -> None:
        """Raise `SettingError`, naming the option, for a value S3 or fsync cannot use."""
        size = self.chunk_size
        if size < chunking.MIN_PART_SIZE:
            raise SettingError("chunk_size", f"{size} is below S3's 5 MiB minimum part size")
        if size > chunking.MAX_PART_SIZE:
            raise SettingError("chunk_size", f"{size} is above S3's 5 GiB part limit")
        if self.transfers < 1:
            raise SettingError("transfers", "must be at least 1")
        if self.timeout is not None and not self.timeout > 0:
            raise SettingError("timeout", "must be a positive number of seconds")
        for name in ("tps_limit", "bw_limit"):
            if getattr(self, name) < 0:
                raise SettingError(name, "must not be negative")


def split_url(url: str) -> tuple[str, str]:
    """(bucket, key prefix without slashes at either end) of an `s3://` or `s3a://` URL."""
    _, sep, rest = url.partition("://")
    if not sep:
        raise ConfigError(f"not an s3:// URL: {url}")
    bucket, _, prefix = rest.strip("/").partition("/")
    if not bucket:
        raise ConfigError(f"{url} names no bucket (expected s3://BUCKET/PREFIX)")
    prefix = prefix.strip("/")
    if ".." in prefix.split("/"):
        # Keys under `s3://b/../up` were written as `../up/...`, which tools copying keys to
        # a disk take as a step up. (`a//b` and `a/./b` name keys fsync can sync, others'.)
        raise ConfigError(
            f"{url} has a '..' folder in its prefix, which tools copying its keys to a disk "
            "take as a step up; name the prefix without it"
        )
    return bucket, prefix


def _canonical_endpoint(url: str) -> str:
    """`url` with its scheme and host in lower case and no trailing slash: one store, one
    key of its base (`S3Remote.key`). `HTTP://Store:9000/` had a base of its own, empty,
    so a file deleted on the remote since came back. A URL naming a user is left as it is
    (but its slash). Bases recorded under capitals were renamed (schema 0013)."""
    parts = urlsplit(url.rstrip("/"))
    if "@" in parts.netloc:
        return url.rstrip("/")
    scheme, netloc = parts.scheme.lower(), parts.netloc.lower()
    return urlunsplit((scheme, netloc, parts.path, parts.query, parts.fragment))


class S3Remote:
    """A tree of objects under `s3://bucket/prefix`; satisfies `fsync.remote.base.Remote`."""

    capabilities = CAPABILITIES

    def __init__(
        self,
        url: str,
        *,
        storage_options: dict[str, Any] | None = None,
        endpoint_url: str | None = None,
        settings: S3Settings | None = None,
        journal: UploadJournal | None = None,
        clock: Clock = REAL_CLOCK,
    ) -> None:
        self.bucket, self.prefix = split_url(url)
        # One spelling per place: `s3://b/x/`, `s3://b//x` and `s3a://b/x` name the objects
        # of `s3://b/x`, and the URL keys the base (`key`): each spelling had a base of its own.
        self.url = f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"
        self.settings = settings or S3Settings()
        self.journal = journal
        self.clock = clock
        self.fs = _make_fs(storage_options or {}, endpoint_url, self.settings)
        # What messages name the store by (the key below asks the client itself).
        self._endpoint = str(
            self.fs.endpoint_url
            or self.fs.client_kwargs.get("endpoint_url")
            or os.environ.get("AWS_ENDPOINT_URL_S3")
            or os.environ.get("AWS_ENDPOINT_URL")
            or "S3"
        )
        self._store: str | None = None
        """The endpoint the client talks to, "" for AWS's own; found on first use of `key`."""
        self._timed_session: object = None
        """The session whose answers' timestamps `_timestamp` reads (s3fs may make a new one
        when its connections are all closed; that one is set up again)."""
        self._set_up_client: object = None
        """The client whose writes go without `Expect: 100-continue` (`_client`)."""
        self._tps = RateLimiter(self.settings.tps_limit, clock=clock)
        # A second's worth of burst: parts go in 1 MiB steps, so the rate holds within a part.
        self._bw = RateLimiter(
            self.settings.bw_limit, burst=max(MIB, self.settings.bw_limit), clock=clock
        )
        self.slots = threading.BoundedSemaphore(self.settings.transfers)
        self.pool = ThreadPoolExecutor(
            max_workers=self.settings.transfers, thread_name_prefix="fsync-s3-part"
        )

    # -- requests --------------------------------------------------------------------------

    def call(
        self,
        op: str,
        what: str,
        *,
        body: bytes | bytearray | None = None,
        halted: threading.Event | None = None,
        **params: Any,
    ) -> dict[str, Any]:
        """One S3 operation with rate limits, error classification and retries.

        `body` is sent as the request body, from a fresh stream on every attempt; its wait
        for `--bw-limit` ends in `Halted` once `halted` is set.
        """

        def attempt() -> dict[str, Any]:
            self._tps.acquire()
            if body is None:
                return self._once(op, what, params)
            self.throttle(len(body), halted)
            return self._once(op, what, dict(params, Body=SharedBody(body)))

        return retrying(attempt, self.settings.retry, what=what, clock=self.clock)

    def call_once(self, op: str, what: str, params: dict[str, Any]) -> dict[str, Any]:
        """One attempt at an S3 operation: rate-limited and classified, not retried."""
        self._tps.acquire()
        return self._once(op, what, params)

    @property
    def retry_policy(self) -> RetryPolicy:
        """How this remote retries transient failures (`--retries`)."""
        return self.settings.retry

    def _once(self, op: str, what: str, params: dict[str, Any]) -> dict[str, Any]:
        try:
            result: dict[str, Any] = sync(self.fs.loop, self._request, op, params)
        except Exception as exc:
            translated = classify(exc, what, self._endpoint)
            if translated is exc:
                raise
            raise translated from exc
        return result

    async def _client(self) -> Any:
        """s3fs's client, made on first use, its answers' timestamps read by `_timestamp`."""
        client = await self.fs.set_session()
        session = self.fs.session
        if session is not self._timed_session:
            # The session's parser factory makes a parser per answer (botocore's endpoint),
            # so its defaults apply from the next answer on; no other session is touched.
            factory = session.get_component("response_parser_factory")
            factory.set_parser_defaults(timestamp_parser=_timestamp)
            self._timed_session = session
        if client is not self._set_up_client:
            client.meta.events.register_last("before-call.s3", _without_expect_continue)
            self._set_up_client = client
        return client

    async def _request(self, op: str, params: dict[str, Any]) -> dict[str, Any]:
        client = await self._client()
        result: dict[str, Any] = await getattr(client, op)(**params)
        if op == "get_object":
            await read_small_body(result)
        return result

    def run_async(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a coroutine function on s3fs's loop (used by `S3Reader` for body reads)."""
        return sync(self.fs.loop, fn, *args)

    def classify(self, exc: BaseException, what: str) -> BaseException:
        """`s3_errors.classify` with this remote's endpoint in the messages."""
        return classify(exc, what, self._endpoint)

    def throttle(self, nbytes: int, halted: Flag | None = None) -> None:
        """Wait until `--bw-limit` allows `nbytes` more bytes (no-op without a limit); raise
        `Halted` instead once `halted` is set (see `RateLimiter.acquire`)."""
        while nbytes > 0:
            step = min(nbytes, MIB)
            self._bw.acquire(step, halted)
            nbytes -= step

    # -- reading ---------------------------------------------------------------------------

    @property
    def key(self) -> str:
        """The URL, and the endpoint unless it is AWS's own (see `Remote.key`).

        The endpoint is the one the client was built with, whichever setting gave it:
        `--endpoint-url`, `-o endpoint_url=`, a profile's `endpoint_url` in ~/.aws/config, or
        `AWS_ENDPOINT_URL[_S3]`. Reading the settings here instead would miss some, and a
        store reached through a missed one would share AWS's base. Building the client does
        no network I/O.
        """
        if self._store is None:
            try:
                client = sync(self.fs.loop, self._client)
                url = _canonical_endpoint(str(client.meta.endpoint_url))
            except Exception:  # a client that cannot be built fails the run's first request
                url = _canonical_endpoint(self._endpoint) if self._endpoint != "S3" else ""
            host = urlsplit(url).hostname or ""
            aws = host == "amazonaws.com" or host.endswith((".amazonaws.com", ".amazonaws.com.cn"))
            self._store = "" if aws else url
        return f"{self.url} on {redact_url(self._store)}" if self._store else self.url

    def list(self) -> Listing:
        """Every object under the root from ListObjectsV2 pages: size and ETag, no metadata.

        Temp names, `.fsync/` and folder markers are skipped; keys that cannot be a `RelPath`
        are refused. A missing bucket, denied access or an endpoint unreachable after the
        retries raise `RemoteUnavailable`; a prefix with nothing under it that names an
        object raises `ConfigError` (`_refuse_object_root`).
        """
        prefix = f"{self.prefix}/" if self.prefix else ""
        entries: dict[RelPath, RemoteEntry] = {}
        refused: list[tuple[str, str]] = []
        params: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
        while True:
            try:
                page = self.call("list_objects_v2", f"listing {self.url}", **params)
            except (TransientError, PermanentError) as exc:
                if isinstance(exc, RemoteUnavailable):
                    raise
                raise RemoteUnavailable(str(exc)) from exc
            for item in page.get("Contents") or ():
                name = str(item["Key"])[len(prefix) :]
                if name.endswith("/") and item.get("Size"):
                    # Not a folder marker (those are empty): data that no file name can
                    # hold. Skipped with the markers, it was in no listing, count or error.
                    why = f"{name!r}: ends in '/' but holds {item['Size']} bytes"
                    refused.append((name, why))
                    continue
                if _skipped(name):
                    continue
                try:
                    entries[relpath_from_key(name)] = sm.entry_from_listing(item)
                except UnsafePathError as err:
                    refused.append((name, str(err)))
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                if not entries and not refused and not page.get("Contents"):
                    self._refuse_object_root()
                return Listing(entries, tuple(sorted(refused)))
            params["ContinuationToken"] = token

    def _refuse_object_root(self) -> None:
        """Raise `ConfigError` if the (empty) prefix is the key of an object: a pull of
        `s3://b/p.txt` found nothing to do, and a push wrote `p.txt/...` beside the object.

        One HEAD, made only when nothing is listed. A HEAD the store refuses (a policy that
        lets a push list and write but not read) tells nothing, and the run goes on.
        """
        if not self.prefix:
            return
        try:
            found = self.head(self.prefix, f"looking at {self.url}")
        except (TransientError, PermanentError):
            return
        if found is not None:
            parent = self.url.rpartition("/")[0]
            raise ConfigError(
                f"remote {self.url} is not a folder: it is an object (give a folder, "
                f"such as {parent})"
            )

    def root_exists(self) -> bool:
        """Always True: a prefix needs no folder (a missing bucket shows when listing)."""
        return True

    def stat(self, path: RelPath) -> RemoteEntry | None:
        """The entry from a HEAD (with digest and mtime from metadata), or None if absent."""
        return self.head(self._key(path), f"reading {self._url(path)}")

    def head(self, key: str, what: str) -> RemoteEntry | None:
        """The entry of `key` from a HEAD, or None if absent."""
        try:
            head = self.call("head_object", what, Bucket=self.bucket, Key=key)
        except FileNotFoundError:
            return None
        return sm.entry_from_head(head)

    def read_digest(self, path: RelPath) -> Digest | None:
        """The `blake3` metadata of `path` (one HEAD), or None if absent or not there."""
        entry = self.stat(path)
        return entry.digest if entry is not None else None

    def open_read(
        self, path: RelPath, *, offset: int = 0, expect: RemoteEntry | None = None
    ) -> BinaryIO:
        """A streaming, verifying reader of `path` from `offset`; `FileNotFoundError` if
        absent, `RemoteChanged` (a 412 to If-Match) if it is not the version `expect` names."""
        what = f"reading {self._url(path)}"
        return S3Reader(self, self.bucket, self._key(path), what, offset=offset, expect=expect)

    # -- writing ---------------------------------------------------------------------------

    def put(
        self,
        path: RelPath,
        source: BinaryIO,
        meta: ObjectMeta,
        *,
        expect: RemoteEntry | None,
        before_publish: Callable[[], None],
        on_held: Callable[[int], None] | None = None,
        halted: threading.Event | None = None,
        stopping: Callable[[], bool] | None = None,
        on_sent: Callable[[int], None] | None = None,
    ) -> RemoteEntry:
        """Upload `source` as `path` (see the module docstring); returns the new entry.

        `meta` must describe what `source` yields (the caller's `before_publish` checks
        the blake3 of what was read): a multipart object's `md5chksum` is read ahead from
        the file behind `source` and is the MD5 of the content whose blake3 is `meta.digest`.
        Raises `RemoteChanged` when the object is no longer `expect`, `FileChangedError`
        when the source ends early or no longer holds `meta`'s content, `VerificationError`
        when the store reports other bytes than were read, `Halted` when `halted` is set
        before the object is published (a multipart upload stays journaled for the next run),
        or when `stopping()` turns true before a multipart upload's last part is going out.
        """
        self._check_key(path)
        if chunking.needs_parts(meta.size, self.settings.chunk_size):
            what = f"writing {self._url(path)}"
            upload = MultipartPut(
                self, self._key(path), meta, what, halted=halted, stopping=stopping
            )
            entry = upload.run(source, expect, before_publish, on_sent)
            if on_held is not None and upload.held:
                on_held(upload.held)
            return entry
        entry = self._put_whole(path, source, meta, expect, before_publish, halted=halted)
        if on_sent is not None:
            on_sent(meta.size)
        return entry

    def _put_whole(
        self,
        path: RelPath,
        source: BinaryIO,
        meta: ObjectMeta,
        expect: RemoteEntry | None,
        before_publish: Callable[[], None],
        *,
        halted: threading.Event | None,
    ) -> RemoteEntry:
        key, what = self._key(path), f"writing {self._url(path)}"
        with self._slot():
            body = read_part(source, meta.size, what)
            md5 = hashlib.md5(body, usedforsecurity=False).hexdigest()
            before_publish()
            params: dict[str, Any] = {
                "Bucket": self.bucket,
                "Key": key,
                "ContentMD5": sm.md5_base64(md5),
                "Metadata": sm.object_metadata(meta, md5),
            }
            params.update(sm.write_condition(expect))
            unconditional = expect is not None and not expect.fingerprint
            if unconditional and not same_version(self.head(key, what), expect):
                raise RemoteChanged(f"{what}: changed since it was listed")
            try:
                answer = self.call("put_object", what, body=body, halted=halted, **params)
            except (RemoteChanged, FileNotFoundError) as exc:
                # A retry after a lost answer meets its own write; anything else is a race.
                mine = self.head(key, what)
                if mine is None or not sm.is_same_write(mine, meta, md5):
                    raise RemoteChanged(f"{what}: changed since it was listed") from exc
                return mine
        etag = sm.normalise_etag(answer.get("ETag"))
        if etag and sm.etag_is_md5(answer) and etag != md5:
            raise VerificationError(f"{what}: the store holds other bytes than were sent")
        return sm.written_entry(meta, etag or md5)

    def abort_upload(self, key: str, upload_id: str, what: str, *, strict: bool = False) -> bool:
        """Abort a multipart upload and forget it (a gone upload is fine); True if it is gone.

        Best effort: a failure is not raised, unless `strict`. Either way the journal then
        keeps the upload, so it is not left on the store (its parts billed) unknown: the next
        push aborts it again (`abort_journaled`), and `fsync status` lists it until then."""
        try:
            self.call(
                "abort_multipart_upload", what, Bucket=self.bucket, Key=key, UploadId=upload_id
            )
        except FileNotFoundError:
            pass
        except (TransientError, PermanentError):
            if strict:
                raise
            return False
        if self.journal is not None:
            self.journal.finish(upload_id)
        return True

    @contextlib.contextmanager
    def _slot(self) -> Iterator[None]:
        """Hold one of the `transfers` buffer slots for the duration of the block."""
        with self.slots:
            yield

    # -- deleting and copying --------------------------------------------------------------

    def delete(self, path: RelPath, *, expect: RemoteEntry | None) -> None:
        """Delete `path` if it is still `expect` (HEAD first: Ceph ignores If-Match on
        DeleteObject; the If-Match is still sent for stores that honour it)."""
        key, what = self._key(path), f"deleting {self._url(path)}"
        current = self.head(key, what)
        if current is None:
            return
        if not same_version(current, expect):
            raise RemoteChanged(f"{what}: changed since it was listed")
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if current.fingerprint:
            params["IfMatch"] = current.fingerprint
        try:
            try:
                self.call("delete_object", what, **params)
            except Unsupported:
                params.pop("IfMatch", None)
                self.call("delete_object", what, **params)
        except FileNotFoundError:
            return

    def copy(self, src: RelPath, dst: RelPath) -> RemoteEntry:
        """Server-side CopyObject keeping the metadata; `FileNotFoundError` if `src` is absent.

        Objects over 5 GiB are refused (they would need a multipart copy).
        """
        what = f"copying {self._url(src)} to {self._url(dst)}"
        self._check_key(dst)
        self.call(
            "copy_object",
            what,
            Bucket=self.bucket,
            Key=self._key(dst),
            CopySource={"Bucket": self.bucket, "Key": self._key(src)},
            MetadataDirective="COPY",
        )
        entry = self.stat(dst)
        if entry is None:
            raise RemoteChanged(f"{self._url(dst)}: vanished right after it was copied")
        return entry

    # -- housekeeping ----------------------------------------------------------------------

    def abort_stale_uploads(self, older_than: float | None = None) -> int:
        """Abort unfinished multipart uploads under the root started at least `older_than`
        seconds ago; return how many were aborted.

        With None, all but those a running fsync may be sending: started, or given a part,
        in the last `IN_USE_SECONDS` (one ListParts per upload older than that). What `fsync
        cleanup REMOTE` runs. The journal forgets the uploads aborted, and those under the
        root that it recorded before the listing and the store no longer holds (aborted by
        an earlier cleanup, or by a lifecycle rule): `fsync status` would list them.
        """
        prefix = f"{self.prefix}/" if self.prefix else ""
        what = f"listing unfinished uploads of {self.url}"
        params: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
        aborted = 0
        failures: list[str] = []
        now = time.time()
        held: set[str] = set()
        while True:
            page = self.call("list_multipart_uploads", what, **params)
            for item in page.get("Uploads") or ():
                held.add(str(item["UploadId"]))
                age = sm.seconds_since(item.get("Initiated"), now)
                if older_than is not None and (age is None or age < older_than):
                    continue
                key, upload_id = str(item["Key"]), str(item["UploadId"])
                if older_than is None and self._in_use(key, upload_id, age, now):
                    continue
                try:
                    self.abort_upload(key, upload_id, f"aborting an upload of {key}", strict=True)
                except (TransientError, PermanentError) as exc:
                    failures.append(one_line(exc))  # counted as aborted, it was not
                    continue
                aborted += 1
            if not page.get("IsTruncated"):
                self._forget_gone_uploads(held, now)
                if failures:
                    raise TransientError(
                        f"{len(failures)} unfinished uploads could not be aborted ({failures[0]}; "
                        f"{aborted} were); run fsync cleanup again"
                    )
                return aborted
            params["KeyMarker"] = page.get("NextKeyMarker")
            params["UploadIdMarker"] = page.get("NextUploadIdMarker")

    def abort_journaled(self, stale: Callable[[RelPath, PendingUpload], bool]) -> int:
        """Abort the journaled uploads under the root that `stale(path, upload)` names;
        return how many were aborted (`fsync.remote.base.Resumer`).

        A push calls it for the uploads it will not continue: a killed run's upload of a file
        since deleted or changed, which no later push of that path would abort (its parts
        billed until `fsync cleanup`). One AbortMultipartUpload per stale upload, none else.
        """
        if self.journal is None:
            return 0
        root, key = self._target_root(), self.key
        aborted = 0
        for upload in self.journal.all():
            if upload.owner != key or not upload.target.startswith(root):
                # Another remote's (the journal is the local root's): a prefix above or below
                # this one, the same bucket on another store, or an upload journaled before
                # owners were, which only the next upload of its path aborts or continues.
                continue
            try:
                path = relpath_from_key(upload.target[len(root) :])
            except UnsafePathError:
                continue  # never written by this remote, which writes RelPaths only
            if stale(path, upload):
                what = f"aborting the unfinished upload of {self._url(path)}"
                aborted += self.abort_upload(self._key(path), upload.upload_id, what)
        return aborted

    def _target_root(self) -> str:
        """What the journal's `PendingUpload.target` of every object under the root begins
        with."""
        return f"s3://{self.bucket}/{self.prefix}/" if self.prefix else f"s3://{self.bucket}/"

    def _forget_gone_uploads(self, held: set[str], listed: float) -> None:
        """Drop the journal rows of uploads under the root that the store does not hold
        (`held` is every upload id it listed). Only rows older than the listing (`listed`):
        a push may have created its upload after the listing passed its key. Only this
        remote's (`owner`, as `abort_journaled`): the same bucket and prefix on another
        store holds uploads this store never listed, and a cleanup there forgot them, so
        the next push started the file over and left the old upload's parts billed."""
        if self.journal is None:
            return
        root, key = self._target_root(), self.key
        for upload in self.journal.all():
            gone = upload.upload_id not in held and upload.created < listed
            if gone and upload.owner == key and upload.target.startswith(root):
                self.journal.finish(upload.upload_id)

    def _in_use(self, key: str, upload_id: str, age: float | None, now: float) -> bool:
        """True if the upload started, or got its last part, in the last `IN_USE_SECONDS`."""
        if age is not None and age < IN_USE_SECONDS:
            return True
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key, "UploadId": upload_id}
        while True:
            try:
                page = self.call("list_parts", f"listing the parts of {key}", **params)
            except FileNotFoundError:
                return False  # aborted meanwhile
            for part in page.get("Parts") or ():
                since = sm.seconds_since(part.get("LastModified"), now)
                if since is not None and since < IN_USE_SECONDS:
                    return True
            marker = page.get("NextPartNumberMarker")
            if not page.get("IsTruncated") or not marker:
                return False
            params["PartNumberMarker"] = marker

    def flush(self) -> None:
        """Nothing to do: S3 has stored an object durably when its PUT or Complete returns."""

    def close(self) -> None:
        """Stop the part senders and close the HTTP session."""
        self.pool.shutdown(wait=True)
        creator = getattr(self.fs, "_s3creator", None)
        if creator is not None:
            with contextlib.suppress(Exception):
                s3fs.S3FileSystem.close_session(self.fs.loop, creator)
            self.fs._s3 = None

    # -- paths -----------------------------------------------------------------------------

    def _key(self, path: RelPath) -> str:
        return join(self.prefix, path)

    def _url(self, path: RelPath) -> str:
        return f"s3://{self.bucket}/{self._key(path)}"

    def _check_key(self, path: RelPath) -> None:
        """Refuse to write `path` where its key would exceed S3's length limit, before any
        request: stores differ (Ceph answers a bare InvalidObjectName, moto takes the key),
        and a tree one store holds should not fail only on the next one.

        The message does not name the key: every failure is reported under its path, and
        the key is that path under the prefix (naming it said the path twice)."""
        size = len(self._key(path).encode())
        if size > MAX_KEY_BYTES:
            raise PermanentError(
                f"the key would have {size:,} bytes, and S3 keys hold at most {MAX_KEY_BYTES:,}"
            )


MAX_KEY_BYTES = 1024
"""The most bytes an S3 key's UTF-8 spelling may have (AWS's documented limit)."""

USER_AGENT = f"fsync/{__version__} python/{'.'.join(map(str, sys.version_info[:3]))}"
"""How every S3 request fsync makes begins its User-Agent (unless the S3 options set their
own); aiobotocore's session appends `botocore/<version>`."""


def _make_fs(
    options: dict[str, Any], endpoint_url: str | None, settings: S3Settings
) -> s3fs.S3FileSystem:
    """A fresh s3fs filesystem whose client retries nothing and checksums only as required.

    No `region_name` is added for a custom endpoint: botocore then signs for us-east-1,
    which S3-compatible stores accept (RGW rejects the LocationConstraint a region implies).
    """
    _check_options(options)
    opts = dict(options)
    client_kwargs = dict(opts.pop("client_kwargs", None) or {})
    if endpoint_url:
        client_kwargs["endpoint_url"] = endpoint_url
    given = client_kwargs.get("endpoint_url") or opts.get("endpoint_url")
    if given is not None:
        _check_endpoint(str(given))
    config_kwargs = dict(opts.pop("config_kwargs", None) or {})
    config_kwargs.setdefault("request_checksum_calculation", "when_required")
    config_kwargs.setdefault("response_checksum_validation", "when_required")
    config_kwargs["retries"] = {"total_max_attempts": 1, "mode": "standard"}
    config_kwargs.setdefault("max_pool_connections", 2 * settings.transfers + 4)
    # Our parameters are built here, not typed by a user: validating them costs a few % of
    # the event loop per request, measured.
    config_kwargs.setdefault("parameter_validation", False)
    # A fixed User-Agent names fsync in the store's logs, and spares botocore rebuilding its
    # own from a dozen sanitized parts twice per request: ~80 µs of the event loop each.
    # botocore's own string would carry an application id (which policies may match on);
    # one given in the options or the environment is kept.
    app_id = config_kwargs.get("user_agent_appid") or os.environ.get("AWS_SDK_UA_APP_ID")
    config_kwargs.setdefault("user_agent", f"{USER_AGENT} app/{app_id}" if app_id else USER_AGENT)
    # Every body we send carries a Content-MD5 that the store checks (and, over HTTPS,
    # botocore already skips the payload hash for them). Over plain HTTP (a local Ceph or
    # MinIO) botocore would otherwise SHA-256 each body on the event-loop thread: a second
    # full pass over every byte, blocking all other requests while it runs.
    s3_config = dict(config_kwargs.get("s3") or {})
    s3_config.setdefault("payload_signing_enabled", False)
    config_kwargs["s3"] = s3_config
    if settings.timeout is not None:
        config_kwargs["connect_timeout"] = settings.timeout
        config_kwargs["read_timeout"] = settings.timeout
    opts["use_listings_cache"] = False
    try:
        fs = s3fs.S3FileSystem(
            skip_instance_cache=True,
            client_kwargs=client_kwargs,
            config_kwargs=config_kwargs,
            **opts,
        )
    except (TypeError, ValueError, KeyError) as err:
        raise ConfigError(f"invalid S3 options ({err}; check the -o options)") from None
    fs.retries = 1  # s3fs's own retry loop, should anything reach it, runs once
    return fs


_TABLES = frozenset(
    {"client_kwargs", "config_kwargs", "s3_additional_kwargs", "session_vars", "event_hooks"}
)
"""s3fs options that take a table of settings, which `-o KEY=VALUE` cannot give."""

_PASSED_ON = ("use_listings_cache", "listings_expiry_time", "max_paths", "skip_instance_cache")
"""Options s3fs takes through `**kwargs` and hands to fsspec rather than to its session."""


@functools.cache
def _known_options() -> dict[str, object]:
    """Every storage option s3fs takes, with its default (`inspect.Parameter.empty`: none).

    s3fs hands a name it does not know to the aiobotocore session it builds at the first
    request, so that session's parameters count too; asked of the installed versions, the
    list follows them.
    """
    known: dict[str, object] = dict.fromkeys(_PASSED_ON, inspect.Parameter.empty)
    for fn in (s3fs.S3FileSystem.__init__, AioSession.__init__):
        for name, param in inspect.signature(fn).parameters.items():
            if name != "self" and param.kind is not inspect.Parameter.VAR_KEYWORD:
                known[name] = param.default
    return known


def _check_options(options: Mapping[str, object]) -> None:
    """Raise `StorageOptionError` for a storage option s3fs does not take, or a value of the wrong
    kind where its default tells the kind (a flag, a count).

    s3fs checks neither: an unknown name failed the first request (`AioSession.__init__() got
    an unexpected keyword argument`), a table given as text or a count as a word failed
    deep inside it with a bare Python message.
    """
    known = _known_options()
    for name, value in options.items():
        if name not in known:
            why = "s3fs takes no such option; check the name against s3fs's S3FileSystem"
            raise StorageOptionError(name, why, unknown=True)
        why = _wrong_kind(name, value, known[name])
        if why is not None:
            raise StorageOptionError(name, why)


def _wrong_kind(name: str, value: object, default: object) -> str | None:
    """Why `value` cannot be s3fs's option `name`, whose default is `default`; None if it can
    (or its kind is unknown: s3fs then judges it)."""
    if name in _TABLES:
        if isinstance(value, Mapping):
            return None
        return (
            "s3fs takes a table of settings there, which -o cannot give; "
            "use --endpoint-url for the endpoint, ~/.aws/config for the rest"
        )
    if isinstance(default, bool):
        return None if isinstance(value, bool) else f"expected true or false, not {value!r}"
    if isinstance(default, int) and (isinstance(value, bool) or not isinstance(value, int)):
        return f"expected a whole number such as {default}, not {value!r}"
    return None


def _without_expect_continue(params: dict[str, Any], **_: Any) -> None:
    """Drop the `Expect: 100-continue` botocore puts on every write with a file-like body.

    aiohttp then waits for the store's `100 Continue` with no timeout: a store or proxy
    that never answers held a push (and a watch's SIGTERM) forever, whatever `--timeout`
    said. Without it the body is sent at once and the read timeout covers the answer; all
    it saved was the body of a request refused outright.
    """
    headers = params.get("headers")
    if headers is not None:
        headers.pop("Expect", None)


def _check_endpoint(url: str) -> None:
    """Raise `ConfigError` for an endpoint that is not an http(s) URL with a host: botocore
    refuses it only when the first request is built, which made it a run-time failure."""
    try:
        parts = urlsplit(url)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:  # a port that is not a number
        ok = False
    if not ok:
        raise ConfigError(
            f"endpoint {redact_url(url)} is not an http(s) URL (expected e.g. http://127.0.0.1:9000)"
        )


def _timestamp(value: Any) -> Any:
    """botocore's timestamp parser, an order of magnitude faster for the two forms S3 stores
    answer with (`s3_meta.parse_time`); any other value goes to botocore's own."""
    return (isinstance(value, str) and sm.parse_time(value)) or botocore_timestamp(value)


def _skipped(name: str) -> bool:
    """True for keys that are not synced files: folder markers, temp names, `.fsync/`."""
    if not name or name.endswith("/") or name.startswith(".fsync/"):
        return True
    return is_temp_name(name.rpartition("/")[2])
