"""fsync's S3 adapter against moto and Ceph RGW, through the counting, fault-injecting proxy.

What the contract suite cannot show: exactly which requests each operation makes, what the
objects look like to another S3 client, how uploads continue after a failure, how a second
writer's change is never clobbered, and how faults on the wire end in a correct remote.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import socket
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC
from typing import TYPE_CHECKING, Any, BinaryIO

import blake3
import pytest
from boto3.s3.transfer import TransferConfig

from fsync.errors import (
    FileChangedError,
    PermanentError,
    RemoteChanged,
    RemoteUnavailable,
    TransientError,
    VerificationError,
)
from fsync.hashing import HashingReader
from fsync.manifest.journal import TransferJournal
from fsync.model import Digest, PendingUpload, RemoteEntry
from fsync.paths import to_relpath
from fsync.remote import open_remote
from fsync.remote.base import ObjectMeta
from fsync.remote.retry import RetryPolicy
from fsync.remote.s3 import USER_AGENT
from fsync.remote.s3_meta import format_mtime, metadata_tag, object_metadata
from fsync.remote.s3_reader import SMALL_BODY

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from conftest import ProxiedBucket, S3Server
    from fsync.remote.s3 import S3Remote

MIB = 1 << 20
CHUNK = 5 * MIB
MTIME = 1_700_000_000_123_456_789
FAST = RetryPolicy(retries=4, base_delay=0.01, max_delay=0.05)
ROOT = "data"

pytestmark = pytest.mark.s3


def meta_for(data: bytes, mtime_ns: int = MTIME, mode: int = 0o100644) -> ObjectMeta:
    return ObjectMeta(len(data), Digest(blake3.blake3(data).hexdigest()), mtime_ns, mode)


def put(
    remote: S3Remote,
    name: str,
    data: bytes,
    *,
    expect: RemoteEntry | None = None,
    before_publish: Any = None,
    source: BinaryIO | None = None,
    meta: ObjectMeta | None = None,
) -> RemoteEntry:
    """Upload `data` as `name`, read from `source` (default: memory, no descriptor)."""
    return remote.put(
        to_relpath(name),
        source or io.BytesIO(data),
        meta or meta_for(data),
        expect=expect,
        before_publish=before_publish or (lambda: None),
    )


def head(server: S3Server, bucket: str, key: str) -> dict[str, Any]:
    client = server.boto3_client()
    try:
        answer: dict[str, Any] = client.head_object(Bucket=bucket, Key=key)
    finally:
        client.close()
    return answer


def body(server: S3Server, bucket: str, key: str) -> bytes:
    client = server.boto3_client()
    try:
        data: bytes = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    finally:
        client.close()
    return data


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[TransferJournal]:
    with TransferJournal.open(str(tmp_path)) as opened:
        yield opened


@pytest.fixture
def remote(s3_proxy: ProxiedBucket, journal: TransferJournal) -> Iterator[S3Remote]:
    """The adapter on `s3://bucket/data` through the proxy: 5 MiB parts, quick retries."""
    opened = open_remote(
        f"s3://{s3_proxy.bucket}/{ROOT}",
        storage_options=s3_proxy.server.storage_options(),
        chunk_size=CHUNK,
        transfers=4,
        retry=FAST,
        journal=journal,
    )
    yield opened  # type: ignore[misc]
    opened.close()


@pytest.fixture
def direct(s3_bucket: tuple[S3Server, str]) -> S3Server:
    """The server itself, for setting up and checking objects past the proxy's counts."""
    return s3_bucket[0]


# -- what each operation costs -------------------------------------------------------------


def test_small_put_is_one_request_and_metadata_is_rclone_compatible(
    remote: S3Remote, s3_proxy: ProxiedBucket, direct: S3Server
) -> None:
    data = b"small file"
    entry = put(remote, "dir/a.txt", data)
    assert s3_proxy.proxy.counts() == Counter({"PutObject": 1})
    md5 = hashlib.md5(data).hexdigest()
    assert entry == RemoteEntry(len(data), md5, meta_for(data).digest, MTIME, 0o644)
    answer = head(direct, s3_proxy.bucket, f"{ROOT}/dir/a.txt")
    assert answer["ETag"].strip('"') == md5
    assert answer["Metadata"] == {
        "blake3": blake3.blake3(data).hexdigest(),
        "mtime": "1700000000.123456789",
        "mode": "0100644",
        "md5chksum": base64.b64encode(bytes.fromhex(md5)).decode(),
    }


def file_source(tmp_path: Path, data: bytes) -> HashingReader:
    """`data` as the worker reads a local file: a hashing stream over an unbuffered file."""
    path = tmp_path / f"source-{len(data)}"
    path.write_bytes(data)
    return HashingReader(path.open("rb", buffering=0))


