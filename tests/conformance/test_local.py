"""The remote contract on a local folder, opened directly and through a `file://` URL."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from tests.conformance.contract import (
    MakeRemote,
    RemoteContract,
    meta_for,
    put_bytes,
    read_all,
    rel,
)

from fsync.durability import _SYNCFS
from fsync.errors import ConfigError, PermanentError, RemoteChanged, UnsafePathError
from fsync.remote import open_remote
from fsync.remote.base import Staged, Stager
from fsync.remote.local import LocalRemote
from fsynctest.trees import held_open

if TYPE_CHECKING:
    from collections.abc import Iterator

    from fsync.remote.base import Remote

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


class LocalRaw:
    """Plain files under the root, written and listed with pathlib."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def write(self, name: str, data: bytes) -> None:
        path = self.root.joinpath(*name.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def names(self) -> set[str]:
        return {
            p.relative_to(self.root).as_posix()
            for p in self.root.rglob("*")
            if p.is_file() or p.is_symlink()
        }


class LocalFixtures:
    """Fixtures for a local root; `open` says how a remote is opened on a folder."""

    def open(self, path: Path) -> Remote:
        return LocalRemote(str(path))

    @pytest.fixture
    def root(self, tmp_path: Path) -> Path:
        root = tmp_path / "remote root"
        root.mkdir()
        return root

    @pytest.fixture
    def remote(self, root: Path) -> Iterator[Remote]:
        remote = self.open(root)
        yield remote
        remote.close()

    @pytest.fixture
    def make_remote(self, root: Path) -> MakeRemote:
        def make(sub: str = "") -> Remote:
            return self.open(root / sub if sub else root)

        return make

    @pytest.fixture
    def raw(self, root: Path) -> LocalRaw:
        return LocalRaw(root)


class TestLocal(LocalFixtures, RemoteContract):
    """`LocalRemote` constructed directly, plus what only a local folder can show."""

    def test_url_is_file_url_of_absolute_root(self, remote: Remote, root: Path) -> None:
        assert remote.url == f"file://{root}"

    def test_mode_is_set_from_meta(self, remote: Remote, root: Path) -> None:
        meta = replace(meta_for(b"s", mtime_ns=10**18), mode=0o100600)
        remote.put(
            rel("secret.txt"), io.BytesIO(b"s"), meta, expect=None, before_publish=lambda: None
        )
        st = os.stat(root / "secret.txt")
        assert stat.S_IMODE(st.st_mode) == 0o600
        assert st.st_mtime_ns == 10**18

    def test_delete_prunes_empty_folders_below_root(self, remote: Remote, root: Path) -> None:
        entry = put_bytes(remote, "a/b/c/file.txt", b"x")
        put_bytes(remote, "a/keep.txt", b"k")
        remote.delete(rel("a/b/c/file.txt"), expect=entry)
        assert not (root / "a" / "b").exists()
        assert (root / "a" / "keep.txt").is_file()
        remote.delete(rel("a/keep.txt"), expect=remote.stat(rel("a/keep.txt")))
        assert root.is_dir()
        assert list(root.iterdir()) == []

    def test_symlinks_are_skipped_not_followed(self, remote: Remote, tmp_path: Path) -> None:
        outside = tmp_path / "outside"
        outside.mkdir()
        (outside / "secret.txt").write_bytes(b"outside")
        root = Path(remote.url.removeprefix("file://"))
        (root / "dirlink").symlink_to(outside)
        (root / "filelink").symlink_to(outside / "secret.txt")
        put_bytes(remote, "real.txt", b"r")
        listing = remote.list()
        assert set(listing.entries) == {rel("real.txt")}
        assert listing.skipped == (
            ("dirlink", "a symbolic link"),
            ("filelink", "a symbolic link"),
        )
        assert listing.refused == ()
        assert remote.stat(rel("filelink")) is None

    def test_symlinked_parent_cannot_lead_outside_root(
        self, remote: Remote, tmp_path: Path
    ) -> None:
        outside = tmp_path / "outside"
        outside.mkdir()
        (outside / "victim.txt").write_bytes(b"precious")
        root = Path(remote.url.removeprefix("file://"))
        (root / "link").symlink_to(outside)
        with pytest.raises(UnsafePathError):
            put_bytes(remote, "link/new.txt", b"escape")
        with pytest.raises(UnsafePathError):
            put_bytes(remote, "link/deeper/new.txt", b"escape")
        with pytest.raises(UnsafePathError):
            remote.delete(rel("link/victim.txt"), expect=None)
        with pytest.raises(UnsafePathError):
            remote.open_read(rel("link/victim.txt"))
        assert sorted(p.name for p in outside.iterdir()) == ["victim.txt"]
        assert (outside / "victim.txt").read_bytes() == b"precious"

    def test_symlinked_parent_inside_the_root_is_not_followed_either(
        self, remote: Remote, root: Path
    ) -> None:
        """A listing does not follow `d` -> `s`: a file written as d/new.txt landed in s/,
        where no listing saw it under the name it was written by."""
        put_bytes(remote, "s/theirs.txt", b"t")
        (root / "d").symlink_to("s", target_is_directory=True)
        with pytest.raises(UnsafePathError, match="symbolic link"):
            put_bytes(remote, "d/new.txt", b"n")
        with pytest.raises(UnsafePathError):
            remote.delete(rel("d/theirs.txt"), expect=None)
        with pytest.raises(UnsafePathError):
            remote.open_read(rel("d/theirs.txt"))
        assert sorted(p.name for p in (root / "s").iterdir()) == ["theirs.txt"]

    def test_a_folder_swapped_for_a_link_is_refused_after_a_flush(
        self, remote: Remote, tmp_path: Path
    ) -> None:
        """A folder checked once is not trusted for the life of the process (`fsync watch`
        keeps one remote for hours): every batch's flush makes the next write check again."""
        outside = tmp_path / "elsewhere"
        outside.mkdir()
        root = Path(remote.url.removeprefix("file://"))
        put_bytes(remote, "d/a.txt", b"inside")
        remote.flush()
        (root / "d" / "a.txt").unlink()
        (root / "d").rmdir()
        (root / "d").symlink_to(outside)
        with pytest.raises(UnsafePathError):
            put_bytes(remote, "d/b.txt", b"escape")
        assert list(outside.iterdir()) == []

    def test_symlink_at_destination_is_neither_read_nor_replaced(
        self, remote: Remote, tmp_path: Path
    ) -> None:
        target = tmp_path / "target.txt"
        target.write_bytes(b"target")
        root = Path(remote.url.removeprefix("file://"))
        (root / "l.txt").symlink_to(target)
        with pytest.raises(PermanentError):
            remote.open_read(rel("l.txt"))
        with pytest.raises(PermanentError):
            put_bytes(remote, "l.txt", b"overwrite?")
        assert (root / "l.txt").is_symlink()
        assert target.read_bytes() == b"target"
        assert {p.name for p in root.iterdir()} == {"l.txt"}

    def test_folder_in_the_way_is_permanent_error(self, remote: Remote, root: Path) -> None:
        (root / "taken").mkdir()
        with pytest.raises(PermanentError, match="in the way"):
            put_bytes(remote, "taken", b"x")
        assert remote.stat(rel("taken")) is None

    def test_file_as_parent_folder_is_permanent_error(self, remote: Remote, root: Path) -> None:
        put_bytes(remote, "plain", b"x")
        with pytest.raises(PermanentError):
            put_bytes(remote, "plain/child.txt", b"y")
        assert read_all(remote, "plain") == b"x"

    def test_special_files_are_skipped(self, remote: Remote, root: Path) -> None:
        os.mkfifo(root / "pipe")
        listing = remote.list()
        assert listing.entries == {}
        assert listing.skipped == (("pipe", "a special file"),)
        assert listing.refused == ()

    def test_undecodable_name_is_refused(self, remote: Remote, root: Path) -> None:
        with open(os.path.join(os.fsencode(root), b"bad\xff.txt"), "wb") as f:
            f.write(b"x")
        listing = remote.list()
        assert listing.entries == {}
        ((key, why),) = listing.refused
        assert "UTF-8" in why
        assert os.fsencode(key) == b"bad\xff.txt"

    def test_root_that_is_a_file(self, tmp_path: Path) -> None:
        path = tmp_path / "file"
        path.write_bytes(b"x")
        remote = self.open(path)
        assert not remote.root_exists()
        with pytest.raises(ConfigError, match="not a folder"):
            remote.list()

    @pytest.mark.skipif(IS_ROOT, reason="root ignores permission bits")
    def test_read_only_folder_raises_permission_error(self, remote: Remote, root: Path) -> None:
        (root / "ro").mkdir()
        (root / "ro").chmod(0o500)
        try:
            with pytest.raises(PermissionError):
                put_bytes(remote, "ro/x.txt", b"x")
        finally:
            (root / "ro").chmod(0o700)
        assert list((root / "ro").iterdir()) == []

    @pytest.mark.skipif(IS_ROOT, reason="root ignores permission bits")
    def test_unreadable_folder_fails_the_listing(self, remote: Remote, root: Path) -> None:
        """A listing that silently skipped a folder would look like mass deletion."""
        put_bytes(remote, "locked/x.txt", b"x")
        (root / "locked").chmod(0o000)
        try:
            with pytest.raises(PermissionError):
                remote.list()
        finally:
            (root / "locked").chmod(0o700)


def test_cleanup_judges_a_temp_file_by_ctime_not_its_source_mtime(tmp_path: Path) -> None:
    """A staged temp file carries its source's mtime, often old, for a whole batch: a
    `cleanup --older-than` meanwhile must not take it for one a killed run left."""
    stale = tmp_path / ".fsync-0123456789abcdef.tmp"
    stale.write_bytes(b"left by a killed run")
    time.sleep(1.5)
    staged = tmp_path / "dir" / ".fsync-fedcba9876543210.tmp"
    staged.parent.mkdir()
    staged.write_bytes(b"being staged")
    os.utime(staged, (0, 0))
    assert LocalRemote(str(tmp_path)).abort_stale_uploads(older_than=1.0) == 1
    assert not stale.exists()
    assert staged.exists()


class TestStaging(LocalFixtures):
    """`LocalRemote.stage`: bytes written now, published later, after one sync for a batch."""

    def stage(self, remote: Remote, name: str, data: bytes, **meta: int) -> Staged:
        assert isinstance(remote, Stager)
        return remote.stage(
            rel(name), io.BytesIO(data), meta_for(data, **meta), before_publish=lambda: None
        )

    def test_staged_bytes_appear_only_when_published(
        self, remote: Remote, raw: LocalRaw, root: Path
    ) -> None:
        staged = self.stage(remote, "a/b.txt", b"staged", mtime_ns=10**18, mode=0o100640)
        assert remote.stat(rel("a/b.txt")) is None
        assert rel("a/b.txt") not in remote.list().entries
        (temp,) = raw.names()
        assert stat.S_IMODE(os.stat(root / temp).st_mode) == 0o640
        remote.flush()
        staged.publish(None)
        st = os.stat(root / "a" / "b.txt")
        assert (stat.S_IMODE(st.st_mode), st.st_mtime_ns) == (0o640, 10**18)
        assert remote.stat(rel("a/b.txt")) == staged.entry
        assert raw.names() == {"a/b.txt"}
        staged.discard()  # after publishing: nothing to remove
        assert read_all(remote, "a/b.txt") == b"staged"

    def test_publish_over_a_changed_file_is_refused_and_leaves_no_temp(
        self, remote: Remote, raw: LocalRaw
    ) -> None:
        seen = put_bytes(remote, "doc.txt", b"v1")
        staged = self.stage(remote, "doc.txt", b"v2, mine")
        raw.write("doc.txt", b"v2, theirs, written meanwhile")
        with pytest.raises(RemoteChanged):
            staged.publish(seen)
        assert raw.names() == {"doc.txt"}
        assert read_all(remote, "doc.txt") == b"v2, theirs, written meanwhile"
        with pytest.raises(RuntimeError, match="already published or discarded"):
            staged.publish(seen)

    def test_a_new_file_never_replaces_one_written_meanwhile(
        self, remote: Remote, raw: LocalRaw
    ) -> None:
        staged = self.stage(remote, "new.txt", b"mine, planned as new")
        raw.write("new.txt", b"theirs, created meanwhile")
        with pytest.raises(RemoteChanged):
            staged.publish(None)
        assert read_all(remote, "new.txt") == b"theirs, created meanwhile"
        assert raw.names() == {"new.txt"}
        raw.write("folder/inside", b"x")
        with pytest.raises(PermanentError):
            self.stage(remote, "folder", b"a folder is in the way").publish(None)
        assert raw.names() == {"new.txt", "folder/inside"}

    def test_discard_and_a_refusal_before_publishing_leave_nothing(
        self, remote: Remote, raw: LocalRaw
    ) -> None:
        self.stage(remote, "x.txt", b"x").discard()

        def refuse() -> None:
            raise RemoteChanged("source changed")

        assert isinstance(remote, Stager)
        with pytest.raises(RemoteChanged):
            remote.stage(rel("y.txt"), io.BytesIO(b"y"), meta_for(b"y"), before_publish=refuse)
        remote.flush()  # a staged file already gone is fine for the sync
        assert raw.names() == set()

    def test_never_setuid_or_setgid(self, remote: Remote, root: Path) -> None:
        staged = self.stage(remote, "tool", b"#!/bin/sh\n", mode=0o106755)
        staged.publish(None)
        assert stat.S_IMODE(os.stat(root / "tool").st_mode) == 0o755

    def test_a_file_its_owner_cannot_read_keeps_its_mode(
        self, remote: Remote, root: Path, raw: LocalRaw
    ) -> None:
        """A later sync by path could not open it, so it is synced as it is staged."""
        staged = self.stage(remote, "drop-box", b"write only", mode=0o100200)
        remote.flush()
        staged.publish(None)
        assert stat.S_IMODE(os.stat(root / "drop-box").st_mode) == 0o200
        assert raw.names() == {"drop-box"}

    @pytest.mark.skipif(
        _SYNCFS is None or not os.path.isdir("/proc/self/fd"),
        reason="the root is held only where syncfs makes batches durable",
    )
    def test_every_write_holds_the_root_until_the_flush_that_syncs_it(
        self, remote: Remote, root: Path
    ) -> None:
        """`syncfs` reports a lost write only through a descriptor opened before it; once
        all is synced, the root is let go (a watch must not keep a disk busy)."""
        put_bytes(remote, "a.txt", b"a")
        remote.flush()
        assert held_open(root) == []
        writes = [
            lambda: put_bytes(remote, "b.txt", b"b"),
            lambda: remote.copy(rel("a.txt"), rel("c.txt")),
            lambda: remote.move(rel("c.txt"), rel("d/c.txt"), expect=remote.stat(rel("c.txt"))),
            lambda: remote.delete(rel("b.txt"), expect=remote.stat(rel("b.txt"))),
            lambda: self.stage(remote, "e.txt", b"e").publish(None),
        ]
        for write in writes:
            write()
            assert held_open(root) == [str(root)]
            remote.flush()
            assert held_open(root) == []


class TestLocalFileUrl(LocalFixtures, RemoteContract):
    """The same contract through `open_remote("file://...")`."""

    def open(self, path: Path) -> Remote:
        return open_remote(f"file://{path}")


def test_plain_relative_path_resolves_against_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    remote = open_remote("some/dir")
    assert remote.url == f"file://{tmp_path / 'some' / 'dir'}"
    put_bytes(remote, "x.txt", b"x")
    assert (tmp_path / "some" / "dir" / "x.txt").read_bytes() == b"x"


def test_options_for_a_local_path_are_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        open_remote(str(tmp_path), storage_options={"anon": True})
    with pytest.raises(ConfigError, match="endpoint-url"):
        open_remote(f"file://{tmp_path}", endpoint_url="http://localhost:9000")
    # Not ignored: a backup to a disk or a NAS took the whole link it was meant to spare.
    for limits in ({"bw_limit": 1 << 20}, {"tps_limit": 10.0}):
        with pytest.raises(ConfigError, match="s3:// remotes only"):
            open_remote(str(tmp_path), **limits)  # type: ignore[arg-type]


def test_local_remote_does_not_import_fsspec(tmp_path: Path) -> None:
    """A local run must not pay fsspec's import time."""
    code = (
        "import sys\n"
        "from fsync.remote import open_remote\n"
        f"r = open_remote({str(tmp_path)!r})\n"
        "r.list()\n"
        "assert 'fsspec' not in sys.modules, 'fsspec imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
