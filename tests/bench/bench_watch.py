"""Benchmark `fsync watch`: change-to-remote latency, and memory over many events.

Run it directly (pytest does not collect tests/bench):

    .venv/bin/python tests/bench/bench_watch.py [--edits 200] [--events 20000]

It starts the installed `fsync watch` command on a temporary folder with a file:// remote
(as a user would, so the measuring process does not share its interpreter), then:

- latency: edits one of 20 files at a time, `--edits` times, and measures from the write to
  the moment the remote file holds the new content (polled every 0.5 ms). Targets: median
  under 300 ms, p99 under 1 s.
- memory: reads the watch's resident set size (VmRSS) after a warm-up, then makes
  `--events` more writes over 100 files as fast as it can, waits for the remote to hold the
  last version of each, and reads VmRSS again. Target: growth under 10 MiB. The files are
  rewritten, not added: what is measured is memory per event, not per file tracked (a new
  file rightly costs its entry in the base, the remote listing and the hash cache).
"""

from __future__ import annotations

import argparse
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from pathlib import Path


def fsync_command() -> str:
    script = Path(sys.executable).with_name("fsync")
    found = str(script) if script.exists() else shutil.which("fsync")
    if found is None:
        raise SystemExit("the fsync command is not installed (pip install -e '.[test]')")
    return found


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def wait_for(check, timeout: float, what: str, interval: float = 0.0005) -> float:  # type: ignore[no-untyped-def]
    """Poll `check` until true; return the time it became true (monotonic)."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return time.monotonic()
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(interval)


def holds(path: Path, content: bytes) -> bool:
    try:
        return path.read_bytes() == content
    except FileNotFoundError:
        return False


def start_watch(local: Path, remote: Path, said: deque[str]) -> subprocess.Popen[str]:
    """Start `fsync watch`; its stderr lines keep going to `said` (the last ones are kept)."""
    proc = subprocess.Popen(
        [fsync_command(), "watch", str(local), f"file://{remote}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        said.append(line.rstrip())
        if "watching" in line:
            break
    else:
        raise SystemExit(f"fsync watch did not start (exit {proc.wait()})")
    stream = proc.stderr
    threading.Thread(target=lambda: said.extend(s.rstrip() for s in stream), daemon=True).start()
    return proc


def stop_watch(proc: subprocess.Popen[str]) -> int | None:
    """SIGTERM, as a service manager sends it; None if the watch had not ended 60 s later."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None


def latency(local: Path, remote: Path, edits: int) -> list[float]:
    out = []
    for i in range(edits):
        name = f"edit{i % 20:02}.txt"
        content = f"edit {i} at {time.time_ns()}\n".encode() * 50
        t0 = time.monotonic()
        (local / name).write_bytes(content)
        seen = wait_for(lambda: holds(remote / name, content), 30, f"edit {i}")  # noqa: B023
        out.append(seen - t0)
    return out


def memory(proc: subprocess.Popen[str], local: Path, remote: Path, events: int) -> tuple[int, int]:
    files = [local / f"churn{i:03}.bin" for i in range(100)]

    def churn(count: int, tag: str) -> dict[Path, bytes]:
        last: dict[Path, bytes] = {}
        for i in range(count):
            path = files[i % len(files)]
            last[path] = f"{tag} {i}\n".encode() * 20
            path.write_bytes(last[path])
        return last

    def settle(last: dict[Path, bytes]) -> None:
        for path, content in last.items():
            wait_for(lambda: holds(remote / path.name, content), 60, path.name, 0.01)  # noqa: B023

    settle(churn(1000, "warm-up"))
    time.sleep(1)
    before = rss_kib(proc.pid)
    settle(churn(events, "measured"))
    time.sleep(1)
    return before, rss_kib(proc.pid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edits", type=int, default=200)
    parser.add_argument("--events", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fsync-bench-") as tmp:
        local, remote = Path(tmp) / "local", Path(tmp) / "remote"
        local.mkdir()
        said: deque[str] = deque(maxlen=20)
        proc = start_watch(local, remote, said)
        try:
            lat = sorted(latency(local, remote, args.edits))
            before, after = memory(proc, local, remote, args.events)
        except BaseException as exc:
            code = stop_watch(proc)
            print("\n".join(["fsync watch's last lines:", *said]), file=sys.stderr)
            if isinstance(exc, SystemExit):
                raise SystemExit(f"{exc}; fsync watch exited with {code} after SIGTERM") from None
            raise
        code = stop_watch(proc)
    p99 = lat[min(len(lat) - 1, round(0.99 * len(lat)) - 1)]
    median = statistics.median(lat)
    growth = (after - before) / 1024
    print(f"latency over {len(lat)} edits: median {median * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms,")
    print(f"  min {lat[0] * 1000:.0f} ms, max {lat[-1] * 1000:.0f} ms (targets: 300 ms, 1000 ms)")
    print(
        f"memory over {args.events} writes: RSS {before / 1024:.1f} MiB before, "
        f"{after / 1024:.1f} MiB after, growth {growth:+.1f} MiB (target: under 10 MiB)"
    )
    ended = "did not exit (killed)" if code is None else f"exited with status {code}"
    print(f"fsync watch {ended} after SIGTERM")
    ok = median < 0.3 and p99 < 1.0 and growth < 10 and code == 0
    print("all targets met" if ok else "TARGETS MISSED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
