"""`transfer.backup.locate` and `paths.stamped_name`: where a `--backup-dir` is, from URLs alone."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from fsync.errors import ConfigError
from fsync.model import RelPath
from fsync.paths import MAX_NAME_BYTES, conflict_name, stamped_name
from fsync.transfer.backup import BackupPlace, locate

ROOT = "/data/photos"


@pytest.mark.parametrize(
    ("backup", "remote", "want"),
    [
        # Beside an S3 remote: one store (the bucket), reached server-side.
        (
            "s3://bucket/backup",
            "s3://bucket/tree",
            BackupPlace("", None, "s3://bucket", "tree", "backup", ()),
        ),
        # Inside the remote root: the remote itself is the store, and the dir is excluded.
        (
            "s3://bucket/tree/.old",
            "s3://bucket/tree",
            BackupPlace("", None, "s3://bucket/tree", "", ".old", ("/.old/",)),
        ),
        (
            "s3a://bucket/b",
            "s3://bucket/t/u",
            BackupPlace("", None, "s3://bucket", "t/u", "b", ()),
        ),
        # memory:// is one store whatever the roots.
        (
            "memory://x-backup",
            "memory://x",
            BackupPlace("", None, "memory://", "x", "x-backup", ()),
        ),
        # A local folder for a local remote: both (rename on the disk, or a local folder).
        (
            "/srv/backup",
            "file:///srv/remote",
            BackupPlace("", "/srv/backup", "/srv", "remote", "backup", ()),
        ),
        # A local folder for an S3 remote: remote versions are downloaded into it.
        ("/srv/backup", "s3://bucket/tree", BackupPlace("", "/srv/backup", None, "", "", ())),
        # Inside the local root: excluded from the sync, special characters escaped.
        (
            f"{ROOT}/.trash [old]",
            "s3://bucket/tree",
            BackupPlace("", f"{ROOT}/.trash [old]", None, "", "", ("/.trash \\[old\\]/",)),
        ),
    ],
)
def test_locate(backup: str, remote: str, want: BackupPlace) -> None:
    assert dataclasses.replace(locate(backup, remote, ROOT), url="") == want


def test_a_relative_folder_is_taken_from_the_current_one() -> None:
    got = locate("kept", "s3://bucket/tree", ROOT)
    assert got.local_dir == os.path.abspath("kept")


@pytest.mark.parametrize(
    ("backup", "remote", "message"),
    [
        ("s3://other/backup", "s3://bucket/tree", "neither a local folder nor on the same store"),
        ("memory://x", "s3://bucket/tree", "neither a local folder nor on the same store"),
        ("s3://bucket/tree", "s3://bucket/tree", "holds the remote"),
        ("s3://bucket", "s3://bucket/tree", "holds the remote"),
        ("/data", "s3://bucket/tree", "holds the local folder"),
        (ROOT, "s3://bucket/tree", "holds the local folder"),
        ("memory://", "memory://x", "holds the remote"),
    ],
)
def test_refused(backup: str, remote: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        locate(backup, remote, ROOT)


@pytest.mark.parametrize(
    ("path", "want"),
    [
        ("a.txt", "a.20250102-030405.txt"),
        ("dir/archive.tar.gz", "dir/archive.tar.20250102-030405.gz"),
        (".bashrc", ".bashrc.20250102-030405"),
        ("Makefile", "Makefile.20250102-030405"),
    ],
)
def test_stamped_name(path: str, want: str) -> None:
    assert stamped_name(RelPath(path), "20250102-030405") == want


@pytest.mark.parametrize(
    "name", ["x" * 236 + ".txt", "é" * 126 + ".txt", "y" * 255, "z." + "e" * 250]
)
def test_a_stamped_name_near_the_limit_is_shortened_to_fit(name: str) -> None:
    """A copy of a 240-byte name took 28 bytes more: no disk could hold it, and the
    conflict failed at every run."""
    for made in (
        stamped_name(RelPath(f"d/{name}"), "20250102-030405"),
        conflict_name(RelPath(f"d/{name}"), "20250102-030405", "host"),
    ):
        folder, _, new = made.rpartition("/")
        assert folder == "d"
        assert len(new.encode()) <= MAX_NAME_BYTES
        assert "20250102-030405" in new
        assert new.encode().decode() == new  # cut between characters
        assert new.startswith(name[:50])


def test_a_backup_dir_named_through_a_link_is_placed_by_what_it_is(tmp_path: Path) -> None:
    """`--backup-dir LINK/.backup`, LINK a link to the local folder, was taken for a folder
    beside it: each run backed the backups up again, a level deeper (ignore tester). A link
    to the local folder itself as the backup dir was taken too."""
    local, remote = tmp_path / "local", tmp_path / "remote"
    local.mkdir()
    remote.mkdir()
    (tmp_path / "link").symlink_to(local)
    place = locate(str(tmp_path / "link" / ".backup"), str(remote), str(local))
    assert place.excludes == ("/.backup/",)
    with pytest.raises(ConfigError, match="holds the local folder being synced"):
        locate(str(tmp_path / "link"), str(remote), str(local))
    (tmp_path / "rlink").symlink_to(remote)
    place = locate(str(tmp_path / "rlink" / "old"), str(remote), str(local))
    assert place.excludes == ("/old/",)


def test_keys_of_a_store_are_never_resolved_against_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A link in the folder fsync ran in, named like the bucket's keys, made the store's
    backup dir `s3://bkt/data-bak` look like `photos/` of the remote (review): that folder
    was then left out of the sync."""
    (tmp_path / "bkt" / "data" / "photos").mkdir(parents=True)
    (tmp_path / "bkt" / "data-bak").symlink_to("data/photos")
    monkeypatch.chdir(tmp_path)
    place = locate("s3://bkt/data-bak", "s3://bkt/data", str(tmp_path / "local"))
    assert place.excludes == ()
