"""What an unattended run leaves behind: `--log-file` JSON lines, `-v` detail, the alarm.

A `RunMonitor` watches one run from the edge: the engine hands it an `ActionRecord` as each
action ends, and the caller tells it how the run ended. It writes one JSON line per action
and one per run summary to the log file, sends the same detail to the `fsync` logger (shown
with `-v`), and raises the `--on-error` alarm when the run failed. Every string passes
through the run's `Redactor` first, so no credential reaches the log, the console or the
alarm.

Log line fields (one JSON object per line, UTF-8):

- every line: `time` (ISO 8601, UTC, milliseconds), `run_id`, `type` (`action`|`summary`),
  `command` (`push`, `pull`...);
- `action`: `path`, `action` (`upload`, `download`, `delete-remote`, `record`...), `bytes`,
  `seconds`, `attempts`, `outcome` (`done`|`failed`|`skipped`|`conflict`|`planned`), `error`
  (or null; for `conflict`, why the action was left for the next run);
- `summary`: `local`, `remote`, `exit_code`, `error` (a message when the whole run stopped,
  else null) and `summary` (the `--json` object).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import IO, TextIO

from fsync.alarm import raise_alarm
from fsync.errors import ConfigError, ExitCode
from fsync.model import ActionRecord
from fsync.progress import Reporter
from fsync.redact import Redactor
from fsync.terminal import complain, json_line, printable

LOGGER = "fsync"
"""The logger every fsync module logs under; `-v` shows its DEBUG records on stderr."""

_log = logging.getLogger(f"{LOGGER}.run")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class RunLog:
    """An append-only JSON-lines file (`--log-file`), shared safely by many runs.

    Each line is written with one `write` call on a file opened with O_APPEND, so runs of
    several fsync processes logging to one file interleave whole lines. The file is created
    with mode 0600: it names paths that may be private.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise ConfigError(
                f"cannot open the log file {path} ({exc.strerror or exc}; check the folder)"
            ) from None
        self._file: IO[str] = os.fdopen(fd, "a", encoding="utf-8", newline="\n")
        self._lock = threading.Lock()

    def write(self, record: Mapping[str, object]) -> None:
        """Append `record` as one JSON line and flush it."""
        # `json_line`: a name with an undecodable byte made the write fail, and the run too.
        line = json_line(dict(record), compact=True) + "\n"
        with self._lock:
            self._file.write(line)
            self._file.flush()

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._file.close()