def test_multipart_put_requests_and_metadata(
    remote: S3Remote, s3_proxy: ProxiedBucket, direct: S3Server, tmp_path: Path
) -> None:
    data = os.urandom(12 * MIB)
    with file_source(tmp_path, data) as source:
        entry = put(remote, "big.bin", data, source=source)
        assert source.bytes_read == len(data)  # the MD5 read-ahead left the stream alone
    counts = s3_proxy.proxy.counts()
    # create (metadata with the MD5 read ahead), 3 parts, HEAD (check before publishing),
    # complete, HEAD (verify); no CopyObject to add the MD5 afterwards
    assert counts == Counter(
        {
            "CreateMultipartUpload": 1,
            "UploadPart": 3,
            "HeadObject": 2,
            "CompleteMultipartUpload": 1,
        }
    )
    answer = head(direct, s3_proxy.bucket, f"{ROOT}/big.bin")
    whole_md5 = hashlib.md5(data).digest()
    assert answer["Metadata"] == {
        "blake3": blake3.blake3(data).hexdigest(),
        "mtime": format_mtime(MTIME),
        "mode": "0100644",
        "md5chksum": base64.b64encode(whole_md5).decode(),
    }
    assert answer["ContentLength"] == len(data)
    assert entry.fingerprint == answer["ETag"].strip('"')
    assert remote.stat(to_relpath("big.bin")) == entry
    assert body(direct, s3_proxy.bucket, f"{ROOT}/big.bin") == data
    assert remote.journal is not None
    assert remote.journal.all() == []


def test_listing_costs_one_request_per_thousand_keys(
    remote: S3Remote, s3_proxy: ProxiedBucket, direct: S3Server
) -> None:
    client = direct.boto3_client()
    try:
        with ThreadPoolExecutor(max_workers=16) as pool:
            list(
                pool.map(
                    lambda i: client.put_object(
                        Bucket=s3_proxy.bucket, Key=f"{ROOT}/f{i:04d}", Body=b""
                    ),
                    range(1005),
                )
            )
    finally:
        client.close()
    listing = remote.list()
    assert len(listing.entries) == 1005
    assert s3_proxy.proxy.counts() == Counter({"ListObjectsV2": 2})


def test_answers_timestamps_are_the_instants_botocore_reads(
    remote: S3Remote, s3_proxy: ProxiedBucket, direct: S3Server
) -> None:
    """The client's own timestamp parser (a listing's ISO times, a HEAD's HTTP date, an
    upload's `Initiated`) gives what botocore's would: checked against a boto3 client."""
    key = f"{ROOT}/t"
    client = direct.boto3_client()
    try:
        client.put_object(Bucket=s3_proxy.bucket, Key=key, Body=b"x")
        client.create_multipart_upload(Bucket=s3_proxy.bucket, Key=key)
        theirs = {
            "listed": client.list_objects_v2(Bucket=s3_proxy.bucket)["Contents"][0],
            "head": client.head_object(Bucket=s3_proxy.bucket, Key=key),
            "upload": client.list_multipart_uploads(Bucket=s3_proxy.bucket)["Uploads"][0],
        }
    finally:
        client.close()
    ours = {
        "listed": remote.call("list_objects_v2", "list", Bucket=s3_proxy.bucket)["Contents"][0],
        "head": remote.call("head_object", "head", Bucket=s3_proxy.bucket, Key=key),
        "upload": remote.call("list_multipart_uploads", "uploads", Bucket=s3_proxy.bucket)[
            "Uploads"
        ][0],
    }
    for what, field in (
        ("listed", "LastModified"),
        ("head", "LastModified"),
        ("upload", "Initiated"),
    ):
        assert ours[what][field] == theirs[what][field], what
        assert ours[what][field].tzinfo is UTC, what  # read by fsync's parser
    # s3fs makes a new session when asked to refresh one it owns: that one is set up too.
    first = remote.fs.session
    remote.run_async(remote.fs.set_session, True)
    assert remote.fs.session is not first
    again = remote.call("head_object", "head", Bucket=s3_proxy.bucket, Key=key)
    assert again["LastModified"].tzinfo is UTC


# -- conditional writes: a second writer is never clobbered --------------------------------


def test_stale_overwrite_is_refused(
    remote: S3Remote, s3_proxy: ProxiedBucket, direct: S3Server
) -> None:
    """A small overwrite carries If-Match with the unquoted ETag: 412 on both servers."""
    first = put(remote, "doc.txt", b"version 1")
    client = direct.boto3_client()
    try:
        client.put_object(Bucket=s3_proxy.bucket, Key=f"{ROOT}/doc.txt", Body=b"theirs")
    finally:
        client.close()
    s3_proxy.proxy.reset_counts()
    with pytest.raises(RemoteChanged):
        put(remote, "doc.txt", b"version 2", expect=first)
    assert s3_proxy.proxy.counts()["PutObject"] == 1
    assert body(direct, s3_proxy.bucket, f"{ROOT}/doc.txt") == b"theirs"


