"""Push and pull with an s3:// remote, end to end, on moto and Ceph RGW alike.

Runs go through `fsync.app.run` (and the `fsync` command where a process must be killed),
with the bucket behind the counting, fault-injecting proxy (tests/fsynctest/proxy.py), so a
test can state exactly which S3 requests a run made. Files above the 5 MiB chunk size used
here go in multipart uploads.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

import blake3
import pytest
from botocore.exceptions import ClientError

from fsync import app
from fsync.config import SyncOptions, WatchOptions
from fsync.manifest.journal import TransferJournal
from fsync.model import ActionRecord, Direction, RunResult
from fsync.progress import NullReporter
from fsync.remote.s3 import USER_AGENT
from fsync.remote.s3_meta import format_mode, format_mtime
from fsync.watch import watch
from fsynctest.partials import leave_partial
from fsynctest.reporting import Warnings
from fsynctest.trees import age_tree, listing, write
from fsynctest.watching import Recorder, Watching, eventually, tree

if TYPE_CHECKING:
    from pathlib import Path

    from conftest import ProxiedBucket, S3Server

pytestmark = pytest.mark.s3

MIB = 1 << 20
CHUNK = 5 * MIB
PREFIX = "tree"

SMALL = {
    "a.txt": "alpha",
    "dir/b.txt": "bravo",
    "dir/deeper/c.bin": bytes(range(256)) * 100,
    "empty": b"",
    "spaced name.txt": "s",
    "ünï/ç.txt": "unicode",
}


def big_files() -> dict[str, bytes | str]:
    """Three files above the chunk size (11, 13 and 17 MiB), the same in every test."""
    rng = random.Random(20261125)
    return {
        "big/one.bin": rng.randbytes(11 * MIB),
        "big/two.bin": rng.randbytes(13 * MIB),
        "three.bin": rng.randbytes(17 * MIB + 3),
    }


def options(local: Path, target: ProxiedBucket, direction: Direction, **knobs: Any) -> SyncOptions:
    """A run between `local` and the bucket's prefix, in parts of `CHUNK`."""
    return SyncOptions(
        local_root=str(local),
        remote_url=f"s3://{target.bucket}/{PREFIX}",
        direction=direction,
        storage_options=target.server.storage_options(),
        chunk_size=CHUNK,
        **knobs,
    )


def sync(local: Path, target: ProxiedBucket, direction: Direction, **knobs: Any) -> RunResult:
    return app.run(options(local, target, direction, **knobs), NullReporter())


class _Progress(NullReporter):
    """Counts the bytes a run's progress reported (`advance`), from any thread."""

    def __init__(self) -> None:
        super().__init__()
        self.advanced = 0
        self._count = threading.Lock()

    def advance(self, path: str, nbytes: int) -> None:
        """Count them."""
        with self._count:
            self.advanced += nbytes


def test_upload_progress_counts_what_the_store_took(
    s3_proxy: ProxiedBucket, tmp_path: Path
) -> None:
    """Progress came from reading the file, which runs ahead of sending by `--transfers`
    parts: a terminal showed 164 of 300 MiB sent at 1.5 s under a 50 MiB/s limit, then sat
    at 100% for 2.3 s while parts went out. With every part held at the proxy, nothing is
    sent, and nothing may be shown sent."""
    src = tmp_path / "src"
    write(src, {"big.bin": os.urandom(4 * CHUNK), "small.txt": "s"})
    hold = s3_proxy.proxy.add_rule("UploadPart", action="delay", delay=60, times=None)
    progress = _Progress()
    opts = options(src, s3_proxy, Direction.PUSH)
    results: list[RunResult] = []
    run = threading.Thread(target=lambda: results.append(app.run(opts, progress)))
    run.start()
    try:
        eventually(lambda: hold.fired == 4, "every part held at the proxy", timeout=30)
        eventually(lambda: progress.advanced == 1, "the small file sent", timeout=30)
        threading.Event().wait(0.3)  # (time for a count of the parts read to show)
        assert progress.advanced == 1
    finally:
        hold.released.set()
        run.join(timeout=60)
    assert results[0].failed == 0
    assert progress.advanced == 4 * CHUNK + 1


def keys(server: S3Server, bucket: str) -> dict[str, dict[str, Any]]:
    """Every object of `bucket` by key, with its HEAD answer (past the proxy)."""
    client = server.boto3_client()
    try:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        names = [item["Key"] for page in pages for item in page.get("Contents", [])]
        return {name: client.head_object(Bucket=bucket, Key=name) for name in names}
    finally:
        client.close()


def unfinished_uploads(server: S3Server, bucket: str) -> list[dict[str, Any]]:
    client = server.boto3_client()
    try:
        uploads: list[dict[str, Any]] = client.list_multipart_uploads(Bucket=bucket).get(
            "Uploads", []
        )
    finally:
        client.close()
    return uploads


@pytest.fixture
def direct(s3_bucket: tuple[S3Server, str]) -> S3Server:
    """The server itself (not through the proxy), to inspect what runs left behind."""
    return s3_bucket[0]


@pytest.mark.slow
def test_push_pull_round_trip(s3_proxy: ProxiedBucket, direct: S3Server, tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    files = {**SMALL, **big_files()}
    write(src, files)
    proxy = s3_proxy.proxy

    result = sync(src, s3_proxy, Direction.PUSH)
    assert (result.uploaded, result.failed) == (len(files), 0)
    # Parts carry a Content-MD5 the store checks: not SHA-256'd a second time to sign them.
    parts = [x for x in proxy.log if x.op == "UploadPart"]
    assert parts
    assert {x.payload for x in parts} == {"UNSIGNED-PAYLOAD"}
    # Every request names fsync (and its botocore) to the store's logs.
    assert USER_AGENT.startswith("fsync/")
    assert all((x.agent or "").startswith(USER_AGENT) for x in proxy.log)

    objects = keys(direct, s3_proxy.bucket)
    assert set(objects) == {f"{PREFIX}/{name}" for name in files}
    for name in files:
        local = src / name
        data = local.read_bytes()
        st = local.stat()
        answer = objects[f"{PREFIX}/{name}"]
        metadata = answer["Metadata"]
        assert metadata["blake3"] == blake3.blake3(data).hexdigest()
        assert metadata["mtime"] == format_mtime(st.st_mtime_ns)  # rclone's format, exact
        assert metadata["mode"] == format_mode(st.st_mode)
        # rclone's whole-content MD5, on every object (on a single-part one it ties the
        # metadata to the ETag the store computed)
        assert metadata["md5chksum"] == base64.b64encode(hashlib.md5(data).digest()).decode()
        if len(data) <= CHUNK:
            assert answer["ETag"].strip('"') == hashlib.md5(data).hexdigest()

    proxy.reset_counts()
    again = sync(src, s3_proxy, Direction.PUSH)
    assert (again.uploaded, again.unchanged) == (0, len(files))
    assert proxy.counts() == Counter({"ListObjectsV2": 1})

    proxy.reset_counts()
    pulled = sync(dst, s3_proxy, Direction.PULL)
    assert (pulled.downloaded, pulled.failed) == (len(files), 0)
    assert listing(dst) == listing(src)
    # One GET per file, nothing else: mode, mtime and blake3 come with the GET's answer.
    assert proxy.counts() == Counter({"ListObjectsV2": 1, "GetObject": len(files)})
    assert all((x.agent or "").startswith(USER_AGENT) for x in proxy.log)

    proxy.reset_counts()
    assert sync(dst, s3_proxy, Direction.PULL).downloaded == 0
    assert proxy.counts() == Counter({"ListObjectsV2": 1})


def test_small_files_cost_one_put_each(s3_proxy: ProxiedBucket, tmp_path: Path) -> None:
    """No HEAD before or after a small upload: the PUT's ETag is checked against the MD5.

    Nor is the body hashed a second time to sign it, though the endpoint is plain HTTP: the
    Content-MD5 the store checks covers the bytes (Ceph verifies the signature of each PUT).
    """
    write(tmp_path, SMALL)
    result = sync(tmp_path, s3_proxy, Direction.PUSH)
    assert (result.uploaded, result.failed) == (len(SMALL), 0)
    # (and one HEAD of the empty prefix itself: were it an object, the push is refused)
    expected = {"ListObjectsV2": 1, "HeadObject": 1, "PutObject": len(SMALL)}
    assert s3_proxy.proxy.counts() == Counter(expected)
    puts = [x for x in s3_proxy.proxy.log if x.op == "PutObject"]
    assert {x.payload for x in puts} == {"UNSIGNED-PAYLOAD"}


class SaveAfterFirstPart(NullReporter):
    """Rewrites `target` once the push has read its first part: a user saving the file
    while it uploads, after the MD5 for its metadata was read ahead."""

    def __init__(self, target: Path, new: bytes) -> None:
        super().__init__()
        self.target, self.new, self.fired = target, new, False

    def advance(self, path: str, nbytes: int) -> None:
        if not self.fired and path == self.target.name:
            self.fired = True
            self.target.write_bytes(self.new)


def test_a_large_file_saved_mid_upload_is_published_whole_with_its_own_md5(
    s3_proxy: ProxiedBucket, direct: S3Server, tmp_path: Path
) -> None:
    rng = random.Random(7)
    old, new = rng.randbytes(11 * MIB), rng.randbytes(12 * MIB + 1)
    src = tmp_path / "src"
    write(src, {"big.bin": old})
    age_tree(src)
    opts = options(src, s3_proxy, Direction.PUSH)
    reporter = SaveAfterFirstPart(src / "big.bin", new)
    result = app.run(opts, reporter)
    assert reporter.fired
    assert (result.uploaded, result.failed) == (1, 0)
    metadata = keys(direct, s3_proxy.bucket)[f"{PREFIX}/big.bin"]["Metadata"]
    assert metadata["blake3"] == blake3.blake3(new).hexdigest()
    assert metadata["md5chksum"] == base64.b64encode(hashlib.md5(new).digest()).decode()
    client = direct.boto3_client()
    try:
        assert (
            client.get_object(Bucket=s3_proxy.bucket, Key=f"{PREFIX}/big.bin")["Body"].read() == new
        )
    finally:
        client.close()
    assert unfinished_uploads(direct, s3_proxy.bucket) == []  # the first attempt was aborted


def test_second_writer_between_listing_and_overwrite_survives(
    s3_proxy: ProxiedBucket, direct: S3Server, tmp_path: Path
) -> None:
    """Another client replaces the object after fsync listed it and before fsync's PUT
    lands: the conditional PUT is refused (412), their version stays, and the run reports a
    conflict left for the next run (exit status 3)."""
    write(tmp_path, {"doc.txt": "version 1"})
    sync(tmp_path, s3_proxy, Direction.PUSH)
    write(tmp_path, {"doc.txt": "version 2, mine"})
    held = s3_proxy.proxy.add_rule("PutObject", action="delay", delay=1.0, times=1)
    results: list[RunResult] = []
    runner = threading.Thread(
        target=lambda: results.append(sync(tmp_path, s3_proxy, Direction.PUSH))
    )
    runner.start()
    eventually(lambda: held.fired, "the held PutObject", timeout=5)
    assert held.fired
    client = direct.boto3_client()
    try:
        client.put_object(Bucket=s3_proxy.bucket, Key=f"{PREFIX}/doc.txt", Body=b"theirs")
    finally:
        client.close()
    runner.join(60)
    (result,) = results
    assert (result.uploaded, result.failed, result.conflicts) == (0, 0, 1)
    assert app.exit_status(result) == 3
    assert "changed since it was listed" in result.notices[-1].reason
    assert keys(direct, s3_proxy.bucket)[f"{PREFIX}/doc.txt"]["ContentLength"] == len("theirs")

    # The next push sees both sides changed: a conflict, and nothing is lost.
    later = sync(tmp_path, s3_proxy, Direction.PUSH)
    assert later.conflicts == 1
    contents = set()
    client = direct.boto3_client()
    try:
        for key in keys(direct, s3_proxy.bucket):
            contents.add(client.get_object(Bucket=s3_proxy.bucket, Key=key)["Body"].read())
    finally:
        client.close()
    assert {b"theirs", b"version 2, mine"} <= contents


def test_files_gone_before_they_are_sent_are_counted_in_one_warning(
    s3_proxy: ProxiedBucket, tmp_path: Path
) -> None:
    """A build's temporary files, deleted between the scan and their upload, are churn: not
    failures, and one warning counts them (-v names each, the log file records each as
    skipped). A watch over a build printed a warning per file, 3,747 lines in one run."""
    temps = {f"tmp/obj{i:02}.o": f"object {i}" for i in range(20)}
    write(tmp_path, {"a.txt": "kept", **temps})
    held = s3_proxy.proxy.add_rule("PutObject", action="delay", delay=1.0, times=1)
    opts = SyncOptions(
        local_root=str(tmp_path),
        remote_url=f"s3://{s3_proxy.bucket}/{PREFIX}",
        direction=Direction.PUSH,
        storage_options=s3_proxy.server.storage_options(),
        transfers=1,  # a.txt first (the plan's order), held while the others are deleted
    )
    reporter = Warnings()
    records: list[ActionRecord] = []
    debug: list[str] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = lambda record: debug.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("fsync")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.DEBUG)
    results: list[RunResult] = []
    runner = threading.Thread(
        target=lambda: results.append(app.run(opts, reporter, on_action=records.append))
    )
    try:
        runner.start()
        eventually(lambda: held.fired, "the held PutObject", timeout=5)
        assert held.fired
        shutil.rmtree(tmp_path / "tmp")
        runner.join(60)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    (result,) = results
    assert (result.uploaded, result.failed, result.errors) == (1, 0, [])
    assert reporter.lines == [
        "20 files vanished before they could be sent; skipped (-v lists them)"
    ]
    assert sorted(r.path for r in records if r.outcome == "skipped") == sorted(temps)
    assert sorted(m for m in debug if "vanished" in m) == [
        f"{path} vanished before it could be sent; skipped" for path in sorted(temps)
    ]


