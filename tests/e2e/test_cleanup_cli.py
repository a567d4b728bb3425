"""`fsync cleanup REMOTE`: unfinished writes go, finished files stay."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import S3Server


def test_cleanup_removes_stale_temp_files_only(fsync, tmp_path: Path) -> None:
    """A temp file written just now stays, though it carries its source's old mtime (age is
    judged by ctime, see the local conformance tests). Without an age, so do those changed
    in the last two minutes, which a running fsync may be writing (removing one failed its
    file); `--older-than 0` takes them all."""
    remote = tmp_path / "remote"
    (remote / "dir").mkdir(parents=True)
    (remote / "keep.txt").write_text("kept")
    staged = remote / "dir" / ".fsync-0123456789abcdef.tmp"
    staged.write_text("being written, with the source's mtime")
    fresh = remote / ".fsync-fedcba9876543210.tmp"
    fresh.write_text("being written")
    old = time.time() - 7200
    os.utime(staged, (old, old))

    res = fsync("cleanup", remote, "--older-than", "1h", "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == {"aborted": 0}
    assert staged.exists()
    assert fresh.exists()

    res = fsync("cleanup", remote)
    assert res.returncode == 0, res.stderr
    assert "aborted 0 unfinished uploads" in res.stdout
    assert staged.exists()

    res = fsync("cleanup", remote, "--older-than", "0")
    assert res.returncode == 0, res.stderr
    assert "aborted 2 unfinished uploads" in res.stdout
    assert sorted(p.name for p in remote.rglob("*") if p.is_file()) == ["keep.txt"]


def test_cleanup_through_fsspec_keeps_fresh_temp_files_too(fsync, tmp_path: Path) -> None:
    """`local://` goes through fsspec (as sftp would): the same in-use window applies."""
    (tmp_path / "r").mkdir()
    fresh = tmp_path / "r" / ".fsync-0123456789abcdef.tmp"
    fresh.write_text("being written by a running push")
    url = f"local://{tmp_path}/r"
    res = fsync("cleanup", url, "--json")
    assert (res.returncode, json.loads(res.stdout)) == (0, {"aborted": 0})
    res = fsync("cleanup", url, "--older-than", "0", "--json")
    assert (res.returncode, json.loads(res.stdout)) == (0, {"aborted": 1})
    assert not fresh.exists()
    res = fsync("cleanup", f"local://{tmp_path}/nope")
    assert res.returncode == 2
    assert "does not exist" in res.stderr


def test_cleanup_of_a_missing_folder_is_a_usage_error(fsync, tmp_path: Path) -> None:
    res = fsync("cleanup", tmp_path / "nope")
    assert res.returncode == 2
    assert res.stderr.startswith("fsync: error: remote file://")
    assert "is not an existing folder" in res.stderr


def test_cleanup_rejects_a_bad_duration(fsync, tmp_path: Path) -> None:
    res = fsync("cleanup", tmp_path, "--older-than", "soon")
    assert res.returncode == 2
    assert res.stderr.startswith("fsync: error: invalid duration")


@pytest.mark.s3
def test_cleanup_aborts_unfinished_multipart_uploads(
    fsync, s3_bucket: tuple[S3Server, str]
) -> None:
    server, bucket = s3_bucket
    client = server.boto3_client()
    try:
        inside = client.create_multipart_upload(Bucket=bucket, Key="tree/big.bin")["UploadId"]
        client.upload_part(
            Bucket=bucket, Key="tree/big.bin", UploadId=inside, PartNumber=1, Body=b"x" * 1024
        )
        client.create_multipart_upload(Bucket=bucket, Key="elsewhere/other.bin")
        client.put_object(Bucket=bucket, Key="tree/done.txt", Body=b"done")

        if server.name != "moto":  # moto reports every upload as initiated in 2010
            kept = fsync("cleanup", f"s3://{bucket}/tree", "--older-than", "1h", env=server.env())
            assert kept.returncode == 0, kept.stderr
            assert "aborted 0" in kept.stdout

        # A part sent just now: a running push's upload, which cleanup leaves by default.
        res = fsync("cleanup", f"s3://{bucket}/tree", "--json", env=server.env())
        assert (res.returncode, json.loads(res.stdout)) == (0, {"aborted": 0}), res.stderr
        res = fsync("cleanup", f"s3://{bucket}/tree", "--older-than", "0", env=server.env())
        assert res.returncode == 0, res.stderr
        assert "aborted 1 unfinished uploads" in res.stdout
        left = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        assert [u["Key"] for u in left] == ["elsewhere/other.bin"]
        assert client.get_object(Bucket=bucket, Key="tree/done.txt")["Body"].read() == b"done"
    finally:
        client.close()
