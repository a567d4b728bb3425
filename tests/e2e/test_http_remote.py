"""Pulling from an http:// tree (index pages, as `python -m http.server` serves a folder).

fsspec lists such a tree from its index pages, which carry names only: every file was listed
as size 0 with no time, the check before each read found it "changed since it was listed",
and a pull fetched nothing and left every file a conflict (exit 3). An edit on the server
then moved nothing the planner compared, and a push failed file by file with fsspec's bare
`NotImplementedError`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from fsynctest.httpsite import Site, serving
from fsynctest.trees import listing, write

TREE = {
    "a.txt": "alpha",
    "dir/b.txt": "bravo",
    # past fsspec's 5 MiB block: still one GET (its reader asks one per block)
    "dir/big.bin": bytes(range(256)) * (6 << 12),
}


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    """`TREE` served over http from a folder `site`, its files a minute old."""
    folder = tmp_path / "site"
    write(folder, TREE)
    for rel in TREE:
        _age(folder / rel, 60)
    with serving(folder) as running:
        yield running


def _age(path: Path, seconds: float) -> None:
    """Set `path`'s mtime `seconds` before now (`Last-Modified` has whole seconds)."""
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns - int(seconds * 1e9)))


def test_a_pull_fetches_every_file_once_and_again_when_edited(
    fsync, tmp_path: Path, site: Site
) -> None:
    local, served = tmp_path / "local", tmp_path / "site"
    res = fsync("pull", site.url, local)
    assert res.returncode == 0, res.stderr
    assert listing(local) == listing(served)
    assert "3 downloaded" in res.stdout
    # one GET for each file: no HEAD before it (the listing's HEAD gave the version)
    assert [site.gets(f"/{rel}") for rel in TREE] == [1, 1, 1]
    assert site.requests.count(("HEAD", "/a.txt")) == 1

    res = fsync("pull", site.url, local)
    assert res.returncode == 0, res.stderr
    assert "nothing to do" in res.stdout
    assert [site.gets(f"/{rel}") for rel in TREE] == [1, 1, 1]  # nothing fetched again

    # the same size, a later time: only `Last-Modified` tells the edit
    (served / "a.txt").write_text("ALPHA")
    res = fsync("pull", site.url, local)
    assert res.returncode == 0, res.stderr
    assert "1 downloaded" in res.stdout
    assert listing(local) == listing(served)


def test_a_file_changed_between_listing_and_read_is_left_for_the_next_pull(
    fsync, tmp_path: Path, site: Site
) -> None:
    """The server's answer to the GET names a version other than the listing's (the same
    size, a later `Last-Modified`): that file is a conflict, not written; the others are
    fetched, and the next pull takes it. (A check before the GET, a HEAD, saw no change.)"""
    local, served = tmp_path / "local", tmp_path / "site"
    site.before_get["/dir/b.txt"] = lambda: (served / "dir/b.txt").write_text("BRAVO")
    res = fsync("pull", site.url, local)
    assert res.returncode == 3, res.stderr
    assert "dir/b.txt: changed since it was listed" in res.stderr
    assert sorted(listing(local)) == ["a.txt", "dir/big.bin"]

    res = fsync("pull", site.url, local)
    assert res.returncode == 0, res.stderr
    assert listing(local) == listing(served)


def test_verify_against_an_http_remote_compares_sizes_and_content(
    fsync, tmp_path: Path, site: Site
) -> None:
    local = tmp_path / "local"
    assert fsync("pull", site.url, local).returncode == 0
    res = fsync("verify", local, site.url)
    assert res.returncode == 0, res.stderr
    assert "remote: 3 files, 6.0 MiB" in res.stdout  # (each listed as 0 B before)
    assert "3 match" in res.stdout


@pytest.mark.parametrize("command", ["push", "sync", "watch"])
def test_writing_to_an_http_remote_is_refused(
    fsync, tmp_path: Path, site: Site, command: str
) -> None:
    src = tmp_path / "src"
    write(src, {"new.txt": "new"})
    res = fsync(command, src, site.url)
    assert res.returncode == 2
    assert res.stderr == (
        f"fsync: error: remote {site.url} is read-only "
        f"(fsync can only pull from it; use fsync pull {site.url} LOCAL)\n"
    )
    assert not any(method == "PUT" for method, _ in site.requests)
    assert sorted(listing(tmp_path / "site")) == sorted(TREE)
