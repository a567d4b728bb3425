"""Start-up cost: what a scripted run imports before it looks at a file (DESIGN.md, Start-up cost).

Measured on this machine, pydantic (which typer 0.2x converts option values with), rich and
the S3 stack each cost more than a whole no-op push of a small tree, so a plain run to a
local folder must import none of them.
"""

from __future__ import annotations

import sys
from pathlib import Path

from fsynctest.trees import write

HEAVY = ("pydantic", "pydantic_core", "rich", "s3fs", "aiobotocore", "botocore", "boto3")
"""Top-level packages a non-terminal push to a local folder has no use for."""


def imported(stderr: str) -> set[str]:
    """The top-level packages named in `python -X importtime` output."""
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


def test_a_plain_push_imports_nothing_heavy(fsync, tmp_path: Path) -> None:
    src = tmp_path / "src"
    write(src, {"a.txt": "a", "dir/b.txt": "b"})
    trace = [sys.executable, "-X", "importtime"]
    for args in (["--transfers", "4", "--exclude", "*.tmp"], ["--json"]):
        res = fsync("push", src, tmp_path / "out", *args, prefix=trace)
        assert res.returncode == 0, res.stderr
        modules = imported(res.stderr)
        assert "fsync" in modules  # the trace is really there
        assert modules.isdisjoint(HEAVY), sorted(modules & set(HEAVY))


def test_help_and_usage_errors_import_no_app(fsync) -> None:
    trace = [sys.executable, "-X", "importtime"]
    for args in (["push", "--help"], ["push", "--transfers", "0", "a", "b"]):
        res = fsync(*args, prefix=trace)
        assert res.returncode in (0, 2), res.stderr
        loaded = {
            line.rsplit("|", 1)[1].strip()
            for line in res.stderr.splitlines()
            if line.startswith("import time:")
        }
        assert "fsync.cli" in loaded
        assert loaded.isdisjoint({"fsync.app", "fsync.scanner", "fsync.remote", "fsspec"})
