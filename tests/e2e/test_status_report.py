"""`fsync status`: pending changes, unfinished transfers, and the last runs with their errors."""

from __future__ import annotations

import json
import time
from pathlib import Path

from fsync.manifest import Manifest
from fsync.manifest.journal import TransferJournal
from fsync.model import Digest, PartialDownload, PendingUpload, PublishIntent, RelPath
from fsynctest.caps import drop_dac_caps
from fsynctest.trees import write


def test_failed_runs_show_their_errors(fsync, tmp_path: Path) -> None:
    src = tmp_path / "src"
    write(src, {"a.txt": "a", "locked.txt": "secret"})
    (src / "locked.txt").chmod(0)
    try:
        res = fsync("push", src, tmp_path / "out", prefix=drop_dac_caps())
    finally:
        (src / "locked.txt").chmod(0o644)
    assert res.returncode == 1
    human = fsync("status", src)
    assert human.returncode == 0, human.stderr
    assert "exit 1: 1 up, 0 down, 0 moved, 0 deleted, 0 conflicts, 1 failed" in human.stdout
    assert "error locked.txt: cannot read" in human.stdout
    report = json.loads(fsync("status", src, "--json").stdout)
    (run,) = report["runs"]
    assert run["exit_code"] == 1
    assert [e["path"] for e in run["summary"]["errors"]] == ["locked.txt"]


def test_a_run_that_left_a_conflict_says_so(fsync, tmp_path: Path) -> None:
    """A push that exited 3 showed as "exit 3: 0 up, 0 down, 0 deleted, 0 failed" (verify
    tester): the line gives the conflicts now, and how many are left unresolved."""
    src, out = tmp_path / "src", tmp_path / "out"
    write(src, {"a.txt": "v1"})
    assert fsync("push", src, out).returncode == 0
    write(src, {"a.txt": "mine"})
    write(out, {"a.txt": "theirs, longer"})
    assert fsync("push", src, out, "--on-conflict", "skip").returncode == 3
    human = fsync("status", src).stdout
    assert "exit 3: 0 up, 0 down, 0 moved, 0 deleted, 1 conflicts (1 unresolved), 0 failed" in (
        human
    )


def test_runs_that_stop_whole_are_in_the_history(fsync, tmp_path: Path) -> None:
    """A run that failed as a whole (a remote it cannot list: exit 1) or stopped before
    acting (a safety stop: exit 2) was never recorded, so a cron job's failure did not show
    in `status`. Now each is there, ended, with its exit status and its error."""
    src, out = tmp_path / "src", tmp_path / "out"
    write(src, {"a.txt": "a", "b.txt": "b"})
    out.mkdir()
    out.chmod(0)
    try:
        assert fsync("push", src, out, prefix=drop_dac_caps()).returncode == 1
    finally:
        out.chmod(0o755)
    assert fsync("push", src, out).returncode == 0
    (src / "a.txt").unlink()
    assert fsync("push", src, out, "--max-delete", "0").returncode == 2
    human = fsync("status", src)
    assert human.returncode == 0, human.stderr
    assert " exit 2: the plan deletes 1 files, more than the limit of 0" in human.stdout
    assert f" exit 1: cannot list remote {out} (permission denied; check" in human.stdout
    report = json.loads(fsync("status", src, "--json").stdout)
    stopped, done, failed = report["runs"]
    assert [run["exit_code"] for run in (stopped, done, failed)] == [2, 0, 1]
    assert all(run["ended"] is not None for run in (stopped, done, failed))
    assert "--max-delete 0" in stopped["summary"]["error"]
    assert "permission denied" in failed["summary"]["error"]
    assert "error" not in done["summary"]


