"""A remote root fsync cannot use: one line saying which and why, and the exit status.

A folder remote that could not be listed failed with Python's own words (`cannot list /r:
[Errno 13] Permission denied: '/r'`), one below a folder it may not search was said not to
exist, and a generic fsspec remote (`local://` here: any backend fsspec walks one folder at
a time, sftp or ftp alike) took a folder it could not list for an empty one: a pull from it
did nothing, or deleted the local copies of what that folder holds.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from fsynctest.caps import drop_dac_caps, unreadable
from fsynctest.trees import listing, write

DENIED = "permission denied; check the permissions of that folder and of the folders above it"


def _args(command: str, local: Path, remote: str) -> list[str]:
    """The command line of `command` between `local` and `remote`."""
    return [command, remote, str(local)] if command == "pull" else [command, str(local), remote]


@pytest.mark.parametrize("scheme", ["", "local://"])
@pytest.mark.parametrize("command", ["push", "pull", "sync", "verify", "watch"])
def test_an_unreadable_remote_root_is_said_so(
    fsync, tmp_path: Path, command: str, scheme: str
) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    write(src, {"a.txt": "a"})
    write(out, {"b.txt": "b"})
    remote = f"{scheme}{out}"
    with unreadable(out):
        res = fsync(*_args(command, src, remote), prefix=drop_dac_caps())
    assert res.returncode == 1
    assert res.stderr == f"fsync: error: cannot list remote {remote} ({DENIED})\n"
    assert listing(src) == {"a.txt": b"a"}
    assert listing(out) == {"b.txt": b"b"}


@pytest.mark.parametrize("command", ["pull", "verify"])
def test_a_remote_in_a_folder_fsync_may_not_search_is_not_called_missing(
    fsync, tmp_path: Path, command: str
) -> None:
    """`isdir` says False for a folder it may not look into: a pull was told the remote
    did not exist (exit 2, "check the path") when the path was right."""
    src, out = tmp_path / "src", tmp_path / "closed" / "out"
    write(src, {"a.txt": "a"})
    write(out, {"b.txt": "b"})
    with unreadable(tmp_path / "closed"):
        res = fsync(*_args(command, src, str(out)), prefix=drop_dac_caps())
    assert res.returncode == 1
    assert res.stderr == f"fsync: error: cannot list remote {out} ({DENIED})\n"


@pytest.mark.parametrize("command", ["push", "pull", "sync", "verify", "watch"])
def test_a_remote_below_a_file_names_that_file(fsync, tmp_path: Path, command: str) -> None:
    """A push said `/f/out: is not a folder` (exit 1) of a folder that is not there at all,
    a pull that it did not exist: the file in the way is what to fix, before any transfer
    (exit 2, as for a remote that is a file)."""
    src, blocker = tmp_path / "src", tmp_path / "f"
    write(src, {"a.txt": "a"})
    blocker.write_text("not a folder")
    out = blocker / "out"
    res = fsync(*_args(command, src, str(out)))
    assert res.returncode == 2
    assert res.stderr == f"fsync: error: remote {out} is below a file, {blocker} (give a folder)\n"
    assert listing(src) == {"a.txt": b"a"}


def test_a_generic_remote_below_a_file_is_refused_before_any_transfer(
    fsync, tmp_path: Path
) -> None:
    """Each file failed on its own (`writing .../a.txt: Not a directory`), and `watch`
    retried them forever."""
    src, blocker = tmp_path / "src", tmp_path / "f"
    write(src, {"a.txt": "a"})
    blocker.write_text("not a folder")
    remote = f"local://{blocker}/out"
    res = fsync("push", src, remote)
    assert res.returncode == 2
    assert res.stderr == (
        f"fsync: error: remote {remote} cannot be a folder (a file is in its path; give a folder)\n"
    )


def test_a_generic_remote_folder_that_cannot_be_read_keeps_its_local_copies(
    fsync, tmp_path: Path
) -> None:
    """fsspec's walk skips a folder it cannot list: its files looked deleted on the remote,
    and the pull deleted their local copies (exit 0)."""
    remote, dst = tmp_path / "remote", tmp_path / "dst"
    write(remote, {"top.txt": "t", "sub/kept.txt": "k"})
    url = f"local://{remote}"
    assert fsync("pull", url, dst, "-q").returncode == 0
    with unreadable(remote / "sub"):
        res = fsync("pull", url, dst, prefix=drop_dac_caps())
    assert res.returncode == 1
    assert res.stderr == (
        "fsync: error: sub: cannot read this folder on the remote (Permission denied); "
        "what it holds is left alone\n"
    )
    assert listing(dst) == {"top.txt": b"t", "sub/kept.txt": b"k"}


def test_a_remote_that_cannot_be_opened_says_which_and_why(fsync, tmp_path: Path) -> None:
    """Backends that open their store when built (an archive, an ftp connection) failed
    with the bare error: `[Errno 2] No such file or directory: '/x.zip'`, `truncated
    header`, with nothing saying it was the remote."""
    src = tmp_path / "src"
    write(src, {"a.txt": "a"})
    missing = tmp_path / "none.zip"
    res = fsync("pull", f"zip://x::{missing}", src)
    assert res.returncode == 1
    assert res.stderr == (
        f"fsync: error: cannot open remote zip://x::{missing} "
        f"(no such file or directory: {missing})\n"
    )
    bad = src / "a.txt"
    res = fsync("verify", src, f"tar://x::{bad}")
    assert res.returncode == 1
    assert res.stderr == f"fsync: error: cannot open remote tar://x::{bad} (truncated header)\n"


def test_verify_against_a_generic_remote_that_is_a_file_says_so(fsync, tmp_path: Path) -> None:
    """It reported the file as one remote key with no local name (`not under the root (is
    the root a file?)`), exit 1, as if the trees merely differed."""
    src, file = tmp_path / "src", tmp_path / "file"
    write(src, {"a.txt": "a"})
    file.write_text("x")
    res = fsync("verify", src, f"local://{file}")
    assert res.returncode == 2
    assert res.stderr == f"fsync: error: remote local://{file} is not a folder (give a folder)\n"


@pytest.mark.parametrize("command", ["push", "sync", "watch"])
def test_a_remote_root_that_cannot_be_made_is_one_error(
    fsync, tmp_path: Path, command: str
) -> None:
    """A push into a folder it may not write: each file failed with the same error (one
    line each, 20,000 for a big tree), and a watch retried each of them forever."""
    src, closed = tmp_path / "src", tmp_path / "closed"
    write(src, {f"f{i}.txt": str(i) for i in range(5)})
    closed.mkdir()
    out = closed / "out"
    closed.chmod(0o555)
    try:
        res = fsync(*_args(command, src, str(out)), prefix=drop_dac_caps())
    finally:
        closed.chmod(0o755)
    assert res.returncode == 1
    assert res.stderr == f"fsync: error: cannot make remote {out} ({DENIED})\n"
    assert not out.exists()


@pytest.mark.parametrize("command", ["pull", "verify"])
def test_an_http_remote_that_cannot_be_reached_is_not_called_missing(
    fsync, tmp_path: Path, command: str
) -> None:
    """fsspec's http `info` raises every failure as FileNotFoundError, a refused connection
    too: the remote was said not to exist (exit 2, "check the path"). A 404 still is."""
    import socket
    import subprocess
    import sys

    (tmp_path / "l").mkdir()
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    res = fsync(*_args(command, tmp_path / "l", f"http://127.0.0.1:{port}/x"))
    assert res.returncode == 1
    assert res.stderr.startswith(f"fsync: error: cannot reach remote http://127.0.0.1:{port}/x (")
    assert res.stderr.count("\n") == 1
    (tmp_path / "site").mkdir()
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        cwd=tmp_path / "site",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        res = fsync(*_args(command, tmp_path / "l", f"http://127.0.0.1:{port}/missing"))
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert res.returncode == 2
    assert "does not exist (check the path)" in res.stderr
