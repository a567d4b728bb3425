"""End-to-end: the installed `fsync` command on real folders, as a user runs it."""

from __future__ import annotations

import contextlib
import fcntl
import importlib.metadata
import json
import os
import pty
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import termios
import time
import unicodedata
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from fsync.manifest.store import CLOCK_MARGIN
from fsync.remote.local import LocalRemote, filesystem_type
from fsynctest.caps import drop_dac_caps, unreadable
from fsynctest.commands import fsync_command
from fsynctest.trees import age_tree, listing, write
from fsynctest.watching import eventually

if TYPE_CHECKING:
    from conftest import S3Server
    from e2e.conftest import Run

IGNORED = {"scratch.tmp", "run.log", "build/app.bin"}


def expected(demo: Path) -> dict[str, object]:
    """The demo tree as a push should deliver it: without what .fsyncignore excludes."""
    return {k: v for k, v in listing(demo).items() if k not in IGNORED}


def test_push_then_noop_then_one_edit(fsync, demo: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = fsync("push", demo, out)
    assert first.returncode == 0, first.stderr
    assert listing(out) == expected(demo)
    assert "scratch.tmp" not in listing(out)

    second = fsync("push", demo, out, "--json")
    assert second.returncode == 0, second.stderr
    summary = json.loads(second.stdout)
    assert summary["uploaded"] == 0
    assert summary["bytes_sent"] == 0
    assert summary["unchanged"] == len(expected(demo))
    human = fsync("push", demo, out)
    assert human.stdout.startswith("push: nothing to do")
    dry = fsync("push", demo, out, "--dry-run")
    assert dry.stdout.startswith("push (dry run): nothing to do"), dry.stdout

    (demo / "docs" / "grüße.txt").write_text("Grüße aus Berlin\n", encoding="utf-8")
    third = fsync("push", demo, out, "--json")
    summary = json.loads(third.stdout)
    assert (summary["uploaded"], summary["deleted"]) == (1, 0)
    assert summary["bytes_sent"] == len("Grüße aus Berlin\n".encode())
    assert listing(out) == expected(demo)


def test_round_trip_reproduces_bytes_and_mtimes(fsync, demo: Path, tmp_path: Path) -> None:
    age_tree(demo)
    remote = tmp_path / "remote"
    back = tmp_path / "back"
    assert fsync("push", demo, f"file://{remote}").returncode == 0
    pulled = fsync("pull", f"file://{remote}", back)
    assert pulled.returncode == 0, pulled.stderr
    want = {k: v for k, v in listing(demo, mtimes=True).items() if k not in IGNORED}
    assert listing(back, mtimes=True) == want


def test_lost_manifest_resends_nothing(fsync, demo: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert fsync("push", demo, out).returncode == 0
    shutil.rmtree(demo / ".fsync")
    again = fsync("push", demo, out, "--json")
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert summary["uploaded"] == 0
    assert summary["bytes_sent"] == 0
    assert summary["conflicts"] == 0


def test_deleting_locally_deletes_remotely(fsync, demo: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert fsync("push", demo, out).returncode == 0
    (demo / "docs" / "data file.csv").unlink()
    res = fsync("push", demo, out, "--json")
    assert json.loads(res.stdout)["deleted"] == 1
    assert not (out / "docs" / "data file.csv").exists()
    assert listing(out) == expected(demo)


def test_dry_run_changes_nothing(fsync, demo: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = fsync("push", demo, out, "--dry-run", "--json")
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["dry_run"] is True
    assert summary["uploaded"] == len(expected(demo))
    assert not out.exists() or listing(out) == {}


def test_a_dry_pull_into_a_new_folder_creates_nothing(fsync, demo: Path, tmp_path: Path) -> None:
    assert fsync("push", demo, tmp_path / "remote", "-q").returncode == 0
    res = fsync("pull", tmp_path / "remote", tmp_path / "new", "--dry-run", "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["downloaded"] == len(expected(demo))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo", "remote"]
    # And where the real run could not create the folder, neither can the dry one.
    res = fsync("pull", tmp_path / "remote", tmp_path / "no" / "new", "--dry-run")
    assert res.returncode == 2
    assert "its parent folder does not exist" in res.stderr


def test_json_output_of_a_run_stopped_as_a_whole_is_still_one_object(fsync, tmp_path: Path) -> None:
    """DESIGN.md: with --json, stdout carries one JSON object; a run that stops before or
    instead of its transfers printed nothing there, and `jq` read an empty stream."""
    res = fsync("push", tmp_path / "nope", tmp_path / "out", "--json")
    assert res.returncode == 2
    assert json.loads(res.stdout) == {
        "error": f"local root {tmp_path}/nope does not exist (give an existing folder)",
        "exit_code": 2,
    }
    assert len(res.stdout.splitlines()) == 1
    for command in (
        ("status", tmp_path / "nope"),
        ("verify", tmp_path / "nope", tmp_path / "out"),
        ("cleanup", tmp_path / "nope"),
    ):
        res = fsync(*command, "--json")
        assert res.returncode == 2
        assert json.loads(res.stdout)["exit_code"] == 2, command


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--transfers", "0"], "Invalid value for '--transfers'"),
        (["--bogus"], "No such option: --bogus"),
        (["--chunk-size", "1x"], "invalid size '1x'"),
        (["-o", "notakey"], "invalid -o 'notakey'"),
        (["--config", "{config}"], "config.toml:1: unknown setting 'bogus'"),
    ],
)
def test_json_output_of_a_usage_or_config_error_is_one_object(
    fsync, tmp_path: Path, args: list[str], error: str
) -> None:
    """Errors met while reading the options or the config file printed nothing on stdout
    with --json, where every other stop prints its object."""
    (tmp_path / "local").mkdir()
    config = tmp_path / "config.toml"
    config.write_text("bogus = 1\n")
    args = [a.replace("{config}", str(config)) for a in args]
    res = fsync("push", tmp_path / "local", tmp_path / "out", "--json", *args)
    assert res.returncode == 2
    assert len(res.stdout.splitlines()) == 1, res.stdout
    answer = json.loads(res.stdout)
    assert answer["exit_code"] == 2
    assert error in answer["error"]
    [line] = res.stderr.splitlines()
    assert line.startswith(f"fsync: error: {answer['error']}")


def test_json_output_when_no_remote_is_known_is_one_object(fsync, tmp_path: Path) -> None:
    res = fsync("push", "--json", cwd=tmp_path)
    assert res.returncode == 2
    assert json.loads(res.stdout)["error"].startswith("no REMOTE given")
    res = fsync("pull", tmp_path / "r", "--json", cwd=tmp_path)
    assert res.returncode == 2
    assert json.loads(res.stdout)["error"].startswith("no LOCAL given")


def test_a_failed_pull_leaves_no_new_local_folder_behind(fsync, tmp_path: Path) -> None:
    """A pull into a folder it makes, from a remote it cannot read, left that folder, empty
    but for fsync's state, which then counted as a synced root."""
    res = fsync("pull", tmp_path / "no-such-remote", tmp_path / "new")
    assert res.returncode == 2, res.stderr
    assert "does not exist" in res.stderr
    assert not (tmp_path / "new").exists()
    (tmp_path / "mine").mkdir()  # a folder it did not make stays, whatever happens
    res = fsync("pull", tmp_path / "no-such-remote", tmp_path / "mine")
    assert res.returncode == 2, res.stderr
    assert (tmp_path / "mine").is_dir()


def test_a_pull_into_a_path_under_a_file_is_a_usage_error(fsync, tmp_path: Path) -> None:
    (tmp_path / "remote").mkdir()
    (tmp_path / "afile").write_text("x")
    res = fsync("pull", tmp_path / "remote", tmp_path / "afile" / "sub")
    assert res.returncode == 2
    assert res.stderr.splitlines() == [
        f"fsync: error: local root {tmp_path}/afile/sub cannot be created: a file is in its path"
    ]


def test_missing_local_root_is_a_usage_error(fsync, tmp_path: Path) -> None:
    res = fsync("push", tmp_path / "nope", tmp_path / "out")
    assert res.returncode == 2
    assert res.stderr.startswith("fsync: error: local root")
    assert "does not exist" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert "Traceback" not in res.stderr


def test_local_root_that_is_a_file(fsync, tmp_path: Path) -> None:
    f = tmp_path / "file.txt"
    f.write_text("x")
    res = fsync("push", f, tmp_path / "out")
    assert res.returncode == 2
    assert "is not a directory" in res.stderr


@pytest.mark.parametrize("command", ["push", "pull", "verify"])
def test_a_remote_that_is_a_file_is_a_usage_error(
    fsync, demo: Path, tmp_path: Path, command: str
) -> None:
    """push said "is not a folder" with exit 1, pull and verify "does not exist" (exit 2)."""
    (tmp_path / "file").write_text("x")
    args = [tmp_path / "file", tmp_path / "new"] if command == "pull" else [demo, tmp_path / "file"]
    res = fsync(command, *args)
    assert res.returncode == 2
    file = tmp_path / "file"
    assert res.stderr == f"fsync: error: remote {file} is not a folder (give a folder)\n"
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("endpoint", ["notaurl", "http://", "ftp://host", "http://host:port"])
def test_a_malformed_endpoint_is_a_usage_error(fsync, demo: Path, endpoint: str) -> None:
    res = fsync("push", demo, "s3://bucket/x", "--endpoint-url", endpoint)
    assert res.returncode == 2
    assert "is not an http(s) URL" in res.stderr
    assert len(res.stderr.splitlines()) == 1


def test_unknown_url_scheme(fsync, demo: Path) -> None:
    res = fsync("push", demo, "nosuchscheme://bucket/x")
    assert res.returncode == 2
    assert "unknown URL scheme" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("prefix", ["../up", "a/../../b", "a/.."])
def test_an_s3_prefix_with_a_step_up_is_refused(fsync, demo: Path, prefix: str) -> None:
    """Keys under `s3://b/../up` were written as `../up/...`, which tools copying keys to a
    disk take as a step up (and fsync's own pull of the bucket refuses)."""
    url = f"s3://bucket/{prefix}"
    res = fsync("push", demo, url, "--endpoint-url", "http://127.0.0.1:9")
    assert res.returncode == 2
    assert res.stderr == (
        f"fsync: error: {url} has a '..' folder in its prefix, which tools copying its keys "
        "to a disk take as a step up; name the prefix without it\n"
    )


@pytest.mark.parametrize(
    ("command", "local", "remote"),
    [
        ("push", "t", "t/mirror"),  # each run would copy the tree into itself
        ("push", "t/sub", "t"),  # with --mirror: deleted the local files as "remote extras"
        ("pull", "t", "t"),
        ("watch", "t", "t/mirror"),
    ],
)
def test_overlapping_roots_are_refused(
    fsync, tmp_path: Path, command: str, local: str, remote: str
) -> None:
    (tmp_path / "t" / "sub").mkdir(parents=True)
    (tmp_path / "t" / "sub" / "keep.txt").write_text("mine")
    args = [tmp_path / local, tmp_path / remote]
    if command == "pull":
        args.reverse()
    elif command == "push":
        args += ["--mirror", "--force"]
    res = fsync(command, *args, timeout=30)
    assert res.returncode == 2, res.stderr
    assert res.stderr.startswith("fsync: error: local root")
    assert "(give two separate folders, or exclude the inner one)" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert listing(tmp_path / "t") == {"sub/keep.txt": b"mine"}


def test_a_mirror_kept_inside_the_tree_it_copies_is_fine_when_excluded(
    fsync, tmp_path: Path
) -> None:
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "a").write_text("a")
    res = fsync("push", tmp_path / "t", tmp_path / "t" / "mirror", "--exclude", "/mirror/")
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "t" / "mirror" / "a").read_text() == "a"
    assert not (tmp_path / "t" / "mirror" / "mirror").exists()
    # The same through fsspec's local:// is no way around the check.
    res = fsync("push", tmp_path / "t", f"local://{tmp_path}/t/other", "--mirror", "--force")
    assert res.returncode == 2
    assert "the remote is inside the local folder" in res.stderr


