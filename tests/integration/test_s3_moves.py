"""Renames on S3 move objects, never bytes: counted at the server (moto and Ceph RGW).

A 100 MiB file renamed locally is pushed as one server-side CopyObject and one DeleteObject,
with no PutObject and no multipart part; renamed on the bucket by another client, it is
pulled as a local rename, with no GetObject. The requests are counted by the proxy in front
of the server (tests/fsynctest/proxy.py).
"""

from __future__ import annotations

import os
from collections import Counter
from typing import TYPE_CHECKING

import pytest

from fsync import app
from fsync.config import SyncOptions
from fsync.model import Direction, RunResult
from fsync.progress import NullReporter
from fsynctest.trees import listing

if TYPE_CHECKING:
    from pathlib import Path

    from conftest import ProxiedBucket

pytestmark = pytest.mark.s3

MIB = 1 << 20
PREFIX = "tree"
SENDS = {"PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"}


def run(local: Path, target: ProxiedBucket, direction: Direction) -> RunResult:
    opts = SyncOptions(
        local_root=str(local),
        remote_url=f"s3://{target.bucket}/{PREFIX}",
        direction=direction,
        storage_options=target.server.storage_options(),
    )
    result = app.run(opts, NullReporter())
    assert result.failed == 0, result.errors
    return result


def test_a_renamed_100_mib_file_moves_on_the_server(
    s3_proxy: ProxiedBucket, tmp_path: Path
) -> None:
    local = tmp_path / "local"
    (local / "photos").mkdir(parents=True)
    big = os.urandom(100 * MIB)
    (local / "photos" / "big.bin").write_bytes(big)
    assert run(local, s3_proxy, Direction.PUSH).uploaded == 1
    proxy = s3_proxy.proxy

    (local / "archive").mkdir()
    (local / "photos" / "big.bin").rename(local / "archive" / "big-2024.bin")
    proxy.reset_counts()
    result = run(local, s3_proxy, Direction.PUSH)
    assert (result.moved, result.uploaded, result.deleted, result.bytes_sent) == (1, 0, 0, 0)
    counts = proxy.counts()
    assert not SENDS & set(counts), counts
    assert (counts["CopyObject"], counts["DeleteObject"]) == (1, 1), counts
    assert set(counts) <= {"ListObjectsV2", "HeadObject", "CopyObject", "DeleteObject"}

    # Another client renames it on the bucket; a pull renames the local file to follow.
    client = s3_proxy.server.boto3_client()
    try:
        client.copy_object(
            Bucket=s3_proxy.bucket,
            Key=f"{PREFIX}/final/big.bin",
            CopySource={"Bucket": s3_proxy.bucket, "Key": f"{PREFIX}/archive/big-2024.bin"},
            MetadataDirective="COPY",
        )
        client.delete_object(Bucket=s3_proxy.bucket, Key=f"{PREFIX}/archive/big-2024.bin")
    finally:
        client.close()
    proxy.reset_counts()
    pulled = run(local, s3_proxy, Direction.PULL)
    assert (pulled.moved, pulled.downloaded, pulled.deleted, pulled.bytes_received) == (1, 0, 0, 0)
    counts = proxy.counts()
    assert "GetObject" not in counts, counts
    assert counts == Counter({"ListObjectsV2": 1, "HeadObject": counts["HeadObject"]})
    assert counts["HeadObject"] <= 2
    assert listing(local) == {"final/big.bin": big}
