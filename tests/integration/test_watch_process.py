"""`fsync watch` as a process: SIGTERM, SIGKILL and a restart, and the inotify watch limit.

These run the installed `fsync` command, as a service manager or a user's shell would, and
look at the state it leaves behind through the manifest and the remote folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import pty
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from fsync.manifest import Manifest
from fsync.remote.local import LocalRemote
from fsynctest.commands import fsync_command
from fsynctest.watching import eventually, tree

pytestmark = [pytest.mark.watch, pytest.mark.slow]


class WatchProcess:
    """A running `fsync watch`; its output is drained by threads so pipes never fill."""

    def __init__(self, args: list[str], prefix: list[str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [*(prefix or []), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._readers = [
            threading.Thread(target=self._drain, args=(self.proc.stdout, self.out)),
            threading.Thread(target=self._drain, args=(self.proc.stderr, self.err)),
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _drain(stream: object, lines: list[str]) -> None:
        for line in stream:  # type: ignore[attr-defined]
            lines.append(line)

    def wait_watching(self) -> None:
        eventually(
            lambda: any("watching" in line for line in self.err) or self.proc.poll() is not None,
            "the watch to start",
            timeout=30,
        )
        assert self.proc.poll() is None, "".join(self.err)

    def finish(self, timeout: float = 60) -> int:
        code = self.proc.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(timeout=10)
            assert not reader.is_alive(), "fsync's output stayed open after it exited"
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        return code


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Path, Path]:
    local, remote = tmp_path / "local", tmp_path / "remote"
    local.mkdir()
    return local, remote


def spawn(local: Path, remote: Path, *extra: str, prefix: list[str] | None = None) -> WatchProcess:
    proc = WatchProcess([fsync_command(), "watch", str(local), f"file://{remote}", *extra], prefix)
    try:
        proc.wait_watching()
    except BaseException:
        proc.proc.kill()
        proc.finish()
        raise
    return proc


def files_in(root: Path) -> int:
    """How many published files `root` holds (cheap: names only, no content read)."""
    return len([n for _, _, names in os.walk(root) for n in names if not n.startswith(".fsync")])


def burst(local: Path, count: int, size: int) -> None:
    for i in range(count):
        (local / f"f{i:04}.bin").write_bytes(os.urandom(size))


def assert_manifest_matches_remote(local: Path, remote: Path) -> None:
    """The base records exactly what the remote holds (same paths, same fingerprints)."""
    url = f"file://{remote}"
    listing = LocalRemote(str(remote)).list().entries
    with Manifest.open(str(local)) as manifest:
        base = manifest.base(url)
    assert {p: b.fingerprint for p, b in base.items()} == {
        p: e.fingerprint for p, e in listing.items()
    }


def test_sigterm_mid_burst_exits_0_with_the_manifest_consistent(roots: tuple[Path, Path]) -> None:
    local, remote = roots
    proc = spawn(local, remote)
    burst(local, 300, 64 << 10)
    eventually(lambda: files_in(remote) >= 1, "the first uploads", timeout=30)
    proc.proc.send_signal(signal.SIGTERM)
    assert proc.finish() == 0, "".join(proc.err)
    assert any(line.startswith("watch: ") for line in proc.out), proc.out[-3:]
    assert_manifest_matches_remote(local, remote)
    # Whatever did not go is in the outbox or simply new to the next run: the next start
    # sends it all.
    proc = spawn(local, remote)
    eventually(lambda: tree(remote) == tree(local), "the rest after a restart", timeout=60)
    proc.proc.send_signal(signal.SIGTERM)
    assert proc.finish() == 0
    assert_manifest_matches_remote(local, remote)
    with Manifest.open(str(local)) as manifest:
        assert manifest.queued(f"file://{remote}") == []


def test_status_shows_what_a_running_or_killed_watch_has_sent(roots: tuple[Path, Path]) -> None:
    """`fsync status` showed a watch as "unfinished: 0 up, 0 down, 0 deleted, 0 failed"
    after it had sent and recorded 20 files, running or killed (verify tester)."""
    local, remote = roots
    for i in range(12):
        (local / f"start{i}.txt").write_text(str(i))
    proc = spawn(local, remote)
    burst(local, 8, 1000)
    eventually(lambda: files_in(remote) == 20, "the uploads", timeout=30)

    def uploaded() -> object:
        status = subprocess.run(
            [fsync_command(), "status", str(local), "--json"],
            capture_output=True,
            text=True,
            check=True,
        )
        (run,) = json.loads(status.stdout)["runs"]
        return (run["exit_code"], run["summary"].get("uploaded"))

    try:
        eventually(lambda: uploaded() == (None, 20), "the counts recorded", timeout=10)
    finally:
        proc.proc.send_signal(signal.SIGKILL)
        proc.finish()
    assert uploaded() == (None, 20)


def queued_rows(local: Path) -> int:
    """Rows in the outbox, read-only from the outside, as another process would see them."""
    db = local / ".fsync" / "state.db"
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn:
        return int(conn.execute("SELECT count(*) FROM outbox").fetchone()[0])


def freeze_mid_batch(proc: WatchProcess, local: Path, remote: Path) -> None:
    """Stop `proc` (SIGSTOP) at a moment when a batch is queued and partly sent.

    Looked at from outside, a batch can finish between the look and the signal; frozen, the
    process cannot, so the state is checked again and the process let go if it moved on.
    """
    for _ in range(200):
        eventually(
            lambda: files_in(remote) >= 1 and queued_rows(local) > 0,
            "a batch in flight",
            timeout=30,
        )
        proc.proc.send_signal(signal.SIGSTOP)
        if queued_rows(local) > 0 and files_in(remote) < files_in(local):
            return
        proc.proc.send_signal(signal.SIGCONT)
    pytest.fail("never caught a batch in flight")


def test_sigkill_mid_burst_then_restart_converges(roots: tuple[Path, Path]) -> None:
    local, remote = roots
    proc = spawn(local, remote)
    burst(local, 1000, 32 << 10)
    freeze_mid_batch(proc, local, remote)
    proc.proc.kill()
    proc.finish()
    left = queued_rows(local)
    assert left > 0
    proc = spawn(local, remote)
    assert f"{left} changes queued by an earlier watch" in "".join(proc.err)
    eventually(lambda: tree(remote) == tree(local), "convergence after a restart", timeout=60)
    proc.proc.send_signal(signal.SIGTERM)
    assert proc.finish() == 0
    assert_manifest_matches_remote(local, remote)
    assert queued_rows(local) == 0


def test_ctrl_c_is_a_clean_stop_with_a_json_summary(roots: tuple[Path, Path]) -> None:
    local, remote = roots
    (local / "a.txt").write_text("a")
    proc = WatchProcess([fsync_command(), "watch", str(local), f"file://{remote}", "--json"])
    eventually(lambda: tree(remote) == tree(local), "the startup push", timeout=30)
    proc.proc.send_signal(signal.SIGINT)
    assert proc.finish() == 0, "".join(proc.err)
    summary = json.loads("".join(proc.out))
    assert (summary["uploaded"], summary["failed"], summary["moved"]) == (1, 0, 0)
    assert summary["held_back"] == 0  # (README names the field: a script reads it always)


def test_a_stop_with_deletions_held_back_says_so_in_the_summary(roots: tuple[Path, Path]) -> None:
    """It said "0 failing" and nothing else while the remote kept the files (exit 0 still:
    a watch stopped by Ctrl-C or SIGTERM exits 0, as DESIGN.md's Interface says)."""
    local, remote = roots
    for name in "abc":
        (local / name).write_text(name)
    proc = spawn(local, remote, "--max-delete", "1")
    (local / "a").unlink()
    (local / "b").unlink()
    eventually(lambda: any("not deleting 2 files" in line for line in proc.err), "the refusal")
    proc.proc.send_signal(signal.SIGINT)
    assert proc.finish() == 0, "".join(proc.err)
    assert proc.out[-1].startswith("watch: "), proc.out[-3:]
    assert ", 0 failing, 2 deletions held back in " in proc.out[-1]
    assert "stopped with 2 deletions held back by the delete limit" in proc.err[-1]
    assert sorted(tree(remote)) == ["a", "b", "c"]


def test_a_tree_a_thousand_folders_deep_made_while_watching_is_sent(
    roots: tuple[Path, Path],
) -> None:
    """watchdog adds a watch to each new folder through `os.walk`, one call deeper per
    folder: the watcher thread died of "maximum recursion depth exceeded", with a traceback
    on the terminal, and the file was not sent."""
    local, remote = roots
    proc = spawn(local, remote)
    try:
        deep = local
        for _ in range(1200):
            deep = deep / "d"
            deep.mkdir()
        (deep / "f").write_text("deep")
        target = remote / deep.relative_to(local) / "f"
        eventually(target.exists, "the deep file sent", timeout=30)
    finally:
        proc.proc.send_signal(signal.SIGINT)
        code = proc.finish()
        # `rm` walks with openat; pytest's own clean-up (`shutil.rmtree`) recurses too.
        subprocess.run(["rm", "-rf", str(local), str(remote)], check=True)
    assert code == 0
    assert not any("Traceback" in line or "recursion" in line for line in proc.err)


def test_log_file_gets_each_action_and_the_session_summary(
    roots: tuple[Path, Path], tmp_path: Path
) -> None:
    local, remote = roots
    log = tmp_path / "watch.jsonl"
    proc = spawn(local, remote, "--log-file", str(log))
    (local / "a.txt").write_text("a")
    eventually((remote / "a.txt").exists, "the upload")
    proc.proc.send_signal(signal.SIGINT)
    assert proc.finish() == 0
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    actions = [(r["path"], r["action"], r["outcome"]) for r in lines if r["type"] == "action"]
    assert actions == [("a.txt", "upload", "done")]
    (summary,) = [r for r in lines if r["type"] == "summary"]
    assert (summary["command"], summary["exit_code"]) == ("watch", 0)
    assert summary["summary"]["uploaded"] == 1
    assert len({r["run_id"] for r in lines}) == 1


def _can_limit_watches() -> bool:
    unshare = shutil.which("unshare")
    if unshare is None or not sys.platform.startswith("linux"):
        return False
    probe = subprocess.run(
        [
            unshare,
            "--user",
            "--map-root-user",
            "sh",
            "-c",
            "echo 4 > /proc/sys/user/max_inotify_watches",
        ],
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


@pytest.mark.skipif(
    not _can_limit_watches(), reason="needs unshare and per-user-namespace inotify limits"
)
def test_the_watch_limit_is_reported_with_its_fix_and_rescans_cover_it(
    roots: tuple[Path, Path],
) -> None:
    local, remote = roots
    for i in range(30):
        (local / f"dir{i:02}").mkdir()
        (local / f"dir{i:02}" / "file.txt").write_text(f"{i}")
    limit = 8  # far fewer watches than the 31 folders need
    prefix = [
        "unshare",
        "--user",
        "--map-root-user",
        "sh",
        "-c",
        f'echo {limit} > /proc/sys/user/max_inotify_watches && exec "$@"',
        "sh",
    ]
    proc = spawn(local, remote, "--rescan-every", "0.5", prefix=prefix)
    try:
        err = "".join(proc.err)
        assert "fs.inotify.max_user_watches" in err
        assert "sysctl -w fs.inotify.max_user_watches=524288" in err
        eventually(lambda: tree(remote) == tree(local), "the startup push", timeout=30)
        # The last folders got no watch: only a rescan can see this change.
        (local / "dir29" / "file.txt").write_text("changed where no watch looks")
        eventually(lambda: tree(remote) == tree(local), "the rescan to find it", timeout=30)
    finally:
        proc.proc.send_signal(signal.SIGTERM)
        assert proc.finish() == 0, "".join(proc.err)


def test_a_terminal_gets_the_live_display(roots: tuple[Path, Path]) -> None:
    local, remote = roots
    (local / "a.txt").write_text("a")
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [fsync_command(), "watch", str(local), f"file://{remote}"],
        stdin=slave,
        stdout=subprocess.PIPE,
        stderr=slave,
    )
    os.close(slave)
    screen = bytearray()

    def read_screen() -> None:  # the display blocks if nobody reads the terminal
        with contextlib.suppress(OSError):
            while chunk := os.read(master, 65536):
                screen.extend(chunk)

    reader = threading.Thread(target=read_screen)
    reader.start()
    try:
        eventually(lambda: b"watching" in screen, "the live display", timeout=30)
        (local / "b.txt").write_text("b")
        eventually(lambda: tree(remote) == tree(local), "the change", timeout=30)
        eventually(lambda: b"upload b.txt" in screen, "the synced file on screen", timeout=10)
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
        reader.join(timeout=10)  # the terminal reads EIO once fsync has exited
        os.close(master)
    assert proc.returncode == 0
    assert b"\x1b[" in screen  # drawn with terminal codes
    assert out.decode().startswith("watch: 2 uploaded")


def _max_queued_events() -> int:
    try:
        return int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    except (OSError, ValueError):
        return 0


@pytest.mark.skipif(not _max_queued_events(), reason="needs inotify (Linux)")
def test_changes_lost_to_an_inotify_queue_overflow_are_found_at_once(
    roots: tuple[Path, Path],
) -> None:
    """A real overflow of the kernel's event queue: the watch is frozen (SIGSTOP, as a loaded
    machine would hold it) while more events than the queue holds happen in an excluded
    folder (so the watch has nothing else to do when it reads the overflow), and files keep
    coming in a watched folder after it is let go.

    The rescan walks the root's folders last-listed first, and watchdog's repair after an
    overflow takes down every watch and adds them back in listing order (3,000 folders make
    that take a while), so the last-listed folder is scanned first and watched again last.
    A rescan started at the overflow missed the files written there in between, silently,
    until the hourly rescan."""
    local, remote = roots
    for i in range(3000):
        (local / f"d{i:04}").mkdir()
    (local / "junk").mkdir()
    (local / "junk" / "a").write_bytes(b"")
    (local / "junk" / "b").write_bytes(b"")
    last = [n for n in os.listdir(local) if n.startswith("d")][-1]
    proc = spawn(local, remote, "--exclude", "junk/")
    stop_writing = threading.Event()

    def keep_writing() -> None:
        n = 0
        while not stop_writing.wait(0.001):
            (local / last / f"new{n:05}").write_text(str(n))
            n += 1

    writer = threading.Thread(target=keep_writing)
    try:
        proc.proc.send_signal(signal.SIGSTOP)
        # Two files written in turn: no two events in a row are alike, so none merge.
        fds = [os.open(local / "junk" / name, os.O_WRONLY) for name in ("a", "b")]
        try:
            for _ in range(_max_queued_events() + 100):
                for fd in fds:
                    os.write(fd, b"x")
        finally:
            for fd in fds:
                os.close(fd)
        writer.start()
        proc.proc.send_signal(signal.SIGCONT)
        eventually(lambda: "inotify event queue overflowed" in "".join(proc.err), "the warning")
        stop_writing.wait(3)
        stop_writing.set()
        writer.join()

        def unsent() -> list[str]:
            sent = tree(remote)
            return sorted(p for p in tree(local).keys() - sent.keys() if not p.startswith("junk/"))

        try:
            eventually(lambda: not unsent(), "every new file sent", timeout=30)
        except AssertionError:
            missing = unsent()
            raise AssertionError(f"{len(missing)} never sent: {missing[:3]}...") from None
    finally:
        stop_writing.set()
        if writer.is_alive():
            writer.join()
        proc.proc.send_signal(signal.SIGCONT)
        proc.proc.send_signal(signal.SIGTERM)
        assert proc.finish() == 0, "".join(proc.err)


def test_a_watch_after_a_sync_killed_past_its_upload_knows_that_upload(
    roots: tuple[Path, Path],
) -> None:
    """`kill -9` a sync once its upload was renamed into place on the remote, before its base
    was recorded; the file is edited again here and a watch starts: its first full sync took
    fsync's own upload for a remote edit, met "both changed", and kept that version as a
    conflict copy. It settles the killed run's intent first and just sends the edit."""
    local, remote = roots
    url, size = f"file://{remote}", 10 << 20
    (local / "big").write_bytes(b"L0" * size)
    first = subprocess.run([fsync_command(), "sync", str(local), url, "-q"], check=False)
    assert first.returncode == 0
    (local / "big").write_bytes(b"L1" * size)
    before = (remote / "big").stat().st_ino
    killed = subprocess.Popen([fsync_command(), "sync", str(local), url, "-q"])
    try:
        while killed.poll() is None and (remote / "big").stat().st_ino == before:
            pass
    finally:
        killed.kill()
        killed.wait(timeout=60)
    assert killed.returncode == -signal.SIGKILL, "the sync ended before its upload landed"
    (local / "big").write_bytes(b"L2" * size)

    proc = spawn(local, remote)
    eventually(
        lambda: (remote / "big").read_bytes()[:2] == b"L2", "the latest edit sent", timeout=60
    )
    proc.proc.send_signal(signal.SIGTERM)

    assert proc.finish() == 0, "".join(proc.err)
    assert [n for n in os.listdir(remote) if not n.startswith(".fsync")] == ["big"]
    assert_manifest_matches_remote(local, remote)
