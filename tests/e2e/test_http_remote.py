"""Pulling from an http:// tree (index pages, as `python -m http.server` serves a folder).

fsspec lists such a tree from its index pages, which carry names only: every file was listed
as size 0 with no time, the check before each read found it "changed since it was listed",
and a pull fetched nothing and left every file a conflict (exit 3). An edit on the server
then moved nothing the planner compared, and a push failed file by file with fsspec's bare
`NotImplementedError`.
"""

from __future__ import annotations

import json
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


def _pulled_twice(fsync, url: str, local: Path) -> None:
    """Pull `url` into `local`, then again: the second pull has nothing to do."""
    res = fsync("pull", url, local)
    assert res.returncode == 0, res.stderr
    res = fsync("pull", url, local)
    assert res.returncode == 0, res.stderr
    assert "nothing to do" in res.stdout


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


def test_names_are_percent_decoded(fsync, tmp_path: Path) -> None:
    """http.server links `b c.txt` as `b%20c.txt`: each was saved under its encoded name."""
    served, local = tmp_path / "site", tmp_path / "local"
    write(served, {"b c.txt": "b", "café.txt": "c", "50%.txt": "p", "d e/f g.txt": "f"})
    with serving(served) as running:
        _pulled_twice(fsync, running.url, local)
    assert listing(local) == listing(served)


def test_encoded_names_that_are_no_path_here_are_refused(fsync, tmp_path: Path) -> None:
    """A name not UTF-8 once decoded, one with an encoded `/`, and encoded `..` segments: each
    refused with the warning of any unusable remote name; nothing lands outside LOCAL."""
    served, local = tmp_path / "site", tmp_path / "local"
    links = ["a.txt", "caf%E9.txt", "x%2Fy.txt", "%2e%2e/out.txt", "sub/%2E%2E/%2e%2e/up.txt"]
    page = "".join(f'<a href="{link}">{link}</a>\n' for link in links)
    write(served, {"index.html": page, "a.txt": "a", "x/y.txt": "x", "sub/s.txt": "s"})
    with serving(served) as running:
        res = fsync("pull", running.url, local)
    assert sorted(listing(local)) == ["a.txt"], res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["local", "site"]
    assert "caf%E9.txt: refused remote key: 'caf" in res.stderr
    assert "txt': is not valid UTF-8" in res.stderr
    assert "'x/y.txt': a name with a slash in it" in res.stderr
    assert "'../out.txt'" in res.stderr


def test_links_with_a_query_or_fragment_are_not_files(fsync, tmp_path: Path) -> None:
    """Apache's sort links, anchors and `?v=1` links are left out; `.` segments are dropped."""
    served, local = tmp_path / "site", tmp_path / "local"
    links = ["?C=N;O=D", "?C=M;O=A", "#top", "a.txt?v=1", "./a.txt", "sub/", "sub/./s.txt"]
    page = "".join(f'<a href="{link}">{link}</a>\n' for link in links)
    write(served, {"index.html": page, "a.txt": "a", "sub/s.txt": "s"})
    with serving(served) as running:
        _pulled_twice(fsync, running.url, local)
    assert listing(local) == {"a.txt": b"a", "sub/s.txt": b"s"}


@pytest.mark.parametrize("quirk", ["chunked", "gzip"])
def test_a_server_that_gives_no_true_length(fsync, tmp_path: Path, site: Site, quirk: str) -> None:
    """No `Content-Length` (chunked), or the compressed one (gzip despite `identity`): the
    size is what was received, and the version its ETag/Last-Modified; a second pull is a
    no-op, and an edit is fetched."""
    local, served = tmp_path / "local", tmp_path / "site"
    site.quirks.add(quirk)
    _pulled_twice(fsync, site.url, local)
    assert listing(local) == listing(served)
    (served / "a.txt").write_text("ALPHA!")
    res = fsync("pull", site.url, local)
    assert res.returncode == 0, res.stderr
    assert "1 downloaded" in res.stdout
    assert listing(local) == listing(served)


def test_a_connection_cut_mid_file_is_retried(fsync, tmp_path: Path, site: Site) -> None:
    local, served = tmp_path / "local", tmp_path / "site"
    site.cut["/dir/big.bin"] = 1
    res = fsync("pull", site.url, local)
    assert res.returncode == 0, res.stderr
    assert listing(local) == listing(served)


def test_a_server_cutting_a_file_every_time_fails_that_file_alone(
    fsync, tmp_path: Path, site: Site
) -> None:
    local = tmp_path / "local"
    site.cut["/dir/big.bin"] = 3
    res = fsync("pull", "--retries", "2", site.url, local)
    assert res.returncode == 1, (res.stderr, site.gets("/dir/big.bin"))
    assert sorted(listing(local)) == ["a.txt", "dir/b.txt"]
    assert "dir/big.bin" in res.stderr
    assert "Response payload" in res.stderr
    assert "<ContentLengthError" not in res.stderr
    assert site.gets("/dir/big.bin") == 3


