"""End-to-end: the installed `fsync` command on real folders, as a user runs it."""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
from pathlib import Path

import pytest

from fsynctest.trees import age_tree, listing

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
    assert "nothing to do" in human.stdout

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


def test_unknown_url_scheme(fsync, demo: Path) -> None:
    res = fsync("push", demo, "nosuchscheme://bucket/x")
    assert res.returncode == 2
    assert "unknown URL scheme" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_bad_option_is_usage_error(fsync, demo: Path, tmp_path: Path) -> None:
    res = fsync("push", demo, tmp_path / "out", "--max-delete", "lots")
    assert res.returncode == 2
    assert "--max-delete" in res.stderr


def _drop_dac_caps() -> list[str]:
    """Run as root without the capabilities that bypass file permissions (a real EACCES)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root and setpriv (util-linux) is missing")
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search"]


def test_unreadable_file_fails_alone(fsync, demo: Path, tmp_path: Path) -> None:
    secret = demo / "docs" / "notes" / "2026-11-25.md"
    secret.chmod(0)
    out = tmp_path / "out"
    res = fsync("push", demo, out, "--json", prefix=_drop_dac_caps())
    secret.chmod(0o644)
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


def test_memory_remote_through_the_command(fsync, demo: Path) -> None:
    # memory:// lives inside one process, so one run must both write and be checked:
    # a dry run against the (empty) store plans every file, a real run sends them all.
    res = fsync("push", demo, "memory://e2e/demo", "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["uploaded"] == len(expected(demo))


def test_unreadable_folder_is_not_a_deletion(fsync, demo: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert fsync("push", demo, out).returncode == 0
    before = listing(out)
    locked = demo / "music"
    locked.chmod(0)
    try:
        res = fsync("push", demo, out, "--json", prefix=_drop_dac_caps())
    finally:
        locked.chmod(0o755)
    assert res.returncode == 1, res.stderr
    summary = json.loads(res.stdout)
    assert summary["deleted"] == 0
    assert listing(out) == before


def test_version_is_the_installed_one(fsync) -> None:
    res = fsync("--version")
    assert res.returncode == 0, res.stderr
    assert res.stdout == f"fsync {importlib.metadata.version('fsync-tree')}\n"