def test_bad_storage_options_are_usage_errors_in_one_line(
    fsync, demo: Path, tmp_path: Path
) -> None:
    """s3fs checks none of its options: an unknown one, a table given as text, or a count
    given as a word failed with a raw Python message (`AioSession.__init__() got an
    unexpected keyword argument`), mostly with exit 1. And the help of `-o noequals` was
    masked as a secret (`KEY=***`). Nothing reaches the network: the endpoint is unused."""
    url, endpoint = "s3://bkt/p", "http://127.0.0.1:9"
    cases = {
        "bogus_option=1": "unknown -o bogus_option (s3fs takes no such option",
        'client_kwargs={"endpoint_url":"x"}': "invalid -o client_kwargs (s3fs takes a table",
        "max_concurrency=abc": "invalid -o max_concurrency (expected a whole number such as 10",
        "anon=maybe": "invalid -o anon (expected true or false, not 'maybe')",
        "noequals": "invalid -o 'noequals' (expected KEY=VALUE)",
    }
    for option, message in cases.items():
        res = fsync("push", demo, url, "--endpoint-url", endpoint, "-o", option, cwd=tmp_path)
        assert res.returncode == 2, (option, res.stderr)
        assert res.stderr.startswith(f"fsync: error: {message}"), res.stderr
        assert res.stderr.count("\n") == 1, res.stderr


def test_overlap_through_a_link_is_refused(fsync, demo: Path, tmp_path: Path) -> None:
    (tmp_path / "alias").symlink_to(demo)
    res = fsync("push", demo, f"file://{tmp_path}/alias/copy")
    assert res.returncode == 2
    assert "the remote is inside the local folder" in res.stderr


def test_a_folder_is_not_verified_against_itself(fsync, demo: Path, tmp_path: Path) -> None:
    """`verify L ALIAS-OF-L` said "OK" (exit 0): a mistyped remote passed the check that a
    push of the same pair refuses."""
    (tmp_path / "alias").symlink_to(demo)
    for remote in (str(tmp_path / "alias"), f"file://{demo}", f"{demo}/sub"):
        res = fsync("verify", demo, remote)
        assert res.returncode == 2, (remote, res.stdout)
        assert res.stderr.startswith(f"fsync: error: local root {demo} and remote {remote} ")
        assert res.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("command", "ends", "why"),
    [
        ("push", ("t", "bind/copy"), "overlap: the remote is inside the local folder"),
        ("push", ("bind/sub", "t"), "overlap: the local folder is inside the remote"),
        ("sync", ("t", "bind"), "are the same folder"),
    ],
)
def test_overlap_through_a_bind_mount_is_refused(
    fsync, tmp_path: Path, command: str, ends: tuple[str, str], why: str
) -> None:
    """A bind mount is one more name for a folder, which no resolving of names sees through:
    a push of a tree to a folder inside its own bind mount copied the tree into itself, one
    level deeper at every run."""
    local, remote = (tmp_path / end for end in ends)
    (tmp_path / "t" / "sub").mkdir(parents=True)
    (tmp_path / "t" / "sub" / "keep.txt").write_text("mine")
    bind = tmp_path / "bind"
    bind.mkdir()
    mounted = subprocess.run(
        ["mount", "--bind", tmp_path / "t", bind], capture_output=True, text=True, check=False
    )
    if mounted.returncode != 0:
        pytest.skip(f"mount --bind is not permitted here: {mounted.stderr.strip()}")
    try:
        res = fsync(command, local, remote, timeout=30)
    finally:
        subprocess.run(["umount", bind], check=True)
    assert res.returncode == 2, res.stderr
    assert res.stderr == (
        f"fsync: error: local root {local} and remote {remote} {why} "
        "(give two separate folders, or exclude the inner one)\n"
    )
    assert listing(tmp_path / "t") == {"sub/keep.txt": b"mine"}


