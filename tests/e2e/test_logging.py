"""`--log-file`, `-v`, `--on-error` and the secrecy of credentials, through the command."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from fsynctest.caps import drop_dac_caps, unreadable
from fsynctest.trees import write

ACTION_FIELDS = {
    "time",
    "run_id",
    "type",
    "command",
    "path",
    "action",
    "bytes",
    "seconds",
    "attempts",
    "outcome",
    "error",
}

TREE = {"a.txt": "alpha", "b.txt": "bravo", "dir/c.txt": "charlie", "locked.txt": "private"}


def read_log(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def failing_src(tmp_path: Path):
    """A source tree whose `locked.txt` cannot be read (restored afterwards)."""
    src = tmp_path / "src"
    write(src, TREE)
    locked = src / "locked.txt"
    locked.chmod(0)
    yield src
    locked.chmod(0o644)


def test_failing_run_logs_each_action_and_the_summary(
    fsync, failing_src: Path, tmp_path: Path
) -> None:
    log = tmp_path / "logs" / "fsync.jsonl"
    log.parent.mkdir()
    res = fsync(
        "push", failing_src, tmp_path / "out", "--log-file", log, "--json", prefix=drop_dac_caps()
    )
    assert res.returncode == 1, res.stderr
    lines = read_log(log)
    actions = [line for line in lines if line["type"] == "action"]
    summaries = [line for line in lines if line["type"] == "summary"]
    assert len(summaries) == 1
    assert lines[-1] is summaries[0]
    assert {line["run_id"] for line in lines} == {summaries[0]["run_id"]}
    assert all(set(line) == ACTION_FIELDS for line in actions)
    by_path = {line["path"]: line for line in actions}
    assert set(by_path) == set(TREE)
    for name in ("a.txt", "b.txt", "dir/c.txt"):
        line = by_path[name]
        assert (line["action"], line["outcome"], line["error"]) == ("upload", "done", None)
        assert line["bytes"] == len(TREE[name])
        assert line["attempts"] == 1
        assert isinstance(line["seconds"], float)
    failed = by_path["locked.txt"]
    assert failed["outcome"] == "failed"
    assert "permission denied" in str(failed["error"]).lower()
    summary = summaries[0]
    assert summary["exit_code"] == 1
    assert summary["summary"] == json.loads(res.stdout)
    assert summary["summary"]["failed"] == 1  # type: ignore[index]
    assert (log.stat().st_mode & 0o777) == 0o600


def test_log_file_appends_runs(fsync, tmp_path: Path) -> None:
    src, log = tmp_path / "src", tmp_path / "log.jsonl"
    write(src, {"a.txt": "a"})
    assert fsync("push", src, tmp_path / "out", "--log-file", log).returncode == 0
    assert fsync("push", src, tmp_path / "out", "--log-file", log).returncode == 0
    lines = read_log(log)
    assert [line["type"] for line in lines] == ["action", "summary", "summary"]
    assert len({line["run_id"] for line in lines}) == 2


def test_unwritable_log_file_is_a_usage_error(fsync, tmp_path: Path) -> None:
    write(tmp_path / "src", {"a.txt": "a"})
    res = fsync("push", tmp_path / "src", tmp_path / "out", "--log-file", tmp_path / "no" / "x")
    assert res.returncode == 2
    assert "cannot open the log file" in res.stderr
    assert not (tmp_path / "out").exists()


def test_verbose_shows_debug_detail(fsync, tmp_path: Path) -> None:
    write(tmp_path / "src", {"a.txt": "a"})
    quiet = fsync("push", tmp_path / "src", tmp_path / "out")
    assert "debug" not in quiet.stderr
    (tmp_path / "src" / "b.txt").write_text("b")
    loud = fsync("push", tmp_path / "src", tmp_path / "out", "-v")
    assert loud.returncode == 0
    debug = [line for line in loud.stderr.splitlines() if line.startswith("fsync: debug: ")]
    assert any("local: 2 files" in line for line in debug)
    assert any(line.startswith("fsync: debug: upload b.txt: done") for line in debug)


def test_on_error_receives_the_summary(fsync, failing_src: Path, tmp_path: Path) -> None:
    alarm = tmp_path / "alarm.json"
    res = fsync(
        "push",
        failing_src,
        tmp_path / "out",
        "--json",
        "--on-error",
        f"cat > '{alarm}'",
        prefix=drop_dac_caps(),
    )
    assert res.returncode == 1
    summary = json.loads(alarm.read_text())
    assert summary["failed"] == 1
    assert summary["exit_code"] == 1
    assert summary["command"] == "push"
    assert [e["path"] for e in summary["errors"]] == ["locked.txt"]
    assert summary["uploaded"] == 3
    # stdout still holds exactly one JSON object.
    assert json.loads(res.stdout)["failed"] == 1


def test_a_watch_that_cannot_start_raises_the_alarm(fsync, tmp_path: Path) -> None:
    """A watch fires `--on-error` per path that keeps failing; one whose start failed (the
    remote unreachable) ended, exit 1, and told no one."""
    write(tmp_path / "src", {"a.txt": "a"})
    alarm = tmp_path / "alarm.json"
    res = fsync(
        "watch",
        tmp_path / "src",
        "s3://no-such-bucket/p",
        "--endpoint-url",
        "http://127.0.0.1:9",
        "--retries",
        "0",
        "--on-error",
        f"cat > '{alarm}'",
        timeout=60,
        env={"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y"},
    )
    assert res.returncode == 1, res.stderr
    summary = json.loads(alarm.read_text())
    assert (summary["command"], summary["exit_code"]) == ("watch", 1)
    assert "cannot reach http://127.0.0.1:9" in summary["error"]


def test_on_error_is_silent_when_nothing_fails(fsync, tmp_path: Path) -> None:
    write(tmp_path / "src", {"a.txt": "a"})
    fired = tmp_path / "fired"
    res = fsync("push", tmp_path / "src", tmp_path / "out", "--on-error", f"touch '{fired}'")
    assert res.returncode == 0
    assert not fired.exists()


@pytest.mark.parametrize(
    ("command", "warning"),
    [
        ("exit 7", "the --on-error command failed (exit status 7)"),
        ("no-such-command-fsync-test", "the --on-error command was not found"),
    ],
)
def test_a_failing_alarm_is_a_warning_only(
    fsync, failing_src: Path, tmp_path: Path, command: str, warning: str
) -> None:
    log = tmp_path / "log.jsonl"
    res = fsync(
        "push",
        failing_src,
        tmp_path / "out",
        "--on-error",
        command,
        "--log-file",
        log,
        prefix=drop_dac_caps(),
    )
    assert res.returncode == 1
    assert f"fsync: warning: {warning}" in res.stderr
    assert any(line["type"] == "warning" for line in read_log(log))


def test_on_error_fires_when_the_whole_run_fails(fsync, tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    write(src, {"a.txt": "a"})
    out.mkdir()
    alarm = tmp_path / "alarm.json"
    with unreadable(out):  # a remote it cannot list
        res = fsync("push", src, out, "--on-error", f"cat > '{alarm}'", prefix=drop_dac_caps())
    assert res.returncode == 1, res.stderr
    summary = json.loads(alarm.read_text())
    assert summary["exit_code"] == 1
    assert "error" in summary


def all_text(*paths: Path) -> bytes:
    out = b""
    for path in paths:
        for p in [path, *(path.rglob("*") if path.is_dir() else [])]:
            if p.is_file():
                out += p.read_bytes()
    return out


def test_no_secret_anywhere(fsync, s3_bucket, tmp_path: Path) -> None:
    """A failing S3 run with the secret key in env and -o: no output, log or state has it."""
    server, bucket = s3_bucket
    env = server.env()
    secret, access = server.secret_key, server.access_key
    src = tmp_path / "src"
    write(src, TREE)
    locked = src / "locked.txt"
    locked.chmod(0)
    log, alarm = tmp_path / "log.jsonl", tmp_path / "alarm.json"
    url = f"s3://{bucket}/secrets"
    common = ["-v", "--log-file", log, "--on-error", f"cat >> '{alarm}'"]
    creds = ["-o", f"key={access}", "-o", f"secret={secret}"]
    try:
        runs = [
            fsync("push", src, url, *common, *creds, env=env, prefix=drop_dac_caps()),
            fsync("push", src, url, "--json", *common, env=env, prefix=drop_dac_caps()),
            # Credentials in the URL's userinfo: refused, but never echoed.
            fsync("push", src, f"s3://{access}:{secret}@{bucket}/x", *common, env=env),
            fsync("status", src, env=env),
            fsync("status", src, "--json", env=env),
            fsync("verify", src, url, "-v", "--json", *creds, env=env),
            fsync("watch", src, f"s3://{access}:{secret}@{bucket}/x", "--json", env=env),
        ]
    finally:
        locked.chmod(0o644)
    assert runs[0].returncode == 1, runs[0].stderr
    assert runs[1].returncode == 1, runs[1].stderr
    assert runs[2].returncode != 0
    assert alarm.exists()
    with sqlite3.connect(src / ".fsync" / "state.db") as db:
        stored = repr(db.execute("SELECT * FROM runs").fetchall())
        stored += repr(db.execute("SELECT * FROM remotes").fetchall())
    outputs = "".join(r.stdout + r.stderr for r in runs) + stored
    files = all_text(log, alarm, src / ".fsync")
    for value in (secret, access):
        assert value not in outputs
        assert value.encode() not in files
    # The runs did happen and were logged: the grep looked at real output, including an
    # error that echoed the URL (its userinfo masked) and the run history.
    assert "upload a.txt" in runs[0].stdout
    assert '"type":"summary"' in log.read_text()
    assert "s3://***@" in runs[2].stderr
    assert runs[6].returncode == 1
    assert "s3://***@" in runs[6].stderr
    assert "cannot read" in runs[3].stdout
