"""`fsync verify` through the installed command: counts, differences, exit status."""

from __future__ import annotations

import json
import shutil
import unicodedata
from pathlib import Path

import pytest

from fsynctest.caps import drop_dac_caps, unreadable
from fsynctest.trees import write

TREE = {"a.txt": "alpha", "dir/b.bin": bytes(range(256)) * 64, "dir/c.txt": "charlie"}


def flip_one_byte(path: Path) -> None:
    """Change one byte in the middle of `path`, keeping its size."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture
def synced(fsync, tmp_path: Path) -> tuple[Path, Path]:
    src, out = tmp_path / "src", tmp_path / "out"
    write(src, TREE)
    assert fsync("push", src, out).returncode == 0
    return src, out


def test_identical_trees_verify(fsync, synced: tuple[Path, Path]) -> None:
    src, out = synced
    res = fsync("verify", src, out, "--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    total = sum(len(v if isinstance(v, bytes) else v.encode()) for v in TREE.values())
    assert report["ok"] is True
    assert report["local"] == {"files": 3, "bytes": total}
    assert report["remote"] == {"files": 3, "bytes": total}
    assert report["matched"] == 3
    assert (report["missing"], report["extra"], report["different"]) == ([], [], [])
    # A filesystem remote keeps no digest: every remote file was read and hashed.
    assert report["remote_digests"]["hashed_files"] == 3
    human = fsync("verify", src, out)
    assert human.returncode == 0
    assert "verify: OK: 3 match" in human.stdout


def test_missing_extra_and_different(fsync, synced: tuple[Path, Path]) -> None:
    src, out = synced
    (out / "a.txt").unlink()
    write(out, {"stray.txt": "not in the source", "dir/c.txt": "changed, longer"})
    res = fsync("verify", src, out, "--json")
    assert res.returncode == 1
    report = json.loads(res.stdout)
    assert report["ok"] is False
    assert report["missing"] == ["a.txt"]
    assert report["extra"] == ["stray.txt"]
    assert [d["path"] for d in report["different"]] == ["dir/c.txt"]
    assert "size" in report["different"][0]["reason"]
    assert report["counts"] == {"missing": 1, "extra": 1, "different": 1, "errors": 0}
    human = fsync("verify", src, out)
    assert human.returncode == 1
    assert "missing    a.txt" in human.stdout
    assert "extra      stray.txt" in human.stdout
    assert "different  dir/c.txt" in human.stdout


def test_flipped_byte_on_a_filesystem_remote_is_always_caught(
    fsync, synced: tuple[Path, Path]
) -> None:
    src, out = synced
    flip_one_byte(out / "dir" / "b.bin")
    res = fsync("verify", src, out, "--json")
    assert res.returncode == 1
    report = json.loads(res.stdout)
    assert [d["path"] for d in report["different"]] == ["dir/b.bin"]
    assert "content" in report["different"][0]["reason"]


def test_verify_changes_nothing(fsync, tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    write(src, TREE)
    write(out, TREE)
    res = fsync("verify", src, out)
    assert res.returncode == 0, res.stderr
    # No state database is created for a root fsync never synced, on either side.
    assert not (src / ".fsync").exists()
    assert not (out / ".fsync").exists()


def test_excludes_apply_to_both_sides(fsync, synced: tuple[Path, Path]) -> None:
    src, out = synced
    write(src, {"scratch.log": "local noise"})
    write(out, {"remote.log": "remote noise"})
    assert fsync("verify", src, out).returncode == 1
    assert fsync("verify", src, out, "--exclude", "*.log").returncode == 0
    (src / ".fsyncignore").write_text("*.log\n")
    (out / ".fsyncignore").write_text("*.log\n")
    assert fsync("verify", src, out).returncode == 0


def test_missing_remote_folder_is_a_usage_error(fsync, tmp_path: Path) -> None:
    write(tmp_path / "src", TREE)
    res = fsync("verify", tmp_path / "src", tmp_path / "nowhere")
    assert res.returncode == 2
    assert "does not exist" in res.stderr


@pytest.mark.s3
def test_s3_metadata_kept_over_a_rewrite_is_not_trusted(fsync, s3_bucket, tmp_path: Path) -> None:
    server, bucket = s3_bucket
    env = server.env()
    src = tmp_path / "src"
    write(src, TREE)
    url = f"s3://{bucket}/tree"
    pushed = fsync("push", src, url, env=env)
    assert pushed.returncode == 0, pushed.stderr

    ok = fsync("verify", src, url, "--json", env=env)
    assert ok.returncode == 0, ok.stderr
    report = json.loads(ok.stdout)
    assert report["remote_digests"]["from_metadata"] == 3
    assert report["remote_digests"]["hashed_files"] == 0

    # Rewrite one object's bytes (same size) but keep its metadata, blake3 included.
    client = server.boto3_client()
    try:
        key = "tree/dir/b.bin"
        head = client.head_object(Bucket=bucket, Key=key)
        body = bytearray(client.get_object(Bucket=bucket, Key=key)["Body"].read())
        body[len(body) // 2] ^= 0xFF
        client.put_object(Bucket=bucket, Key=key, Body=bytes(body), Metadata=head["Metadata"])
    finally:
        client.close()

    # The kept `md5chksum` no longer matches the ETag: that metadata is not believed, and
    # this one object is hashed from a download even without --download.
    trusting = fsync("verify", src, url, "--json", env=env)
    assert trusting.returncode == 1, trusting.stdout
    report = json.loads(trusting.stdout)
    assert [d["path"] for d in report["different"]] == ["dir/b.bin"]
    assert report["remote_digests"] == {
        "from_metadata": 2,
        "hashed_files": 1,
        "hashed_bytes": 16384,
    }

    checked = fsync("verify", src, url, "--download", "--json", env=env)
    assert checked.returncode == 1, checked.stderr
    report = json.loads(checked.stdout)
    assert [d["path"] for d in report["different"]] == ["dir/b.bin"]
    assert report["remote_digests"]["hashed_files"] == 3

    # A missing or extra object is caught without --download.
    client = server.boto3_client()
    try:
        client.delete_object(Bucket=bucket, Key="tree/a.txt")
        client.put_object(Bucket=bucket, Key="tree/extra.txt", Body=b"x")
    finally:
        client.close()
    res = fsync("verify", src, url, "--json", env=env)
    assert res.returncode == 1
    report = json.loads(res.stdout)
    assert (report["missing"], report["extra"]) == (["a.txt"], ["extra.txt"])


def test_an_unreadable_remote_folder_is_an_error_not_missing_files(
    fsync, synced: tuple[Path, Path]
) -> None:
    """A folder remote's unreadable subfolder stopped verify as a whole ("cannot list");
    now it is one error, and what it holds is neither missing nor extra."""
    src, out = synced
    with unreadable(out / "dir"):
        res = fsync("verify", src, out, "--json", prefix=drop_dac_caps())
    assert res.returncode == 1, res.stderr
    report = json.loads(res.stdout)
    why = "cannot read this folder on the remote (Permission denied); what it holds is left alone"
    assert report["errors"] == [{"path": "dir", "error": why}]
    assert (report["missing"], report["extra"], report["matched"]) == ([], [], 1)


def test_a_name_in_another_unicode_form_is_one_error_not_also_missing(
    fsync, tmp_path: Path
) -> None:
    """`cp -a` of a tree holding a decomposed name: the remote's key is one fsync cannot
    address (an error, as a push says), and its file was listed as missing too (verify
    tester): what that key shadows is left alone by runs, so out of the comparison."""
    src, out = tmp_path / "src", tmp_path / "out"
    decomposed = unicodedata.normalize("NFD", "dir/café.txt")
    write(src, {decomposed: "x", "a.txt": "a"})
    shutil.copytree(src, out)
    res = fsync("verify", src, out, "--json")
    assert res.returncode == 1, res.stderr
    report = json.loads(res.stdout)
    assert [e["path"] for e in report["errors"]] == [decomposed]
    assert (report["missing"], report["extra"], report["matched"]) == ([], [], 1)