def test_file_urls_name_absolute_folders(fsync, demo: Path, tmp_path: Path) -> None:
    res = fsync("push", demo, f"file://localhost{tmp_path}/out", "-q", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert listing(tmp_path / "out") == expected(demo)
    for url in ("file://out", "file://host/out", "file://"):
        res = fsync("push", demo, url, cwd=tmp_path)
        assert res.returncode == 2, url
        assert "names no local folder" in res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo", "out"]


def test_the_short_file_url_names_an_absolute_folder(fsync, demo: Path, tmp_path: Path) -> None:
    """`file:/p` (RFC 8089, no authority) is `/p`: taken for a plain path, it pushed into
    `./file:/p` under the current folder, and passed the check for a remote inside the tree."""
    res = fsync("push", demo, f"file:{tmp_path}/out", "-q", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert listing(tmp_path / "out") == expected(demo)
    back = tmp_path / "back"
    res = fsync("pull", f"FILE:{tmp_path}/out", back, "-q", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert listing(back) == expected(demo)
    res = fsync("push", demo, f"file:{demo}/inner", "--mirror", "--force", cwd=tmp_path)
    assert res.returncode == 2
    assert "the remote is inside the local folder" in res.stderr
    res = fsync("push", demo, "file:out", cwd=tmp_path)
    assert res.returncode == 2
    assert "names no local folder" in res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["back", "demo", "out"]


def test_a_url_without_its_slashes_is_refused_not_made_a_local_folder(
    fsync, demo: Path, tmp_path: Path
) -> None:
    """`s3:bucket/x` (a lost `//`, or rclone's `remote:path`) pushed into a new folder
    `./s3:bucket/x` and said it succeeded, also as `remote` in a config file. An existing
    folder of such a name still works, `./` makes a new one, and a name whose prefix is no
    URL scheme (a timestamp) is a folder."""
    for verb, ends in (("push", (demo, "s3:bucket/x")), ("pull", ("gs:bucket/x", "back"))):
        res = fsync(verb, *ends, cwd=tmp_path)
        assert res.returncode == 2, res.stderr
        url = ends[1] if verb == "push" else ends[0]
        scheme, _, rest = str(url).partition(":")
        assert f"did you mean {scheme}://{rest}?" in res.stderr
        assert res.stderr.count("\n") == 1, res.stderr
    (demo / ".fsync").mkdir(exist_ok=True)
    (demo / ".fsync" / "config.toml").write_text('remote = "s3:bucket/x"\n')
    res = fsync("push", demo, cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert "did you mean s3://bucket/x?" in res.stderr
    (demo / ".fsync" / "config.toml").unlink()
    assert not list(tmp_path.rglob("s3:*"))
    (tmp_path / "notes:2024").mkdir()
    for url in ("notes:2024", "./new:folder", "snap-2026-11-27T12:00"):
        res = fsync("push", demo, url, "-q", cwd=tmp_path)
        assert res.returncode == 0, res.stderr
        assert listing(tmp_path / url) == expected(demo)


def test_a_tree_a_thousand_folders_deep_is_pushed_and_pulled(fsync, tmp_path: Path) -> None:
    """`os.makedirs` recurses once per missing folder: such a tree (a 2,000-character path,
    legal on Linux) ended the whole run with "maximum recursion depth exceeded", exit 1."""
    src, out, back = tmp_path / "src", tmp_path / "out", tmp_path / "back"
    deep = src
    deep.mkdir()
    for _ in range(1000):  # (`Path.mkdir(parents=True)` recurses too)
        deep = deep / "d"
        deep.mkdir()
    (deep / "f").write_text("deep")
    (src / "top").write_text("top")
    try:
        res = fsync("push", src, out, "-q")
        assert res.returncode == 0, res.stderr[-300:]
        res = fsync("pull", out, back, "-q")
        assert res.returncode == 0, res.stderr[-300:]
        assert (back / "top").read_text() == "top"
        assert (back / deep.relative_to(src) / "f").read_text() == "deep"
    finally:
        # `rm` walks with openat; pytest's own clean-up (`shutil.rmtree`) recurses too.
        subprocess.run(["rm", "-rf", str(src), str(out), str(back)], check=True)


def _shared_folder_remote(fsync: Run, tmp_path: Path) -> tuple[Path, Path, Path]:
    """Machines `a` and `b` sharing folder remote `remote`, each synced with its `doc.txt`
    (skips where the filesystem may renumber inodes: fingerprints are size+mtime there)."""
    if not LocalRemote(str(tmp_path)).inodes:
        pytest.skip(f"{filesystem_type(str(tmp_path))} may renumber inodes: size+mtime only")
    a, b, remote = tmp_path / "a", tmp_path / "b", tmp_path / "remote"
    a.mkdir()
    (a / "doc.txt").write_text("hello world\n")
    assert fsync("push", a, remote, "-q").returncode == 0
    assert fsync("pull", remote, b, "-q").returncode == 0
    return a, b, remote


def test_a_folder_remote_version_of_the_same_size_and_mtime_is_still_seen(
    fsync, tmp_path: Path
) -> None:
    """Two machines share a folder remote. B's edit kept the size and the mtime (`touch -r`,
    `exiftool -P`), and fsync sets the remote file's mtime from B's copy: A's pull said
    "nothing to do", and A's next push overwrote B's version with no conflict."""
    a, b, remote = _shared_folder_remote(fsync, tmp_path)
    before = (b / "doc.txt").stat()
    (b / "doc.txt").write_text("HELLO WORLD\n")
    os.utime(b / "doc.txt", ns=(before.st_atime_ns, before.st_mtime_ns))
    assert fsync("push", b, remote, "-q").returncode == 0
    res = fsync("pull", remote, a, "-q")
    assert res.returncode == 0, res.stderr
    assert (a / "doc.txt").read_text() == "HELLO WORLD\n"


def test_a_folder_remote_file_rewritten_in_place_keeping_size_and_mtime_is_still_seen(
    fsync, tmp_path: Path
) -> None:
    """Someone rewrote the remote file in place, same size, and put its mtime back (`rsync
    --inplace -t`, `touch -r`): same size, mtime and inode. Only the change time tells; a
    pull said "nothing to do" and the next push overwrote that version with no conflict."""
    a, b, remote = _shared_folder_remote(fsync, tmp_path)
    before = (remote / "doc.txt").stat()
    with open(remote / "doc.txt", "r+b") as f:
        f.write(b"HELLO WORLD\n")
    os.utime(remote / "doc.txt", ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (remote / "doc.txt").stat().st_ino == before.st_ino

    res = fsync("pull", remote, a, "-q")
    assert res.returncode == 0, res.stderr
    assert (a / "doc.txt").read_text() == "HELLO WORLD\n"
    # B never fetched it: its own edit meets it as a conflict, both versions kept.
    (b / "doc.txt").write_text("bye\n")
    res = fsync("push", b, remote, "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["conflicts"] == 1, res.stdout
    kept = {f.read_text() for f in remote.iterdir() if f.is_file()}
    assert kept == {"HELLO WORLD\n", "bye\n"}


def test_a_base_recorded_before_the_change_time_joined_the_fingerprint_is_not_read_again(
    fsync, tmp_path: Path
) -> None:
    """Folder remote fingerprints were `size:mtime:inode` until the change time joined them
    (schema 0012): a base an older fsync recorded is the same version, recorded again under
    the new token without reading the file (a whole remote tree read once, otherwise),
    unless the file changed after that fsync's last run ended: an in-place rewrite keeping
    size, mtime and inode is what the change time is there to catch. The bound is fixed at
    the upgrade: taken from the last run, a push that saw the rewrite (and left it for a
    pull) moved it past, and the pull adopted the rewrite as the old version (reviews)."""
    if not LocalRemote(str(tmp_path)).inodes:
        pytest.skip(f"{filesystem_type(str(tmp_path))} may renumber inodes: size+mtime only")
    src, remote = tmp_path / "src", tmp_path / "remote"
    names = ["a.txt", "sub/b.txt", "c.txt"]
    write(src, {"a.txt": "alpha\n", "sub/b.txt": "beta\n", "c.txt": "gamma\n"})
    assert fsync("push", src, remote, "-q").returncode == 0
    files = [remote / n for n in names]
    for f in files:  # an atime before the mtime: the next read of it moves it (relatime)
        st = f.stat()
        os.utime(f, ns=(st.st_mtime_ns - 10**9, st.st_mtime_ns))
    time.sleep(CLOCK_MARGIN + 0.1)  # (files changed within it of a run's end are read)
    db = src / ".fsync" / "state.db"
    with contextlib.closing(sqlite3.connect(db)) as conn, conn:  # as an older fsync left it
        for name, f in zip(names, files, strict=True):
            st = f.stat()
            token = f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}"
            conn.execute("UPDATE base SET fingerprint = ? WHERE path = ?", (token, name))
        conn.execute("UPDATE runs SET ended = ?", (time.time(),))
        conn.execute("DROP TABLE legacy_tokens")
        conn.execute("PRAGMA user_version = 11")
    time.sleep(0.05)  # (past the kernel's clock tick, which change times are rounded to)
    before = files[2].stat()
    with open(files[2], "r+b") as f:
        f.write(b"GAMMA")
    os.utime(files[2], ns=(before.st_atime_ns, before.st_mtime_ns))
    atimes = [f.stat().st_atime_ns for f in files[:2]]
    time.sleep(CLOCK_MARGIN + 0.1)  # (the push's end well past the rewrite)

    res = fsync("push", src, remote, "--json")  # sees the rewrite, leaves it for a pull
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["uploaded"] == 0, res.stdout
    res = fsync("pull", remote, src, "--json")

    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["downloaded"] == 1, res.stdout
    assert (src / "c.txt").read_text() == "GAMMA\n"
    assert [f.stat().st_atime_ns for f in files[:2]] == atimes  # neither was read
    assert _base_tokens(src) == _folder_tokens(remote, names)
    files[0].read_bytes()  # the probe works here: a read does move the atime
    if files[0].stat().st_atime_ns == atimes[0]:
        pytest.skip("no atime moves here (noatime): the no-read check proved nothing")


def test_a_push_to_a_folder_remote_records_each_file_as_its_listing_shows_it(
    fsync, tmp_path: Path
) -> None:
    """fsync's own rename moves the change time a folder remote's fingerprint holds: a base
    recorded with the temp file's (small files are staged and renamed a batch at a time,
    larger ones written and renamed one by one) read as changed by someone else at the next
    run, and each file was read whole again to learn it was not."""
    if not LocalRemote(str(tmp_path)).inodes:
        pytest.skip(f"{filesystem_type(str(tmp_path))} may renumber inodes: size+mtime only")
    src, remote = tmp_path / "src", tmp_path / "remote"
    write(src, {"small.txt": "s", "big.bin": os.urandom(2 << 20)})

    assert fsync("push", src, remote, "-q").returncode == 0

    assert _base_tokens(src) == _folder_tokens(remote, ["big.bin", "small.txt"])


def _base_tokens(root: Path) -> dict[str, str]:
    """The fingerprints `root`'s manifest recorded, by path."""
    with contextlib.closing(sqlite3.connect(root / ".fsync" / "state.db")) as conn:
        return dict(conn.execute("SELECT path, fingerprint FROM base").fetchall())


def _folder_tokens(remote: Path, names: list[str]) -> dict[str, str]:
    """The fingerprints a folder remote's listing gives `names` now."""
    stats = {name: (remote / name).stat() for name in names}
    return {
        name: f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}:{st.st_ctime_ns}"
        for name, st in stats.items()
    }


def test_a_users_file_named_like_a_temp_file_is_synced(fsync, tmp_path: Path) -> None:
    """Only names fsync makes (`.fsync-<16 hex>.tmp`) are its own to skip and delete."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / ".fsync-notes.tmp").write_text("mine")
    res = fsync("push", tmp_path / "src", tmp_path / "out", "-q")
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "out" / ".fsync-notes.tmp").read_text() == "mine"
    res = fsync("cleanup", tmp_path / "out")
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "out" / ".fsync-notes.tmp").read_text() == "mine"


def test_a_file_whose_name_cannot_be_sent_fails_the_push(fsync, tmp_path: Path) -> None:
    """Renaming a synced folder to a name no remote can hold deletes its remote copies (the
    folder is gone); that its files now exist here alone must not pass unnoticed."""
    src, out = tmp_path / "src", tmp_path / "out"
    (src / "proj").mkdir(parents=True)
    (src / "proj" / "f").write_text("f")
    (src / "keep").write_text("k")
    assert fsync("push", src, out, "-q").returncode == 0
    (src / "proj").rename(src / "proj\x01old")
    os.close(os.open(os.fsencode(src) + b"/bad-\xff", os.O_CREAT | os.O_WRONLY))

    log = tmp_path / "run.log"
    res = fsync("push", src, out, "--json", "--log-file", log)

    assert res.returncode == 1, res.stderr
    summary = json.loads(res.stdout)
    assert summary["failed"] == 2
    # An undecodable byte is named as `os` decodes it (`os.fsencode` gives the bytes back),
    # here as in a remote's names, and each output escapes it once: it was escaped twice.
    assert {(e["path"], e["error"]) for e in summary["errors"]} == {
        ("proj\x01old", "not sent: contains a control character"),
        ("bad-\udcff", "not sent: the name is not valid UTF-8"),
    }
    # stderr has them too, as without --json (its warnings were there, its errors were not)
    assert "fsync: error: proj\\x01old: not sent: contains a control character" in res.stderr
    assert "fsync: error: bad-\\udcff: not sent: the name is not valid UTF-8" in res.stderr
    records = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    assert (records[-1]["type"], records[-1]["exit_code"]) == ("summary", 1)
    assert {r.get("path") for r in records} >= {"bad-\udcff"}
    res = fsync("verify", src, out)
    assert res.returncode == 1
    assert "cannot be synced: contains a control character" in res.stdout + res.stderr
    # A pull leaves such files alone and says so, without failing.
    res = fsync("pull", out, src)
    assert res.returncode == 0, res.stderr
    assert "fsync: warning: skipping proj\\x01old: contains a control character" in res.stderr
    assert "fsync: warning: skipping bad-\\udcff: the name is not valid UTF-8" in res.stderr
    # Ignored, or a link (skipped whatever its name), such a name is nothing to report.
    (src / ".fsyncignore").write_text("proj*\nbad-*\n")
    os.symlink("keep", os.fsencode(src) + b"/link-\xff")
    res = fsync("push", src, out, "--json")
    assert res.returncode == 0, res.stdout
    assert "skipping link-\\udcff" in res.stderr


def test_a_remote_name_with_an_undecodable_byte_goes_into_the_log_file(
    fsync, tmp_path: Path
) -> None:
    """A pull from a folder holding `bad<0xff>` with `--log-file` ended with "fsync: error:
    'utf-8' codec can't encode character '\\udcff'": the log's summary line could not be
    written, and the run's own error was lost."""
    remote, local, log = tmp_path / "remote", tmp_path / "local", tmp_path / "run.log"
    remote.mkdir()
    (remote / "ok").write_text("ok")
    os.close(os.open(os.fsencode(remote) + b"/bad\xff", os.O_CREAT | os.O_WRONLY))

    res = fsync("pull", remote, local, "--log-file", log)

    assert res.returncode == 1
    assert res.stderr.splitlines() == [
        "fsync: error: bad\\udcff: refused remote key: is not valid UTF-8"
    ]
    summary = json.loads(log.read_text(encoding="utf-8").splitlines()[-1])
    assert (summary["type"], summary["exit_code"], summary["error"]) == ("summary", 1, None)
    assert (local / "ok").read_text() == "ok"


def test_names_print_unambiguously_and_in_order(fsync, tmp_path: Path) -> None:
    """A RIGHT-TO-LEFT OVERRIDE in a remote name was printed raw (`invoice<RLO>txt.exe`
    showed as `invoiceexe.txt`), and a name holding the four characters `\\x1b` printed
    exactly as one holding an ESC. `--json` carries the names themselves."""
    remote = tmp_path / "remote"
    remote.mkdir()
    names = {"rlo": "invoice\u202etxt.exe", "literal": "lit\\x1b.txt", "esc": "esc\x1b.txt"}
    for name in names.values():
        (remote / name).write_text("x")

    res = fsync("pull", remote, tmp_path / "local")

    assert res.returncode == 1  # a backslash or an ESC maps to no local name
    for stream in (res.stdout, res.stderr):
        assert not {c for c in stream if unicodedata.category(c) in ("Cc", "Cf") and c != "\n"}
    assert "download invoice\\u202etxt.exe" in res.stdout.splitlines()
    errors = res.stderr.splitlines()
    # The key once, escaped once: the reason no longer repeats it as a repr.
    assert "fsync: error: lit\\\\x1b.txt: refused remote key: contains a backslash" in errors
    assert "fsync: error: esc\\x1b.txt: refused remote key: contains a control character" in errors
    res = fsync("pull", remote, tmp_path / "again", "--json")
    summary = json.loads(res.stdout)
    assert {e["path"] for e in summary["errors"]} == {names["literal"], names["esc"]}
    assert "\u202e" not in res.stdout


def test_far_future_and_epoch_mtimes_sync(fsync, tmp_path: Path) -> None:
    """A file dated after 2262 overflowed the manifest's 64-bit nanoseconds and failed every
    run on the root; one dated 1970-01-01 00:00 came back from a pull with the pull's time."""
    src, out, back = tmp_path / "src", tmp_path / "out", tmp_path / "back"
    src.mkdir()
    far = 10_000_000_000 * 10**9  # the year 2286, past 2**63 ns
    for name, mtime in (("future", far), ("epoch", 0), ("now", None)):
        (src / name).write_text(name)
        if mtime is not None:
            os.utime(src / name, ns=(mtime, mtime))
    res = fsync("push", src, out, "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["uploaded"] == 3
    again = fsync("push", src, out, "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["uploaded"] == 0
    assert fsync("status", src).returncode == 0
    res = fsync("pull", out, back, "-q")
    assert res.returncode == 0, res.stderr
    assert (back / "future").stat().st_mtime_ns == far
    assert (back / "epoch").stat().st_mtime_ns == 0


@pytest.mark.s3
@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
def test_far_future_mtimes_round_trip_through_s3(
    fsync, s3_bucket: tuple[S3Server, str], tmp_path: Path
) -> None:
    """An `mtime` past 2**63 ns (2262) was read back from S3 as no time at all, so the pull
    gave the file the pull's time, where a folder remote keeps the file's own."""
    server, bucket = s3_bucket
    src, back = tmp_path / "src", tmp_path / "back"
    write(src, {"future": "future", "later": "later", "epoch": "epoch"})
    times = {"future": 10_000_000_000 * 10**9 + 5, "later": 12_000_000_000 * 10**9, "epoch": 0}
    for name, mtime in times.items():
        os.utime(src / name, ns=(mtime, mtime))
    url = f"s3://{bucket}/p"
    assert fsync("push", src, url, env=server.env()).returncode == 0
    res = fsync("pull", url, back, "-q", env=server.env())
    assert res.returncode == 0, res.stderr
    assert {name: (back / name).stat().st_mtime_ns for name in times} == times
    again = fsync("sync", back, url, "--json", env=server.env())
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["unchanged"] == 3


def test_an_ignored_file_keeps_its_base_until_the_rule_is_lifted(fsync, tmp_path: Path) -> None:
    """Ignoring a synced path once made the next run forget what both sides had agreed on:
    an edit made while it was ignored then looked like a conflict, and a pull with
    `--on-conflict remote` overwrote it."""
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    (src / "x.log").write_text("one")
    (src / "keep").write_text("k")
    assert fsync("push", src, out, "-q").returncode == 0
    (src / ".fsyncignore").write_text("*.log\n")
    res = fsync("push", src, out, "--exclude", "keep", "--json")
    assert res.returncode == 0, res.stderr
    (src / "x.log").write_text("precious local edit")
    (src / ".fsyncignore").unlink()

    res = fsync("pull", out, src, "--on-conflict", "remote", "--json")

    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert (summary["conflicts"], summary["downloaded"]) == (0, 0)
    assert (src / "x.log").read_text() == "precious local edit"
    res = fsync("push", src, out, "--json")
    assert json.loads(res.stdout)["uploaded"] == 1
    assert (out / "x.log").read_text() == "precious local edit"
    # Nor does status take an ignored path for deleted.
    (src / ".fsyncignore").write_text("*.log\n")
    assert fsync("push", src, out, "-q").returncode == 0
    status = json.loads(fsync("status", src, "--json").stdout)
    (remote,) = status["remotes"]
    assert (remote["new"], remote["changed"], remote["deleted"]) == ([], [], [])


DESIGN_OPTIONS = [
    "--dry-run",
    "--json",
    "--quiet",
    "--verbose",
    "--log-file",
    "--on-error",
    "--endpoint-url",
    "--option",
    "--exclude",
    "--transfers",
    "--chunk-size",
    "--retries",
    "--timeout",
    "--tps-limit",
    "--bw-limit",
    "--on-conflict",
    "--mirror",
    "--max-delete",
    "--force",
    "--backup-dir",
    "--verify",
    "--links",
]


@pytest.mark.parametrize("command", ["push", "pull", "sync", "watch"])
def test_every_transfer_command_takes_designs_options(fsync, command: str) -> None:
    """DESIGN.md, Interface: "Options on every transfer command" (`pull` lacked `--verify`);
    `sync` has no `--mirror`, which would delete on both sides."""
    shown = fsync(command, "--help").stdout
    wanted = [o for o in DESIGN_OPTIONS if not (command == "sync" and o == "--mirror")]
    assert [o for o in wanted if o not in shown] == []


def test_watch_takes_the_transfer_options(fsync, demo: Path, tmp_path: Path) -> None:
    res = fsync("watch", "--help")
    for option in ("--mirror", "--max-delete", "--force", "--chunk-size", "--log-file"):
        assert option in res.stdout
    for option in ("--backup-dir", "--verify", "--dry-run", "--links", "--retries"):
        assert option in res.stdout
    res = fsync("watch", demo, tmp_path / "out", "--max-delete", "lots", timeout=30)
    assert res.returncode == 2
    assert "--max-delete" in res.stderr


@pytest.mark.parametrize("mode", ["plain", "quiet"])
def test_a_failed_file_is_said_once_on_stderr(fsync, tmp_path: Path, mode: str) -> None:
    """Said as it failed, and the summary did not repeat it; with -q it was not said at all,
    though DESIGN keeps errors on stderr under -q."""
    src, out = tmp_path / "src", tmp_path / "out"
    (src / "d").mkdir(parents=True)
    (src / "d" / "x").write_text("x")
    (src / "bad\\name").write_text("a name no remote takes")
    out.mkdir()
    (out / "d").write_text("a file where the folder must go")
    res = fsync("push", src, out, *(["-q"] if mode == "quiet" else []))
    assert res.returncode == 1
    errors = [line for line in res.stderr.splitlines() if line.startswith("fsync: error:")]
    assert len(errors) == 2, res.stderr
    assert sum("d/x" in line for line in errors) == 1
    assert sum("bad" in line for line in errors) == 1


def test_bad_option_is_usage_error(fsync, demo: Path, tmp_path: Path) -> None:
    res = fsync("push", demo, tmp_path / "out", "--max-delete", "lots")
    assert res.returncode == 2
    assert "--max-delete" in res.stderr


@pytest.mark.parametrize(
    ("args", "what"),
    [
        (["push", "A", "B", "--bogus"], "No such option: --bogus"),
        (["push", "A", "B", "C"], "unexpected extra argument"),
        (["push", "A", "B", "--transfers", "0"], "Invalid value for '--transfers'"),
        (["push", "A", "B", "--transfers"], "Option '--transfers' requires an argument"),
        (["verify", "--download=yes"], "Option '--download' does not take a value"),
        (["nosuch"], "No such command 'nosuch'"),
    ],
)
def test_usage_errors_are_one_line(fsync, tmp_path: Path, args: list[str], what: str) -> None:
    """As every error (DESIGN.md, Interface): typer drew a box of a dozen lines."""
    res = fsync(*args, cwd=tmp_path)
    assert res.returncode == 2
    (line,) = res.stderr.splitlines()
    assert line.startswith("fsync: error: ")
    assert what in line
    assert line.endswith("--help)")
    assert res.stdout == ""


def test_no_command_shows_the_help(fsync) -> None:
    res = fsync()
    assert res.returncode == 2
    assert "push" in res.stdout + res.stderr


def test_unreadable_file_fails_alone(fsync, demo: Path, tmp_path: Path) -> None:
    secret = demo / "docs" / "notes" / "2026-11-25.md"
    out = tmp_path / "out"
    with unreadable(secret):
        res = fsync("push", demo, out, "--json", prefix=drop_dac_caps())
    assert res.returncode == 1, res.stderr
    summary = json.loads(res.stdout)
    assert summary["failed"] == 1
    assert [e["path"] for e in summary["errors"]] == ["docs/notes/2026-11-25.md"]
    assert "permission denied" in summary["errors"][0]["error"].lower()
    want = {k: v for k, v in expected(demo).items() if k != "docs/notes/2026-11-25.md"}
    assert listing(out) == want


def test_second_process_on_same_root_is_refused(fsync, demo: Path, tmp_path: Path) -> None:
    import fcntl

    (demo / ".fsync").mkdir(exist_ok=True)
    with open(demo / ".fsync" / "lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        res = fsync("push", demo, tmp_path / "out")
    assert res.returncode == 2
    assert "another fsync" in res.stderr


def test_pull_refuses_to_recreate_an_emptied_source(fsync, demo: Path, tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    assert fsync("push", demo, remote).returncode == 0
    shutil.rmtree(remote)
    remote.mkdir()
    res = fsync("pull", remote, demo)
    assert res.returncode == 2
    assert "--force" in res.stderr
    assert (demo / "README.txt").exists()


def test_a_mirror_from_an_unmounted_disk_deletes_nothing(fsync, tmp_path: Path) -> None:
    """The mount point left when the disk is gone holds no `.fsync`, so no base: a push
    `--mirror` from it deleted the remote's one file (exit 0), and with a high
    `--max-delete` all of them (ignore tester)."""
    disk, remote = tmp_path / "disk", tmp_path / "remote"
    write(disk, {f"f{i}.txt": str(i) for i in range(10)})
    assert fsync("push", disk, remote).returncode == 0
    shutil.rmtree(disk)
    disk.mkdir()  # (unmounted)
    res = fsync("push", disk, remote, "--mirror", "--max-delete", "100")
    assert res.returncode == 2, res.stdout
    assert res.stderr == (
        "fsync: error: the local side is empty and the plan deletes 10 files on the remote "
        "side (a wrong path or an unmounted disk?); use --force to delete them all\n"
    )
    assert len(listing(remote)) == 10


def test_status_of_a_folder_fsync_never_synced_says_what_to_give(fsync, tmp_path: Path) -> None:
    res = fsync("status", tmp_path)
    assert res.returncode == 2
    assert res.stderr == (
        f"fsync: error: {tmp_path} has never been synced (no .fsync/state.db; give the folder"
        " you push from or pull into, or run fsync push or pull there first)\n"
    )


def test_status_lists_pending_changes(fsync, demo: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert fsync("push", demo, out).returncode == 0
    (demo / "new.txt").write_text("new")
    (demo / "README.txt").write_text("changed")
    res = fsync("status", demo, "--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    (entry,) = report["remotes"]
    assert entry["new"] == ["new.txt"]
    assert entry["changed"] == ["README.txt"]
    assert report["runs"][0]["command"] == "push"
    assert report["runs"][0]["exit_code"] == 0


def _push_of_many_files(src: Path, out: Path, count: int) -> subprocess.Popen[str]:
    """`fsync push SRC OUT` started on `count` new files of 1,000 bytes, its output piped."""
    src.mkdir()
    for i in range(count):
        (src / f"f{i:04}").write_bytes(os.urandom(1000))
    return subprocess.Popen(
        [sys.executable, "-m", "fsync", "push", str(src), str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_push_is_recorded_with_what_it_did(
    fsync, tmp_path: Path, stop: signal.Signals
) -> None:
    """Ctrl-C during a push was recorded as `{"error": "interrupted"}` alone: the history
    lost the files the run had already sent. It keeps their counts beside the error now.
    SIGTERM (`kill`, a service manager) ended the process at once: the run stayed
    "unfinished", and nothing was said. It stops the run as Ctrl-C does now."""
    src = tmp_path / "src"
    push = _push_of_many_files(src, tmp_path / "out", 6000)
    assert push.stdout is not None
    first = push.stdout.readline()  # an `upload NAME` line: the actions have begun
    os.kill(push.pid, stop)
    rest, stderr = push.communicate(timeout=60)
    assert first.startswith("upload "), stderr
    assert push.returncode == 130, stderr
    assert stderr.endswith(  # (as every error line is: it was `fsync: interrupted`)
        "fsync: error: interrupted (Ctrl-C or SIGTERM; the next run goes on from where this "
        "one stopped)\n"
    )
    lines = (first + rest).splitlines()
    assert len(lines) == len(set(lines))  # none written again at the close
    sent = len(lines)

    res = fsync("status", src, "--json")

    (run,) = json.loads(res.stdout)["runs"]
    assert run["exit_code"] == 130
    assert run["summary"]["error"] == "interrupted"
    assert 1 <= run["summary"]["uploaded"] < 6000
    assert run["summary"]["uploaded"] == sent  # each file counted is one printed
    human = fsync("status", src).stdout
    assert f"exit 130: interrupted; {sent} up, 0 down" in human


def test_ctrl_c_during_a_blocked_write_prints_each_line_once(
    fsync, fsync_started, tmp_path: Path
) -> None:
    """A Ctrl-C that landed between writing the held progress lines and letting go of them
    (here: while stdout's reader lags, so the write is blocked) left them held, and the
    close wrote them a second time. Names near 255 bytes make each batch of lines larger
    than the stream's buffer, so the write itself blocks, not only its flush."""
    src = tmp_path / "src"
    src.mkdir()
    names = [f"{i:04}-{'x' * 240}" for i in range(3000)]
    for name in names:
        (src / name).write_bytes(b"x")
    reader, writer = os.pipe()
    fcntl.fcntl(reader, fcntl.F_SETPIPE_SZ, 4096)
    push = fsync_started("push", src, tmp_path / "out", stdout=writer)
    os.close(writer)
    with os.fdopen(reader, "rb") as out:
        wchan = Path(f"/proc/{push.pid}/task/{push.pid}/wchan")
        eventually(lambda: "pipe_write" in wchan.read_text(), "a write blocked on stdout")
        os.kill(push.pid, signal.SIGINT)
        lines = out.read().decode().splitlines()
    assert push.wait(timeout=60) == 130

    assert len(lines) == len(set(lines))
    assert set(lines) <= {f"upload {name}" for name in names}  # whole lines, none cut
    (run,) = json.loads(fsync("status", src, "--json").stdout)["runs"]
    assert run["summary"]["uploaded"] == len(lines)


def test_a_push_whose_output_reader_goes_away_runs_to_its_end(fsync, tmp_path: Path) -> None:
    """`fsync push ... | head -1`: the push stopped at whatever file it had reached, with
    "[Errno 32] Broken pipe" and exit 1. What is left to say now goes nowhere, and the run
    ends as it would have."""
    src, out = tmp_path / "src", tmp_path / "out"
    push = _push_of_many_files(src, out, 3000)
    assert push.stdout is not None
    assert push.stdout.readline().startswith("upload ")
    push.stdout.close()  # as `head -1` does once it has its line
    _, stderr = push.communicate(timeout=120)
    assert push.returncode == 0, stderr
    assert stderr == ""
    assert len(list(out.iterdir())) == 3000
    (run,) = json.loads(fsync("status", src, "--json").stdout)["runs"]
    assert (run["exit_code"], run["summary"]["uploaded"]) == (0, 3000)


def test_a_killed_push_is_in_the_history_with_what_it_had_committed(fsync, tmp_path: Path) -> None:
    """`kill -9` leaves no chance to record anything at the end: the run showed as
    "unfinished: 0 up" whatever it had done. Each committed batch now records its counts."""
    src = tmp_path / "src"
    push = _push_of_many_files(src, tmp_path / "out", 3000)
    assert push.stdout is not None
    for _ in range(600):  # past the first batch's commit (256 files)
        assert push.stdout.readline().startswith("upload ")
    os.kill(push.pid, signal.SIGKILL)
    push.communicate(timeout=60)

    res = fsync("status", src, "--json")

    (run,) = json.loads(res.stdout)["runs"]
    assert run["exit_code"] is None
    assert 256 <= run["summary"]["uploaded"] < 3000
    assert "unfinished: 0 up" not in fsync("status", src).stdout


def test_a_failed_watch_is_recorded_with_its_error(fsync, tmp_path: Path) -> None:
    """A watch session that failed was recorded with its exit status and totals but not
    why it failed, which a push's or pull's entry says."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_text("a")
    env = {
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "y",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    unreachable = ("--endpoint-url", "http://127.0.0.1:9", "--retries", "0")
    watch = fsync("watch", src, "s3://bucket/p", *unreachable, env=env, timeout=60)
    assert watch.returncode == 1, watch.stderr

    res = fsync("status", src, "--json")

    (run,) = json.loads(res.stdout)["runs"]
    assert (run["command"], run["exit_code"]) == ("watch", 1)
    assert "cannot reach http://127.0.0.1:9" in run["summary"]["error"]
    assert run["summary"]["error"] in watch.stderr
    assert run["summary"]["uploaded"] == 0


@pytest.mark.parametrize("name", ["state.db", "lock", "state.db-wal"])
@pytest.mark.parametrize("kind", ["folder", "fifo"])
def test_a_state_file_that_is_not_a_file_is_a_configuration_error(
    fsync, demo: Path, tmp_path: Path, name: str, kind: str
) -> None:
    """SQLite's "unable to open database file" or "disk I/O error", or `[Errno 22] Invalid
    argument` for the lock, exit 1, named neither the file nor what to do."""
    out = tmp_path / "out"
    assert fsync("push", demo, out, "-q").returncode == 0
    state = demo / ".fsync" / name
    state.unlink(missing_ok=True)
    if kind == "folder":
        state.mkdir()
    else:
        os.mkfifo(state)
    res = fsync("push", demo, out)
    assert res.returncode == 2, res.stderr
    assert res.stderr == (
        f"fsync: error: {state} is not a file (a {kind}); move it aside and fsync will make a "
        "new one\n"
    )


def test_a_push_of_many_small_files_to_a_terminal_draws_little(tmp_path: Path) -> None:
    """On a terminal, a push of 300 small files drew 6.7 MB of display (a bar per file sent
    and not yet published, redrawn at every line) and took 55 s; piped, 0.6 s. Measured in
    bytes drawn, which do not depend on the machine's speed."""
    src = tmp_path / "src"
    write(src, {f"f{i:03}": "x" * 100 for i in range(300)})
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen(
        [fsync_command(), "push", str(src), str(tmp_path / "dst")],
        stdin=slave,
        stdout=slave,
        stderr=slave,
    )
    os.close(slave)
    screen = bytearray()
    with contextlib.suppress(OSError):  # the terminal reads EIO once fsync has exited
        while chunk := os.read(master, 65536):
            screen.extend(chunk)
    os.close(master)
    assert proc.wait(timeout=60) == 0, screen.decode(errors="replace")[-2000:]
    assert b"\x1b[" in screen  # the live display, not plain lines
    text = screen.decode()
    assert all(f"upload f{i:03}" in text for i in range(300))
    assert len(screen) < 1_000_000


def test_memory_remote_through_the_command(fsync, demo: Path) -> None:
    # memory:// lives inside one process, so one run must both write and be checked:
    # a dry run against the (empty) store plans every file, a real run sends them all.
    res = fsync("push", demo, "memory://e2e/demo", "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["uploaded"] == len(expected(demo))


def test_a_state_database_it_may_not_write_is_a_permission_error(
    fsync, demo: Path, tmp_path: Path
) -> None:
    """Not "move it aside, it is not a usable database": the file is fine, its mode is not.
    A read-only one failed mid-run (exit 1, SQLite's own words)."""
    out = tmp_path / "out"
    assert fsync("push", demo, out, "-q").returncode == 0
    db = demo / ".fsync" / "state.db"
    db.chmod(0o444)
    try:
        res = fsync("push", demo, out, prefix=drop_dac_caps())
    finally:
        db.chmod(0o644)
    assert res.returncode == 2
    assert res.stderr == (
        f"fsync: error: {db} cannot be written (permission denied); check the permissions "
        "of that file and its folder\n"
    )
    (demo / ".fsync").chmod(0)
    try:
        res = fsync("status", demo, prefix=drop_dac_caps())
    finally:
        (demo / ".fsync").chmod(0o700)
    assert res.returncode == 2
    assert "cannot be read (permission denied)" in res.stderr
    assert "never been synced" not in res.stderr


_PRIVATE_MOUNTS = ["unshare", "--user", "--map-root-user", "--mount"]
"""A command prefix: a mount namespace of its own, whose mounts end with the process."""


def _can_mount_tmpfs() -> bool:
    """Whether a private mount namespace with a tmpfs of its own can be made here (as root,
    or as a user where unprivileged user namespaces are allowed); nothing stays mounted."""
    unshare = shutil.which("unshare")
    if unshare is None or not sys.platform.startswith("linux"):
        return False
    probe = subprocess.run(
        [*_PRIVATE_MOUNTS, "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


@pytest.mark.skipif(not _can_mount_tmpfs(), reason="needs unshare and a tmpfs mount")
def test_a_full_disk_under_the_state_database_is_said_so(fsync, tmp_path: Path) -> None:
    """SQLite meets a full disk as "disk I/O error" (its shared-memory index cannot grow):
    that was reported as a database that is not usable, exit 2, with the advice to move it
    aside, which throws the sync history away for nothing. Once there is room again, the
    same database serves: only the new file is fetched."""
    src, disk = tmp_path / "src", tmp_path / "disk"
    disk.mkdir()
    src.mkdir()
    (src / "a").write_text("a")
    # One private namespace holds the 1 MiB tmpfs for all three runs, and unmounts it.
    script = (
        'mount -t tmpfs -o size=1m tmpfs "$DISK" || exit 99\n'
        '"$@" -q || exit 98\n'
        'echo b > "$SRC/b"\n'
        'dd if=/dev/zero of="$DISK/filler" bs=1k 2>/dev/null\n'
        '"$@"; echo "full: $?"\n'
        'rm "$DISK/filler"\n'
        '"$@" --json; echo "room: $?"\n'
    )
    res = fsync(
        "pull",
        src,
        disk / "local",
        env={"DISK": str(disk), "SRC": str(src)},
        prefix=[*_PRIVATE_MOUNTS, "sh", "-c", script, "sh"],
    )
    assert res.returncode == 0, res.stdout + res.stderr
    db = disk / "local" / ".fsync" / "state.db"
    assert res.stderr.splitlines() == [
        f"fsync: error: {db} cannot be written: no space left on device (disk I/O error; "
        "free some space on that disk and run again)"
    ]
    full, summary, room = res.stdout.splitlines()
    assert (full, room) == ("full: 1", "room: 0")
    assert (json.loads(summary)["downloaded"], json.loads(summary)["unchanged"]) == (1, 1)


@pytest.mark.skipif(not _can_mount_tmpfs(), reason="needs unshare and a tmpfs mount")
def test_a_disk_that_fills_during_a_pull_is_said_so_and_status_still_reports(
    fsync, tmp_path: Path
) -> None:
    """A pull that filled LOCAL's disk stopped with SQLite's bare `database or disk is
    full` (in `--json` too), and `fsync status` then failed with the same line, as its
    digest cache could not be written. The next run, with room again, completes the pull."""
    src, disk = tmp_path / "src", tmp_path / "disk"
    write(src, {f"f{n:03}.txt": "x" * (100 * (n % 7 + 1)) for n in range(300)})
    disk.mkdir()
    # One private namespace holds the tmpfs for every run, and unmounts it.
    script = (
        'mount -t tmpfs -o size=3m tmpfs "$DISK" || exit 99\n'
        'dd if=/dev/zero of="$DISK/filler" bs=1k count=2200 2>/dev/null\n'
        '"$@" --json; echo "full: $?"\n'
        '"$FSYNC" status "$DISK/local" --json; echo "status: $?"\n'
        'rm "$DISK/filler"\n'
        '"$@" -q; echo "room: $?"\n'
        'diff -r --exclude=.fsync "$SRC" "$DISK/local" && echo same\n'
    )
    res = fsync(
        "pull",
        src,
        disk / "local",
        env={"DISK": str(disk), "SRC": str(src), "FSYNC": fsync_command()},
        prefix=[*_PRIVATE_MOUNTS, "sh", "-c", script, "sh"],
    )
    assert res.returncode == 0, res.stdout + res.stderr
    db = disk / "local" / ".fsync" / "state.db"
    said = (
        f"{db} cannot be written: no space left on device (database or disk is full; "
        "free some space on that disk and run again)"
    )
    failed, full, report, status, room, same = res.stdout.splitlines()
    assert (full, status, room, same) == ("full: 1", "status: 0", "room: 0", "same")
    summary = json.loads(failed)
    if "error" in summary:  # the manifest's write met the full disk: the run stops there
        assert res.stderr.splitlines() == [f"fsync: error: {said}"]
        assert summary == {"error": said, "exit_code": 1}
    else:  # (its writes fit in space SQLite held already) each file that did not, failed
        errors = summary["errors"]
        assert summary["failed"] == len(errors) > 0
        assert all("no space left on device" in e["error"] for e in errors), errors
        assert res.stderr.splitlines() == [
            f"fsync: error: {e['path']}: {e['error']}" for e in errors
        ]
    runs = json.loads(report)["runs"]
    # (its end is recorded where the disk still had room for it; else it shows unfinished)
    assert [run["command"] for run in runs] == ["pull"]


def _small_tree(src: Path) -> None:
    """A file past RESUME_BLOCK (journaled) too big for `_pull_onto_a_small_disk`'s disk,
    and small ones after it."""
    write(src, {"a-big.bin": os.urandom(24 << 20)})
    write(src, {f"b{n:02}.txt": f"small {n}" for n in range(20)})


def _pull_onto_a_small_disk(
    fsync, source: str, src: Path, disk: Path, env: dict[str, str] | None = None
) -> None:
    """Pull `source` (holding `_small_tree(src)`) onto a 16 MiB disk, then with room.

    A 24 MiB file failed, as it must, and its partial file stayed, holding the disk full:
    the small files after it failed too, and so did the manifest's write, at every run
    (file-system tester, 5/5). The partial goes now, and the rest of the tree arrives;
    with room, the next run fetches the big file."""
    disk.mkdir()
    script = (
        'mount -t tmpfs -o size=16m tmpfs "$DISK" || exit 99\n'
        '"$@" --json --transfers 1; echo "full: $?"\n'
        'find "$DISK/local" -name ".fsync-*.tmp" | wc -l\n'
        'mount -o remount,size=64m "$DISK" || exit 98\n'
        '"$@" -q; echo "room: $?"\n'
        'diff -r --exclude=.fsync "$SRC" "$DISK/local" && echo same\n'
    )
    res = fsync(
        "pull",
        source,
        disk / "local",
        env={**(env or {}), "DISK": str(disk), "SRC": str(src)},
        prefix=[*_PRIVATE_MOUNTS, "sh", "-c", script, "sh"],
    )
    assert res.returncode == 0, res.stdout + res.stderr
    summary, full, temps, room, same = res.stdout.splitlines()
    assert (full, temps, room, same) == ("full: 1", "0", "room: 0", "same")
    report = json.loads(summary)
    assert (report["failed"], report["downloaded"]) == (1, 20), report
    (error,) = report["errors"]
    assert error["path"] == "a-big.bin"
    assert "no space left on device" in error["error"]


@pytest.mark.skipif(not _can_mount_tmpfs(), reason="needs unshare and a tmpfs mount")
def test_a_download_that_does_not_fit_gives_its_space_back(fsync, tmp_path: Path) -> None:
    """From a folder (`_pull_onto_a_small_disk`)."""
    src = tmp_path / "src"
    _small_tree(src)
    _pull_onto_a_small_disk(fsync, str(src), src, tmp_path / "disk")


@pytest.mark.s3
@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
@pytest.mark.skipif(not _can_mount_tmpfs(), reason="needs unshare and a tmpfs mount")
def test_an_s3_download_that_does_not_fit_gives_its_space_back(
    fsync, s3_bucket: tuple[S3Server, str], tmp_path: Path
) -> None:
    """From S3, whose partial downloads a later run continues, but not on a full disk."""
    server, bucket = s3_bucket
    src, url = tmp_path / "src", f"s3://{bucket}/p"
    _small_tree(src)
    assert fsync("push", src, url, "-q", env=server.env()).returncode == 0
    _pull_onto_a_small_disk(fsync, url, src, tmp_path / "disk", server.env())


@pytest.mark.skipif(not _can_mount_tmpfs(), reason="needs unshare and a tmpfs mount")
def test_a_watch_goes_on_through_a_full_disk_under_its_state(fsync, tmp_path: Path) -> None:
    """A watch whose state database met a full disk said "will retry", then died: recording
    the failure for a retry wrote to the same database, from inside the handler (watch
    tester, 2/2). It retries now, and sends the change once there is room."""
    disk, remote = tmp_path / "disk", tmp_path / "remote"
    disk.mkdir()
    script = (
        'mount -t tmpfs -o size=4m tmpfs "$DISK" || exit 99\n'
        'mkdir "$DISK/local" && echo one > "$DISK/local/a" || exit 98\n'
        '"$@" -q & watch=$!\n'
        'for _ in $(seq 300); do [ -f "$REMOTE/a" ] && break; sleep 0.1; done\n'
        'dd if=/dev/zero of="$DISK/filler" bs=1k 2>/dev/null\n'
        'printf two | dd of="$DISK/local/a" conv=notrunc 2>/dev/null\n'  # (no new block)
        "sleep 3\n"
        'rm "$DISK/filler"\n'
        'for _ in $(seq 300); do [ "$(cat "$REMOTE/a")" = two ] && break; sleep 0.1; done\n'
        'kill -INT $watch; wait $watch; echo "watch: $?"\n'
        'cat "$REMOTE/a"\n'
    )
    res = fsync(
        "watch",
        disk / "local",
        remote,
        env={"DISK": str(disk), "REMOTE": str(remote)},
        prefix=[*_PRIVATE_MOUNTS, "sh", "-c", script, "sh"],
        timeout=60,
    )
    assert res.stdout.splitlines() == ["watch: 0", "two"], res.stdout + res.stderr
    assert "no space left on device" in res.stderr


def _can_limit_watches() -> bool:
    """Whether a user namespace of its own may lower its inotify watch limit here."""
    if shutil.which("unshare") is None or not sys.platform.startswith("linux"):
        return False
    probe = subprocess.run(
        ["unshare", "--user", "--map-root-user", "sh", "-c", _LOW_WATCH_LIMIT],
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


_LOW_WATCH_LIMIT = "echo 20 > /proc/sys/user/max_inotify_watches"


@pytest.mark.skipif(not _can_limit_watches(), reason="needs a user namespace's watch limit")
def test_past_the_watch_limit_a_change_is_sent_by_a_rescan_within_a_minute(
    fsync, tmp_path: Path
) -> None:
    """Past the inotify watch limit, the folders without a watch were seen by the hourly
    rescan alone: an edit there was not sent for up to an hour (watch tester). Rescans come
    every 30 s then, as the warning says."""
    local, remote = tmp_path / "local", tmp_path / "remote"
    write(local, {f"d{n:02}/f": "one" for n in range(50)})
    script = (
        f"{_LOW_WATCH_LIMIT} || exit 99\n"
        '"$@" -q & watch=$!\n'
        'for _ in $(seq 300); do [ -f "$REMOTE/d49/f" ] && break; sleep 0.1; done\n'
        'echo two > "$LOCAL/d49/f"\n'
        'for _ in $(seq 450); do [ "$(cat "$REMOTE/d49/f")" = two ] && break; sleep 0.1; done\n'
        'kill -INT $watch; wait $watch; echo "watch: $?"\n'
        'cat "$REMOTE/d49/f"\n'
    )
    res = fsync(
        "watch",
        local,
        remote,
        env={"LOCAL": str(local), "REMOTE": str(remote)},
        prefix=["unshare", "--user", "--map-root-user", "sh", "-c", script, "sh"],
        timeout=90,
    )
    assert res.stdout.splitlines() == ["watch: 0", "two"], res.stdout + res.stderr
    assert "inotify watch limit" in res.stderr


def test_unreadable_folder_is_not_a_deletion(fsync, demo: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert fsync("push", demo, out).returncode == 0
    before = listing(out)
    locked = demo / "music"
    with unreadable(locked):
        res = fsync("push", demo, out, "--json", prefix=drop_dac_caps())
    assert res.returncode == 1, res.stderr
    summary = json.loads(res.stdout)
    assert summary["deleted"] == 0
    assert listing(out) == before


@pytest.mark.parametrize("command", ["push", "pull", "sync"])
def test_an_unreadable_remote_folder_fails_alone(
    fsync, demo: Path, tmp_path: Path, command: str
) -> None:
    """A folder remote with one subfolder it cannot read failed the whole run ("cannot
    list", exit 1, nothing sent, "[Errno 13]" in the message). What that folder holds is
    unknown, not deleted: a pull must not delete its files here, nor a push send them again
    or its local edits into it; the rest of the run goes on, with one error naming it."""
    out = tmp_path / "out"
    assert fsync("sync", demo, out).returncode == 0
    inside = Path("music", "live sets", "set list 01.txt")
    synced = (out / inside).read_text()
    (demo / inside).write_text("edited here\n")
    (demo / "new here.txt").write_text("local\n")
    (out / "new there.txt").write_text("remote\n")
    ends = (out, demo) if command == "pull" else (demo, out)
    with unreadable(out / "music"):
        res = fsync(command, *ends, "--json", prefix=drop_dac_caps())
    assert res.returncode == 1, res.stderr
    summary = json.loads(res.stdout)
    why = "cannot read this folder on the remote (Permission denied); what it holds is left alone"
    assert summary["errors"] == [{"path": "music", "error": why}]
    assert res.stderr == f"fsync: error: music: {why}\n"
    sent = {"push": (1, 0), "pull": (0, 1), "sync": (1, 1)}[command]
    assert (summary["uploaded"], summary["downloaded"], summary["deleted"]) == (*sent, 0)
    assert ((out / "new here.txt").exists(), (demo / "new there.txt").exists()) == sent
    assert (out / inside).read_text() == synced
    assert (demo / inside).read_text() == "edited here\n"


def test_version_is_the_installed_one(fsync) -> None:
    res = fsync("--version")
    assert res.returncode == 0, res.stderr
    assert res.stdout == f"fsync {importlib.metadata.version('fsync-tree')}\n"
