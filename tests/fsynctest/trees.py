"""Build and compare file trees in tests."""

from __future__ import annotations

import os
import stat
from pathlib import Path

SKIP_DIRS = {".fsync"}


def listing(root: Path, *, mtimes: bool = False) -> dict[str, object]:
    """Every regular file under `root` (except `.fsync/`) → its bytes (and mtime_ns)."""
    out: dict[str, object] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not (Path(dirpath) == root and d in SKIP_DIRS)]
        for name in filenames:
            full = Path(dirpath) / name
            st = full.lstat()
            if not stat.S_ISREG(st.st_mode):
                continue
            rel = full.relative_to(root).as_posix()
            data = full.read_bytes()
            out[rel] = (data, st.st_mtime_ns) if mtimes else data
    return out


def write(root: Path, files: dict[str, bytes | str]) -> None:
    """Create `files` (relative path → content) under `root`."""
    for rel, content in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content.encode() if isinstance(content, str) else content)


def set_mtime(path: Path, seconds_ago: float) -> None:
    """Give `path` an mtime well in the past, so its cache entry is trusted (not racy)."""
    import time

    t = int((time.time() - seconds_ago) * 1e9)
    os.utime(path, ns=(t, t))


def age_tree(root: Path, seconds_ago: float = 10) -> None:
    """Age every file under `root` so scans treat them as settled."""
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            set_mtime(Path(dirpath) / name, seconds_ago)


def held_open(under: Path) -> list[str]:
    """The paths at or under `under` this process holds descriptors on (Linux: /proc)."""
    fds = "/proc/self/fd"
    held = []
    for fd in os.listdir(fds):
        try:
            target = os.readlink(f"{fds}/{fd}")
        except OSError:
            continue  # the descriptor listdir itself used, closed since
        if target == str(under) or target.startswith(f"{under}/"):
            held.append(target)
    return held
