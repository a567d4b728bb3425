"""`errors.unusable_root`: one classification of a remote root's OS failure for every adapter."""

from __future__ import annotations

import errno
import os

import pytest

from fsync.errors import ExitCode, RemoteAccessDenied, exit_code_for, unusable_root


@pytest.mark.parametrize(
    ("code", "status", "words"),
    [
        (errno.EACCES, ExitCode.FAILED, "cannot list remote /r (permission denied; check"),
        (errno.EPERM, ExitCode.FAILED, "cannot list remote /r (permission denied; check"),
        (errno.ENOTDIR, ExitCode.USAGE, "remote /r cannot be a folder (a file is in its path;"),
        (errno.ELOOP, ExitCode.USAGE, "remote /r cannot be a folder (too many symbolic links"),
        (errno.EIO, ExitCode.FAILED, "cannot list remote /r (input/output error: /r)"),
    ],
)
def test_a_root_failure_is_one_line_with_its_status(
    code: int, status: ExitCode, words: str
) -> None:
    err = unusable_root("/r", OSError(code, os.strerror(code), "/r"))
    assert exit_code_for(err) is status
    assert str(err).startswith(words)
    assert "Errno" not in str(err)


def test_access_denied_is_still_a_permission_error() -> None:
    """The remote contract promises `PermissionError` for access denied."""
    err = unusable_root("/r", PermissionError(errno.EACCES, "Permission denied", "/r"))
    assert isinstance(err, RemoteAccessDenied)
    assert isinstance(err, PermissionError)
