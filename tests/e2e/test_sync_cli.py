"""`fsync sync`, `--backup-dir` and `--max-delete` through the installed command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from fsync.fileops import file_identity
from fsync.manifest import Manifest
from fsync.manifest.journal import TransferJournal
from fsync.model import PartialDownload, PublishIntent, RelPath
from fsync.remote.local import LocalRemote
from fsynctest.trees import age_tree, listing, write
from fsynctest.watching import eventually

if TYPE_CHECKING:
    from conftest import S3Server


def test_sync_both_ways_with_json_and_dry_run(fsync, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    write(a, {"here.txt": "from a", "same.txt": "same"})
    write(b, {"there.txt": "from b", "same.txt": "same"})
    dry = fsync("sync", a, b, "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    summary = json.loads(dry.stdout)
    assert (summary["uploaded"], summary["downloaded"], summary["dry_run"]) == (1, 1, True)
    assert "there.txt" not in listing(a)
    done = fsync("sync", a, b, "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["uploaded"], summary["downloaded"], summary["deleted"]) == (1, 1, 0)
    assert listing(a) == listing(b)
    again = fsync("sync", a, b)
    assert again.returncode == 0
    assert "sync: nothing to do" in again.stdout


def test_a_keep_both_conflict_prints_a_line_for_its_copy(fsync, tmp_path: Path) -> None:
    """The summary counted the copy fetched (or sent) to keep both versions on both sides,
    and no line named it: README promises one line per file."""
    a, b = tmp_path / "a", tmp_path / "b"
    write(a, {"a.txt": "one"})
    assert fsync("sync", a, b).returncode == 0
    write(a, {"a.txt": "mine"})
    write(b, {"a.txt": "theirs"})
    res = fsync("sync", a, b)
    assert res.returncode == 0, res.stderr
    [copy] = _conflict_copies(a)["a"]
    *lines, summary = res.stdout.splitlines()
    assert ("1 uploaded" in summary, "1 downloaded" in summary, len(lines)) == (True, True, 2)
    assert (lines[0].endswith("load a.txt"), lines[1].endswith(f"load {copy}")) == (True, True)


def test_sync_conflict_left_by_skip_exits_3(fsync, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    write(a, {"doc.txt": "v1"})
    assert fsync("sync", a, b, "-q").returncode == 0
    write(a, {"doc.txt": "mine"})
    write(b, {"doc.txt": "theirs!"})
    skipped = fsync("sync", a, b, "--on-conflict", "skip")
    assert skipped.returncode == 3
    assert "1 conflicts left unresolved" in skipped.stdout
    kept = fsync("sync", a, b)
    assert kept.returncode == 0
    assert sorted(listing(a).values()) == sorted(listing(b).values()) == [b"mine", b"theirs!"]


def test_a_dry_run_predicts_the_file_and_folder_a_sync_refuses(fsync, tmp_path: Path) -> None:
    """A file become a folder here while the other folder edited it: the dry run said "1 to
    upload, 1 to download" (exit 0) while the run failed on "Not a directory" (exit 1)."""
    a, b = tmp_path / "a", tmp_path / "b"
    write(a, {"x": "old", "k": "k"})
    assert fsync("sync", a, b, "-q").returncode == 0
    (a / "x").unlink()
    write(a, {"x/y": "new"})
    write(b, {"x": "edited there"})
    for extra in (["--dry-run"], []):
        run = fsync("sync", a, b, "--json", *extra)
        assert run.returncode == 1, run.stderr
        summary = json.loads(run.stdout)
        assert (summary["uploaded"], summary["downloaded"], summary["failed"]) == (0, 0, 2)
        assert "keeps files under x/ (x/y)" in run.stderr
        assert "keeps a file x" in run.stderr
    assert (listing(a), listing(b)) == (
        {"x/y": b"new", "k": b"k"},
        {"x": b"edited there", "k": b"k"},
    )


