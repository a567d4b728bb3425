"""fsync's exceptions and exit codes, classified once so every layer agrees.

A user-facing error inherits `FsyncError` and, where one fits, the matching builtin, so code
that catches `FileNotFoundError` keeps working. `cli` maps exceptions to exit codes through
`exit_code_for` and nowhere else.
"""

from __future__ import annotations

import enum
import errno


class ExitCode(enum.IntEnum):
    """Process exit statuses: a contract scripts rely on (DESIGN.md, Interface)."""

    OK = 0
    FAILED = 1
    USAGE = 2
    CONFLICTS = 3
    INTERRUPTED = 130


class FsyncError(Exception):
    """Root of fsync's errors. `str(err)` is the one line shown after `fsync: error: `."""

    exit_code: ExitCode = ExitCode.FAILED


class ConfigError(FsyncError):
    """Bad arguments or configuration, found before anything was transferred (exit 2)."""

    exit_code = ExitCode.USAGE


class SettingError(ConfigError):
    """A value of one option that the remote it is for cannot take (a chunk size below S3's
    minimum part, a rate limit for a remote that has none).

    Such a value is only judged when the remote is opened, long after a config file was
    read, so the error carries the option's name (`setting`, as a parameter: `chunk_size`)
    for the CLI to say where the value came from. `str()` names the command-line option
    (`--chunk-size 1048576 is below ...`); `in_file` words it for a config file's line.
    """

    def __init__(self, setting: str, problem: str) -> None:
        self.setting = setting
        self.problem = problem
        """What is wrong, in words that follow the option's name."""
        super().__init__(f"--{self.key} {problem}")

    @property
    def key(self) -> str:
        """The option's name as written in a config file (`chunk-size`)."""
        return self.setting.replace("_", "-")

    item: str | None = None
    """The entry of the setting at fault, where the setting is a table (`option`'s `anon`)."""

    def in_file(self, where: str) -> str:
        """The message for a value set at `where` (`FILE:LINE`) of a config file."""
        return f"{where}: {self.key} {self.problem}"


class StorageOptionError(SettingError):
    """A storage option (`-o NAME=VALUE`, or NAME in a config file's `[storage-options]`)
    that the remote cannot take: `str()` names the `-o` option, `in_file` the file's key."""

    def __init__(self, name: str, problem: str, *, unknown: bool = False) -> None:
        self.item = name
        self.word = "unknown" if unknown else "invalid"
        super().__init__("option", problem)
        self.args = (f"{self.word} -o {name} ({problem})",)

    def in_file(self, where: str) -> str:
        """The message for the option set at `where` (`FILE:LINE`) of a config file."""
        return f"{where}: {self.word} storage option {self.item} ({self.problem})"


class SafetyAbort(FsyncError):
    """The plan looked dangerous (too many deletes, an emptied source): nothing was done."""

    exit_code = ExitCode.USAGE


class LockHeld(FsyncError):
    """Another fsync process holds the local root's lock."""

    exit_code = ExitCode.USAGE


class TransientError(FsyncError):
    """A failure worth retrying: timeouts, resets, 5xx, throttling."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(FsyncError):
    """A failure retrying cannot fix: access denied, no such bucket, disk full."""


class DiskFull(PermanentError):
    """The local disk (under the state database) has no room left: a write of SQLite, which
    gives no errno, where an `OSError` would carry ENOSPC."""


class RemoteUnavailable(PermanentError):
    """The whole remote cannot be reached or used; the run stops (exit 1)."""


class RemoteAccessDenied(RemoteUnavailable, PermissionError):
    """The remote's root cannot be read for lack of permission (exit 1, as DESIGN.md says
    of access denied). A `PermissionError` too, as the remote contract promises."""


class FileChangedError(FsyncError):
    """A file changed while it was being read; the caller re-queues it."""


class VerificationError(FsyncError):
    """Bytes that arrived do not hash to what was planned; the write was not published."""


class UnsafePathError(FsyncError, ValueError):
    """A name that cannot be mapped into a sync root (`..`, absolute, backslash, NUL)."""


class Halted(FsyncError):
    """The run is being abandoned (Ctrl-C): a transfer in flight stops at its next chunk
    instead of finishing a file that may take minutes; what it sent stays journaled where
    the store can continue it."""


def exit_code_for(exc: BaseException) -> ExitCode:
    """The exit status for an exception that ended a whole run."""
    if isinstance(exc, KeyboardInterrupt):
        return ExitCode.INTERRUPTED
    if isinstance(exc, FsyncError):
        return exc.exit_code
    return ExitCode.FAILED


class RemoteChanged(FsyncError):
    """The destination no longer holds the version the plan saw; acting would clobber it."""


_ACCESS = frozenset({errno.EACCES, errno.EPERM})
_BAD_PATH = {
    errno.ENOTDIR: "a file is in its path",
    errno.ELOOP: "too many symbolic links in its path",
    errno.ENAMETOOLONG: "its name is too long",
}
"""Why a remote root's path can never be used, by errno: found before anything was sent."""


def unusable_root(remote: str, err: OSError, doing: str = "list") -> FsyncError:
    """The error for a remote root that `err` kept fsync from using, naming `remote` (as
    the user wrote it) and what fsync was `doing` (a verb: "list", "open", "reach").

    A raw `[Errno 13] Permission denied: '/x'` said neither what fsync was doing nor what to
    do. Access denied is `RemoteAccessDenied` (exit 1); a path that can never be a folder (a
    file or a link loop along it, a name too long) is a `ConfigError` (exit 2, as a remote
    root that is a file); anything else stops the run as `RemoteUnavailable` (exit 1).
    """
    if err.errno in _ACCESS:
        return RemoteAccessDenied(
            f"cannot {doing} remote {remote} (permission denied; check the permissions of "
            "that folder and of the folders above it)"
        )
    if err.errno in _BAD_PATH:
        return ConfigError(
            f"remote {remote} cannot be a folder ({_BAD_PATH[err.errno]}; give a folder)"
        )
    why = err.strerror.lower() if err.strerror else one_line(err)
    if err.strerror and isinstance(err.filename, str):
        why += f": {err.filename}"  # (an archive's path, say, inside the URL)
    return RemoteUnavailable(f"cannot {doing} remote {remote} ({why})")


def one_line(exc: BaseException) -> str:
    """The exception's message on one line (its type's name when it has none): errors are
    one line on stderr and in logs, whatever a library put in its message."""
    text = str(exc) or type(exc).__name__
    return " ".join(text.split())