@pytest.mark.slow
def test_faults_on_the_wire_end_in_a_correct_remote(
    s3_proxy: ProxiedBucket, direct: S3Server, tmp_path: Path
) -> None:
    """Dropped connections, 503 SlowDown bursts, resets and slow answers during a push and
    a pull: every file arrives once, intact, with no upload left behind."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    files = {**SMALL, **big_files()}
    write(src, files)
    proxy = s3_proxy.proxy
    proxy.add_rule("PutObject", action="503", times=4, retry_after=0.05)
    proxy.add_rule("UploadPart", action="drop", after=2, times=2)
    proxy.add_rule("UploadPart", action="reset", after=5, times=1)
    proxy.add_rule("CompleteMultipartUpload", action="reset", times=1)
    proxy.add_rule("HeadObject", action="500", times=2)
    proxy.add_rule("UploadPart", action="delay", delay=0.5, after=7, times=2)
    proxy.add_rule("ListObjectsV2", action="429", times=1)
    result = sync(src, s3_proxy, Direction.PUSH)
    assert (result.uploaded, result.failed) == (len(files), 0)
    assert set(keys(direct, s3_proxy.bucket)) == {f"{PREFIX}/{name}" for name in files}
    assert unfinished_uploads(direct, s3_proxy.bucket) == []

    proxy.clear_rules()
    proxy.add_rule("GetObject", action="reset", times=3)
    proxy.add_rule("GetObject", action="drop", after=3, times=2)
    pulled = sync(dst, s3_proxy, Direction.PULL)
    assert (pulled.downloaded, pulled.failed) == (len(files), 0)
    assert listing(dst) == listing(src)


def test_objects_from_other_tools_are_pulled_and_verified(
    s3_proxy: ProxiedBucket, direct: S3Server, tmp_path: Path
) -> None:
    """No blake3 metadata: a single-PUT object is checked against its MD5 ETag, a multipart
    one (boto3's managed upload) by size. A wrong blake3 gives way to a plain ETag, the MD5
    the store computed (the metadata is wrong, not the bytes); without one it fails."""
    from boto3.s3.transfer import TransferConfig

    single = b"written by another tool"
    multi = random.Random(7).randbytes(12 * MIB)
    client = direct.boto3_client()
    try:
        client.put_object(Bucket=s3_proxy.bucket, Key=f"{PREFIX}/single.txt", Body=single)
        client.upload_fileobj(
            __import__("io").BytesIO(multi),
            s3_proxy.bucket,
            f"{PREFIX}/multi.bin",
            Config=TransferConfig(multipart_threshold=CHUNK, multipart_chunksize=CHUNK),
        )
        client.put_object(
            Bucket=s3_proxy.bucket,
            Key=f"{PREFIX}/wrong-blake3.bin",
            Body=multi[:100],
            Metadata={"blake3": "0" * 64},
        )
        client.upload_fileobj(
            __import__("io").BytesIO(multi),
            s3_proxy.bucket,
            f"{PREFIX}/lying.bin",
            ExtraArgs={"Metadata": {"blake3": "0" * 64}},
            Config=TransferConfig(multipart_threshold=CHUNK, multipart_chunksize=CHUNK),
        )
    finally:
        client.close()
    result = sync(tmp_path, s3_proxy, Direction.PULL)
    assert (result.downloaded, result.failed) == (3, 1)
    assert result.errors[0].path == "lying.bin"
    assert "does not match its blake3 metadata" in result.errors[0].error
    assert (tmp_path / "single.txt").read_bytes() == single
    assert (tmp_path / "multi.bin").read_bytes() == multi
    assert (tmp_path / "wrong-blake3.bin").read_bytes() == multi[:100]
    assert not (tmp_path / "lying.bin").exists()


@pytest.mark.slow
def test_identical_objects_from_other_tools_are_adopted_not_resent(
    s3_proxy: ProxiedBucket, direct: S3Server, tmp_path: Path
) -> None:
    """A tree another tool uploaded (a plain PUT, and multipart with aws's 8 MiB and
    rclone's 5 MiB parts, so ETags `md5-N`): a first push of the same files matches every
    ETag from the local bytes, records them, and sends nothing; a changed file is a conflict
    kept as both, as before. An ETag of a part size fsync does not try (6 MiB) is no proof
    either way: the object is read, and adopted (it was a conflict copy of the same bytes)."""
    from boto3.s3.transfer import TransferConfig

    rng = random.Random(5)
    files = {"plain.txt": b"same bytes", "aws.bin": rng.randbytes(21 * MIB + 7)}
    files["rclone.bin"] = rng.randbytes(11 * MIB)
    files["changed.bin"] = rng.randbytes(9 * MIB)
    files["odd.bin"] = rng.randbytes(13 * MIB)  # 6 MiB parts: no part size fsync tries
    client = direct.boto3_client()
    try:
        client.put_object(Bucket=s3_proxy.bucket, Key=f"{PREFIX}/plain.txt", Body=b"same bytes")
        for name, part in (("aws.bin", 8), ("rclone.bin", 5), ("changed.bin", 8), ("odd.bin", 6)):
            body = files[name] if name != "changed.bin" else rng.randbytes(9 * MIB)
            client.upload_fileobj(
                __import__("io").BytesIO(body),
                s3_proxy.bucket,
                f"{PREFIX}/{name}",
                Config=TransferConfig(
                    multipart_threshold=part * MIB, multipart_chunksize=part * MIB
                ),
            )
        etag = client.head_object(Bucket=s3_proxy.bucket, Key=f"{PREFIX}/aws.bin")["ETag"]
    finally:
        client.close()
    assert etag.strip('"').endswith("-3")
    src = tmp_path / "src"
    write(src, files)
    s3_proxy.proxy.reset_counts()
    result = sync(src, s3_proxy, Direction.PUSH)
    assert (result.uploaded, result.failed, result.conflicts) == (1, 0, 1)
    writes = {"PutObject", "CreateMultipartUpload", "UploadPart", "CopyObject"}
    written = {e.path.rsplit("/", 1)[-1] for e in s3_proxy.proxy.log if e.op in writes}
    assert {name.split(".")[0] for name in written} == {"changed"}  # it and its conflict copy
    read = {e.path.rsplit("/", 1)[-1] for e in s3_proxy.proxy.log if e.op == "GetObject"}
    assert "odd.bin" in read
    second = sync(src, s3_proxy, Direction.PUSH)
    assert (second.uploaded, second.conflicts) == (0, 0)


def test_a_remote_rewrite_by_another_tool_is_not_read_at_every_push(
    s3_proxy: ProxiedBucket, direct: S3Server, tmp_path: Path
) -> None:
    """Another tool rewrote a pushed file with other bytes of its size (multipart, so the
    ETag proves nothing either way). The local file is unchanged, so whatever the object
    holds is a remote change the push leaves alone: it read the whole object to learn a
    digest it never used, at every push."""
    from boto3.s3.transfer import TransferConfig

    rng = random.Random(6)
    local = tmp_path / "local"
    write(local, {"big.bin": rng.randbytes(9 * MIB), "other.txt": "o"})
    assert sync(local, s3_proxy, Direction.PUSH).failed == 0
    client = direct.boto3_client()
    try:
        client.upload_fileobj(
            __import__("io").BytesIO(rng.randbytes(9 * MIB)),
            s3_proxy.bucket,
            f"{PREFIX}/big.bin",
            Config=TransferConfig(multipart_threshold=8 * MIB, multipart_chunksize=8 * MIB),
        )
    finally:
        client.close()
    for _ in range(2):
        s3_proxy.proxy.reset_counts()
        result = sync(local, s3_proxy, Direction.PUSH)
        assert (result.uploaded, result.conflicts, result.failed) == (0, 0, 0)
        assert not [e for e in s3_proxy.proxy.log if e.op == "GetObject"]


def _pushed_doc(local: Path, s3_proxy: ProxiedBucket) -> str:
    """`doc.txt` ("version one") and another file pushed from `local`; the key of `doc.txt`."""
    write(local, {"doc.txt": "version one\n", "other.txt": "o"})
    assert sync(local, s3_proxy, Direction.PUSH).failed == 0
    return f"{PREFIX}/doc.txt"


def test_a_rewrite_that_keeps_fsyncs_metadata_is_seen_as_a_change(
    s3_proxy: ProxiedBucket, direct: S3Server, tmp_path: Path
) -> None:
    """A tool that rewrites an object keeping its user metadata (as some FUSE mounts do)
    leaves fsync's `blake3` on other bytes. The `md5chksum` beside it no longer matches the
    ETag, so none of that metadata is believed: the edit is pulled, not taken for an
    identical rewrite (and overwritten by the next local change)."""
    local = tmp_path / "local"
    key = _pushed_doc(local, s3_proxy)
    client = direct.boto3_client()
    try:
        kept = client.head_object(Bucket=s3_proxy.bucket, Key=key)["Metadata"]
        client.put_object(Bucket=s3_proxy.bucket, Key=key, Body=b"VERSION ONE\n", Metadata=kept)
    finally:
        client.close()
    result = sync(local, s3_proxy, Direction.SYNC)
    assert (result.downloaded, result.failed, result.conflicts) == (1, 0, 0), result.errors
    assert (local / "doc.txt").read_bytes() == b"VERSION ONE\n"


def test_a_rewrite_keeping_metadata_without_md5chksum_is_caught_by_the_etags(
    s3_proxy: ProxiedBucket, direct: S3Server, tmp_path: Path
) -> None:
    """Objects written before fsync wrote `md5chksum` on single-part uploads carry only the
    `blake3`: a rewrite keeping it moves the ETag from one plain MD5 to another, which
    other bytes alone can do. The content is read to tell; and a folder whose own version
    differs gets the rewrite with a conflict copy (the download checked against the stale
    `blake3` failed at every run)."""
    local = tmp_path / "local"
    key = _pushed_doc(local, s3_proxy)
    client = direct.boto3_client()
    try:
        kept = client.head_object(Bucket=s3_proxy.bucket, Key=key)["Metadata"]
        kept.pop("md5chksum")
        client.put_object(Bucket=s3_proxy.bucket, Key=key, Body=b"version one\n", Metadata=kept)
        assert sync(local, s3_proxy, Direction.SYNC).failed == 0  # as an older fsync left it
        client.put_object(Bucket=s3_proxy.bucket, Key=key, Body=b"version TWO\n", Metadata=kept)
    finally:
        client.close()
    result = sync(local, s3_proxy, Direction.SYNC)
    assert (result.downloaded, result.failed, result.conflicts) == (1, 0, 0), result.errors
    assert (local / "doc.txt").read_bytes() == b"version TWO\n"
    fresh = tmp_path / "fresh"
    write(fresh, {"doc.txt": "mine, 12 b\n"})
    pulled = sync(fresh, s3_proxy, Direction.PULL)
    assert (pulled.downloaded, pulled.failed, pulled.conflicts) == (2, 0, 1), pulled.errors
    assert (fresh / "doc.txt").read_bytes() == b"version TWO\n"
    assert b"mine, 12 b\n" in {p.read_bytes() for p in fresh.glob("doc.conflict-*")}


def test_a_wrong_blake3_from_another_tool_gives_way_to_the_etag(
    s3_proxy: ProxiedBucket, direct: S3Server, tmp_path: Path
) -> None:
    """An object whose `blake3` metadata is wrong but whose ETag is the MD5 of its bytes:
    the same bytes here are adopted (each sync made a conflict copy of them), and other
    bytes are pulled (each pull failed, calling the object corrupted)."""
    client = direct.boto3_client()
    try:
        for name, body in (("same.txt", b"x\n"), ("new.txt", b"theirs\n")):
            client.put_object(
                Bucket=s3_proxy.bucket,
                Key=f"{PREFIX}/{name}",
                Body=body,
                Metadata={"blake3": "0" * 64},
            )
    finally:
        client.close()
    local = tmp_path / "local"
    write(local, {"same.txt": "x\n"})
    for _ in range(2):
        result = sync(local, s3_proxy, Direction.SYNC)
        assert (result.failed, result.conflicts, result.uploaded) == (0, 0, 0), result.errors
    assert sorted(os.listdir(local)) == [".fsync", "new.txt", "same.txt"]
    assert (local / "new.txt").read_bytes() == b"theirs\n"
    assert sorted(keys(direct, s3_proxy.bucket)) == [f"{PREFIX}/new.txt", f"{PREFIX}/same.txt"]


def _fsync(target: ProxiedBucket, *args: str) -> subprocess.CompletedProcess[str]:
    """`fsync ARGS` in a child process, reaching the store through the proxy."""
    return subprocess.run(
        [sys.executable, "-m", "fsync", *args],
        env=target.server.env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_an_endpoint_that_is_not_s3_is_named_so(s3_proxy: ProxiedBucket, tmp_path: Path) -> None:
    """A web server at the endpoint answers a listing 404 with a page: it read "no such
    object: 'listing s3://...'", with an errno."""
    s3_proxy.proxy.add_rule("ListObjectsV2", action="not-s3", times=None)
    done = _fsync(s3_proxy, "pull", f"s3://{s3_proxy.bucket}/x", str(tmp_path))
    assert done.returncode == 1
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("fsync: error: listing s3://")
    assert line.endswith("404 without an S3 error (is it an S3 server? check --endpoint-url)")


def test_a_write_the_store_never_answers_times_out(s3_proxy: ProxiedBucket, tmp_path: Path) -> None:
    """A store that goes silent on a PUT, not even sending `100 Continue`: botocore's
    `Expect: 100-continue` made aiohttp wait for it with no timeout, and the push (or a
    watch's SIGTERM) hung forever whatever --timeout said."""
    s3_proxy.proxy.add_rule("PutObject", action="silent", times=None)
    write(tmp_path / "src", {"a.txt": "a"})
    started = time.monotonic()
    url = f"s3://{s3_proxy.bucket}/x"
    done = _fsync(s3_proxy, "push", str(tmp_path / "src"), url, "--timeout", "2", "--retries", "1")
    assert done.returncode == 1, done.stderr
    assert time.monotonic() - started < 60
    assert "a.txt" in done.stderr


@pytest.mark.parametrize("newer", ["local", "remote"])
def test_newer_wins_against_an_object_another_tool_wrote(
    s3_proxy: ProxiedBucket, direct: S3Server, tmp_path: Path, newer: str
) -> None:
    """The object has no `mtime` metadata: `newer` took it for a tie, so a push kept the
    remote and a pull the local version, each exit 0 pointing at the other command, and
    neither change ever crossed. The store's `LastModified` now stands in for its mtime."""
    local, url = tmp_path / "src", f"s3://{s3_proxy.bucket}/{PREFIX}"
    write(local, {"f.txt": "base"})
    assert _fsync(s3_proxy, "push", str(local), url, "-q").returncode == 0
    client = direct.boto3_client()
    try:
        edits = [
            lambda: (local / "f.txt").write_text("local edit"),
            lambda: client.put_object(
                Bucket=s3_proxy.bucket, Key=f"{PREFIX}/f.txt", Body=b"remote edit"
            ),
        ]
        if newer == "local":
            edits.reverse()
        edits[0]()
        time.sleep(1.1)  # LastModified has whole seconds on some stores
        edits[1]()
        for verb, ends in (("push", (str(local), url)), ("pull", (url, str(local)))):
            done = _fsync(s3_proxy, verb, *ends, "--on-conflict", "newer")
            assert done.returncode == 0, done.stderr
        stored = client.get_object(Bucket=s3_proxy.bucket, Key=f"{PREFIX}/f.txt")["Body"].read()
    finally:
        client.close()
    assert (local / "f.txt").read_text() == f"{newer} edit"
    assert stored == f"{newer} edit".encode()


def test_cleanup_that_cannot_abort_an_upload_says_so(
    s3_proxy: ProxiedBucket, direct: S3Server
) -> None:
    """Aborts the store refuses were counted as done: `{"aborted": 1}`, exit 0, and the
    upload (its parts billed) still there."""
    client = direct.boto3_client()
    try:
        client.create_multipart_upload(Bucket=s3_proxy.bucket, Key="x/big.bin")
        s3_proxy.proxy.add_rule("AbortMultipartUpload", action="403", times=None)
        done = _fsync(s3_proxy, "cleanup", f"s3://{s3_proxy.bucket}/x", "--older-than", "0")
        assert done.returncode == 1, done.stdout
        assert "1 unfinished uploads could not be aborted" in done.stderr
        assert "0 were" in done.stderr
        assert len(client.list_multipart_uploads(Bucket=s3_proxy.bucket)["Uploads"]) == 1
    finally:
        client.close()


def test_a_retried_request_counts_in_the_actions_attempts(
    s3_proxy: ProxiedBucket, tmp_path: Path
) -> None:
    """The `attempts` of an action (the `--log-file` field) was 1 whatever its requests'
    retries: it counted only the re-reads of a file that changed while being sent."""
    s3_proxy.proxy.add_rule("PutObject", action="503", times=2)
    write(tmp_path / "src", {"a.txt": "a", "b.txt": "b"})
    records: list[ActionRecord] = []
    opts = SyncOptions(
        local_root=str(tmp_path / "src"),
        remote_url=f"s3://{s3_proxy.bucket}/{PREFIX}",
        direction=Direction.PUSH,
        storage_options=s3_proxy.server.storage_options(),
        transfers=1,
    )
    result = app.run(opts, NullReporter(), on_action=records.append)
    assert (result.uploaded, result.failed) == (2, 0)
    assert sorted((r.path, r.attempts) for r in records) == [("a.txt", 3), ("b.txt", 1)]


def test_a_key_longer_than_s3_allows_is_refused_before_any_request(
    s3_proxy: ProxiedBucket, direct: S3Server, tmp_path: Path
) -> None:
    """A path whose key would pass S3's 1,024 bytes fails with a line that says so, naming
    the path once, and no request: Ceph answered a bare "InvalidObjectName", and moto stored
    the key, so the same tree pushed to AWS would have failed there only. The other files go,
    on every run."""
    deep = "/".join(["d" * 200] * 5)  # 1,004 bytes of folders
    long = f"{deep}/{'f' * 30}.txt"
    write(tmp_path / "src", {long: "too long", f"{deep}/ok.txt": "fits"})
    for _ in range(2):
        s3_proxy.proxy.reset_counts()
        done = _fsync(s3_proxy, "push", str(tmp_path / "src"), f"s3://{s3_proxy.bucket}/p")
        assert done.returncode == 1, done.stderr
        errors = done.stderr.strip().splitlines()
        assert len(errors) == 1, done.stderr
        assert errors == [
            f"fsync: error: upload {long}: the key would have 1,041 bytes, "
            "and S3 keys hold at most 1,024"
        ]
        assert s3_proxy.proxy.counts()["PutObject"] <= 1
    assert list(keys(direct, s3_proxy.bucket)) == [f"p/{deep}/ok.txt"]


@pytest.mark.parametrize("command", ["pull", "push", "sync", "verify"])
def test_a_remote_naming_an_object_is_refused_as_not_a_folder(
    s3_proxy: ProxiedBucket, direct: S3Server, tmp_path: Path, command: str
) -> None:
    """`pull s3://b/d/p.txt L`, where `p.txt` is an object, said "nothing to do", and a push
    there wrote `p.txt/...` beside the object. Each command refuses with exit 2, as it does
    a folder remote that is a file, for one HEAD spent only when the listing is empty."""
    src = tmp_path / "src"
    write(src, {"p.txt": "an object"})
    folder = f"s3://{s3_proxy.bucket}/d"
    assert _fsync(s3_proxy, "push", str(src), folder).returncode == 0
    s3_proxy.proxy.reset_counts()
    url = f"{folder}/p.txt"
    args = [url, str(tmp_path / "dst")] if command == "pull" else [str(src), url]
    done = _fsync(s3_proxy, command, *args)
    assert (done.returncode, done.stdout) == (2, ""), done.stderr
    assert done.stderr == (
        f"fsync: error: remote {url} is not a folder: it is an object (give a folder, such "
        f"as {folder})\n"
    )
    assert dict(s3_proxy.proxy.counts()) == {"ListObjectsV2": 1, "HeadObject": 1}
    assert list(keys(direct, s3_proxy.bucket)) == ["d/p.txt"]
    assert not (tmp_path / "dst").exists()

    s3_proxy.proxy.reset_counts()  # a prefix holding objects costs no HEAD
    assert (
        _fsync(
            s3_proxy, command, *([folder, str(src)] if command == "pull" else [str(src), folder])
        ).returncode
        == 0
    )
    # (verify reads each object's blake3 with a HEAD: one file, one HEAD)
    assert s3_proxy.proxy.counts()["HeadObject"] == (command == "verify")


def test_spellings_of_one_prefix_share_one_base(s3_proxy: ProxiedBucket, tmp_path: Path) -> None:
    """`s3://b/p/`, `s3://b//p` and `s3a://b/p` name the objects of `s3://b/p`: each had a
    base of its own, so a run through another spelling started from nothing (and `status`
    listed the prefix once per spelling)."""
    write(tmp_path / "src", {"a.txt": "a", "dir/b.txt": "b"})
    bucket = s3_proxy.bucket
    first = _fsync(s3_proxy, "push", str(tmp_path / "src"), f"s3://{bucket}/p/")
    assert first.returncode == 0, first.stderr
    (tmp_path / "src" / "a.txt").unlink()
    for url in (f"s3://{bucket}//p", f"s3a://{bucket}/p"):
        done = _fsync(s3_proxy, "push", str(tmp_path / "src"), url, "--json")
        assert done.returncode == 0, done.stderr
        summary = json.loads(done.stdout)
        assert (summary["deleted"], summary["uploaded"]) == (int(url.startswith("s3:")), 0)
    status = json.loads(_fsync(s3_proxy, "status", str(tmp_path / "src"), "--json").stdout)
    [remote] = status["remotes"]
    assert remote["url"].startswith(f"s3://{bucket}/p on http://")


def test_access_denied_exits_1_with_one_clear_line(s3_proxy: ProxiedBucket, tmp_path: Path) -> None:
    s3_proxy.proxy.add_rule("ListObjectsV2", action="403", times=None)
    done = _fsync(s3_proxy, "push", str(tmp_path), f"s3://{s3_proxy.bucket}/x")
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("fsync: error: listing s3://")
    assert "access denied (AccessDenied" in lines[0]
    assert s3_proxy.server.secret_key not in done.stderr + done.stdout
    assert s3_proxy.server.access_key not in done.stderr + done.stdout


@pytest.mark.slow
def test_killed_multipart_upload_resumes_with_only_the_missing_parts(
    s3_proxy: ProxiedBucket, direct: S3Server, tmp_path: Path
) -> None:
    """SIGKILL a push of a 120 MiB file after some of its 24 parts are on the server; the
    next push lists the parts (ListParts), sends only the others, and the object is whole.
    (The kill comes at 6 parts, 1.5 s in at 20 MiB/s: the whole file would take 6 s.)"""
    size, parts_total = 120 * MIB, 24
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "huge.bin", "wb") as out:
        rng = random.Random(42)
        for _ in range(size // (8 * MIB)):
            out.write(rng.randbytes(8 * MIB))
    command, env = _push_command(s3_proxy, src)
    key = f"{PREFIX}/huge.bin"

    upload_id, done = _killed_after_parts(
        direct, s3_proxy.bucket, key, [*command, "--bw-limit", "20MiB/s"], env, parts=6
    )
    assert 6 <= done < parts_total
    with TransferJournal.open(str(src)) as journal:
        assert [(row.upload_id, row.size) for row in journal.all()] == [(upload_id, size)]

    counts, _ = _push_again(s3_proxy, command, env)
    assert counts["CreateMultipartUpload"] == 0
    assert counts["ListParts"] == 1
    assert counts["UploadPart"] == parts_total - done
    assert counts["CompleteMultipartUpload"] == 1

    data_hash = blake3.blake3((src / "huge.bin").read_bytes()).hexdigest()
    answer = keys(direct, s3_proxy.bucket)[key]
    assert answer["ContentLength"] == size
    assert answer["Metadata"]["blake3"] == data_hash
    client = direct.boto3_client()
    try:
        stream = client.get_object(Bucket=s3_proxy.bucket, Key=key)["Body"]
        hasher = blake3.blake3()
        for block in iter(lambda: stream.read(8 * MIB), b""):
            hasher.update(block)
    finally:
        client.close()
    assert hasher.hexdigest() == data_hash
    assert unfinished_uploads(direct, s3_proxy.bucket) == []
    with TransferJournal.open(str(src)) as journal:
        assert journal.all() == []


@pytest.mark.slow
@pytest.mark.parametrize(
    ("then", "run"),
    [("deleted", "push"), ("restored", "push"), ("restored", "sync"), ("deleted", "watch")],
)
def test_a_killed_upload_of_a_file_deleted_or_restored_since_is_aborted_by_the_next_run(
    s3_proxy: ProxiedBucket, direct: S3Server, tmp_path: Path, then: str, run: str
) -> None:
    """SIGKILL a push mid-upload, then delete the file, or put back the content last pushed:
    no later push uploads that path, so none continued or aborted the upload, and it stayed
    on the store (its parts billed) and in `fsync status` until `fsync cleanup`. The next
    push, sync or watch aborts it; an abort the store refuses leaves it journaled for the
    one after; and once none is journaled, a run spends no request on them."""
    src = tmp_path / "src"
    rng = random.Random(7)
    first, second = rng.randbytes(6 * CHUNK), rng.randbytes(6 * CHUNK)
    write(src, {"a.txt": "alpha", "big.bin": first})
    if then == "restored":
        assert sync(src, s3_proxy, Direction.PUSH).failed == 0
        (src / "big.bin").write_bytes(second)
    command, env = _push_command(s3_proxy, src)
    key = f"{PREFIX}/big.bin"
    upload_id, _ = _killed_after_parts(
        direct, s3_proxy.bucket, key, [*command, "--bw-limit", "5MiB/s"], env, parts=1
    )
    with TransferJournal.open(str(src)) as journal:
        assert [row.upload_id for row in journal.all()] == [upload_id]
    if then == "deleted":
        (src / "big.bin").unlink()
    else:
        (src / "big.bin").write_bytes(first)

    if run == "push":  # the store refuses the first abort: the upload stays journaled
        s3_proxy.proxy.add_rule("AbortMultipartUpload", action="403", times=1)
        counts, _ = _push_again(s3_proxy, command, env)
        assert counts["AbortMultipartUpload"] == 1
        assert [u["UploadId"] for u in unfinished_uploads(direct, s3_proxy.bucket)] == [upload_id]
        with TransferJournal.open(str(src)) as journal:
            assert [row.upload_id for row in journal.all()] == [upload_id]
        counts, _ = _push_again(s3_proxy, command, env)
    else:
        s3_proxy.proxy.reset_counts()
        if run == "sync":
            assert sync(src, s3_proxy, Direction.SYNC).failed == 0
        else:
            _watch_startup(s3_proxy, src)
        counts = s3_proxy.proxy.counts()
    assert counts["AbortMultipartUpload"] == 1
    assert counts["UploadPart"] == counts["CreateMultipartUpload"] == 0
    assert unfinished_uploads(direct, s3_proxy.bucket) == []
    with TransferJournal.open(str(src)) as journal:
        assert journal.all() == []
    assert set(keys(direct, s3_proxy.bucket)) == {f"{PREFIX}/a.txt"} | (
        {key} if then == "restored" else set()
    )

    counts, _ = _push_again(s3_proxy, command, env)
    assert dict(counts) == {"ListObjectsV2": 1}


@pytest.mark.slow
@pytest.mark.parametrize("then", ["excluded", "pushed to the parent prefix"])
def test_a_killed_upload_a_later_run_may_continue_is_not_aborted(
    s3_proxy: ProxiedBucket, direct: S3Server, tmp_path: Path, then: str
) -> None:
    """A run aborts the stale uploads of its own remote only. `push --exclude big.bin` (the
    rest now, the big file tonight) took the excluded, unchanged file for gone and threw its
    parts away; a push to `s3://b/tree` took the upload of `s3://b/tree/sub` for one of its
    own `sub/big.bin`, absent here, and aborted it. Both stay journaled, for the run that
    continues them."""
    src = tmp_path / "src"
    write(src, {"a.txt": "alpha", "big.bin": random.Random(8).randbytes(6 * CHUNK)})
    command, env = _push_command(s3_proxy, src)
    if then != "excluded":
        command[command.index(f"s3://{s3_proxy.bucket}/{PREFIX}")] += "/sub"
    key = f"{PREFIX}/sub/big.bin" if then != "excluded" else f"{PREFIX}/big.bin"
    upload_id, _ = _killed_after_parts(
        direct, s3_proxy.bucket, key, [*command, "--bw-limit", "5MiB/s"], env, parts=1
    )

    again, _ = _push_command(s3_proxy, src)
    counts, _ = _push_again(
        s3_proxy, [*again, "--exclude", "big.bin"] if then == "excluded" else again, env
    )

    assert counts["AbortMultipartUpload"] == 0
    assert [u["UploadId"] for u in unfinished_uploads(direct, s3_proxy.bucket)] == [upload_id]
    with TransferJournal.open(str(src)) as journal:
        assert [row.upload_id for row in journal.all()] == [upload_id]


def _watch_startup(target: ProxiedBucket, src: Path) -> None:
    """Run a watch of `src` to the bucket until its startup push is done, then stop it."""
    opts = WatchOptions(
        str(src),
        f"s3://{target.bucket}/{PREFIX}",
        storage_options=target.server.storage_options(),
        chunk_size=CHUNK,
    )
    display, stop = Recorder(), threading.Event()
    errors: list[BaseException] = []

    def session() -> None:
        try:
            watch(opts, display, stop=stop)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=session, name="test-watch")
    thread.start()
    try:
        eventually(lambda: display.ready.is_set() or not thread.is_alive(), "the watch", 60)
    finally:
        stop.set()
        thread.join(timeout=60)
    assert not errors, errors
    assert display.ready.is_set()


@pytest.mark.slow
def test_ctrl_c_stops_a_long_upload_at_once_and_the_next_push_continues_it(
    s3_proxy: ProxiedBucket, direct: S3Server, tmp_path: Path
) -> None:
    """Ctrl-C waited for the file in flight to finish: 20 s for 100 MiB at 5 MiB/s. Now the
    upload stops at its next part, exit 130 (so recorded in the run history), and the next
    push sends only what is missing."""
    # Past the 3 parts stored and 2 in flight at the stop, the rest of the file takes 11 s at
    # 5 MiB/s: a Ctrl-C that waited for it would still take over the 8 s allowed.
    size, parts_total = 80 * MIB, 16
    src = tmp_path / "src"
    src.mkdir()
    (src / "big.bin").write_bytes(random.Random(7).randbytes(size))
    command, env = _push_command(s3_proxy, src)
    key = f"{PREFIX}/big.bin"
    first = _start([*command, "--bw-limit", "5MiB/s"], env)
    client = direct.boto3_client()
    try:
        _wait_for_parts(client, s3_proxy.bucket, key, first, at_least=3)
        stderr, took = _interrupt(first)
        assert first.returncode == 130, stderr
        assert took < 8, f"Ctrl-C took {took:.1f} s"  # a part or two in flight, not the file
        _, done = _settled_parts(client, s3_proxy.bucket, key)
    finally:
        client.close()
    assert 3 <= done < parts_total
    # The history has the run ended, as interrupted; it stayed "unfinished" (ended: null).
    (stopped,) = app.status(str(src)).runs
    assert (stopped.exit_code, stopped.summary["error"]) == (130, "interrupted")
    assert stopped.summary["uploaded"] == 0  # its one file was cut short
    assert stopped.ended is not None

    counts, stdout = _push_again(s3_proxy, [*command, "--json"], env)
    assert (counts["CreateMultipartUpload"], counts["ListParts"]) == (0, 1)
    assert counts["UploadPart"] == parts_total - done
    # The summary counts the bytes this run sent, not the parts the store already held.
    assert json.loads(stdout)["bytes_sent"] == (parts_total - done) * 5 * MIB
    assert keys(direct, s3_proxy.bucket)[key]["ContentLength"] == size
    assert unfinished_uploads(direct, s3_proxy.bucket) == []


@pytest.mark.slow
def test_ctrl_c_stops_a_bandwidth_limited_upload_whose_parts_are_all_read(
    s3_proxy: ProxiedBucket, direct: S3Server, tmp_path: Path
) -> None:
    """A file of fewer parts than `--transfers` is read whole at once, so no further read
    noticed the halt: under `--bw-limit` Ctrl-C went on sending it all (some 15 s for 30 MiB at
    2 MiB/s), completed the upload, then exited 130 without recording it. Now the parts
    waiting on the limit stop at once: exit 130, nothing published, the upload journaled for
    the next push to continue."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "big.bin").write_bytes(random.Random(9).randbytes(30 * MIB))
    command, env = _push_command(s3_proxy, src, transfers=8)
    key = f"{PREFIX}/big.bin"
    first = _start([*command, "--bw-limit", "2MiB/s"], env)
    client = direct.boto3_client()
    try:
        _wait_for_parts(client, s3_proxy.bucket, key, first, at_least=0)  # the upload began
        threading.Event().wait(1)  # its six parts are all read, each waiting on the limit
        stderr, took = _interrupt(first)
    finally:
        client.close()
    assert first.returncode == 130, stderr
    assert took < 5, f"Ctrl-C took {took:.1f} s"  # one part at 2 MiB/s is 2.5 s
    assert key not in keys(direct, s3_proxy.bucket)
    with TransferJournal.open(str(src)) as journal:
        assert [u.target for u in journal.all()] == [f"s3://{s3_proxy.bucket}/{key}"]

    counts, _ = _push_again(s3_proxy, command, env)
    assert (counts["CreateMultipartUpload"], counts["ListParts"]) == (0, 1)
    assert keys(direct, s3_proxy.bucket)[key]["ContentLength"] == 30 * MIB
    assert unfinished_uploads(direct, s3_proxy.bucket) == []


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_watch_stops_a_long_upload_after_its_parts_in_flight_and_says_so(
    s3_proxy: ProxiedBucket, direct: S3Server, tmp_path: Path, stop: signal.Signals
) -> None:
    """A watch's graceful stop only kept new files from starting: the upload in flight went
    on, every part of it (22 s for 100 MiB at 4 MiB/s), saying nothing. Now it finishes the
    parts going out, says it is waiting for them, exits 0 with the upload journaled, and
    the next push sends only the parts missing."""
    parts_total = 10
    src = tmp_path / "src"
    src.mkdir()
    (src / "big.bin").write_bytes(random.Random(5).randbytes(parts_total * CHUNK))
    push, env = _push_command(s3_proxy, src)
    command = [*push[:3], "watch", *push[4:]]
    key = f"{PREFIX}/big.bin"
    # Past the first two, each part is held 3 s at the proxy: at the stop, parts are going out.
    s3_proxy.proxy.add_rule("UploadPart", action="delay", delay=3, after=2, times=None)
    watching = _start(command, env)
    client = direct.boto3_client()
    try:
        _wait_for_parts(client, s3_proxy.bucket, key, watching, at_least=2)
        threading.Event().wait(0.5)  # the next two parts are held at the proxy
        stopped = time.monotonic()
        os.kill(watching.pid, stop)
        _, stderr_bytes = watching.communicate(timeout=120)
        took = time.monotonic() - stopped
        stderr = stderr_bytes.decode()
        assert watching.returncode == 0, stderr
        assert took < 8, f"the stop took {took:.1f} s"  # the parts in flight, not the file
        _, done = _settled_parts(client, s3_proxy.bucket, key)
    finally:
        client.close()
    assert "fsync: warning: stopping: finishing 1 transfer in flight" in stderr
    assert "Ctrl-C again to stop now" in stderr
    assert "error" not in stderr, stderr
    assert 2 <= done < parts_total
    assert key not in keys(direct, s3_proxy.bucket)
    with TransferJournal.open(str(src)) as journal:
        assert [u.target for u in journal.all()] == [f"s3://{s3_proxy.bucket}/{key}"]

    s3_proxy.proxy.clear_rules()
    counts, _ = _push_again(s3_proxy, push, env)
    assert (counts["CreateMultipartUpload"], counts["ListParts"]) == (0, 1)
    assert counts["UploadPart"] == parts_total - done
    assert keys(direct, s3_proxy.bucket)[key]["ContentLength"] == parts_total * CHUNK
    assert unfinished_uploads(direct, s3_proxy.bucket) == []


@pytest.mark.slow
def test_killed_download_resumes_from_its_verified_prefix(
    s3_proxy: ProxiedBucket, tmp_path: Path
) -> None:
    """SIGKILL a pull of a 100 MiB object once some 16 MiB blocks are on disk; the next pull
    re-hashes those blocks, asks only for the rest (`Range: bytes=N-`), and the file is
    whole. A block damaged on disk in between is fetched again, with everything after it."""
    size = 100 * MIB
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    data = random.Random(7).randbytes(size)
    (src / "huge.bin").write_bytes(data)
    assert sync(src, s3_proxy, Direction.PUSH).failed == 0
    url = f"s3://{s3_proxy.bucket}/{PREFIX}"
    command = [sys.executable, "-m", "fsync", "pull", url, str(dst), "--quiet", "--json"]
    env = s3_proxy.server.env()

    first = _start([*command, "--bw-limit", "20MiB/s"], env)
    try:
        blocks = _wait_for_blocks(dst, first, at_least=3)
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.communicate(timeout=30)  # (and closes its stderr pipe)
    with TransferJournal.open(str(dst)) as journal:
        (partial,) = journal.partials()
    assert len(partial.blocks) // 32 >= blocks
    temp = dst / partial.temp
    assert temp.stat().st_size >= 3 * 16 * MIB
    # Damage the second block on disk: the resume must keep only the first.
    with open(temp, "r+b") as out:
        out.seek(16 * MIB + 5)
        out.write(b"\xff" if data[16 * MIB + 5] != 0xFF else b"\x00")

    s3_proxy.proxy.reset_counts()
    second = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert second.returncode == 0, second.stderr
    gets = [e for e in s3_proxy.proxy.log if e.op == "GetObject"]
    assert [e.range for e in gets] == [f"bytes={16 * MIB}-"]
    summary = json.loads(second.stdout)
    assert summary["bytes_received"] == size - 16 * MIB
    assert blake3.blake3((dst / "huge.bin").read_bytes()).digest() == blake3.blake3(data).digest()
    assert sorted(p.name for p in dst.iterdir()) == [".fsync", "huge.bin"]
    with TransferJournal.open(str(dst)) as journal:
        assert journal.partials() == []


def test_a_store_ignoring_range_never_splices_a_resumed_download(
    s3_proxy: ProxiedBucket, tmp_path: Path
) -> None:
    """The store answers a resumed (ranged) read with the whole object: its first bytes must
    not be written after the kept prefix. The partial is dropped, nothing is published, and
    the next run fetches the file whole."""
    if s3_proxy.server.name == "ceph":
        pytest.skip("Ceph checks SigV4: a request stripped of its signed Range header is refused")
    size = 40 * MIB
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    data = random.Random(9).randbytes(size)
    (src / "big.bin").write_bytes(data)
    assert sync(src, s3_proxy, Direction.PUSH).failed == 0
    client = s3_proxy.server.boto3_client()
    try:
        etag = client.head_object(Bucket=s3_proxy.bucket, Key=f"{PREFIX}/big.bin")["ETag"]
    finally:
        client.close()
    source = f"s3://{s3_proxy.bucket}/{PREFIX}"
    leave_partial(dst, "big.bin", source, etag.strip('"'), data, blocks=1)
    s3_proxy.proxy.add_rule("GetObject", action="no-range", times=None)
    result = sync(dst, s3_proxy, Direction.PULL)
    assert result.failed == 1
    assert "asked for the bytes from 16777216 on" in result.errors[0].error
    assert sorted(p.name for p in dst.iterdir()) == [".fsync"]
    s3_proxy.proxy.clear_rules()
    again = sync(dst, s3_proxy, Direction.PULL)
    assert (again.downloaded, again.failed, again.bytes_received) == (1, 0, size)
    assert (dst / "big.bin").read_bytes() == data


def _push_command(
    target: ProxiedBucket, src: Path, *, transfers: int = 2
) -> tuple[list[str], dict[str, str]]:
    """`fsync push SRC` to the bucket in 5 MiB parts, `transfers` at a time, and its
    environment."""
    url = f"s3://{target.bucket}/{PREFIX}"
    command = [sys.executable, "-m", "fsync", "push", str(src), url, "--chunk-size", "5MiB"]
    return [*command, "--transfers", str(transfers), "--quiet"], target.server.env()


def _start(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """`command` in a child process of its own session, its stderr kept for the asserts."""
    return subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def _interrupt(process: subprocess.Popen[bytes]) -> tuple[str, float]:
    """Ctrl-C `process`; its stderr and the seconds it took to end."""
    interrupted = time.monotonic()
    os.kill(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    return stderr.decode(), time.monotonic() - interrupted


def _push_again(
    target: ProxiedBucket, command: list[str], env: dict[str, str]
) -> tuple[Counter[str], str]:
    """Run `command` once more, to its end (exit 0): the requests it made, and its stdout."""
    target.proxy.reset_counts()
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    return target.proxy.counts(), done.stdout


def _wait_for_blocks(dst: Path, process: subprocess.Popen[bytes], at_least: int) -> int:
    """Poll the state database until the partial download holds `at_least` blocks."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the pull ended (status {process.returncode}) too soon"
        if (dst / ".fsync" / "state.db").exists():
            with TransferJournal.open(str(dst)) as journal:
                partials = journal.partials()
            if partials and len(partials[0].blocks) // 32 >= at_least:
                return len(partials[0].blocks) // 32
        threading.Event().wait(0.05)
    raise AssertionError("the download never journaled its first blocks")


def _killed_after_parts(
    server: S3Server, bucket: str, key: str, command: list[str], env: dict[str, str], *, parts: int
) -> tuple[str, int]:
    """Start the push `command`, SIGKILL it once `key`'s upload holds `parts` parts, and
    return that upload's id and how many parts it holds once they settle."""
    pushing = _start(command, env)
    client = server.boto3_client()
    try:
        _wait_for_parts(client, bucket, key, pushing, at_least=parts)
        os.kill(pushing.pid, signal.SIGKILL)
        pushing.communicate(timeout=30)  # (and closes its stderr pipe)
        return _settled_parts(client, bucket, key)
    finally:
        client.close()


def _wait_for_parts(
    client: Any, bucket: str, key: str, process: subprocess.Popen[bytes], at_least: int
) -> int:
    """Poll ListParts until the upload of `key` holds `at_least` parts (0: until it exists);
    their number."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the push ended (status {process.returncode}) too soon"
        for upload in client.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
            if upload["Key"] == key:
                parts = client.list_parts(Bucket=bucket, Key=key, UploadId=upload["UploadId"])
                if len(parts.get("Parts", [])) >= at_least:
                    return len(parts.get("Parts", []))
        threading.Event().wait(0.05)
    raise AssertionError("the upload never got its first parts")


def _settled_parts(client: Any, bucket: str, key: str) -> tuple[str, int]:
    """The upload id of `key` and its count of whole parts once two looks, 0.5 s apart,
    agree (a part in flight at the kill may still land or be dropped). The tests' parts are
    all one size: a part cut short by the kill, which moto may keep, is not counted, as the
    next run sends it again (a full run's failure: 19 parts sent where 18 were missing)."""
    (upload,) = [u for u in client.list_multipart_uploads(Bucket=bucket)["Uploads"]]
    upload_id = upload["UploadId"]
    seen = -1
    while True:
        sizes = [
            int(part["Size"])
            for part in client.list_parts(Bucket=bucket, Key=key, UploadId=upload_id)["Parts"]
        ]
        count = sizes.count(max(sizes, default=0))
        if count == seen:
            return upload_id, count
        seen = count
        threading.Event().wait(0.5)


def test_pull_restores_mtimes_and_modes_without_a_head_per_file(
    s3_proxy: ProxiedBucket, tmp_path: Path
) -> None:
    src, back = tmp_path / "src", tmp_path / "back"
    write(src, {"a.txt": "alpha", "dir/b.sh": "#!/bin/sh\n", "big.bin": os.urandom(6 * MIB)})
    (src / "dir" / "b.sh").chmod(0o755)
    for i, p in enumerate(sorted(q for q in src.rglob("*") if q.is_file())):
        t = 1_600_000_000_123_456_789 + i * 1_000_000_007
        os.utime(p, ns=(t, t))
    assert sync(src, s3_proxy, Direction.PUSH).failed == 0
    s3_proxy.proxy.reset_counts()
    result = sync(back, s3_proxy, Direction.PULL)
    assert (result.downloaded, result.failed) == (3, 0)
    assert s3_proxy.proxy.counts()["HeadObject"] == 0
    assert listing(back, mtimes=True) == listing(src, mtimes=True)
    assert (back / "dir" / "b.sh").stat().st_mode & 0o777 == 0o755


def test_verify_full_reads_every_upload_back(s3_proxy: ProxiedBucket, tmp_path: Path) -> None:
    src = tmp_path / "src"
    write(src, {"a.txt": "alpha", "big.bin": os.urandom(6 * MIB)})
    result = sync(src, s3_proxy, Direction.PUSH, verify_full=True)
    assert (result.uploaded, result.failed) == (2, 0)
    assert s3_proxy.proxy.counts()["GetObject"] == 2


def test_verify_full_reads_again_after_an_empty_answer(
    s3_proxy: ProxiedBucket, direct: S3Server, tmp_path: Path
) -> None:
    """One read-back answered with nothing is read again, not taken for a bad copy: the
    upload stands and counts as done."""
    src = tmp_path / "src"
    write(src, {"a.txt": "alpha"})
    s3_proxy.proxy.add_rule("GetObject", action="empty-body", times=1)
    result = sync(src, s3_proxy, Direction.PUSH, verify_full=True)
    assert (result.uploaded, result.failed) == (1, 0), result.errors
    assert s3_proxy.proxy.counts()["GetObject"] == 2
    assert f"{PREFIX}/a.txt" in keys(direct, s3_proxy.bucket)


def test_one_url_on_two_stores_has_two_bases(
    moto_server: S3Server, other_moto_server: S3Server, tmp_path: Path
) -> None:
    """What was synced with `s3://b/p` on one store says nothing of `s3://b/p` on another.

    A base shared between them took the files the second store lacks for deleted there, so
    a pull from it deleted them locally (up to the `--max-delete` cap).
    """
    bucket = f"fsync-test-{os.urandom(8).hex()}"
    url = f"s3://{bucket}/{PREFIX}"
    files = {"a.txt": "alpha", "b.txt": "bravo", "c.txt": "charlie", "d/e.txt": "echo"}
    local = tmp_path / "local"
    write(local, files)

    def run(server: S3Server, direction: Direction) -> RunResult:
        opts = SyncOptions(
            local_root=str(local),
            remote_url=url,
            direction=direction,
            storage_options=server.storage_options(),
        )
        return app.run(opts, NullReporter())

    clients = [moto_server.boto3_client(), other_moto_server.boto3_client()]
    try:
        for client in clients:
            client.create_bucket(Bucket=bucket)
        assert run(moto_server, Direction.PUSH).uploaded == len(files)
        # The second store holds three of the four files, as a half-done copy would.
        for name in ("a.txt", "b.txt", "c.txt"):
            clients[1].put_object(Bucket=bucket, Key=f"{PREFIX}/{name}", Body=files[name].encode())

        pulled = run(other_moto_server, Direction.PULL)
        assert (pulled.deleted, pulled.failed) == (0, 0)
        assert listing(local) == {name: text.encode() for name, text in files.items()}

        # The first store's base is intact: nothing to do there.
        again = run(moto_server, Direction.PUSH)
        assert (again.uploaded, again.deleted, again.unchanged) == (0, 0, len(files))
        keys_known = [r.url for r in app.status(str(local)).remotes]
        assert keys_known == sorted(
            f"{url} on {s.endpoint_url}" for s in (moto_server, other_moto_server)
        )
    finally:
        for client in clients:
            listed = client.list_objects_v2(Bucket=bucket).get("Contents", [])
            for item in listed:
                client.delete_object(Bucket=bucket, Key=item["Key"])
            client.delete_bucket(Bucket=bucket)
            client.close()


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
def test_a_watch_sends_no_file_into_a_folder_made_a_file_there_since_it_listed(
    s3_proxy: ProxiedBucket, direct: S3Server, tmp_path: Path
) -> None:
    """Someone else puts a key `d` the watch has not listed (no `--pull-every`), and `d/x`
    is made here: it was sent beside `d`, a pair no disk can hold and no pull brings back.
    A push sees `d` in its listing and refuses `d/x`; the watch stats each folder new to
    the remote before it sends into it, and refuses it alike. A file in a known folder
    costs its upload alone."""
    src = tmp_path / "src"
    write(src, {"known/a.txt": "a"})
    url = f"s3://{s3_proxy.bucket}/{PREFIX}"
    options = {"storage_options": s3_proxy.server.storage_options(), "chunk_size": CHUNK}

    def stored() -> set[str]:
        return set(keys(direct, s3_proxy.bucket))

    w = Watching(src, tmp_path / "unused", url=url, retry_delay=0.05, **options)
    try:
        eventually(lambda: f"{PREFIX}/known/a.txt" in stored(), "the startup push")
        s3_proxy.proxy.reset_counts()
        write(src, {"known/b.txt": "b"})
        eventually(lambda: f"{PREFIX}/known/b.txt" in stored(), "a file in a known folder sent")
        assert dict(s3_proxy.proxy.counts()) == {"PutObject": 1}
        direct.boto3_client().put_object(Bucket=s3_proxy.bucket, Key=f"{PREFIX}/d", Body=b"x")
        write(src, {"d/x": "mine", "new/y": "y"})
        eventually(lambda: f"{PREFIX}/new/y" in stored(), "a file in a new folder sent")
        eventually(lambda: "upload!" in w.display.actions("d/x"), "d/x refused")
    finally:
        w.stop()
    assert stored() == {f"{PREFIX}/{p}" for p in ("known/a.txt", "known/b.txt", "d", "new/y")}
    said = {error for path, _, error in w.display.done if path == "d/x"}
    push = sync(src, s3_proxy, Direction.PUSH)  # says the same
    assert (push.failed, {e.error for e in push.errors}) == (1, said)
    assert said == {
        "not sent: the remote keeps a file d, so it cannot hold the folder d/ this file is "
        "in; rename d on the remote or d/ here, then run again"
    }


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
@pytest.mark.parametrize("made_a_link", ["d", "d/x.txt"])
def test_a_folder_made_a_link_during_a_push_sends_nothing_it_leads_to(
    s3_proxy: ProxiedBucket, direct: S3Server, tmp_path: Path, made_a_link: str
) -> None:
    """`d/` (or `d/x.txt`) replaced by a link outside the root while the push ran: the
    upload opened `d/x.txt` through the link and sent what it led to under the old name (a
    file-system tester: 8 of 8 runs, exit 0), though a scan skips such a link. The file is
    refused now, and the rest sent."""
    src, outside = tmp_path / "src", tmp_path / "outside"
    write(src, {"a.txt": "first", "d/x.txt": "mine"})
    write(outside, {"x.txt": "SECRET, of another folder"})
    hold = s3_proxy.proxy.add_rule("PutObject", action="delay", delay=60)
    opts = options(src, s3_proxy, Direction.PUSH, transfers=1)
    results: list[RunResult] = []
    run = threading.Thread(target=lambda: results.append(app.run(opts, NullReporter())))
    run.start()
    try:
        eventually(lambda: hold.fired == 1, "the first upload held", timeout=30)
        if made_a_link == "d":
            shutil.rmtree(src / "d")
            (src / "d").symlink_to(outside)
        else:
            (src / "d/x.txt").unlink()
            (src / "d/x.txt").symlink_to(outside / "x.txt")
    finally:
        hold.released.set()
        run.join(timeout=60)
    (result,) = results
    assert (result.uploaded, result.failed, [e.path for e in result.errors]) == (
        1,
        1,
        ["d/x.txt"],
    )
    assert "became a symbolic link" in result.errors[0].error
    assert _stored(direct, s3_proxy.bucket) == {f"{PREFIX}/a.txt": b"first"}


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
def test_a_watch_retries_every_change_a_batch_that_failed_took_in(
    s3_proxy: ProxiedBucket, direct: S3Server, tmp_path: Path
) -> None:
    """With the store unreachable, a deletion, then an edit and a file in a new folder: the
    batch of the deletion takes in those that follow (the delete limit judges them
    together), and failed as a whole. Only its first paths were retried: once the store
    answered again, the edit and the new file waited for the hourly rescan (watch tester,
    3/3, the summary saying 0 failing). Every one of them goes through now."""
    src = tmp_path / "src"
    write(src, {"f1": "one", "f2": "two", "f3": "three"})
    url = f"s3://{s3_proxy.bucket}/{PREFIX}"
    options = {"storage_options": s3_proxy.server.storage_options(), "chunk_size": CHUNK}

    def stored() -> dict[str, bytes] | None:
        try:
            return _stored(direct, s3_proxy.bucket)
        except ClientError:  # (a key the watch deleted between the listing and the read)
            return None

    w = Watching(src, tmp_path / "unused", url=url, retry_delay=0.05, **options)
    try:
        eventually(lambda: len(stored() or ()) == 3, "the startup push")
        s3_proxy.proxy.add_rule(None, action="503", times=None)
        (src / "f1").unlink()
        time.sleep(0.3)
        write(src, {"f2": "two, edited", "n/x": "new"})
        eventually(lambda: w.display.warnings, "the failure said", timeout=30)
        time.sleep(1.0)
        s3_proxy.proxy.clear_rules()
        want = {f"{PREFIX}/{p}": c for p, c in (("f2", b"two, edited"), ("f3", b"three"))}
        want[f"{PREFIX}/n/x"] = b"new"
        eventually(lambda: stored() == want, "every change", timeout=30)
    finally:
        w.stop()


HIDDEN_REFUSAL = (
    "not sent: the remote keeps files under d/ (d/x), so it cannot hold a file d; rename d/ "
    "on the remote or d here, then run again (what is in the way is left out of this run by "
    "the ignore rules)"
)


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
def test_a_folder_the_rules_leave_out_on_the_remote_is_in_the_way_of_a_file(
    s3_proxy: ProxiedBucket, direct: S3Server, tmp_path: Path
) -> None:
    """The rule `d/` leaves the remote's folder `d/` out and lets the local file `d` through.
    The planner saw only the listing under the rules, so a dry run said the file would go,
    and the push put the key `d` beside `d/x`: a pair no disk can hold, which no pull
    brings back. Both refuse it now, saying why; a watch does too, at start and later."""
    src = tmp_path / "src"
    write(src, {".fsyncignore": "d/\ne/\n", "d": "mine", "ok.txt": "ok"})
    for key in ("d/x", "e/x"):
        _theirs(direct, s3_proxy.bucket, key)
    dry = sync(src, s3_proxy, Direction.PUSH, dry_run=True)
    push = sync(src, s3_proxy, Direction.PUSH)
    for result in (dry, push):
        assert (result.failed, [(e.path, e.error) for e in result.errors]) == (
            1,
            [("d", HIDDEN_REFUSAL)],
        )
    assert set(_stored(direct, s3_proxy.bucket)) == {
        f"{PREFIX}/{p}" for p in (".fsyncignore", "ok.txt", "d/x", "e/x")
    }
    url = f"s3://{s3_proxy.bucket}/{PREFIX}"
    options = {"storage_options": s3_proxy.server.storage_options(), "chunk_size": CHUNK}
    w = Watching(src, tmp_path / "unused", url=url, retry_delay=0.05, **options)
    try:
        write(src, {"e": "mine too"})
        eventually(lambda: "upload!" in w.display.actions("e"), "e refused")
    finally:
        w.stop()
    assert {error for path, _, error in w.display.done if path == "d"} == {HIDDEN_REFUSAL}
    assert f"{PREFIX}/e" not in _stored(direct, s3_proxy.bucket)


SWAPS = {
    "folder made a file": ("d/e", "d", "not sent: the remote keeps files under d/ (d/e), "),
    "file made a folder": ("x", "x/a", "not sent: the remote keeps a file x, "),
}
"""A path swapped between file and folder here: the file synced before, the file that
takes its place, and how a push refuses the second while the remote keeps the first."""


def _swap_here(src: Path, old: str, new: str) -> None:
    """Replace `old` here by `new` (a folder by a file of its name, or the other way)."""
    if old.startswith(f"{new}/"):
        shutil.rmtree(src / new)
    else:
        (src / old).unlink()
    write(src, {new: "mine, new"})


def _theirs(direct: S3Server, bucket: str, path: str) -> None:
    """Another client rewrites `path` of the tree, past the proxy."""
    client = direct.boto3_client()
    try:
        client.put_object(Bucket=bucket, Key=f"{PREFIX}/{path}", Body=b"theirs")
    finally:
        client.close()


def _stored(direct: S3Server, bucket: str) -> dict[str, bytes]:
    """Every object of `bucket` by key, with its content."""
    client = direct.boto3_client()
    try:
        return {
            key: client.get_object(Bucket=bucket, Key=key)["Body"].read()
            for key in keys(direct, bucket)
        }
    finally:
        client.close()


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
@pytest.mark.parametrize("swap", list(SWAPS))
def test_a_watch_sends_no_file_beside_one_it_could_not_delete(
    s3_proxy: ProxiedBucket, direct: S3Server, tmp_path: Path, swap: str
) -> None:
    """Someone rewrites `d/e` behind the watch's back, then `d/` is made a file here. The
    delete of `d/e` is refused (their version stays, a conflict), and the upload of `d`
    that waited on it went anyway: keys `d` and `d/e` side by side, which no disk can hold,
    and the watch said nothing failed. It fails now as a push says, and keeps failing
    (retried) while their `d/e` is there; nothing of either side is lost."""
    old, new, refusal = SWAPS[swap]
    src = tmp_path / "src"
    write(src, {old: "mine"})
    url = f"s3://{s3_proxy.bucket}/{PREFIX}"
    options = {"storage_options": s3_proxy.server.storage_options(), "chunk_size": CHUNK}
    w = Watching(src, tmp_path / "unused", url=url, retry_delay=0.05, **options)
    try:
        eventually(lambda: f"{PREFIX}/{old}" in keys(direct, s3_proxy.bucket), "the startup push")
        _theirs(direct, s3_proxy.bucket, old)
        _swap_here(src, old, new)
        eventually(lambda: "upload!" in w.display.actions(new), f"{new} refused")
        eventually(lambda: set(w.display.failing_seen) == {new}, f"only {new} failing")
    finally:
        totals = w.stop()
    assert _stored(direct, s3_proxy.bucket) == {f"{PREFIX}/{old}": b"theirs"}
    assert tree(src) == {new: b"mine, new"}
    said = {error for path, _, error in w.display.done if path == new}
    assert (totals.failed, [e.path for e in totals.errors]) == (1, [new])
    push = sync(src, s3_proxy, Direction.PUSH)  # says the same
    assert (push.failed, {e.error for e in push.errors}) == (1, said)
    (message,) = said
    assert message is not None
    assert message.startswith(refusal)


def _push_while_they_rewrite(
    src: Path, s3_proxy: ProxiedBucket, direct: S3Server, path: str
) -> RunResult:
    """Push `src` while another client rewrites `path`: after the push listed it, before the
    push's first look at it (that HEAD waits at the proxy until the rewrite is done)."""
    key = f"/{s3_proxy.bucket}/{PREFIX}/{path}"
    held = s3_proxy.proxy.add_rule("HeadObject", action="delay", delay=60, path=key)
    results: list[RunResult] = []
    runner = threading.Thread(target=lambda: results.append(sync(src, s3_proxy, Direction.PUSH)))
    runner.start()
    try:
        eventually(lambda: held.fired == 1, f"the held HEAD of {path}", timeout=30)
        _theirs(direct, s3_proxy.bucket, path)
    finally:
        held.released.set()
        runner.join(60)
    (result,) = results
    return result


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
@pytest.mark.parametrize("swap", list(SWAPS))
def test_a_push_whose_delete_loses_a_race_sends_no_file_beside_theirs(
    s3_proxy: ProxiedBucket, direct: S3Server, tmp_path: Path, swap: str
) -> None:
    """`d/` made a file here; the push lists `d/e` as synced and plans its delete, then the
    upload of `d`. Someone rewrites `d/e` after the listing, before the delete looks (its
    HEAD held at the proxy meanwhile): the delete is refused, and the upload of `d` must not
    go beside their `d/e`. It fails with the message a push gives when its listing already
    shows their `d/e`."""
    old, new, refusal = SWAPS[swap]
    src = tmp_path / "src"
    write(src, {old: "mine"})
    sync(src, s3_proxy, Direction.PUSH)
    _swap_here(src, old, new)
    result = _push_while_they_rewrite(src, s3_proxy, direct, old)
    assert (result.uploaded, result.deleted, result.failed, result.conflicts) == (0, 0, 1, 1)
    (error,) = result.errors
    assert error.path == new
    assert error.error.startswith(refusal)
    assert app.exit_status(result) == 1
    assert _stored(direct, s3_proxy.bucket) == {f"{PREFIX}/{old}": b"theirs"}
    assert tree(src) == {new: b"mine, new"}


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
def test_a_push_whose_move_loses_a_race_sends_no_file_into_the_file_left(
    s3_proxy: ProxiedBucket, direct: S3Server, tmp_path: Path
) -> None:
    """`x` renamed `y` here, and a folder `x/` made in its place: the push moves `x` to `y`
    on the remote, then sends `x/a`. Someone rewrites `x` before the move looks at it: the
    move is refused (their `x` stays), and `x/a` must not go under a file `x`."""
    src = tmp_path / "src"
    write(src, {"x": "mine"})
    sync(src, s3_proxy, Direction.PUSH)
    (src / "x").rename(src / "y")
    write(src, {"x/a": "mine, new"})
    result = _push_while_they_rewrite(src, s3_proxy, direct, "x")
    assert (result.uploaded, result.moved, result.failed, result.conflicts) == (0, 0, 1, 1)
    (error,) = result.errors
    assert error.path == "x/a"
    assert error.error.startswith(SWAPS["file made a folder"][2])
    assert _stored(direct, s3_proxy.bucket) == {f"{PREFIX}/x": b"theirs"}
    assert tree(src) == {"y": b"mine", "x/a": b"mine, new"}
