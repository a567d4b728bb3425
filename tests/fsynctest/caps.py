"""Make permission failures real when the tests run as root."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest


def drop_dac_caps() -> list[str]:
    """A command prefix that runs without the capabilities bypassing file permissions.

    As root, `chmod 0` does not stop reads; `setpriv` drops CAP_DAC_OVERRIDE and
    CAP_DAC_READ_SEARCH so the child meets a real EACCES. Empty for other users.
    """
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root and setpriv (util-linux) is missing")
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search"]


@contextlib.contextmanager
def unreadable(path: Path) -> Iterator[None]:
    """`path` with no permission bits while inside (its mode restored after): unreadable
    to a command run with `drop_dac_caps`, and removable by pytest's clean-up after."""
    mode = path.stat().st_mode
    path.chmod(0)
    try:
        yield
    finally:
        path.chmod(mode)