def test_a_dry_run_shows_as_one(fsync, tmp_path: Path) -> None:
    """It read like a real run that had sent the files."""
    src = tmp_path / "src"
    write(src, {"a.txt": "a"})
    assert fsync("push", src, tmp_path / "out", "--dry-run").returncode == 0
    human = fsync("status", src)
    assert "push (dry run) " in human.stdout
    assert "exit 0: 1 up" in human.stdout
    # The remote it named is listed (its run is in the history), and said to be unsynced.
    assert f"{(tmp_path / 'out').as_uri()}: never synced, 1 pending local changes" in human.stdout
    assert json.loads(fsync("status", src, "--json").stdout)["remotes"][0]["synced"] == 0
    assert fsync("push", src, tmp_path / "out").returncode == 0
    assert "never synced" not in fsync("status", src).stdout
    assert json.loads(fsync("status", src, "--json").stdout)["remotes"][0]["synced"] == 1


def test_a_file_a_skipped_link_replaced_is_not_pending(fsync, tmp_path: Path) -> None:
    """A push leaves it alone (its remote copy stays); status listed it as deleted."""
    src = tmp_path / "src"
    write(src, {"a": "v0", "b": "b"})
    assert fsync("push", src, tmp_path / "out").returncode == 0
    (src / "a").unlink()
    (src / "a").symlink_to("b")
    report = json.loads(fsync("status", src, "--json").stdout)
    (remote,) = report["remotes"]
    assert (remote["new"], remote["changed"], remote["deleted"]) == ([], [], [])


def test_unfinished_transfers_show(fsync, tmp_path: Path) -> None:
    src = tmp_path / "src"
    write(src, {"a.txt": "a"})
    assert fsync("push", src, tmp_path / "out").returncode == 0
    url = f"file://{tmp_path / 'out'}"
    with TransferJournal.open(str(src)) as journal:
        journal.start(
            PendingUpload(
                target="s3://bucket/big.iso",
                upload_id="upload-1",
                digest="ab" * 32,
                size=3 << 30,
                part_size=16 << 20,
                created=time.time(),
            )
        )
        journal.begin_download(
            PartialDownload(
                RelPath("videos/film.mkv"),
                "s3://bucket/media",
                "etag-1",
                100 << 20,
                ".fsync-00000000deadbeef.tmp",
                16 << 20,
                b"\x01" * 32 * 2,
                time.time(),
            )
        )
        # a run killed between putting b.txt in place and recording it
        journal.intend(url, [PublishIntent(RelPath("b.txt"), True, Digest("cd" * 32), 2, "fp")])
    with Manifest.open(str(src)) as manifest:
        manifest.queue(url, [RelPath("a.txt")])
        run_id = manifest.start_run("push", url)  # a run that never finished (killed)
    human = fsync("status", src)
    assert human.returncode == 0, human.stderr
    assert "unfinished uploads" in human.stdout
    assert "s3://bucket/big.iso: 3.0 GiB" in human.stdout
    assert "1 queued by fsync watch" in human.stdout
    assert "1 files a run was putting in place when it stopped" in human.stdout
    assert "push" in human.stdout
    assert "unfinished:" in human.stdout
    assert "videos/film.mkv: 32.0 MiB of 100.0 MiB on disk" in human.stdout
    report = json.loads(fsync("status", src, "--json").stdout)
    (upload,) = report["unfinished_uploads"]
    assert (upload["target"], upload["size"]) == ("s3://bucket/big.iso", 3 << 30)
    assert report["remotes"][0]["queued"] == ["a.txt"]
    assert report["remotes"][0]["unsettled"] == ["b.txt"]
    (partial,) = report["partial_downloads"]
    assert (partial["path"], partial["verified_bytes"]) == ("videos/film.mkv", 32 << 20)
    assert report["runs"][0]["id"] == run_id
    assert report["runs"][0]["exit_code"] is None


def test_status_defaults_to_the_current_folder(fsync, tmp_path: Path) -> None:
    src = tmp_path / "src"
    write(src, {"a.txt": "a"})
    assert fsync("push", src, tmp_path / "out").returncode == 0
    (src / "new.txt").write_text("n")
    res = fsync("status", "--json", cwd=src)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["remotes"][0]["new"] == ["new.txt"]