def test_stale_multipart_overwrite_is_refused_before_completing(
    remote: S3Remote, s3_proxy: ProxiedBucket, direct: S3Server
) -> None:
    """Ceph ignores conditions on CompleteMultipartUpload: the HEAD before it catches a
    change made while the parts were being sent, and the upload stays for a later run."""
    first = put(remote, "big.bin", b"small at first")
    hold = s3_proxy.proxy.add_rule("UploadPart", action="delay", delay=1.0, times=1)
    failure: list[BaseException] = []

    def upload() -> None:
        try:
            put(remote, "big.bin", os.urandom(11 * MIB), expect=first)
        except BaseException as exc:
            failure.append(exc)

    worker = threading.Thread(target=upload)
    worker.start()
    deadline = threading.Event()
    for _ in range(100):
        if hold.fired:
            break
        deadline.wait(0.05)
    client = direct.boto3_client()
    try:
        client.put_object(Bucket=s3_proxy.bucket, Key=f"{ROOT}/big.bin", Body=b"theirs")
    finally:
        client.close()
    worker.join(30)
    assert len(failure) == 1
    assert isinstance(failure[0], RemoteChanged)
    assert s3_proxy.proxy.counts()["CompleteMultipartUpload"] == 0
    assert body(direct, s3_proxy.bucket, f"{ROOT}/big.bin") == b"theirs"


def test_new_object_is_created_only_if_absent(remote: S3Remote, direct: S3Server) -> None:
    put(remote, "new.txt", b"someone else's")
    with pytest.raises(RemoteChanged):
        put(remote, "new.txt", b"mine", expect=None)


def test_delete_checks_the_version_first(remote: S3Remote, s3_proxy: ProxiedBucket) -> None:
    entry = put(remote, "gone.txt", b"bye")
    s3_proxy.proxy.reset_counts()
    with pytest.raises(RemoteChanged):
        remote.delete(to_relpath("gone.txt"), expect=RemoteEntry(3, "0" * 32))
    remote.delete(to_relpath("gone.txt"), expect=entry)
    assert remote.stat(to_relpath("gone.txt")) is None
    assert s3_proxy.proxy.counts()["DeleteObject"] == 1


# -- resuming an upload --------------------------------------------------------------------


def test_failed_upload_resumes_sending_only_missing_parts(
    remote: S3Remote, s3_proxy: ProxiedBucket, direct: S3Server, journal: TransferJournal
) -> None:
    data = os.urandom(27 * MIB)  # 6 parts: 5 x 5 MiB + 2 MiB
    proxy = s3_proxy.proxy
    proxy.add_rule("UploadPart", action="delay", times=3, delay=1.5)
    proxy.add_rule("UploadPart", action="drop", after=3, times=None)
    with pytest.raises(TransientError, match="gave up"):
        put(remote, "resume.bin", data)
    # The parts in flight when the fourth gave up were answered before `put` gave up the
    # upload, and no part was started after it: sent on behind the failure, they went on
    # after `put` returned, beside the next run's resume.
    answered = proxy.counts()["UploadPart"]
    time.sleep(2.0)
    assert proxy.counts()["UploadPart"] == answered
    pending = journal.all()
    assert [(p.target, p.size) for p in pending] == [
        (f"s3://{s3_proxy.bucket}/{ROOT}/resume.bin", len(data))
    ]
    proxy.clear_rules()
    proxy.reset_counts()
    entry = put(remote, "resume.bin", data)
    counts = proxy.counts()
    assert counts["CreateMultipartUpload"] == 0
    assert counts["ListParts"] == 1
    assert counts["UploadPart"] == 6 - 3
    assert journal.all() == []
    assert body(direct, s3_proxy.bucket, f"{ROOT}/resume.bin") == data
    assert entry.digest == blake3.blake3(data).hexdigest()


def test_changed_content_aborts_the_old_upload(
    remote: S3Remote, s3_proxy: ProxiedBucket, direct: S3Server, journal: TransferJournal
) -> None:
    proxy = s3_proxy.proxy
    proxy.add_rule("UploadPart", action="drop", after=1, times=None)
    with pytest.raises(TransientError):
        put(remote, "resume.bin", os.urandom(11 * MIB))
    old = journal.all()
    assert len(old) == 1
    proxy.clear_rules()
    proxy.reset_counts()
    data = os.urandom(11 * MIB)
    put(remote, "resume.bin", data)
    counts = proxy.counts()
    assert counts["AbortMultipartUpload"] == 1
    assert counts["CreateMultipartUpload"] == 1
    assert counts["UploadPart"] == 3
    assert journal.all() == []
    assert body(direct, s3_proxy.bucket, f"{ROOT}/resume.bin") == data