class RunMonitor:
    """Observes one run: log lines, `-v` detail, and the `--on-error` alarm at the end."""

    def __init__(
        self,
        *,
        command: str,
        local: str,
        remote: str,
        redactor: Redactor,
        log_file: str | None = None,
        on_error: str | None = None,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.command = command
        self.run_id = uuid.uuid4().hex[:16]
        self.redactor = redactor
        self.local = local
        self.remote = redactor.text(remote)
        self.on_error = on_error
        self._warn = warn or _stderr_warning
        self._log = RunLog(log_file) if log_file else None
        self.actions = 0

    def __enter__(self) -> RunMonitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def action_done(self, record: ActionRecord) -> None:
        """One action ended (the engine's `on_action`): log it; never raises."""
        self.actions += 1
        error = self.redactor.text(record.error) if record.error else None
        _log.debug(
            "%s %s: %s, %d bytes in %.3f s, %d attempt%s%s",
            record.action,
            record.path,
            record.outcome,
            record.bytes,
            record.seconds,
            record.attempts,
            "" if record.attempts == 1 else "s",
            f" ({error})" if error else "",
        )
        self._write(
            {
                "type": "action",
                "path": record.path,
                "action": record.action,
                "bytes": record.bytes,
                "seconds": round(record.seconds, 6),
                "attempts": record.attempts,
                "outcome": record.outcome,
                "error": error,
            }
        )

    def finished(self, summary: Mapping[str, object], exit_code: int) -> dict[str, object]:
        """The run ended with `summary` (its `--json` object): log it, alarm on failure.

        Returns the summary as logged and handed to the alarm (redacted, with the run's
        `command`, `local`, `remote`, `run_id` and `exit_code` added).
        """
        stop = summary.get("error")  # a dry run's safety stop (`RunResult.stopped`)
        return self._end(dict(summary), exit_code, stop if isinstance(stop, str) else None)

    def stopped(self, message: str, exit_code: int) -> dict[str, object]:
        """The whole run stopped with `message` (no summary): log it, alarm if it failed."""
        return self._end({}, exit_code, message)

    def _end(
        self, summary: dict[str, object], exit_code: int, error: str | None
    ) -> dict[str, object]:
        clean = self.redactor.value(summary)
        assert isinstance(clean, dict)
        message = self.redactor.text(error) if error else None
        full: dict[str, object] = {
            "command": self.command,
            "local": self.local,
            "remote": self.remote,
            "run_id": self.run_id,
            "exit_code": exit_code,
            **({"error": message} if message else {}),
            **clean,
        }
        _log.debug(
            "%s ended with exit status %d after %d actions", self.command, exit_code, self.actions
        )
        self._write(
            {
                "type": "summary",
                "local": self.local,
                "remote": self.remote,
                "exit_code": exit_code,
                "error": message,
                "summary": clean,
            }
        )
        if self.on_error and exit_code == ExitCode.FAILED:
            raise_alarm(self.on_error, full, self._alarm_warning)
        return full

    def _alarm_warning(self, message: str) -> None:
        self._warn(self.redactor.text(message))
        self._write({"type": "warning", "message": self.redactor.text(message)})

    def _write(self, record: dict[str, object]) -> None:
        if self._log is None:
            return
        line = {"time": _now(), "run_id": self.run_id, "type": record.pop("type")}
        line["command"] = self.command
        line.update(record)
        try:
            self._log.write(line)
        except OSError as exc:
            # A full disk under the log must not fail the sync it describes.
            self._warn(f"cannot write the log file {self._log.path} ({exc.strerror or exc})")
            self._log = None

    def close(self) -> None:
        """Close the log file."""
        if self._log is not None:
            self._log.close()
            self._log = None


def _stderr_warning(message: str) -> None:
    complain(f"fsync: warning: {message}")


class _RedactingFilter(logging.Filter):
    """Masks secrets in every record before a handler formats it."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.redactor.text(record.getMessage())
        record.args = None
        return True


def configure_console(verbose: bool, redactor: Redactor, stream: TextIO | None = None) -> None:
    """Send the `fsync` logger's records to stderr: DEBUG and up with `-v`, else nothing.

    Only fsync's own logger is configured, never the root: botocore's and fsspec's debug
    output carries signed requests. Calling it again replaces the handler it added before.
    """
    logger = logging.getLogger(LOGGER)
    for old in [h for h in logger.handlers if getattr(h, "_fsync_console", False)]:
        logger.removeHandler(old)
    logger.propagate = False
    handler: logging.Handler
    if verbose:
        handler = logging.StreamHandler(stream or sys.stderr)
        handler.setFormatter(_Formatter("fsync: %(levelname)s: %(message)s"))
        handler.addFilter(_RedactingFilter(redactor))
        logger.setLevel(logging.DEBUG)
    else:
        # Warnings reach the user through the Reporter; logging's last-resort handler
        # must not print them a second time.
        handler = logging.NullHandler()
        logger.setLevel(logging.WARNING)
    handler._fsync_console = True  # type: ignore[attr-defined]
    logger.addHandler(handler)


class _Formatter(logging.Formatter):
    """`fsync: debug: ...`, in the lower case of fsync's other stderr lines, the message
    made `printable` as every line for a person is (a traceback keeps its lines)."""

    def format(self, record: logging.LogRecord) -> str:
        record.levelname = record.levelname.lower()
        record.msg = printable(record.getMessage())
        record.args = None
        return "\n".join(map(printable, super().format(record).split("\n")))


class RedactingReporter:
    """A `Reporter` that scrubs warnings and error messages before the wrapped one shows them.

    Anything else is passed through unchanged, including methods beyond the protocol.
    """

    def __init__(self, inner: Reporter, redactor: Redactor) -> None:
        self._inner = inner
        self._redactor = redactor
        self.shown_errors: set[str] = set()
        """The paths whose failure the wrapped reporter has put on stderr already."""

    def plan_ready(self, files: int, total_bytes: int) -> None:
        """Passed through."""
        self._inner.plan_ready(files, total_bytes)

    def file_started(self, path: str, size: int) -> None:
        """Passed through."""
        self._inner.file_started(path, size)

    def advance(self, path: str, nbytes: int) -> None:
        """Passed through."""
        self._inner.advance(path, nbytes)

    def file_done(self, path: str, action: str, error: str | None = None) -> None:
        """Passed through with `error` scrubbed."""
        self._inner.file_done(path, action, self._redactor.text(error) if error else error)
        if error and getattr(self._inner, "shows_errors", False):
            self.shown_errors.add(path)

    def warning(self, message: str) -> None:
        """Passed through scrubbed."""
        self._inner.warning(self._redactor.text(message))

    def close(self) -> None:
        """Passed through."""
        self._inner.close()

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)
