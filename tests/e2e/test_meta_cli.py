"""End-to-end: a `chmod` or `touch` alone reaches the other side, as with `rsync -a`.

The installed `fsync` command on real folders: a mode or mtime changed without the content
is sent by a push as a metadata update (no content bytes), restored by a pull into another
folder, and a folder remote's own change of them is applied by a pull.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from tests.e2e.conftest import Run


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _summary(done: subprocess.CompletedProcess[str]) -> dict[str, object]:
    assert done.returncode == 0, done.stderr
    summary: dict[str, object] = json.loads(done.stdout)
    return summary


def test_chmod_x_then_push_then_a_pull_elsewhere_shows_the_x_bit(
    fsync: Run, tmp_path: Path
) -> None:
    src, out, fresh = tmp_path / "src", tmp_path / "out", tmp_path / "fresh"
    src.mkdir()
    script = src / "script.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    _summary(fsync("push", src, out, "--json"))
    assert _mode(out / "script.sh") == 0o644

    script.chmod(0o755)  # chmod +x
    pushed = _summary(fsync("push", src, out, "--json"))
    assert _mode(out / "script.sh") == 0o755
    assert (pushed["meta_updated"], pushed["uploaded"], pushed["bytes_sent"]) == (1, 0, 0)

    _summary(fsync("pull", out, fresh, "--json"))
    assert _mode(fresh / "script.sh") == 0o755
    again = _summary(fsync("push", src, out, "--json"))
    assert (again["meta_updated"], again["uploaded"], again["unchanged"]) == (0, 0, 1)


def test_touch_then_push_round_trips_the_mtime(fsync: Run, tmp_path: Path) -> None:
    src, out, fresh = tmp_path / "src", tmp_path / "out", tmp_path / "fresh"
    src.mkdir()
    (src / "a.txt").write_text("same bytes\n")
    _summary(fsync("push", src, out, "--json"))

    subprocess.run(["touch", "-d", "2001-02-03 04:05:06.789", str(src / "a.txt")], check=True)
    touched = (src / "a.txt").stat().st_mtime_ns
    pushed = _summary(fsync("push", src, out, "--json"))
    assert (out / "a.txt").stat().st_mtime_ns == touched
    assert (pushed["meta_updated"], pushed["bytes_sent"]) == (1, 0)

    _summary(fsync("pull", out, fresh, "--json"))
    assert (fresh / "a.txt").stat().st_mtime_ns == touched


def test_a_pull_applies_a_folder_remotes_chmod_and_touch(fsync: Run, tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    (src / "a.txt").write_text("a\n")
    (src / "b.txt").write_text("b\n")
    for name in ("a.txt", "b.txt"):
        (src / name).chmod(0o644)
    _summary(fsync("push", src, out, "--json"))

    (out / "a.txt").chmod(0o600)
    os.utime(out / "b.txt", ns=(981_173_106_000_000_000, 981_173_106_000_000_000))
    pulled = _summary(fsync("pull", out, src, "--json"))
    assert _mode(src / "a.txt") == 0o600
    assert (src / "b.txt").stat().st_mtime_ns == 981_173_106_000_000_000
    assert (pulled["meta_updated"], pulled["downloaded"], pulled["bytes_received"]) == (2, 0, 0)
    again = _summary(fsync("pull", out, src, "--json"))
    assert (again["meta_updated"], again["unchanged"]) == (0, 2)