def test_a_push_after_the_remote_was_emptied_says_how_to_restore_it(fsync, tmp_path: Path) -> None:
    local, remote = tmp_path / "local", tmp_path / "remote"
    write(local, {"a.txt": "alpha", "sub/b.txt": "bravo", "c.txt": "charlie"})
    assert fsync("push", local, remote, "-q").returncode == 0
    for name in ("a.txt", "sub/b.txt"):
        (remote / name).unlink()
    (local / "c.txt").write_text("changed here")
    (remote / "new.txt").write_text("only on the remote")
    pushed = fsync("push", local, remote)
    assert pushed.returncode == 0, pushed.stderr
    lines = pushed.stdout.splitlines()
    assert "2 files deleted on the remote since the last sync are kept here" in lines[-2]
    assert "fsync push --mirror sends them again and makes the remote equal to" in lines[-2]
    assert lines[-1] == "1 changes left for the other direction (fsync pull; -v lists them)"
    assert set(listing(remote)) == {"c.txt", "new.txt"}
    restored = fsync("push", local, remote, "--mirror", "--json")
    assert json.loads(restored.stdout)["uploaded"] == 2
    assert listing(remote) == listing(local)


@pytest.mark.parametrize("command", ["push", "pull"])
def test_a_quiet_run_warns_when_its_destination_was_emptied(
    fsync, tmp_path: Path, command: str
) -> None:
    """A cron job's `-q` push to a wiped remote (or pull into an emptied folder) printed
    nothing and exited 0: the summary that says so is not printed with `-q`."""
    local, remote = tmp_path / "local", tmp_path / "remote"
    write(local, {"a.txt": "alpha", "sub/b.txt": "bravo"})
    assert fsync("push", local, remote, "-q").returncode == 0
    emptied = remote if command == "push" else local
    for name in ("a.txt", "sub/b.txt"):
        (emptied / name).unlink()
    ends = (local, remote) if command == "push" else (remote, local)

    quiet = fsync(command, *ends, "-q")

    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout == ""
    where = "the remote" if command == "push" else "this folder"
    assert quiet.stderr.startswith(f"fsync: warning: {where} holds none of the 2 files synced")
    assert f"fsync {command} --mirror" in quiet.stderr
    assert len(quiet.stderr.splitlines()) == 1


