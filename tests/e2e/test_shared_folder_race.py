"""Two machines syncing to one shared folder remote: another writer's version that lands
between fsync's check of a remote file and its rename or removal of it survives.

The window is microseconds on a local disk (milliseconds on a network share), so fsync runs
under strace, which delays its renames and unlinks of the remote file; the second writer
(this test, as a second fsync would: a temp file renamed into place) acts once strace shows
the call has been made and is being held. strace is a Debian package; without it these tests
skip.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from fsynctest.commands import fsync_command
from fsynctest.trees import listing, write

DELAY_US = 1_500_000
"""How long strace holds each delayed call: long enough for the second writer to act."""


def _strace() -> str:
    """The strace command, or a skip saying why there is none that works here."""
    found = shutil.which("strace")
    if found is None:
        pytest.skip("strace is not installed (Debian package strace): the race needs it")
    probe = subprocess.run(
        [found, "-qq", "-o", os.devnull, "true"], capture_output=True, check=False
    )
    if probe.returncode != 0:
        pytest.skip(f"strace cannot trace here (no ptrace?): {probe.stderr.decode().strip()}")
    return found


def _held_sync(
    local: Path, remote: Path, target: Path, calls: str, log: Path, *, by_path: bool
) -> subprocess.Popen[str]:
    """Start `fsync sync local remote --json` with every one of `calls` delayed (only those
    naming `target` first, with `by_path`: strace matches a rename's first path only)."""
    names = ",".join(calls.split())
    only = ["-P", str(target)] if by_path else []
    return subprocess.Popen(
        [
            _strace(),
            "-f",
            "-qq",
            "-e",
            "signal=none",
            "-o",
            str(log),
            *only,
            "-e",
            f"trace={names}",
            "-e",
            f"inject={names}:delay_enter={DELAY_US}",
            fsync_command(),
            "sync",
            str(local),
            str(remote),
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_call(log: Path, target: Path, process: subprocess.Popen[str]) -> None:
    """Return once strace has logged the entry of a call naming `target` (it then holds the
    call for `DELAY_US`)."""
    quoted = f'"{target}"'
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if log.exists() and quoted in log.read_text(errors="replace"):
            return
        if process.poll() is not None:
            pytest.fail(f"fsync ended before touching {target}: {process.communicate()}")
        time.sleep(0.01)
    pytest.fail(f"fsync never touched {target}")


def _land(path: Path, content: str) -> None:
    """Put `content` at `path` as another fsync does: a file beside it, renamed over it."""
    temp = path.with_name(".other-writer")
    temp.write_text(content)
    os.replace(temp, path)


def _finished(process: subprocess.Popen[str]) -> dict[str, object]:
    out, err = process.communicate(timeout=120)
    assert process.returncode in (0, 3), err
    return json.loads(out)


@pytest.fixture
def synced(fsync, tmp_path: Path) -> tuple[Path, Path]:
    """A local folder and a folder remote that hold the same `f` (and one other file)."""
    local, remote = tmp_path / "a", tmp_path / "r"
    write(local, {"f": "f0\n", "k": "k\n"})
    done = fsync("sync", local, remote, "-q")
    assert done.returncode == 0, done.stderr
    return local, remote


def test_a_version_renamed_in_after_the_check_is_not_overwritten(
    fsync, synced: tuple[Path, Path], tmp_path: Path
) -> None:
    local, remote = synced
    log = tmp_path / "strace.log"
    write(local, {"f": "fA\n"})
    process = _held_sync(
        local, remote, remote / "f", "rename renameat renameat2", log, by_path=False
    )
    _wait_for_call(log, remote / "f", process)  # checked, and about to be replaced
    _land(remote / "f", "fB\n")
    summary = _finished(process)
    assert (summary["uploaded"], summary["conflicts"]) == (0, 1), summary
    assert (remote / "f").read_text() == "fB\n"
    assert (local / "f").read_text() == "fA\n"
    assert not [p for p in os.listdir(remote) if p.startswith(".fsync-")]  # no temp left
    again = fsync("sync", local, remote)
    assert again.returncode == 0, again.stderr
    assert sorted(listing(local).values()) == sorted(listing(remote).values())
    assert {b"fA\n", b"fB\n"} <= set(listing(remote).values())


def test_a_version_renamed_in_after_the_check_is_not_deleted(
    fsync, synced: tuple[Path, Path], tmp_path: Path
) -> None:
    local, remote = synced
    log = tmp_path / "strace.log"
    (local / "f").unlink()
    calls = "unlink unlinkat rename renameat renameat2"
    process = _held_sync(local, remote, remote / "f", calls, log, by_path=True)
    _wait_for_call(log, remote / "f", process)  # checked, and about to be removed
    _land(remote / "f", "fB\n")
    summary = _finished(process)
    assert (summary["deleted"], summary["conflicts"]) == (0, 1), summary
    assert (remote / "f").read_text() == "fB\n"
    assert not [p for p in os.listdir(remote) if p.startswith(".fsync-")]
    again = fsync("sync", local, remote)
    assert again.returncode == 0, again.stderr
    assert (local / "f").read_text() == "fB\n"
