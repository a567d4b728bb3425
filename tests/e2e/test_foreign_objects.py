"""Objects another tool wrote, with metadata or names fsync cannot use, through the command.

A store holds whatever its other writers put there; one object's nonsense must cost that
object at most, never the rest of the pull, and its name must not act on the terminal of
the person reading fsync's output.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from typing import TYPE_CHECKING

import pytest

from fsynctest.commands import fsync_command
from fsynctest.trees import listing
from fsynctest.watching import eventually

if TYPE_CHECKING:
    from pathlib import Path

    from conftest import S3Server

pytestmark = pytest.mark.s3


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
@pytest.mark.parametrize(
    "metadata",
    [{"mode": "-1"}, {"mode": "7" * 22}, {"mtime": "9" * 4400}],
    ids=["negative-mode", "huge-mode", "huge-mtime"],
)
def test_absurd_metadata_is_ignored_and_the_pull_goes_on(
    fsync, s3_bucket: tuple[S3Server, str], tmp_path: Path, metadata: dict[str, str]
) -> None:
    """An out-of-range `mode` raised OverflowError and 4,400 digits of `mtime` a ValueError:
    the pull stopped with exit 1 and fetched nothing. They are read as absent instead."""
    server, bucket = s3_bucket
    client = server.boto3_client()
    try:
        client.put_object(Bucket=bucket, Key="p/bad.txt", Body=b"bad", Metadata=metadata)
        client.put_object(Bucket=bucket, Key="p/good.txt", Body=b"good")
    finally:
        client.close()
    res = fsync("pull", f"s3://{bucket}/p", tmp_path / "local", env=server.env())
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    assert listing(tmp_path / "local") == {"bad.txt": b"bad", "good.txt": b"good"}


CONTROL_KEYS = {
    "esc": "p/esc\x1b[2J\x1b]0;pwned\x07.txt",  # clear the screen, retitle the window
    "c1": "p/csi\x9b31m.txt",  # the one-byte CSI: a name fsync takes, and shows
    "del-tab": "p/del\x7f\ttab.txt",
}
FORGED = "fsync: pull: 0 failed, all OK"


def test_names_with_control_characters_reach_no_terminal_raw(
    fsync, s3_bucket: tuple[S3Server, str], tmp_path: Path
) -> None:
    """Every line fsync prints shows a remote key's control characters escaped: the raw
    ones cleared the user's screen, and a newline (Ceph takes one in a key; moto does not)
    forged a line of fsync's own."""
    server, bucket = s3_bucket
    keys = dict(CONTROL_KEYS)
    if server.name == "ceph":
        keys["newline"] = f"p/nl\n{FORGED}.txt"
    client = server.boto3_client()
    try:
        for key in [*keys.values(), "p/ok.txt"]:
            client.put_object(Bucket=bucket, Key=key, Body=b"x")
    finally:
        client.close()
    url, local, env = f"s3://{bucket}/p", tmp_path / "local", server.env()
    runs = {
        "pull": fsync("pull", url, local, env=env),
        "pull -v": fsync("pull", url, local, "-v", env=env),
        "push": fsync("push", local, url, env=env),
        "status": fsync("status", local, env=env),
        "verify": fsync("verify", local, url, env=env),
        "pull --json": fsync("pull", url, local, "--json", env=env),
    }
    for name, res in runs.items():
        for stream in (res.stdout, res.stderr):
            raw = {c for c in stream if c != "\n" and (c < " " or "\x7f" <= c <= "\x9f")}
            assert not raw, (name, stream)
            assert not any(line.startswith(FORGED) for line in stream.splitlines()), name
    assert runs["pull"].returncode == 1  # the keys that map to no local name failed
    assert "download csi\\x9b31m.txt" in runs["pull"].stdout.splitlines()
    refused = runs["pull"].stderr.splitlines()
    shown = "fsync: error: esc\\x1b[2J\\x1b]0;pwned\\x07.txt: refused remote key: "
    assert any(line.startswith(shown) for line in refused)
    assert all(line.startswith("fsync: error: ") for line in refused)
    assert len(refused) == len(keys) - 1  # each refused key on one line of its own
    assert json.loads(runs["pull --json"].stdout)["errors"]


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
def test_a_push_says_which_remote_names_a_pull_refuses(
    fsync, s3_bucket: tuple[S3Server, str], tmp_path: Path
) -> None:
    """A file and a folder of one name, and a 300-byte name, are names this folder cannot
    hold: the push counted them as changes left for `fsync pull`, which refuses them."""
    server, bucket = s3_bucket
    long = "x" * 300
    client = server.boto3_client()
    try:
        for key in ("p/a", "p/a/b", f"p/{long}"):
            client.put_object(Bucket=bucket, Key=key, Body=b"theirs")
    finally:
        client.close()
    url, local, env = f"s3://{bucket}/p", tmp_path / "local", server.env()
    (local / "mine.txt").parent.mkdir()
    (local / "mine.txt").write_text("mine")

    pushed = fsync("push", local, url, env=env)
    assert pushed.returncode == 0, pushed.stderr
    assert "left for the other direction" not in pushed.stdout
    assert pushed.stdout.splitlines()[-1] == (
        "3 remote changes have names this folder cannot hold, and are left alone "
        "(fsync pull refuses them; -v lists why)"
    )
    pulled = fsync("pull", url, local, env=env)
    assert pulled.returncode == 1
    both = "the remote holds both a file a and files under a/, which no folder can hold"
    too_long = "a name of 300 bytes is longer than the 255 the local filesystem holds"
    assert f"fsync: error: a: {both}" in pulled.stderr
    assert f"fsync: error: {long}: {too_long}" in pulled.stderr
    verbose = fsync("push", local, url, "-v", env=env)
    assert f"skipped a/b: {both}; both are left alone (rename one on the remote)" in (
        verbose.stdout
    )
    assert f"skipped {long}: {too_long}" in verbose.stdout
    summary = json.loads(fsync("push", local, url, "--json", env=env).stdout)
    assert {s["path"]: s["reason"] for s in summary["skipped"]}[long] == too_long


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
def test_a_watch_leaves_names_this_folder_cannot_hold_alone_and_says_so_once(
    s3_bucket: tuple[S3Server, str], tmp_path: Path
) -> None:
    """`--pull-every` fetched them each pull: the long name failed ("cannot read") and `a`
    made a conflict with the folder `a/b` had made, both again on every pull."""
    server, bucket = s3_bucket
    long = "x" * 300
    client = server.boto3_client()
    try:
        for key in ("p/a", "p/a/b", f"p/{long}", "p/ok.txt"):
            client.put_object(Bucket=bucket, Key=key, Body=b"theirs")
    finally:
        client.close()
    local = tmp_path / "local"
    local.mkdir()
    command = [fsync_command(), "watch", str(local), f"s3://{bucket}/p", "--pull-every", "0.2"]
    with subprocess.Popen(
        command,
        env={**os.environ, **server.env()},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as watching:
        eventually((local / "ok.txt").exists, "the file it can hold pulled")
        time.sleep(1.5)  # several more pulls
        watching.send_signal(signal.SIGINT)
        out, err = watching.communicate(timeout=60)
    assert watching.returncode == 0, err
    assert listing(local) == {"ok.txt": b"theirs"}
    both = "the remote holds both a file a and files under a/, which no folder can hold"
    too_long = "a name of 300 bytes is longer than the 255 the local filesystem holds"
    warnings = [line for line in err.splitlines() if line.startswith("fsync: warning")]
    assert warnings == [
        f"fsync: warning: not pulled: a: {both}; both are left alone (rename one on the remote)",
        f"fsync: warning: not pulled: {long}: {too_long}",
    ]
    assert "conflict a" not in out
    assert ": conflict:" not in err


KELVIN = "\u212a"
"""KELVIN SIGN, whose NFC form is the letter K: a name spelled with it is the path "K"."""
KELVIN_TWINS = sorted(
    "fsync: error: K: another name in its folder has the same NFC form (this one is written "
    f"in {this}, the other in {other}); rename one of them"
    for this, other in (("NFC", "neither NFC nor NFD"), ("neither NFC nor NFD", "NFC"))
)


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
def test_a_name_whose_nfc_form_is_an_ascii_name_beside_it_is_refused_as_a_twin(
    fsync, s3_bucket: tuple[S3Server, str], tmp_path: Path
) -> None:
    """Files `K` and `\u212a` (KELVIN SIGN) in one folder are one path, K, as NFD/NFC twins
    are. Only those were refused: a push sent one version as K and the other never, with
    exit 0, and a pull into an empty folder brought back that one alone. Both are refused
    now, to S3 and to a folder alike; a remote holding both keys keeps a pull off both."""
    server, bucket = s3_bucket
    env = server.env()
    local = tmp_path / "local"
    local.mkdir()
    (local / "K").write_text("plain")
    (local / KELVIN).write_text("kelvin")
    (local / "other").write_text("o")
    for n, url in enumerate((f"s3://{bucket}/p", str(tmp_path / "folder"))):
        for command in ("push", "sync", "push"):
            res = fsync(command, local, url, env=env)
            assert res.returncode == 1, (url, res.stdout, res.stderr)
            assert sorted(res.stderr.splitlines()) == KELVIN_TWINS
            assert ", 2 failed, " in res.stdout
        back = tmp_path / f"back{n}"
        pulled = fsync("pull", url, back, env=env)
        assert pulled.returncode == 0, pulled.stderr
        assert listing(back) == {"other": b"o"}
    client = server.boto3_client()
    try:
        client.put_object(Bucket=bucket, Key="both/K", Body=b"plain, theirs")
        client.put_object(Bucket=bucket, Key=f"both/{KELVIN}", Body=b"kelvin, theirs")
        client.put_object(Bucket=bucket, Key="both/other", Body=b"o")
    finally:
        client.close()
    into = tmp_path / "into"
    pulled = fsync("pull", f"s3://{bucket}/both", into, env=env)
    assert pulled.returncode == 1
    assert pulled.stderr.splitlines() == [
        f"fsync: error: {KELVIN}: refused remote key: is not NFC-normalised Unicode; "
        "the name spelled in NFC is left alone while this key exists"
    ]
    assert listing(into) == {"other": b"o"}
