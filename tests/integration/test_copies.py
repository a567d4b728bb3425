"""`transfer.copies` on every backend: a version kept aside is the version that was planned.

Conflict copies and `--backup-dir` fetch a remote version into a new local file. The object
may be replaced between the listing and that fetch; the copy must then fail, not keep the
replacement under the name of the version it stands for.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fsync.errors import RemoteChanged
from fsync.paths import to_relpath
from fsync.remote import open_remote
from fsync.transfer.copies import fetch_new
from fsynctest.remotes import RemoteTree


def test_fetch_new_refuses_a_replaced_version(remote_tree: RemoteTree, tmp_path: Path) -> None:
    """A replacement of the same size (the digest unknown from a listing) is refused."""
    remote_tree.write("v.txt", b"first version", mtime_ns=1_600_000_000_000_000_000)
    remote = open_remote(remote_tree.url, storage_options=remote_tree.storage_options)
    listed = remote.list().entries[to_relpath("v.txt")]
    remote_tree.write("v.txt", b"other version", mtime_ns=1_700_000_000_000_000_000)
    dst = tmp_path / "kept" / "v.txt"
    dst.parent.mkdir()

    with pytest.raises(RemoteChanged):
        fetch_new(remote, to_relpath("v.txt"), str(dst), expect=listed)

    assert list(dst.parent.iterdir()) == []  # nothing placed, no temp left


def test_fetch_new_keeps_the_listed_version(remote_tree: RemoteTree, tmp_path: Path) -> None:
    remote_tree.write("v.txt", b"first version", mtime_ns=1_600_000_000_000_000_000)
    remote = open_remote(remote_tree.url, storage_options=remote_tree.storage_options)
    listed = remote.list().entries[to_relpath("v.txt")]
    dst = tmp_path / "v.txt"

    _, size = fetch_new(remote, to_relpath("v.txt"), str(dst), expect=listed)

    assert (size, dst.read_bytes()) == (13, b"first version")
