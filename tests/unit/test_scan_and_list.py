"""app._scan_and_list: the local scan and the remote listing of one run, overlapped."""

from __future__ import annotations

from pathlib import Path

import pytest

from fsync import app, scanner
from fsync.config import SyncOptions
from fsync.errors import ConfigError
from fsync.manifest import Manifest
from fsync.model import Direction
from fsync.progress import NullReporter
from fsync.remote.local import LocalRemote


def _files(root: Path, *names: str) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(name)


def _opts(local: Path, remote: Path, direction: Direction = Direction.PUSH) -> SyncOptions:
    return SyncOptions(local_root=str(local), remote_url=str(remote), direction=direction)


def test_both_trees_are_read(tmp_path: Path) -> None:
    local, remote = tmp_path / "local", tmp_path / "remote"
    _files(local, "a", "d/b")
    _files(remote, "a", "r/c")
    ignore = scanner.read_ignore(str(local))
    with Manifest.open(str(local)) as manifest:
        scan, listing = app._scan_and_list(
            str(local),
            manifest,
            ignore,
            LocalRemote(str(remote)),
            opts=_opts(local, remote),
            reporter=NullReporter(),
        )
        assert manifest.cached("d/b") is not None  # the scan's hashes were stored
    assert set(scan.entries) == {"a", "d/b"}
    assert set(listing.entries) == {"a", "r/c"}


def test_the_scans_error_wins_over_the_listings(tmp_path: Path) -> None:
    local, remote = tmp_path / "local", tmp_path / "remote"
    local.mkdir()
    (tmp_path / "a file").write_text("x")
    ignore = scanner.read_ignore(str(local))
    with Manifest.open(str(local)) as manifest, pytest.raises(ConfigError, match="local root"):
        app._scan_and_list(
            str(local / "gone"),
            manifest,
            ignore,
            LocalRemote(str(tmp_path / "a file")),  # would fail to list, too
            opts=_opts(local, remote),
            reporter=NullReporter(),
        )


def test_a_listing_error_is_raised_after_the_scan(tmp_path: Path) -> None:
    local = tmp_path / "local"
    _files(local, "a")
    ignore = scanner.read_ignore(str(local))
    with Manifest.open(str(local)) as manifest:
        with pytest.raises(ConfigError, match="does not exist"):
            app._scan_and_list(
                str(local),
                manifest,
                ignore,
                LocalRemote(str(tmp_path / "missing")),
                opts=_opts(local, tmp_path / "missing", Direction.PULL),
                reporter=NullReporter(),
            )
        (tmp_path / "a file").write_text("x")
        with pytest.raises(ConfigError, match="is not a folder"):
            app._scan_and_list(
                str(local),
                manifest,
                ignore,
                LocalRemote(str(tmp_path / "a file")),
                opts=_opts(local, tmp_path / "a file"),
                reporter=NullReporter(),
            )
