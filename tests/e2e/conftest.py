"""Run the installed `fsync` console script as a user would, in a subprocess."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from fsynctest.commands import fsync_command

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def fsync() -> Run:
    """Call `fsync ARGS...`; returns the finished process (stdout, stderr, returncode)."""

    def run(
        *args: str | os.PathLike[str],
        cwd: str | os.PathLike[str] | None = None,
        env: dict[str, str] | None = None,
        prefix: Sequence[str] = (),
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        full_env = {**os.environ, **(env or {})}
        return subprocess.run(
            [*prefix, fsync_command(), *map(str, args)],
            cwd=cwd,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    return run


Start = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def fsync_started() -> Iterator[Start]:
    """Start `fsync ARGS...` in a session of its own, its output discarded (stdout may go
    to a descriptor given instead; `env` adds to the environment), and return the running
    process (to signal); any still running at the end of the test is killed."""
    started: list[subprocess.Popen[bytes]] = []

    def start(
        *args: str | os.PathLike[str],
        stdout: int = subprocess.DEVNULL,
        env: dict[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [fsync_command(), *map(str, args)],
            env=None if env is None else {**os.environ, **env},
            stdout=stdout,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=60)


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    """A private copy of fixtures/demo (with its mtimes), so tests never touch the repo."""
    dst = tmp_path / "demo"
    shutil.copytree(FIXTURES / "demo", dst, ignore=shutil.ignore_patterns(".fsync"))
    return dst
