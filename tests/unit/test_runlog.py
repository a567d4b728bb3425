"""RunMonitor, the alarm and the console logger, on real files and real processes."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from fsync.alarm import raise_alarm
from fsync.model import ActionRecord
from fsync.redact import Redactor
from fsync.runlog import RunMonitor, configure_console


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_monitor_logs_redacted_actions_and_summary(tmp_path: Path) -> None:
    log = tmp_path / "run.jsonl"
    red = Redactor.build(storage_options={"secret": "hush-hush-1"})
    warnings: list[str] = []
    with RunMonitor(
        command="pull",
        local="/data",
        remote="sftp://me:pw-9999@host/x",
        redactor=Redactor.build(urls=["sftp://me:pw-9999@host/x"], extra=red.secrets),
        log_file=str(log),
        warn=warnings.append,
    ) as monitor:
        monitor.action_done(ActionRecord("a.txt", "download", "done", bytes=5, seconds=0.25))
        monitor.action_done(
            ActionRecord("b.txt", "download", "failed", attempts=3, error="denied hush-hush-1")
        )
        full = monitor.finished({"failed": 1, "errors": [{"path": "b", "error": "x"}]}, 1)
    records = lines(log)
    assert [r["type"] for r in records] == ["action", "action", "summary"]
    assert records[1]["error"] == "denied ***"
    assert records[1]["attempts"] == 3
    assert records[2]["remote"] == "sftp://me:***@host/x"
    assert records[2]["summary"] == {"failed": 1, "errors": [{"path": "b", "error": "x"}]}
    assert full["run_id"] == records[0]["run_id"]
    assert "pw-9999" not in log.read_text()
    assert warnings == []


def test_alarm_gets_the_summary_only_on_failure(tmp_path: Path) -> None:
    out = tmp_path / "alarm.json"
    command = f"cat > '{out}'"
    red = Redactor()
    with RunMonitor(command="push", local="/l", remote="/r", redactor=red, on_error=command) as m:
        m.finished({"failed": 0}, 0)
    assert not out.exists()
    with RunMonitor(command="push", local="/l", remote="/r", redactor=red, on_error=command) as m:
        m.finished({"failed": 2}, 1)
    data = json.loads(out.read_text())
    assert (data["failed"], data["exit_code"], data["command"]) == (2, 1, "push")
    with RunMonitor(command="push", local="/l", remote="/r", redactor=red, on_error=command) as m:
        m.stopped("cannot list s3://b: no such bucket", 1)
    assert json.loads(out.read_text())["error"] == "cannot list s3://b: no such bucket"


def test_alarm_failures_are_warnings() -> None:
    seen: list[str] = []
    assert raise_alarm("exit 3", {}, seen.append) is False
    assert raise_alarm("cat > /dev/null", {"failed": 1}, seen.append) is True
    assert raise_alarm("sleep 5", {}, seen.append, timeout=0.2) is False
    assert seen == [
        "the --on-error command failed (exit status 3)",
        "the --on-error command did not finish within 0.2 s and was stopped",
    ]


@pytest.fixture
def fsync_logger() -> Iterator[logging.Logger]:
    """The `fsync` logger, restored afterwards (configure_console changes it process-wide)."""
    logger = logging.getLogger("fsync")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    yield logger
    logger.handlers[:], logger.level, logger.propagate = saved[0], saved[1], saved[2]


@pytest.mark.usefixtures("fsync_logger")
def test_console_logging_only_with_verbose_and_redacted(capsys) -> None:
    red = Redactor(secrets=("topsecret",))
    stream = io.StringIO()
    logger = logging.getLogger("fsync.test")
    configure_console(False, red, stream)
    logger.debug("hidden %s", "topsecret")
    # Warnings reach users through the Reporter; logging's last resort must stay quiet.
    logger.warning("not printed a second time")
    assert capsys.readouterr().err == ""
    assert stream.getvalue() == ""
    configure_console(True, red, stream)
    logger.debug("shown %s", "topsecret")
    configure_console(False, red, stream)
    assert stream.getvalue() == "fsync: debug: shown ***\n"