def test_vanished_upload_starts_afresh(
    remote: S3Remote, s3_proxy: ProxiedBucket, journal: TransferJournal
) -> None:
    """An upload aborted behind fsync's back (`fsync cleanup`, a lifecycle rule) is noticed
    by ListParts (NoSuchUpload; NoSuchKey on Ceph) and a new one is made."""
    data = os.urandom(11 * MIB)
    s3_proxy.proxy.add_rule("UploadPart", action="drop", after=1, times=None)
    with pytest.raises(TransientError):
        put(remote, "gone.bin", data)
    s3_proxy.proxy.clear_rules()
    assert remote.abort_stale_uploads(older_than=0) == 1
    assert journal.all() == []
    journal.start(_replace_id(s3_proxy, data))
    s3_proxy.proxy.reset_counts()
    put(remote, "gone.bin", data)
    counts = s3_proxy.proxy.counts()
    assert counts["ListParts"] == 1
    assert counts["CreateMultipartUpload"] == 1
    assert counts["UploadPart"] == 3


@pytest.mark.parametrize("change", ["none", "mode", "mtime"])
def test_an_upload_is_continued_only_with_the_metadata_it_was_created_with(
    remote: S3Remote,
    s3_proxy: ProxiedBucket,
    direct: S3Server,
    journal: TransferJournal,
    tmp_path: Path,
    *,
    change: str,
) -> None:
    """CreateMultipartUpload fixed the metadata (md5chksum included): a file chmod-ed or
    touched since the failed run gets a new upload, or the object would carry the old."""
    data = os.urandom(11 * MIB)
    proxy = s3_proxy.proxy
    proxy.add_rule("UploadPart", action="drop", after=1, times=None)
    with file_source(tmp_path, data) as source, pytest.raises(TransientError):
        put(remote, "meta.bin", data, source=source)
    proxy.clear_rules()
    proxy.reset_counts()
    meta = {
        "none": meta_for(data),
        "mode": meta_for(data, mode=0o100755),
        "mtime": meta_for(data, mtime_ns=MTIME + 5 * 10**9),
    }[change]
    with file_source(tmp_path, data) as source:
        put(remote, "meta.bin", data, source=source, meta=meta)
    counts = proxy.counts()
    continued = change == "none"
    assert counts["CreateMultipartUpload"] == (0 if continued else 1)
    assert counts["AbortMultipartUpload"] == (0 if continued else 1)
    assert counts["UploadPart"] == (2 if continued else 3)
    stored = head(direct, s3_proxy.bucket, f"{ROOT}/meta.bin")["Metadata"]
    assert stored["mode"] == f"0{meta.mode:o}"
    assert stored["mtime"] == format_mtime(meta.mtime_ns)
    assert stored["md5chksum"] == base64.b64encode(hashlib.md5(data).digest()).decode()
    assert journal.all() == []


def test_md5chksum_is_read_ahead_from_a_buffered_file_too(
    remote: S3Remote, s3_proxy: ProxiedBucket, direct: S3Server, tmp_path: Path
) -> None:
    """`copies.send_new` reads through a buffered file: the read-ahead must not disturb it."""
    data = os.urandom(11 * MIB)
    path = tmp_path / "buffered.bin"
    path.write_bytes(data)
    with path.open("rb") as raw, HashingReader(raw) as source:
        put(remote, "buffered.bin", data, source=source)
        assert (source.bytes_read, source.digest()) == (len(data), meta_for(data).digest)
    stored = head(direct, s3_proxy.bucket, f"{ROOT}/buffered.bin")["Metadata"]
    assert stored["md5chksum"] == base64.b64encode(hashlib.md5(data).digest()).decode()
    assert body(direct, s3_proxy.bucket, f"{ROOT}/buffered.bin") == data


def _replace_id(s3_proxy: ProxiedBucket, data: bytes) -> PendingUpload:
    """A journal row for an upload id the store never heard of (or forgot)."""
    return PendingUpload(
        f"s3://{s3_proxy.bucket}/{ROOT}/gone.bin",
        "2~no-such-upload-id",
        blake3.blake3(data).hexdigest(),
        len(data),
        CHUNK,
        1.0,
        metadata_tag(object_metadata(meta_for(data))),
    )


def test_multipart_from_a_stream_without_a_descriptor_has_no_md5chksum(
    remote: S3Remote, s3_proxy: ProxiedBucket, direct: S3Server
) -> None:
    data = os.urandom(11 * MIB)
    entry = put(remote, "stream.bin", data)
    assert "CopyObject" not in s3_proxy.proxy.counts()
    answer = head(direct, s3_proxy.bucket, f"{ROOT}/stream.bin")
    assert "md5chksum" not in answer["Metadata"]
    assert answer["Metadata"]["blake3"] == blake3.blake3(data).hexdigest()
    assert entry.fingerprint == answer["ETag"].strip('"')


