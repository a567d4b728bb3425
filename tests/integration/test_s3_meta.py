"""A `chmod` or `touch` alone on S3: one CopyObject per file, never content (moto and Ceph).

A push of files whose content is unchanged but whose mode or mtime changed copies each
object onto itself with the new metadata: no PutObject, no multipart part. The copy keeps
every piece of metadata an upload writes (`blake3`, `md5chksum`), also on a multipart
object, and a pull into another folder restores the new mode and mtime. A run with nothing
changed makes no request beyond its listing. Requests are counted by the proxy in front of
the server (tests/fsynctest/proxy.py).
"""

from __future__ import annotations

import os
import stat
from typing import TYPE_CHECKING

import pytest
from tests.integration.test_s3_moves import PREFIX, SENDS, run

from fsync.model import Direction

if TYPE_CHECKING:
    from pathlib import Path

    from conftest import ProxiedBucket

pytestmark = pytest.mark.s3

MIB = 1 << 20
TOUCHED_NS = 981_173_106_789_000_000


def test_a_touch_and_a_chmod_are_one_copy_per_file_and_a_pull_restores_them(
    s3_proxy: ProxiedBucket, tmp_path: Path
) -> None:
    local, fresh = tmp_path / "local", tmp_path / "fresh"
    local.mkdir()
    (local / "script.sh").write_bytes(b"#!/bin/sh\necho hi\n")
    (local / "notes.txt").write_bytes(b"notes\n")
    (local / "big.bin").write_bytes(os.urandom(17 * MIB))  # two parts of 16 MiB
    for name in ("script.sh", "notes.txt", "big.bin"):
        (local / name).chmod(0o644)
    assert run(local, s3_proxy, Direction.PUSH).uploaded == 3
    client = s3_proxy.server.boto3_client()
    try:
        before = {
            name: client.head_object(Bucket=s3_proxy.bucket, Key=f"{PREFIX}/{name}")["Metadata"]
            for name in ("script.sh", "big.bin")
        }
        (local / "script.sh").chmod(0o755)
        for name in ("notes.txt", "big.bin"):
            os.utime(local / name, ns=(TOUCHED_NS, TOUCHED_NS))
        proxy = s3_proxy.proxy
        proxy.reset_counts()
        result = run(local, s3_proxy, Direction.PUSH)
        counts = proxy.counts()
        assert not SENDS & set(counts), counts
        assert counts["CopyObject"] == 3, counts
        assert set(counts) <= {"ListObjectsV2", "HeadObject", "CopyObject"}, counts
        assert counts.get("HeadObject", 0) <= 1, counts  # the multipart object's md5chksum
        assert (result.meta_updated, result.uploaded, result.bytes_sent) == (3, 0, 0)

        after = {
            name: client.head_object(Bucket=s3_proxy.bucket, Key=f"{PREFIX}/{name}")["Metadata"]
            for name in ("script.sh", "big.bin")
        }
    finally:
        client.close()
    assert after["script.sh"]["mode"] == "0100755"
    assert after["big.bin"]["mtime"] == "981173106.789"
    for name in ("script.sh", "big.bin"):
        for key in ("blake3", "md5chksum"):
            assert after[name][key] == before[name][key], (name, key)

    proxy.reset_counts()
    again = run(local, s3_proxy, Direction.PUSH)
    assert (again.meta_updated, again.unchanged) == (0, 3)
    assert set(proxy.counts()) == {"ListObjectsV2"}, proxy.counts()

    run(fresh, s3_proxy, Direction.PULL)
    assert stat.S_IMODE((fresh / "script.sh").stat().st_mode) == 0o755
    for name in ("notes.txt", "big.bin"):
        assert (fresh / name).stat().st_mtime_ns == TOUCHED_NS
        assert (fresh / name).read_bytes() == (local / name).read_bytes()
