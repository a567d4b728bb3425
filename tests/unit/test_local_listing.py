"""LocalRemote.list on a tree holding every kind of entry and name it must sort."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fsync.errors import ConfigError
from fsync.model import RelPath
from fsync.remote.local import STABLE_INODES, LocalRemote, filesystem_type
from fsynctest.trees import listing, write


def _odd_tree(root: Path) -> None:
    """Every kind of entry a listing sorts: files, folders, links, a FIFO, odd names."""
    for rel in ("a", "d/b", "d/e/c", "x y.txt", ".fsyncignore", "sub/.fsync/kept"):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rel)
    (root / ".fsync").mkdir()
    (root / ".fsync" / "state.db").write_text("not listed")
    (root / "d" / ".fsync-0123456789abcdef.tmp").write_text("a temp file")
    (root / "back\\slash").write_text("refused")
    (root / "tab\there").write_text("refused")
    (root / "e\u0301").write_text("not NFC: refused")
    (root / "caf\u00e9").write_text("NFC: listed")
    (root / "caf\u00e9 dir").mkdir()
    (root / "caf\u00e9 dir" / "f").write_text("under a non-ASCII folder")
    (root / "bad\\dir").mkdir()
    (root / "bad\\dir" / "f").write_text("refused with its folder's name")
    os.symlink(root / "a", root / "link")
    os.symlink(root / "d", root / "dirlink")
    os.symlink(root / "a", root / "link\\name")  # a link whose name is refused
    os.mkfifo(root / "fifo")
    os.mkfifo(root / ".fsync-fedcba9876543210.tmp")  # a temp name: skipped, whatever it is
    bad = os.fsencode(str(root)) + b"/bad\xffname"
    with open(bad, "wb") as f:
        f.write(b"not UTF-8: refused")


def test_files_are_listed_and_everything_else_refused_or_skipped(tmp_path: Path) -> None:
    _odd_tree(tmp_path)
    here = LocalRemote(str(tmp_path)).list()
    assert set(here.entries) == {
        "a",
        "d/b",
        "d/e/c",
        "x y.txt",
        ".fsyncignore",
        "sub/.fsync/kept",
        "caf\u00e9",
        "caf\u00e9 dir/f",
    }
    assert here.skipped == (
        ("dirlink", "a symbolic link"),
        ("fifo", "a special file"),
        ("link", "a symbolic link"),
    )
    refused = dict(here.refused)
    assert set(refused) == {
        "back\\slash",
        "tab\there",
        "e\u0301",
        "bad\\dir/f",
        "bad\udcffname",
        "link\\name",
    }
    assert here.temps == ("d/.fsync-0123456789abcdef.tmp",)  # files only, not the FIFO


def test_temp_files_are_listed_apart_where_their_folder_has_a_name(tmp_path: Path) -> None:
    """A killed run's temp files are named by the listing for the next run to remove (no
    second walk); one below a folder whose name is refused cannot be addressed, so is not."""
    temp = ".fsync-0123456789abcdef.tmp"
    for folder in ("", "a/b/", "caf\u00e9/", "bad\\dir/", ".fsync/"):
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
        (tmp_path / folder / temp).write_text("partial")
    (tmp_path / "a" / ".fsync-0123456789abcdeg.tmp").write_text("no temp name")
    listed = LocalRemote(str(tmp_path)).list()
    assert listed.temps == (temp, f"a/b/{temp}", f"caf\u00e9/{temp}")
    assert set(listed.entries) == {"a/.fsync-0123456789abcdeg.tmp"}


def test_remove_temp_removes_a_temp_file_and_nothing_else(tmp_path: Path) -> None:
    remote = LocalRemote(str(tmp_path))
    temp, other = ".fsync-0123456789abcdef.tmp", ".fsync-fedcba9876543210.tmp"
    write(tmp_path, {f"d/{temp}": "partial", "user.txt": "u"})
    (tmp_path / other).symlink_to(tmp_path / "user.txt")
    (tmp_path / "e" / temp).mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "d")
    assert not remote.remove_temp(RelPath(f"link/{temp}"))  # not through a link
    assert remote.remove_temp(RelPath(f"d/{temp}"))
    assert not remote.remove_temp(RelPath(f"d/{temp}"))  # gone already
    assert not remote.remove_temp(RelPath(other))
    assert not remote.remove_temp(RelPath(f"e/{temp}"))
    with pytest.raises(ValueError, match="not an fsync temp file"):
        remote.remove_temp(RelPath("user.txt"))
    assert listing(tmp_path) == {"user.txt": b"u"}
    assert (tmp_path / other).is_symlink()
    assert (tmp_path / "e" / temp).is_dir()


def test_listed_entries_are_what_stat_says(tmp_path: Path) -> None:
    _odd_tree(tmp_path)
    remote = LocalRemote(str(tmp_path))
    listed = remote.list()
    assert listed.entries
    for path, entry in listed.entries.items():
        assert remote.stat(RelPath(path)) == entry


def test_an_empty_or_missing_root_lists_empty(tmp_path: Path) -> None:
    assert LocalRemote(str(tmp_path)).list().entries == {}
    missing = LocalRemote(str(tmp_path / "missing"))
    assert missing.list().entries == {}


def test_a_root_that_is_a_file_fails_as_in_process(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    remote = LocalRemote(str(tmp_path / "f"))
    with pytest.raises(ConfigError, match="is not a folder"):
        remote.list()


def test_a_folder_too_deep_to_open_is_incomplete_and_the_rest_listed(tmp_path: Path) -> None:
    """A folder whose path passes PATH_MAX (4096 bytes) cannot be opened by name: it failed
    the whole listing ("File name too long"), and so the whole run. It is unknown instead,
    with why in words, and the rest of the tree is listed."""
    (tmp_path / "kept.txt").write_text("listed")
    name, depth = "d" * 250, 0
    fd = os.open(tmp_path, os.O_RDONLY)
    try:  # made by descriptor: no path this long can be given to mkdir
        while len(str(tmp_path)) + depth * (len(name) + 1) < 4200:
            os.mkdir(name, dir_fd=fd)
            inner = os.open(name, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd, depth = inner, depth + 1
        os.close(os.open("deep.txt", os.O_WRONLY | os.O_CREAT, dir_fd=fd))
    finally:
        os.close(fd)
    listed = LocalRemote(str(tmp_path)).list()
    assert set(listed.entries) == {"kept.txt"}
    ((path, why),) = listed.incomplete
    assert path == "/".join([name] * path.count("/")) + "/" + name
    assert len(os.path.join(tmp_path, path)) >= 4096
    assert why == "File name too long"


MOUNTS = (
    "22 27 0:21 / /proc rw,relatime - proc proc rw\n"
    "1 0 254:0 / / rw,relatime - ext4 /dev/vda rw\n"
    "36 1 8:17 / /media/usb\\040drive rw,relatime - vfat /dev/sdb1 rw\n"
    "37 1 0:50 / /mnt/box rw - fuse.sshfs me@box: rw\n"
    "38 37 0:51 / /mnt/box rw - nfs4 box:/ rw\n"
)


@pytest.mark.parametrize(
    ("path", "kind", "inodes"),
    [
        ("/home/me/backup", "ext4", True),
        ("/media/usb drive/backup", "vfat", False),
        ("/media/usb drivers", "ext4", True),
        ("/mnt/box/x", "nfs4", True),  # the later of two mounts on one point is on top
    ],
)
def test_the_inode_is_in_the_fingerprint_only_where_the_filesystem_keeps_it(
    path: str, kind: str, inodes: bool
) -> None:
    """FAT and most FUSE mounts number files anew after a remount: with the inode in the
    fingerprint, every run would re-read the whole remote."""
    found = filesystem_type(path, MOUNTS)
    assert found == kind
    assert (found in STABLE_INODES) is inodes
