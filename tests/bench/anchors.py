"""The tools fsync is measured against: find them, install the missing ones, say which are absent.

Debian packages (rsync, rclone, b3sum, s3cmd) are installed with `apt-get install -y` when
missing and the bench runs as root; awscli comes from PyPI into a venv of its own under the
bench directory, never into the project's venv (its botocore pins would fight s3fs's). A tool
that still cannot be found is reported in the table as missing: never faked or skipped
silently.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

DEBIAN_TOOLS: dict[str, str] = {
    "rsync": "rsync",
    "rclone": "rclone",
    "b3sum": "b3sum",
    "s3cmd": "s3cmd",
    "time": "time",
}
"""Command -> Debian package that provides it (GNU time measures each tool's peak RSS)."""


@dataclass
class Anchors:
    """Paths of the anchor tools found (None: missing) and how each was obtained."""

    paths: dict[str, str | None] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def get(self, name: str) -> str | None:
        """The path of tool `name`, or None when it is missing."""
        return self.paths.get(name)

    def missing_note(self, name: str) -> str:
        """Why `name` has no row: the note recorded while installing, or a generic one."""
        for note in self.notes:
            if note.startswith(name + ":"):
                return note
        return f"{name}: not installed"


def _version(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    text = (done.stdout or done.stderr).strip().splitlines()
    return text[0].strip() if text else "?"


def _apt_install(packages: list[str], log: Path) -> str:
    """Install `packages` with apt-get; return "" or the reason it could not."""
    if os.geteuid() != 0:
        return "not root: cannot apt-get install"
    if shutil.which("apt-get") is None:
        return "no apt-get on this machine"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    with log.open("ab") as out:
        for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *packages]):
            done = subprocess.run(
                argv, stdout=out, stderr=subprocess.STDOUT, env=env, timeout=900, check=False
            )
            if done.returncode != 0:
                return f"`{' '.join(argv)}` failed (see {log})"
    return ""


def _awscli(venv: Path, log: Path, install: bool) -> tuple[str | None, str]:
    """The `aws` of the anchors' venv, created and filled from PyPI if needed."""
    aws = venv / "bin" / "aws"
    if aws.exists():
        return str(aws), ""
    if not install:
        return None, "aws: not installed (run without --no-install)"
    base = getattr(sys, "_base_executable", sys.executable)
    with log.open("ab") as out:
        for argv in (
            [base, "-m", "venv", str(venv)],
            [str(venv / "bin" / "pip"), "install", "-q", "-U", "pip"],
            [str(venv / "bin" / "pip"), "install", "-q", "awscli"],
        ):
            done = subprocess.run(
                argv, stdout=out, stderr=subprocess.STDOUT, timeout=900, check=False
            )
            if done.returncode != 0:
                return None, f"aws: `{' '.join(argv)}` failed (see {log})"
    return (str(aws), "") if aws.exists() else (None, "aws: pip installed no aws command")


def find(bench_dir: Path, *, install: bool = True, want: set[str] | None = None) -> Anchors:
    """Find (and, with `install`, install) the anchors in `want` (default: all)."""
    want = set(DEBIAN_TOOLS) | {"aws", "cp"} if want is None else want
    anchors = Anchors()
    log = bench_dir / "install.log"
    bench_dir.mkdir(parents=True, exist_ok=True)
    missing = [
        DEBIAN_TOOLS[name] for name in sorted(want & set(DEBIAN_TOOLS)) if not shutil.which(name)
    ]
    if missing and install:
        print(f"  installing {' '.join(missing)} with apt-get ...", flush=True)
        why = _apt_install(missing, log)
        if why:
            anchors.notes.extend(f"{name}: {why}" for name in missing)
    for name in sorted(want & set(DEBIAN_TOOLS)):
        anchors.paths[name] = shutil.which(name)
        if anchors.paths[name] is None and not any(n.startswith(name) for n in anchors.notes):
            anchors.notes.append(f"{name}: not installed (apt-get install {DEBIAN_TOOLS[name]})")
    if "cp" in want:
        anchors.paths["cp"] = shutil.which("cp")
    if "aws" in want:
        aws, why = _awscli(bench_dir / "venv-anchors", log, install)
        anchors.paths["aws"] = aws
        if why:
            anchors.notes.append(why)
    version_args = {
        "rsync": ["--version"],
        "rclone": ["version"],
        "b3sum": ["--version"],
        "s3cmd": ["--version"],
        "aws": ["--version"],
        "cp": ["--version"],
        "time": ["--version"],
    }
    for name, path in anchors.paths.items():
        if path is not None:
            anchors.versions[name] = _version([path, *version_args[name]])
    return anchors
