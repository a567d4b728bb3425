"""`--on-error CMD`: tell an operator's command that a run ended with failures.

The command runs through `sh -c` with the run's JSON summary on its stdin, as cron's MAILTO
or a monitoring hook expects. It is an alarm, not part of the run: whatever happens to it
(a non-zero status, a missing program, a hang) becomes a warning, never an exception, and
never changes fsync's exit status. Its stdout goes to fsync's stderr, so `--json` output
stays one JSON object.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Callable, Mapping

from fsync.terminal import json_line

ALARM_TIMEOUT = 60.0
"""Seconds the command may take; a hung alarm must not hang an unattended fsync."""

_log = logging.getLogger("fsync.alarm")


def raise_alarm(
    command: str,
    summary: Mapping[str, object],
    warn: Callable[[str], None],
    *,
    timeout: float = ALARM_TIMEOUT,
) -> bool:
    """Run `command` with `summary` as JSON on stdin; True if it ran and exited 0.

    Any failure of the command is passed to `warn` as one line and False is returned; this
    never raises for the command's sake. The command text is not repeated in warnings (it may
    carry a webhook token).
    """
    data = json_line(dict(summary)) + "\n"
    _log.debug("running the --on-error command (%d bytes of summary on stdin)", len(data))
    try:
        done = subprocess.run(
            ["/bin/sh", "-c", command],
            input=data.encode("utf-8"),
            stdout=subprocess.PIPE,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        warn(f"the --on-error command did not finish within {timeout:g} s and was stopped")
        return False
    except OSError as exc:
        warn(f"the --on-error command could not be started ({exc.strerror or exc})")
        return False
    if done.stdout:
        sys.stderr.write(done.stdout.decode("utf-8", "replace"))
        sys.stderr.flush()
    if done.returncode == 127:
        warn("the --on-error command was not found (sh exit status 127)")
        return False
    if done.returncode != 0:
        warn(f"the --on-error command failed (exit status {done.returncode})")
        return False
    return True