def test_multipart_from_a_pipe_is_sent_without_md5chksum(
    remote: S3Remote, s3_proxy: ProxiedBucket, direct: S3Server
) -> None:
    """A descriptor that is not a regular file cannot be read ahead: no md5chksum, no error."""
    data = os.urandom(11 * MIB)
    read_end, write_end = os.pipe()
    try:
        writer = threading.Thread(target=lambda: (os.write(write_end, data), os.close(write_end)))
        writer.start()
        with open(read_end, "rb", closefd=False) as raw, HashingReader(raw) as source:
            put(remote, "piped.bin", data, source=source)
        writer.join(10)
    finally:
        os.close(read_end)
    answer = head(direct, s3_proxy.bucket, f"{ROOT}/piped.bin")
    assert "md5chksum" not in answer["Metadata"]
    assert body(direct, s3_proxy.bucket, f"{ROOT}/piped.bin") == data


class ChangedBehind(io.BytesIO):
    """Streams the content that was hashed while its descriptor holds another: the file
    was rewritten after the scan, or between the MD5 read-ahead and the send."""

    def __init__(self, streamed: bytes, fd: int) -> None:
        super().__init__(streamed)
        self._fd = fd

    def fileno(self) -> int:
        return self._fd


@pytest.mark.parametrize("change", ["other bytes", "grown", "shrunk"])
def test_no_md5chksum_is_read_from_content_other_than_the_hashed(
    remote: S3Remote, s3_proxy: ProxiedBucket, journal: TransferJournal, tmp_path: Path, change: str
) -> None:
    """The MD5 read ahead must be of the content whose blake3 the object will carry."""
    data = os.urandom(11 * MIB)
    now = {"other bytes": data[::-1], "grown": data + b"x", "shrunk": data[:-1]}[change]
    ahead = tmp_path / "ahead.bin"
    ahead.write_bytes(now)
    with ahead.open("rb") as file, pytest.raises(FileChangedError, match="changed"):
        put(remote, "x.bin", data, source=ChangedBehind(data, file.fileno()))
    assert s3_proxy.proxy.counts() == Counter()  # refused before the upload was created
    assert journal.all() == []
    assert remote.list().entries == {}


def test_failed_check_before_publishing_aborts_the_upload(
    remote: S3Remote, s3_proxy: ProxiedBucket, journal: TransferJournal
) -> None:
    def changed() -> None:
        raise FileChangedError("the file changed while being sent")

    with pytest.raises(FileChangedError):
        put(remote, "x.bin", os.urandom(11 * MIB), before_publish=changed)
    assert s3_proxy.proxy.counts()["AbortMultipartUpload"] == 1
    assert journal.all() == []
    assert remote.list().entries == {}


def test_an_abort_that_fails_keeps_the_upload_journaled_for_the_next_run(
    remote: S3Remote, s3_proxy: ProxiedBucket, direct: S3Server, journal: TransferJournal
) -> None:
    """The upload of a file that changed is aborted best effort; when the store refused
    the abort, the journal forgot it anyway, and only `fsync cleanup` ever found it."""

    def changed() -> None:
        raise FileChangedError("the file changed while being sent")

    s3_proxy.proxy.add_rule("AbortMultipartUpload", action="503", times=None)
    with pytest.raises(FileChangedError):
        put(remote, "x.bin", os.urandom(11 * MIB), before_publish=changed)
    left = journal.all()
    assert len(left) == 1
    s3_proxy.proxy.clear_rules()
    s3_proxy.proxy.reset_counts()
    data = os.urandom(11 * MIB)
    put(remote, "x.bin", data)  # the next run for the path aborts it
    assert s3_proxy.proxy.counts()["AbortMultipartUpload"] == 1
    assert journal.all() == []
    client = direct.boto3_client()
    try:
        assert client.list_multipart_uploads(Bucket=s3_proxy.bucket).get("Uploads", []) == []
    finally:
        client.close()


def test_cleanup_aborts_unfinished_uploads_under_the_root(
    remote: S3Remote, s3_proxy: ProxiedBucket, direct: S3Server
) -> None:
    client = direct.boto3_client()
    try:
        for key in (f"{ROOT}/a", f"{ROOT}/sub/b", "elsewhere/c"):
            client.create_multipart_upload(Bucket=s3_proxy.bucket, Key=key)
        if direct.name == "ceph":  # moto reports every upload as initiated in 2010
            assert remote.abort_stale_uploads(older_than=3600) == 0
            assert remote.abort_stale_uploads() == 0  # started just now: maybe in use
        assert remote.abort_stale_uploads(older_than=0) == 2
        left = client.list_multipart_uploads(Bucket=s3_proxy.bucket).get("Uploads", [])
    finally:
        client.close()
    assert [u["Key"] for u in left] == ["elsewhere/c"]


