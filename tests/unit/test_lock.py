"""RootLock: one fsync per root, and a dead holder's lock is taken over."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fsync.errors import ConfigError, LockHeld
from fsync.manifest import RootLock

HOLDER = """
import sys
from fsync.manifest import RootLock
lock = RootLock(sys.argv[1])
lock.acquire()
print("locked", flush=True)
sys.stdin.read()  # hold the lock until stdin closes or the process is killed
"""

TRY = """
import sys
from fsync.errors import LockHeld
from fsync.manifest import RootLock
try:
    with RootLock(sys.argv[1]):
        pass
except LockHeld as e:
    print(e)
    sys.exit(3)
"""


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the lock of `tmp_path`."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "locked"
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()


def _lock_text(root: Path) -> str:
    return (root / ".fsync" / "lock").read_text()


def test_acquire_writes_pid_and_release_clears_it(tmp_path: Path) -> None:
    lock = RootLock(str(tmp_path))
    lock.acquire()
    assert lock.held
    assert _lock_text(tmp_path) == f"{os.getpid()}\n"
    assert (tmp_path / ".fsync").stat().st_mode & 0o777 == 0o700
    lock.release()
    assert not lock.held
    assert _lock_text(tmp_path) == ""
    lock.release()  # releasing twice is harmless


def test_context_manager_and_reacquire(tmp_path: Path) -> None:
    with RootLock(str(tmp_path)) as lock:
        assert lock.held
        with pytest.raises(RuntimeError):
            lock.acquire()
    with RootLock(str(tmp_path)):
        pass


def test_second_lock_in_the_same_process_is_refused(tmp_path: Path) -> None:
    with RootLock(str(tmp_path)), pytest.raises(LockHeld, match=f"pid {os.getpid()}"):
        RootLock(str(tmp_path)).acquire()


def test_lock_held_by_another_process(tmp_path: Path, holder: subprocess.Popen[str]) -> None:
    with pytest.raises(LockHeld) as info:
        RootLock(str(tmp_path)).acquire()
    assert str(info.value) == (
        f"another fsync (pid {holder.pid}) is already working on {tmp_path}; wait for it to finish"
    )


def test_lock_of_a_killed_process_is_taken_over(
    tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    with pytest.raises(LockHeld):
        RootLock(str(tmp_path)).acquire()

    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)

    with RootLock(str(tmp_path)) as lock:
        assert lock.held
        assert _lock_text(tmp_path) == f"{os.getpid()}\n"


def test_other_process_sees_our_lock_and_gets_it_after_release(tmp_path: Path) -> None:
    def other() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", TRY, str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    with RootLock(str(tmp_path)):
        refused = other()
    allowed = other()

    assert refused.returncode == 3
    assert f"(pid {os.getpid()})" in refused.stdout
    assert allowed.returncode == 0, allowed.stderr


SPAWNER = """
import subprocess, sys
from fsync.manifest import RootLock
lock = RootLock(sys.argv[1])
lock.acquire()
child = subprocess.Popen(
    [sys.executable, "-c", "import time; time.sleep(120)"],
    stdin=subprocess.DEVNULL,
    close_fds=False,
)
print(child.pid, flush=True)
sys.stdin.read()
"""


def test_lock_dies_with_its_holder_not_with_its_children(tmp_path: Path) -> None:
    """A child of the holder (an --on-error hook) must not keep a dead holder's lock alive."""
    spawner = subprocess.Popen(
        [sys.executable, "-c", SPAWNER, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert spawner.stdout is not None
    assert spawner.stdin is not None
    child_pid = int(spawner.stdout.readline())
    try:
        spawner.kill()
        spawner.wait(timeout=30)
        with RootLock(str(tmp_path)) as lock:
            assert lock.held
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child_pid, signal.SIGKILL)
        spawner.stdin.close()
        spawner.stdout.close()


def test_missing_root_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        RootLock(str(tmp_path / "missing")).acquire()
    assert not (tmp_path / "missing").exists()
