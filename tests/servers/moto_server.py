"""moto's S3 server in a subprocess on a free loopback port, for tests.

moto's ThreadedMotoServer runs inside the test process, where its threads share the GIL and
the interpreter state with the code under test (and with fsspec's event-loop thread). A
separate process behaves like a real endpoint: requests cross a socket, a hung test cannot
deadlock the server, and CLI subprocess tests reach the same server. The process is stopped
by PID; nothing is left behind but a log file in the directory the caller gave.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path


class MotoStartError(RuntimeError):
    """The server did not come up; the message carries the tail of its log."""


@dataclass(frozen=True)
class MotoServer:
    """A running moto server: its endpoint, its process and where it logs."""

    endpoint_url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    startup_seconds: float

    @property
    def pid(self) -> int:
        """The server's PID (it runs in a session of its own)."""
        return self.process.pid


def _free_port() -> int:
    """A loopback TCP port that was free a moment ago (the race before bind is accepted)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _log_tail(path: Path, lines: int = 40) -> str:
    """The last lines of the server's log, for an error message a human can act on."""
    try:
        tail = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError as exc:
        return f"(log unreadable: {exc})"
    return "\n".join(tail) if tail else "(log empty)"


def _answers(url: str) -> bool:
    """True once ``GET url`` gets any HTTP answer (moto's index may be 200 or an S3 error)."""
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False


def start(log_dir: Path, *, timeout: float = 30.0, env: dict[str, str] | None = None) -> MotoServer:
    """Start ``python -m moto.server`` on 127.0.0.1 and a free port; return once it answers.

    ``env`` replaces the child's environment (default: this process's). Raises MotoStartError
    with the log tail when the process exits or does not answer within ``timeout`` seconds.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    log_path = log_dir / f"moto-{port}.log"
    endpoint = f"http://127.0.0.1:{port}"
    began = time.monotonic()
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=dict(os.environ) if env is None else env,
        )
    server = MotoServer(endpoint, process, log_path, 0.0)
    deadline = began + timeout
    while not _answers(endpoint + "/"):
        if process.poll() is not None:
            raise MotoStartError(
                f"moto server exited with {process.returncode} during start-up\n"
                f"{_log_tail(log_path)}"
            )
        if time.monotonic() > deadline:
            stop(server)
            raise MotoStartError(
                f"moto server at {endpoint} did not answer within {timeout:.0f} s\n"
                f"{_log_tail(log_path)}"
            )
        time.sleep(0.05)
    return MotoServer(endpoint, process, log_path, time.monotonic() - began)


def stop(server: MotoServer, *, timeout: float = 10.0) -> None:
    """Stop the server by PID: SIGTERM, then SIGKILL after ``timeout``; always reaps it."""
    process = server.process
    if process.poll() is not None:
        return
    os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=timeout)