# -- faults on the wire --------------------------------------------------------------------


def test_slowdown_bursts_are_retried_honouring_retry_after(
    remote: S3Remote, s3_proxy: ProxiedBucket, direct: S3Server
) -> None:
    s3_proxy.proxy.add_rule("PutObject", action="503", times=3, retry_after=0.2)
    put(remote, "slow.txt", b"eventually")
    assert s3_proxy.proxy.counts()["PutObject"] == 4
    assert body(direct, s3_proxy.bucket, f"{ROOT}/slow.txt") == b"eventually"


def test_lost_answers_do_not_fail_or_duplicate_writes(
    remote: S3Remote, s3_proxy: ProxiedBucket, direct: S3Server
) -> None:
    """The store did the write but the answer was lost: the retry meets the condition it set
    up itself (412 on If-None-Match, NoSuchUpload on Complete) and recognises its own write."""
    proxy = s3_proxy.proxy
    proxy.add_rule("PutObject", action="reset", times=1)
    proxy.add_rule("CompleteMultipartUpload", action="reset", times=1)
    proxy.add_rule("UploadPart", action="drop", times=2)
    small, big = b"small", os.urandom(11 * MIB)
    put(remote, "small.txt", small)
    put(remote, "big.bin", big)
    assert proxy.counts()["PutObject"] == 2
    assert proxy.counts()["CompleteMultipartUpload"] == 2
    assert body(direct, s3_proxy.bucket, f"{ROOT}/small.txt") == small
    assert body(direct, s3_proxy.bucket, f"{ROOT}/big.bin") == big
    client = direct.boto3_client()
    try:
        uploads = client.list_multipart_uploads(Bucket=s3_proxy.bucket).get("Uploads", [])
    finally:
        client.close()
    assert uploads == []


def test_download_resumes_after_a_reset_from_the_byte_reached(
    remote: S3Remote, s3_proxy: ProxiedBucket
) -> None:
    data = os.urandom(3 * MIB)
    put(remote, "r.bin", data)
    s3_proxy.proxy.reset_counts()
    s3_proxy.proxy.add_rule("GetObject", action="reset", times=1)
    with remote.open_read(to_relpath("r.bin")) as src:
        got = src.read()
    assert got == data
    assert s3_proxy.proxy.counts()["GetObject"] == 2


