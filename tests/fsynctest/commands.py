"""The installed `fsync` command, for tests that run it as a user would."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest


def fsync_command() -> str:
    """The `fsync` script installed next to the interpreter running the tests."""
    script = Path(sys.executable).with_name("fsync")
    found = str(script) if script.exists() else shutil.which("fsync")
    if found is None:
        pytest.fail("the fsync command is not installed (pip install -e '.[test]')")
    return found