def _failing(site: Site, path: str, statuses: list[int], methods: tuple[str, ...]) -> None:
    """Answer `path`'s next requests of each of `methods` with `statuses`, one each."""
    for method in methods:
        site.failing[(method, path)] = list(statuses)


def test_a_file_the_server_cannot_answer_is_left_alone_on_both_sides(
    fsync, tmp_path: Path, site: Site
) -> None:
    """HEAD and GET of one file answer 500 (asked again per --retries, as for any 5xx): it
    is reported as the file it is, not as a folder; its local copy stays, the rest is
    pulled, and once the server answers again a pull is fine."""
    local, served = tmp_path / "local", tmp_path / "site"
    assert fsync("pull", site.url, local).returncode == 0
    (served / "a.txt").write_text("ALPHA!")
    _failing(site, "/dir/b.txt", [500] * 10, ("HEAD", "GET"))
    res = fsync("pull", "--retries", "1", site.url, local)
    assert res.returncode == 1, res.stderr
    assert f"fsync: error: dir/b.txt: cannot read this file on the remote (reading {site.url}" in (
        res.stderr
    )
    assert "500 Internal Server Error (gave up after 2 attempts)); it is left alone\n" in (
        res.stderr
    )
    assert "folder" not in res.stderr
    assert listing(local) == listing(served)  # (b.txt kept, a.txt fetched)
    res = fsync("verify", local, site.url)
    assert res.returncode == 1, res.stderr
    assert "dir/b.txt: cannot read this file on the remote" in res.stderr

    site.failing.clear()
    _pulled_twice(fsync, site.url, local)
    assert listing(local) == listing(served)


def test_changes_made_here_are_not_offered_to_a_read_only_remote(
    fsync, tmp_path: Path, site: Site
) -> None:
    """A pull leaves a local edit and a local delete alone; its summary and each path's
    reason offered `fsync push` for both, which an http remote refuses. The `--mirror` it
    does offer works."""
    local, served = tmp_path / "local", tmp_path / "site"
    assert fsync("pull", site.url, local).returncode == 0
    (local / "a.txt").write_text("mine")
    (local / "dir/b.txt").unlink()
    res = fsync("pull", site.url, local)
    assert res.returncode == 0, res.stderr
    assert "push" not in res.stdout
    assert (
        "1 files deleted here since the last sync are not fetched again (the remote is "
        "read-only; fsync pull --mirror fetches them again and makes this folder equal to the "
        "remote; -v lists them)\n"
        "1 changes made here are kept and not sent (the remote is read-only; -v lists them)\n"
    ) in res.stdout
    assert (local / "a.txt").read_text() == "mine"
    res = fsync("pull", "--json", site.url, local)  # (-v's lines give the same reasons)
    assert {n["path"]: n["reason"] for n in json.loads(res.stdout)["skipped"]} == {
        "a.txt": "local change (kept: the remote is read-only)",
        "dir/b.txt": "deleted on local (kept: the remote is read-only)",
    }

    res = fsync("pull", "--mirror", site.url, local)
    assert res.returncode == 0, res.stderr
    assert listing(local) == listing(served)


@pytest.mark.parametrize(
    ("status", "methods"),
    [(503, ("GET",)), (503, ("HEAD", "GET")), (500, ("GET",)), (502, ("GET",)), (504, ("GET",))],
)
def test_a_server_failing_for_a_while_is_asked_again(
    fsync, tmp_path: Path, site: Site, status: int, methods: tuple[str, ...]
) -> None:
    """Two 5xx answers to the file's GET (or to its HEAD and the GET fsspec falls back to,
    while listing), then the file: asked again per --retries, the pull succeeds. Each
    failed the file at once."""
    local, served = tmp_path / "local", tmp_path / "site"
    _failing(site, "/dir/b.txt", [status, status], methods)
    res = fsync("pull", site.url, local)
    assert res.returncode == 0, res.stderr
    assert listing(local) == listing(served)
    assert site.failing == {(method, "/dir/b.txt"): [] for method in methods}


def test_a_server_failing_on_a_file_for_good_fails_that_file_alone(
    fsync, tmp_path: Path, site: Site
) -> None:
    """Every GET of a file edited on the server answers 503: after --retries, that file
    fails alone in one line; its local copy is kept, the other edit is fetched."""
    local, served = tmp_path / "local", tmp_path / "site"
    assert fsync("pull", site.url, local).returncode == 0
    (served / "a.txt").write_text("ALPHA!")
    (served / "dir/b.txt").write_text("BRAVO!")
    _failing(site, "/dir/b.txt", [503] * 10, ("GET",))
    res = fsync("pull", "--retries", "2", site.url, local)
    assert res.returncode == 1, res.stderr
    assert res.stderr == (
        f"fsync: error: download dir/b.txt: reading {site.url}dir/b.txt: 503 Service "
        "Unavailable (gave up after 3 attempts)\n"
    )
    assert site.gets("/dir/b.txt") == 4  # (one in the first pull)
    assert (local / "a.txt").read_text() == "ALPHA!"
    assert (local / "dir/b.txt").read_text() == "bravo"