def test_a_small_download_cut_mid_body_is_fetched_again_whole(
    remote: S3Remote, s3_proxy: ProxiedBucket
) -> None:
    """A body of up to `SMALL_BODY` is read with its answer; cut short, the GET is retried."""
    data = os.urandom(SMALL_BODY // 2)
    put(remote, "s.bin", data)
    s3_proxy.proxy.reset_counts()
    s3_proxy.proxy.add_rule("GetObject", action="reset", times=1)
    with remote.open_read(to_relpath("s.bin")) as src:
        got = b"".join(iter(lambda: src.read(64 << 10), b""))
    assert got == data
    assert [(e.op, e.range) for e in s3_proxy.proxy.log] == [("GetObject", None)] * 2


def test_a_small_body_read_in_small_steps_comes_out_whole(remote: S3Remote) -> None:
    data = os.urandom(SMALL_BODY - 7)
    put(remote, "steps.bin", data)
    with remote.open_read(to_relpath("steps.bin")) as src:
        got = b"".join(iter(lambda: src.read(4096), b""))
    assert got == data


def test_a_resumed_small_tail_cut_mid_body_is_asked_for_again_from_the_same_byte(
    remote: S3Remote, s3_proxy: ProxiedBucket
) -> None:
    """A resumed download with at most `SMALL_BODY` left reads its tail with the answer;
    cut, the same ranged, conditional request is made again."""
    data = os.urandom(3 * MIB)
    entry = put(remote, "tail.bin", data)
    offset = len(data) - SMALL_BODY // 2
    s3_proxy.proxy.reset_counts()
    s3_proxy.proxy.add_rule("GetObject", action="reset", times=1)
    with remote.open_read(to_relpath("tail.bin"), offset=offset, expect=entry) as src:
        got = b"".join(iter(lambda: src.read(64 << 10), b""))
    assert got == data[offset:]
    assert [(e.op, e.range) for e in s3_proxy.proxy.log] == [("GetObject", f"bytes={offset}-")] * 2


@pytest.mark.parametrize("resumed", [False, True], ids=["whole", "tail"])
def test_a_read_answered_with_an_empty_body_is_asked_for_again(
    remote: S3Remote, s3_proxy: ProxiedBucket, resumed: bool
) -> None:
    """A store that answers a GET with no bytes where the object has some: the read is a
    cut connection, retried from the same byte, never a file that ends early."""
    data = os.urandom(3 * MIB if resumed else SMALL_BODY // 2)
    entry = put(remote, "e.bin", data)
    offset = len(data) - SMALL_BODY // 2 if resumed else 0
    s3_proxy.proxy.reset_counts()
    s3_proxy.proxy.add_rule("GetObject", action="empty-body", times=1)
    with remote.open_read(to_relpath("e.bin"), offset=offset, expect=entry) as src:
        got = b"".join(iter(lambda: src.read(64 << 10), b""))
    assert got == data[offset:]
    ranged = f"bytes={offset}-" if resumed else None
    assert [(e.op, e.range) for e in s3_proxy.proxy.log] == [("GetObject", ranged)] * 2


def test_a_store_that_always_answers_empty_fails_the_read(
    remote: S3Remote, s3_proxy: ProxiedBucket
) -> None:
    """Nothing is taken for the content: the reader gives up with what was wrong."""
    entry = put(remote, "never.bin", os.urandom(1000))
    s3_proxy.proxy.add_rule("GetObject", action="empty-body", times=None)
    with pytest.raises(TransientError, match="answered with 0 bytes of an object of 1000"):
        remote.open_read(to_relpath("never.bin"), expect=entry)
    assert s3_proxy.proxy.counts()["GetObject"] == 1 + FAST.retries


def test_requests_name_fsync_and_keep_a_configured_application_id(
    s3_proxy: ProxiedBucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SDK_UA_APP_ID", "backup-job-7")
    opened = open_remote(
        f"s3://{s3_proxy.bucket}/{ROOT}", storage_options=s3_proxy.server.storage_options()
    )
    try:
        opened.list()
    finally:
        opened.close()
    agents = {e.agent or "" for e in s3_proxy.proxy.log}
    assert agents
    assert all(a.startswith(f"{USER_AGENT} app/backup-job-7") for a in agents)


def test_a_store_ignoring_if_match_is_caught_serving_another_version(
    remote: S3Remote, s3_proxy: ProxiedBucket
) -> None:
    """The version listed was replaced (another size and ETag) and the store ignores
    If-Match: the reader says it changed, at once, rather than retrying a "broken" answer."""
    if s3_proxy.server.name == "ceph":
        pytest.skip("Ceph checks SigV4: a request stripped of its signed If-Match is refused")
    listed = put(remote, "v.bin", b"version 1")
    put(remote, "v.bin", b"version 2, longer than the first", expect=listed)
    s3_proxy.proxy.reset_counts()
    s3_proxy.proxy.add_rule("GetObject", action="no-if-match", times=None)
    with pytest.raises(RemoteChanged, match="changed since it was listed"):
        remote.open_read(to_relpath("v.bin"), expect=listed)
    assert s3_proxy.proxy.counts() == {"GetObject": 1}


def test_download_checks_a_blake3_where_the_etag_cannot_disprove_it(
    remote: S3Remote, s3_proxy: ProxiedBucket, direct: S3Server
) -> None:
    client = direct.boto3_client()
    try:
        client.put_object(
            Bucket=s3_proxy.bucket,
            Key=f"{ROOT}/lie.txt",
            Body=b"real content",
            Metadata={"blake3": blake3.blake3(b"other content").hexdigest()},
        )
    finally:
        client.close()
    with remote.open_read(to_relpath("lie.txt")) as src:
        # The ETag is the MD5 the store computed from these bytes: the metadata is wrong.
        assert src.read() == b"real content"
        assert src.entry.digest == blake3.blake3(b"real content").hexdigest()  # recomputed
    client = direct.boto3_client()
    try:  # without a plain ETag, the blake3 is all there is to check against
        client.upload_fileobj(
            io.BytesIO(os.urandom(6 * MIB)),
            s3_proxy.bucket,
            f"{ROOT}/lie.bin",
            ExtraArgs={"Metadata": {"blake3": blake3.blake3(b"other content").hexdigest()}},
            Config=TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB),
        )
    finally:
        client.close()
    with remote.open_read(to_relpath("lie.bin")) as src, pytest.raises(VerificationError):
        src.read()


def test_download_of_foreign_multipart_object_checks_rclone_md5chksum(
    remote: S3Remote, s3_proxy: ProxiedBucket, direct: S3Server
) -> None:
    """An object written by rclone: multipart ETag, no blake3, md5chksum metadata."""
    data = os.urandom(6 * MIB)
    good = base64.b64encode(hashlib.md5(data).digest()).decode()
    bad = base64.b64encode(hashlib.md5(b"x").digest()).decode()
    client = direct.boto3_client()
    try:
        for name, md5 in (("good.bin", good), ("bad.bin", bad)):
            key = f"{ROOT}/{name}"
            upload = client.create_multipart_upload(
                Bucket=s3_proxy.bucket, Key=key, Metadata={"md5chksum": md5}
            )["UploadId"]
            etags = [
                client.upload_part(
                    Bucket=s3_proxy.bucket,
                    Key=key,
                    UploadId=upload,
                    PartNumber=n + 1,
                    Body=data[n * CHUNK : (n + 1) * CHUNK],
                )["ETag"]
                for n in range(2)
            ]
            client.complete_multipart_upload(
                Bucket=s3_proxy.bucket,
                Key=key,
                UploadId=upload,
                MultipartUpload={
                    "Parts": [{"PartNumber": n + 1, "ETag": e} for n, e in enumerate(etags)]
                },
            )
    finally:
        client.close()
    with remote.open_read(to_relpath("good.bin")) as src:
        assert src.read() == data
    with remote.open_read(to_relpath("bad.bin")) as src, pytest.raises(VerificationError):
        src.read()


# -- whole-remote failures -----------------------------------------------------------------


def test_missing_bucket_is_remote_unavailable(s3_proxy: ProxiedBucket) -> None:
    remote = open_remote(
        f"s3://{s3_proxy.bucket}-missing/x", storage_options=s3_proxy.server.storage_options()
    )
    try:
        with pytest.raises(RemoteUnavailable, match="no such bucket"):
            remote.list()
    finally:
        remote.close()


def test_access_denied_is_one_line_without_secrets(s3_proxy: ProxiedBucket) -> None:
    s3_proxy.proxy.add_rule("ListObjectsV2", action="403", times=None)
    remote = open_remote(
        f"s3://{s3_proxy.bucket}/x", storage_options=s3_proxy.server.storage_options(), retry=FAST
    )
    try:
        with pytest.raises(RemoteUnavailable) as caught:
            remote.list()
    finally:
        remote.close()
    message = str(caught.value)
    assert "access denied (AccessDenied" in message
    assert "\n" not in message
    assert s3_proxy.server.secret_key not in message
    assert s3_proxy.proxy.counts()["ListObjectsV2"] == 1  # permanent: not retried


def test_unreachable_endpoint_is_remote_unavailable_after_retries() -> None:
    with socket.socket() as sock:  # a port nobody listens on once this closes
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    remote = open_remote(
        "s3://bucket/x",
        storage_options={"key": "k", "secret": "s"},
        endpoint_url=f"http://127.0.0.1:{port}",
        retry=RetryPolicy(retries=2, base_delay=0.01, max_delay=0.02),
        timeout=2,
    )
    try:
        with pytest.raises(RemoteUnavailable, match=rf"cannot reach http://127.0.0.1:{port}"):
            remote.list()
    finally:
        remote.close()


def test_permanent_errors_fail_at_once(remote: S3Remote, s3_proxy: ProxiedBucket) -> None:
    s3_proxy.proxy.add_rule("PutObject", action="403", times=None)
    with pytest.raises(PermanentError, match="access denied"):
        put(remote, "denied.txt", b"x")
    assert s3_proxy.proxy.counts()["PutObject"] == 1


def test_a_reset_while_sending_a_part_says_the_connection_failed_not_unreachable(
    remote: S3Remote, s3_proxy: ProxiedBucket
) -> None:
    """The store was reached and reset the connection while a part's body was going out
    (aiobotocore wraps that in `EndpointConnectionError`): "cannot reach" would send the
    user to check an endpoint that answers."""
    s3_proxy.proxy.add_rule("UploadPart", action="reset", times=None)
    with pytest.raises(TransientError) as raised:
        put(remote, "cut.bin", os.urandom(3 * CHUNK))
    message = str(raised.value)
    assert "cannot reach" not in message
    assert f"connection to {s3_proxy.proxy.endpoint_url} failed (ECONNRESET" in message


def test_a_key_ending_in_a_slash_that_holds_data_is_refused_not_skipped(
    remote: S3Remote, s3_proxy: ProxiedBucket, direct: S3Server
) -> None:
    """Skipped like an (empty) folder marker, its bytes were in no listing, count or error."""
    client = direct.boto3_client()
    try:
        client.put_object(Bucket=s3_proxy.bucket, Key=f"{ROOT}/trail/", Body=b"sixteen bytes...")
        client.put_object(Bucket=s3_proxy.bucket, Key=f"{ROOT}/marker/", Body=b"")
    finally:
        client.close()
    listing = remote.list()
    assert listing.entries == {}
    assert [(key, why) for key, why in listing.refused] == [
        ("trail/", "'trail/': ends in '/' but holds 16 bytes")
    ]