def test_backup_dir_keeps_what_push_deletes(fsync, tmp_path: Path) -> None:
    local, remote, kept = tmp_path / "local", tmp_path / "remote", tmp_path / "kept"
    write(local, {"a.txt": "alpha", "b.txt": "bravo", "c.txt": "charlie"})
    assert fsync("push", local, remote, "-q").returncode == 0
    (local / "a.txt").unlink()
    done = fsync("push", local, remote, "--backup-dir", kept, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["deleted"] == 1
    assert listing(kept) == {"a.txt": b"alpha"}
    assert set(listing(remote)) == {"b.txt", "c.txt"}


def test_max_delete_stops_a_sync_with_exit_2(fsync, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    write(a, {f"f{i}.txt": str(i) for i in range(4)})
    assert fsync("sync", a, b, "-q").returncode == 0
    for i in range(2):
        (a / f"f{i}.txt").unlink()
    stopped = fsync("sync", a, b, "--max-delete", "1")
    assert stopped.returncode == 2
    assert "the plan deletes 2 files, more than the limit of 1 (--max-delete 1)" in stopped.stderr
    assert len(listing(b)) == 4
    assert fsync("sync", a, b, "--max-delete", "2", "-q").returncode == 0
    assert len(listing(b)) == 2


@pytest.mark.parametrize("gone", [3, 4], ids=["past-the-limit", "emptied"])
@pytest.mark.parametrize("command", ["push", "pull", "sync"])
def test_a_dry_run_a_safety_stop_would_end_shows_its_plan_then_stops(
    fsync, tmp_path: Path, command: str, gone: int
) -> None:
    """`--dry-run` of a run past the delete limit, or from an emptied source, said only the
    stop, not what the run would do: what a dry run is for, and what decides whether to
    `--force`. It shows the plan and the `--json` counts, then the real run's error line,
    and exits 2 as that run does; nothing changes."""
    a, b = tmp_path / "a", tmp_path / "b"
    write(a, {f"f{i}.txt": str(i) for i in range(4)})
    assert fsync("push", a, b, "-q").returncode == 0
    for i in range(gone):
        ((b if command == "pull" else a) / f"f{i}.txt").unlink()
    args = (b, a) if command == "pull" else (a, b)
    before = (listing(a), listing(b))
    real = fsync(command, *args)
    assert real.returncode == 2
    assert real.stderr.startswith("fsync: error: the ")

    dry = fsync(command, *args, "--dry-run")
    counts = fsync(command, *args, "--dry-run", "--json")

    assert (dry.returncode, dry.stderr) == (2, real.stderr)
    assert dry.stdout.startswith(f"{command} (dry run): ")
    assert f" {gone} to delete, " in dry.stdout
    assert (counts.returncode, counts.stderr) == (2, real.stderr)
    summary = json.loads(counts.stdout)
    assert (summary["deleted"], summary["dry_run"]) == (gone, True)
    assert f"fsync: error: {summary['error']}\n" == real.stderr
    assert (listing(a), listing(b)) == before


def test_sync_help_lists_its_options(fsync) -> None:
    shown = fsync("sync", "--help")
    assert shown.returncode == 0
    for option in ("--on-conflict", "--backup-dir", "--max-delete", "--dry-run", "--json"):
        assert option in shown.stdout


def _conflict_copies(root: Path) -> dict[str, list[str]]:
    """Each conflict copy's original name → the copies of it under `root` (top level)."""
    found: dict[str, list[str]] = {}
    for entry in os.scandir(root):
        if ".conflict-" in entry.name:
            found.setdefault(entry.name.split(".conflict-")[0], []).append(entry.name)
    return found


@pytest.mark.parametrize("command", ["sync", "push"])
def test_a_run_killed_amid_keep_both_conflicts_makes_no_second_copy(
    fsync, fsync_started, command: str, tmp_path: Path
) -> None:
    """`kill -9` once a keep-both run had copied some remote versions aside, before it
    recorded them: the next run met the same conflicts and copied each of those versions
    again, under a second conflict name. It keeps the copies already made (and removes the
    temp files the killed run left, on both sides)."""
    a, b = tmp_path / "a", tmp_path / "b"
    names = [f"f{i:04}" for i in range(600)]
    write(a, dict.fromkeys(names, "v1"))
    assert fsync("sync", a, b, "-q").returncode == 0
    write(b, {n: f"theirs {n}" for n in names})
    age_tree(b, 3600)  # the local edits are newer: each local version takes the name
    write(a, {n: f"mine {n}" for n in names})
    run = fsync_started(command, a, b)
    try:
        eventually(lambda: len(_conflict_copies(b)) >= 50, "the first conflict copies")
    finally:
        os.kill(run.pid, signal.SIGKILL)
        run.wait(timeout=60)
    assert run.returncode == -signal.SIGKILL

    again = fsync(command, a, b)

    assert again.returncode == 0, again.stderr
    copies = _conflict_copies(b)
    assert sorted(copies) == names
    assert [n for n, made in copies.items() if len(made) > 1] == []
    remote = listing(b)
    assert all(remote[n] == f"mine {n}".encode() for n in names)
    assert all(remote[made] == f"theirs {n}".encode() for n, (made,) in copies.items())
    if command == "sync":
        assert listing(a) == remote
    else:
        assert _conflict_copies(a) == {}


def test_sync_with_a_missing_folder_remote_makes_nothing(fsync, tmp_path: Path) -> None:
    """With LOCAL and REMOTE both missing (a mistyped path), sync said "nothing to do",
    exited 0 and made an empty LOCAL that then counted as synced; pull refuses such a
    remote. A LOCAL with files to send still makes a new remote folder, as push does."""
    typo, local = tmp_path / "typo", tmp_path / "new"
    for extra in ([], ["--dry-run"], ["--json"]):
        res = fsync("sync", local, typo, *extra)
        assert res.returncode == 2, res.stderr
        assert res.stderr == f"fsync: error: remote {typo} does not exist (check the path)\n"
        assert not local.exists()
        assert not typo.exists()
    assert json.loads(res.stdout)["exit_code"] == 2
    write(local, {"a.txt": "a"})
    res = fsync("sync", local, typo)
    assert res.returncode == 0, res.stderr
    assert listing(typo) == {"a.txt": b"a"}


@pytest.mark.s3
@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
def test_sync_to_s3_refuses_a_missing_bucket_and_takes_an_empty_prefix(
    fsync, s3_bucket: tuple[S3Server, str], tmp_path: Path
) -> None:
    """A missing bucket stops sync as it stops push and pull (exit 1, one line), and makes
    no LOCAL; an empty prefix is a new remote, which a first sync fills."""
    server, bucket = s3_bucket
    local = tmp_path / "new"
    for command, args in (("sync", [local]), ("push", [tmp_path])):
        res = fsync(command, *args, f"s3://{bucket}-missing/p", env=server.env())
        assert res.returncode == 1, res.stderr
        assert res.stderr.count("\n") == 1
        assert "no such bucket" in res.stderr
        assert not local.exists()
    res = fsync("sync", local, f"s3://{bucket}/p", env=server.env())
    assert res.returncode == 0, res.stderr
    assert "nothing to do" in res.stdout
    write(local, {"a.txt": "a"})
    res = fsync("sync", local, f"s3://{bucket}/p", "--json", env=server.env())
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["uploaded"] == 1


@pytest.mark.s3
@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
def test_an_endpoint_spelled_in_capitals_keeps_the_base(
    fsync, s3_bucket: tuple[S3Server, str], tmp_path: Path
) -> None:
    """`HTTP://127.0.0.1:P/` is the store `http://127.0.0.1:P` names: with a base of its own
    (an empty one), a file deleted on the remote came back from here."""
    server, bucket = s3_bucket
    local, url = tmp_path / "local", f"s3://{bucket}/p"
    write(local, {"a.txt": "a", "b.txt": "b"})
    assert fsync("sync", local, url, env=server.env()).returncode == 0
    client = server.boto3_client()
    try:
        client.delete_object(Bucket=bucket, Key="p/a.txt")
    finally:
        client.close()
    shouted = server.endpoint_url.upper() + "/"
    res = fsync("sync", local, url, "--endpoint-url", shouted, "--json", env=server.env())
    assert res.returncode == 0, res.stderr
    assert (json.loads(res.stdout)["uploaded"], json.loads(res.stdout)["deleted"]) == (0, 1)
    assert listing(local) == {"b.txt": b"b"}


BIG = 10 << 20
"""Repeats of a two-byte version tag: a 20 MiB file, whose transfer is not staged (it is
synced on its own), so its rename and its record in the manifest are far apart in time."""


def _killed_when(run: subprocess.Popen[bytes], landed: Callable[[], bool]) -> None:
    """SIGKILL `run` the moment `landed()` turns true (polled without pause: the window
    between a transfer taking its name and the manifest recording it is milliseconds)."""
    try:
        while run.poll() is None and not landed():
            pass
    finally:
        os.kill(run.pid, signal.SIGKILL)
        run.wait(timeout=60)
    assert run.returncode == -signal.SIGKILL, "the run ended before its transfer landed"


def _version(path: Path) -> bytes:
    with path.open("rb") as f:
        return f.read(2)


def _killed_after_a_download(
    fsync, fsync_started, command: str, a: Path, b: Path
) -> tuple[Path, Path]:
    """`kill -9` a `command` (pull or sync) from the folder `b` into `a` the moment its
    download of an edited file took its name, before its record: the run's arguments."""
    write(a, {"k": "k", "big": "v0" * BIG})
    assert fsync("sync", a, b, "-q").returncode == 0
    args = (b, a) if command == "pull" else (a, b)
    for attempt in range(5):
        # (a run that recorded its download before the kill landed, as a loaded machine
        # lets it, left no intent: the edit is made anew, with other bytes, and fetched again)
        write(b, {"big": "v1" * BIG + str(attempt)})
        before = (a / "big").stat().st_ino
        run = fsync_started(command, *args)
        _killed_when(run, lambda was=before: (a / "big").stat().st_ino != was)
        assert _version(a / "big") == b"v1"
        with Manifest.open(str(a)) as manifest:
            if manifest.intents(LocalRemote(str(b)).key):
                return args
    raise AssertionError("no kill landed between a download's rename and its record")


@pytest.mark.parametrize("policy", ["local", "keep-both"])
@pytest.mark.parametrize("command", ["pull", "sync"])
def test_a_run_killed_after_a_download_took_its_name_leaves_no_local_edit(
    fsync, fsync_started, command: str, policy: str, tmp_path: Path
) -> None:
    """`kill -9` once a download was renamed into place, before its base was recorded: the
    next run took fsync's own download for a local edit. With the remote edited again, it
    met "both changed": `--on-conflict local` never fetched the new version on a pull, and
    a sync sent the stale download back over it (that version lost); keep-both made a
    conflict copy of a version nobody edited here. The next run knows its download (the
    intent the killed run wrote before the rename) and simply fetches the new version."""
    a, b = tmp_path / "a", tmp_path / "b"
    args = _killed_after_a_download(fsync, fsync_started, command, a, b)
    write(b, {"big": "v2" * BIG})

    again = fsync(command, *args, "--on-conflict", policy)

    assert again.returncode == 0, again.stderr
    assert (_version(a / "big"), _version(b / "big")) == (b"v2", b"v2")
    assert _conflict_copies(a) == _conflict_copies(b) == {}
    assert "nothing to do" in fsync(command, *args).stdout


def test_a_sync_killed_after_an_upload_took_its_name_leaves_no_remote_edit(
    fsync, fsync_started, tmp_path: Path
) -> None:
    """`kill -9` once an upload to a folder remote was renamed into place, before its base
    was recorded: the next sync took fsync's own upload for a remote edit. With the file
    edited again here, it met "both changed", and `--on-conflict remote` put the upload
    (the user's previous version) back over the latest edit, which was lost."""
    a, b = tmp_path / "a", tmp_path / "b"
    write(a, {"k": "k", "big": "L0" * BIG})
    assert fsync("sync", a, b, "-q").returncode == 0
    write(a, {"big": "L1" * BIG})
    before = (b / "big").stat().st_ino
    run = fsync_started("sync", a, b)
    _killed_when(run, lambda: (b / "big").stat().st_ino != before)
    assert _version(b / "big") == b"L1"
    write(a, {"big": "L2" * BIG})

    again = fsync("sync", a, b, "--on-conflict", "remote")

    assert again.returncode == 0, again.stderr
    assert (_version(a / "big"), _version(b / "big")) == (b"L2", b"L2")
    assert _conflict_copies(a) == _conflict_copies(b) == {}


def test_a_sync_killed_amid_a_batch_of_small_uploads_leaves_no_remote_edits(
    fsync, fsync_started, tmp_path: Path
) -> None:
    """The upload case for small files, which a folder remote stages and renames into place
    a batch at a time, then records: `kill -9` once the first is renamed; every file is
    edited again here, and `--on-conflict remote` must keep each latest edit."""
    a, b = tmp_path / "a", tmp_path / "b"
    names = [f"f{i:04}" for i in range(2000)]
    _killed_amid_staged_uploads(fsync, fsync_started, a, b, names)
    write(a, {n: f"L2 {n}" for n in names})

    again = fsync("sync", a, b, "--on-conflict", "remote")

    assert again.returncode == 0, again.stderr
    assert listing(a) == listing(b) == {n: f"L2 {n}".encode() for n in names}


@pytest.mark.s3
@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
def test_a_sync_to_s3_killed_after_its_puts_leaves_no_remote_edits(
    fsync, fsync_started, s3_bucket: tuple[S3Server, str], tmp_path: Path
) -> None:
    """The upload case on S3: `kill -9` once the first PUTs of 300 edited files are in,
    before their batch was recorded; the files are edited again here, and a sync with
    `--on-conflict remote` lost every latest edit whose PUT had landed unrecorded."""
    server, bucket = s3_bucket
    a, url = tmp_path / "a", f"s3://{bucket}/p"
    names = [f"f{i:03}" for i in range(300)]
    write(a, dict.fromkeys(names, "L0"))
    assert fsync("sync", a, url, "-q", env=server.env()).returncode == 0
    write(a, {n: f"L1 {n}" for n in names})
    client = server.boto3_client()
    try:

        def landed() -> bool:
            got = client.list_objects_v2(Bucket=bucket, Prefix="p/").get("Contents", [])
            return any(o["Size"] != 2 for o in got)

        run = fsync_started("sync", a, url, env=server.env())
        _killed_when(run, landed)
        write(a, {n: f"L2 {n}" for n in names})

        again = fsync("sync", a, url, "--on-conflict", "remote", env=server.env())

        assert again.returncode == 0, again.stderr
        remote = {
            o["Key"][2:]: client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
            for o in client.list_objects_v2(Bucket=bucket, Prefix="p/")["Contents"]
        }
    finally:
        client.close()
    assert listing(a) == remote == {n: f"L2 {n}".encode() for n in names}


@pytest.mark.parametrize("command", ["pull", "sync"])
def test_a_download_killed_before_its_record_then_edited_here_is_the_edit(
    fsync, fsync_started, command: str, tmp_path: Path
) -> None:
    """`kill -9` once a download was renamed into place, before its base was recorded, then
    the user edits that file here: the intent no longer matched the content and was dropped,
    the base stayed the version before, and the next run met "both changed", where
    `--on-conflict remote` overwrote the edit (made on top of fsync's download). The file
    is still the temp fsync renamed (its inode): the edit is a local change, and a sync
    sends it."""
    a, b = tmp_path / "a", tmp_path / "b"
    args = _killed_after_a_download(fsync, fsync_started, command, a, b)
    write(a, {"big": "E1 an edit of the download"})

    again = fsync(command, *args, "--on-conflict", "remote")

    assert again.returncode == 0, again.stderr
    assert (a / "big").read_text() == "E1 an edit of the download"
    if command == "sync":
        assert (b / "big").read_text() == "E1 an edit of the download"
    assert _conflict_copies(a) == _conflict_copies(b) == {}


@pytest.mark.parametrize(
    "remover",
    [
        "cleanup",
        "cleanup of a folder inside",
        "cleanup of a synced root inside",
        "a run of another remote",
        "a run dropping a stale partial",
        "a run fetching that path anew",
    ],
)
def test_no_temp_goes_while_an_intent_names_its_inode(
    fsync, fsync_started, remover: str, tmp_path: Path
) -> None:
    """A run killed between an intent and its rename leaves a temp that the intent names by
    inode. Removed by `fsync cleanup` (of LOCAL, a folder inside it, or a synced root inside
    it), or by a run with another remote (which settles its own intents only: its sweep of
    killed temps, of stale partial downloads, or a partial download of a path it fetches
    anew), the temp freed an inode that the next new
    file at the path may take (an editor's save by rename: ext4 hands it out again), and
    the intent took that file for fsync's download: a sync sent it over the remote's version
    with no conflict (reviews). The identity of such an intent goes first; a download that
    was renamed into place keeps its own (its file holds the inode)."""
    a, b = tmp_path / "a", tmp_path / "b"
    _killed_after_a_download(fsync, fsync_started, "pull", a, b)
    (a / "sub").mkdir()
    if "synced root inside" in remover:
        assert fsync("push", a / "sub", tmp_path / "s", "-q").returncode == 0
    with Manifest.open(str(a)) as manifest:
        (token,) = manifest.temp_tokens(unfinished=True)
    other = LocalRemote(str(tmp_path / "c")).key  # the remote of the run killed mid-publish
    temp = a / "sub" / f".fsync-{token}00000001.tmp"
    temp.write_text("v1")
    dev, ino = file_identity(str(temp)) or (0, 0)
    with TransferJournal.open(str(a)) as journal:  # that kill's intent, before the rename
        intent = PublishIntent(RelPath("sub/f"), False, "0" * 64, 2, "2:1", None, dev, ino)
        journal.intend(other, [intent])
        if remover.startswith("a run") and remover != "a run of another remote":
            # journaled as a download to continue (the sweep of killed temps keeps it)
            partial = PartialDownload(RelPath("sub/f"), other, "2:1", 2, temp.name, 1, b"", 0)
            journal.begin_download(partial)
    if "anew" in remover:  # b's own sub/f, which that partial is no part of (and a new
        # big: the partial the killed download left is then no stale one to drop)
        write(b, {"sub/f": "b's f", "big": "v2" * BIG})

    if remover.startswith("cleanup"):
        inside = a if remover == "cleanup" else a / "sub"
        res = fsync("cleanup", inside, "--older-than", "0s")
    elif remover == "a run of another remote":
        res = fsync("push", a, tmp_path / "d")
    else:
        res = fsync("pull", b, a)

    assert res.returncode == 0, res.stderr
    assert not temp.exists()
    with Manifest.open(str(a)) as manifest:
        (unplaced,) = manifest.intents(other)
        placed = manifest.intents(LocalRemote(str(b)).key)
    assert (unplaced.dev, unplaced.ino) in {(0, 0), (None, None)}, unplaced
    if remover.startswith("cleanup") or remover == "a run of another remote":
        # (a run from b settled b's intent)
        assert [(i.dev, i.ino) for i in placed] == [file_identity(str(a / "big"))]


def _killed_amid_staged_uploads(
    fsync, fsync_started, a: Path, b: Path, names: list[str]
) -> list[RelPath]:
    """Sync `names` (edited here) into the folder remote `b` and `kill -9` the sync once
    the first staged upload was renamed into place: the paths whose intents it left."""
    write(a, dict.fromkeys(names, "L0"))
    assert fsync("sync", a, b, "-q").returncode == 0
    write(a, {n: f"L1 {n}" for n in names})
    run = fsync_started("sync", a, b)
    _killed_when(run, lambda: (b / names[0]).stat().st_size != 2)
    with Manifest.open(str(a)) as manifest:
        return [i.path for i in manifest.intents(LocalRemote(str(b)).key)]


def test_a_staged_upload_killed_before_it_was_published_and_edited_there_is_a_conflict(
    fsync, fsync_started, tmp_path: Path
) -> None:
    """An upload whose intent was journaled but that was never renamed into place (the kill
    came first), its remote file edited meanwhile, is a real conflict: nothing is adopted as
    its base, and keep-both keeps both versions."""
    a, b = tmp_path / "a", tmp_path / "b"
    names = [f"f{i:04}" for i in range(2000)]
    left = _killed_amid_staged_uploads(fsync, fsync_started, a, b, names)
    unsent = sorted(p for p in left if (b / p).read_bytes() == b"L0")
    assert unsent, "the kill came after the whole batch was published"
    victim = unsent[-1]
    with (b / victim).open("r+b") as f:
        f.seek(0, os.SEEK_END)
        f.write(b" edited there")

    again = fsync("sync", a, b)

    assert again.returncode == 0, again.stderr
    assert list(_conflict_copies(a)) == list(_conflict_copies(b)) == [victim]
    assert b"L0 edited there" in listing(a).values()
    assert f"L1 {victim}".encode() in listing(b).values()
