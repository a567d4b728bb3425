"""`fsync cleanup REMOTE`: unfinished writes go, finished files stay."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from fsync.manifest.journal import TransferJournal
from fsync.manifest.lock import RootLock
from fsync.model import PartialDownload, PendingUpload, RelPath
from fsync.paths import is_temp_name
from fsync.remote import open_remote
from fsynctest.commands import fsync_command
from fsynctest.trees import listing, write

if TYPE_CHECKING:
    from collections.abc import Callable

    from conftest import ProxiedBucket, S3Server


def test_cleanup_removes_stale_temp_files_only(fsync, tmp_path: Path) -> None:
    """A temp file written just now stays, though it carries its source's old mtime (age is
    judged by ctime, see the local conformance tests). Without an age, so do those changed
    in the last two minutes, which a running fsync may be writing (removing one failed its
    file); `--older-than 0` takes them all."""
    remote = tmp_path / "remote"
    (remote / "dir").mkdir(parents=True)
    (remote / "keep.txt").write_text("kept")
    staged = remote / "dir" / ".fsync-0123456789abcdef.tmp"
    staged.write_text("being written, with the source's mtime")
    fresh = remote / ".fsync-fedcba9876543210.tmp"
    fresh.write_text("being written")
    old = time.time() - 7200
    os.utime(staged, (old, old))

    res = fsync("cleanup", remote, "--older-than", "1h", "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == {"aborted": 0}
    assert staged.exists()
    assert fresh.exists()

    res = fsync("cleanup", remote)
    assert res.returncode == 0, res.stderr
    assert "aborted 0 unfinished uploads" in res.stdout
    assert staged.exists()

    res = fsync("cleanup", remote, "--older-than", "0")
    assert res.returncode == 0, res.stderr
    assert "aborted 2 unfinished uploads" in res.stdout
    assert sorted(p.name for p in remote.rglob("*") if p.is_file()) == ["keep.txt"]


def test_status_forgets_the_partial_downloads_cleanup_removed(fsync, tmp_path: Path) -> None:
    """`cleanup LOCAL` removed a killed pull's temp file, and `status LOCAL` still listed the
    partial download as on disk."""
    local = tmp_path / "local"
    write(local, {"a.txt": "a"})
    assert fsync("push", local, tmp_path / "out").returncode == 0
    (local / "sub").mkdir()
    temp = ".fsync-00000000deadbeef.tmp"
    (local / "sub" / temp).write_bytes(b"x" * 1000)
    row = PartialDownload(
        RelPath("sub/big.bin"), "s3://b/p", "etag-1", 100 << 20, temp, 16 << 20, b"", time.time()
    )
    with TransferJournal.open(str(local)) as journal:
        journal.begin_download(row)
    assert "sub/big.bin: " in fsync("status", local).stdout

    res = fsync("cleanup", local, "--older-than", "0")
    assert res.returncode == 0, res.stderr
    assert "aborted 1 unfinished uploads" in res.stdout
    shown = fsync("status", local)
    assert "partial downloads" not in shown.stdout
    assert "sub/big.bin" not in shown.stdout
    assert json.loads(fsync("status", local, "--json").stdout)["partial_downloads"] == []


def test_cleanup_of_a_synced_folder_given_as_its_own_local_takes_its_lock_once(
    fsync, tmp_path: Path
) -> None:
    """Cleanup locks each local root it touches; one named twice (REMOTE and `--local`, the
    second time through a link) must not find its own first lock held."""
    local = tmp_path / "local"
    write(local, {"a.txt": "a"})
    assert fsync("push", local, tmp_path / "out").returncode == 0
    (local / ".fsync-0123456789abcdef.tmp").write_text("left by a killed pull")
    (tmp_path / "link").symlink_to(local)
    res = fsync("cleanup", local, "--local", tmp_path / "link", "--older-than", "0", "--json")
    assert (res.returncode, json.loads(res.stdout)) == (0, {"aborted": 1}), res.stderr


def test_cleanup_of_a_folder_inside_a_root_another_fsync_holds_is_refused(
    fsync, tmp_path: Path
) -> None:
    """`fsync cleanup ROOT/sub` removed ROOT's temp files holding no lock of ROOT, those of a
    pull writing into ROOT among them (review): it takes ROOT's lock, as cleanup of ROOT
    does, and stops before discarding anything while another fsync holds it."""
    root = tmp_path / "root"
    write(root, {"sub/a.txt": "a"})
    assert fsync("push", root, tmp_path / "out", "-q").returncode == 0
    temp = root / "sub" / ".fsync-0123456789abcdef.tmp"  # what a running pull is writing
    temp.write_text("partial")

    with RootLock(str(root)):
        res = fsync("cleanup", root / "sub", "--older-than", "0")

    assert res.returncode == 2, res.stdout
    assert f"is already working on {root}; wait for it to finish" in res.stderr
    assert temp.read_text() == "partial"


def test_cleanup_of_a_folder_holding_a_synced_root_respects_it(fsync, tmp_path: Path) -> None:
    """`fsync cleanup PARENT` removed the temp file of a pull running into PARENT/root (the
    pull then failed), and after a killed pull left the partial download listed in `status
    PARENT/root` though its file was gone (verify tester): the roots inside are locked and
    their journals told, as those above are."""
    parent = tmp_path / "parent"
    root = parent / "deep" / "root"
    write(root, {"a.txt": "a"})
    assert fsync("push", root, tmp_path / "out", "-q").returncode == 0
    temp = ".fsync-00000000deadbeef.tmp"
    (root / temp).write_bytes(b"x" * 1000)
    row = PartialDownload(
        RelPath("big.bin"), "s3://b/p", "etag-1", 100 << 20, temp, 16 << 20, b"", time.time()
    )
    with TransferJournal.open(str(root)) as journal:
        journal.begin_download(row)

    with RootLock(str(root)):  # (a pull running into it)
        res = fsync("cleanup", parent, "--older-than", "0")
    assert res.returncode == 2, res.stdout
    assert f"is already working on {root}; wait for it to finish" in res.stderr
    assert (root / temp).exists()

    res = fsync("cleanup", parent, "--older-than", "0")  # (the pull was killed)
    assert "aborted 1 unfinished uploads" in res.stdout, res.stderr
    assert json.loads(fsync("status", root, "--json").stdout)["partial_downloads"] == []


def test_cleanup_through_fsspec_keeps_fresh_temp_files_too(fsync, tmp_path: Path) -> None:
    """`local://` goes through fsspec (as sftp would): the same in-use window applies."""
    (tmp_path / "r").mkdir()
    fresh = tmp_path / "r" / ".fsync-0123456789abcdef.tmp"
    fresh.write_text("being written by a running push")
    url = f"local://{tmp_path}/r"
    res = fsync("cleanup", url, "--json")
    assert (res.returncode, json.loads(res.stdout)) == (0, {"aborted": 0})
    res = fsync("cleanup", url, "--older-than", "0", "--json")
    assert (res.returncode, json.loads(res.stdout)) == (0, {"aborted": 1})
    assert not fresh.exists()
    res = fsync("cleanup", f"local://{tmp_path}/nope")
    assert res.returncode == 2
    assert "does not exist" in res.stderr


def test_cleanup_of_a_missing_folder_is_a_usage_error(fsync, tmp_path: Path) -> None:
    res = fsync("cleanup", tmp_path / "nope")
    assert res.returncode == 2
    assert res.stderr.startswith("fsync: error: remote file://")
    assert "is not an existing folder" in res.stderr


def test_cleanup_rejects_a_bad_duration(fsync, tmp_path: Path) -> None:
    res = fsync("cleanup", tmp_path, "--older-than", "soon")
    assert res.returncode == 2
    assert res.stderr.startswith("fsync: error: invalid duration")


@pytest.mark.s3
def test_cleanup_aborts_unfinished_multipart_uploads(
    fsync, s3_bucket: tuple[S3Server, str]
) -> None:
    server, bucket = s3_bucket
    client = server.boto3_client()
    try:
        inside = client.create_multipart_upload(Bucket=bucket, Key="tree/big.bin")["UploadId"]
        client.upload_part(
            Bucket=bucket, Key="tree/big.bin", UploadId=inside, PartNumber=1, Body=b"x" * 1024
        )
        client.create_multipart_upload(Bucket=bucket, Key="elsewhere/other.bin")
        client.put_object(Bucket=bucket, Key="tree/done.txt", Body=b"done")

        if server.name != "moto":  # moto reports every upload as initiated in 2010
            kept = fsync("cleanup", f"s3://{bucket}/tree", "--older-than", "1h", env=server.env())
            assert kept.returncode == 0, kept.stderr
            assert "aborted 0" in kept.stdout

        # A part sent just now: a running push's upload, which cleanup leaves by default.
        res = fsync("cleanup", f"s3://{bucket}/tree", "--json", env=server.env())
        assert (res.returncode, json.loads(res.stdout)) == (0, {"aborted": 0}), res.stderr
        res = fsync("cleanup", f"s3://{bucket}/tree", "--older-than", "0", env=server.env())
        assert res.returncode == 0, res.stderr
        assert "aborted 1 unfinished uploads" in res.stdout
        left = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        assert [u["Key"] for u in left] == ["elsewhere/other.bin"]
        assert client.get_object(Bucket=bucket, Key="tree/done.txt")["Body"].read() == b"done"
    finally:
        client.close()


@pytest.mark.s3
def test_status_forgets_the_uploads_cleanup_aborted(
    fsync, s3_bucket: tuple[S3Server, str], tmp_path: Path
) -> None:
    """`cleanup s3://...` aborted a killed push's multipart upload, and `status LOCAL` still
    listed it as unfinished. Run in LOCAL, or given `--local LOCAL`, cleanup makes LOCAL's
    journal forget the uploads it aborts, and those the store no longer holds."""
    server, bucket = s3_bucket
    local, other = tmp_path / "local", tmp_path / "other"
    client = server.boto3_client()
    try:
        ids = [
            client.create_multipart_upload(Bucket=bucket, Key=f"tree/{name}")["UploadId"]
            for name in ("big.bin", "huge.bin")
        ]
    finally:
        client.close()
    remote = open_remote(f"s3://{bucket}/tree", storage_options=server.storage_options())
    try:
        owner = remote.key  # (the remote whose run journaled them)
    finally:
        remote.close()
    for root, name, upload_id in ((local, "big.bin", ids[0]), (other, "huge.bin", ids[1])):
        write(root, {"a.txt": "a"})
        target = f"s3://{bucket}/tree/{name}"
        with TransferJournal.open(str(root)) as journal:
            journal.start(PendingUpload(target, upload_id, "ab" * 32, 1, 1, 0.0, owner=owner))
    assert f"s3://{bucket}/tree/big.bin" in fsync("status", local).stdout

    res = fsync("cleanup", f"s3://{bucket}/tree", "--older-than", "0", cwd=local, env=server.env())
    assert res.returncode == 0, res.stderr
    assert "aborted 2 unfinished uploads" in res.stdout
    assert "unfinished uploads" not in fsync("status", local).stdout
    assert json.loads(fsync("status", local, "--json").stdout)["unfinished_uploads"] == []
    assert f"s3://{bucket}/tree/huge.bin" in fsync("status", other).stdout
    res = fsync(
        "cleanup", f"s3://{bucket}/tree", "--older-than", "0", "--local", other, env=server.env()
    )
    assert res.returncode == 0, res.stderr
    assert "aborted 0 unfinished uploads" in res.stdout  # gone from the store already
    assert "unfinished uploads" not in fsync("status", other).stdout


@pytest.mark.s3
@pytest.mark.slow
def test_cleanup_on_another_store_keeps_the_record_of_this_ones_upload(
    fsync, moto_server: S3Server, other_moto_server: S3Server, tmp_path: Path
) -> None:
    """A push killed mid-upload to s3://b/tree on one store, then `cleanup s3://b/tree
    --local LOCAL` on another: that store holds no such upload, and cleanup made LOCAL
    forget it, so the next push started the file over and left the first upload's parts on
    its store, billed (verify tester). Its record stays until its own store's cleanup."""
    bucket, local = "fsync-two-stores", tmp_path / "local"
    write(local, {"big.bin": os.urandom(30 << 20)})
    clients = [moto_server.boto3_client(), other_moto_server.boto3_client()]
    try:
        for client in clients:
            client.create_bucket(Bucket=bucket)
        url, env = f"s3://{bucket}/tree", moto_server.env()
        run = _start_fsync(
            "push", local, url, "--bw-limit", "5MiB/s", "--chunk-size", "5MiB", "-q", env=env
        )
        try:
            uploads = clients[0].list_multipart_uploads
            _wait_until(lambda: uploads(Bucket=bucket).get("Uploads"), run)
            time.sleep(1.5)  # (its first part sent, and the upload journaled)
        finally:
            run.send_signal(signal.SIGKILL)
            run.communicate()
        other = other_moto_server.env()
        res = fsync("cleanup", url, "--older-than", "0", "--local", local, env=other)
        assert (res.returncode, res.stdout) == (
            0,
            f"cleanup: aborted 0 unfinished uploads under {url}\n",
        )
        shown = json.loads(fsync("status", local, "--json").stdout)["unfinished_uploads"]
        assert [u["target"] for u in shown] == [f"{url}/big.bin"], shown
        res = fsync("cleanup", url, "--older-than", "0", "--local", local, env=env)
        assert "aborted 1 unfinished uploads" in res.stdout, res.stderr
        assert json.loads(fsync("status", local, "--json").stdout)["unfinished_uploads"] == []
    finally:
        for client in clients:
            client.close()


@pytest.mark.s3
def test_cleanup_reads_the_config_file_as_the_other_commands_do(
    fsync, s3_bucket: tuple[S3Server, str], tmp_path: Path
) -> None:
    """In a folder whose `.fsync/config.toml` gives `endpoint-url`, push and verify reached
    the store and `cleanup` went to AWS's default endpoint instead (with real credentials,
    to a bucket of the same name there). It reads the file now, `remote` included."""
    server, bucket = s3_bucket
    client = server.boto3_client()
    try:
        client.create_multipart_upload(Bucket=bucket, Key="tree/big.bin")
        local = tmp_path / "local"
        write(local, {"a.txt": "a"})
        (local / ".fsync").mkdir()
        (local / ".fsync" / "config.toml").write_text(
            f'remote = "s3://{bucket}/tree"\nendpoint-url = "{server.endpoint_url}"\n'
            '[cleanup]\nolder-than = "0"\n'
        )
        env = server.env()
        del env["AWS_ENDPOINT_URL_S3"]  # (the file's endpoint or none)
        assert fsync("push", cwd=local, env=env).returncode == 0
        res = fsync("cleanup", f"s3://{bucket}/tree", "--json", cwd=local, env=env)
        assert (res.returncode, res.stdout) == (0, '{"aborted": 1}\n'), res.stderr
        client.create_multipart_upload(Bucket=bucket, Key="tree/huge.bin")
        res = fsync("cleanup", "--local", local, env=env, cwd=tmp_path)
        assert res.returncode == 0, res.stderr
        assert f"aborted 1 unfinished uploads under s3://{bucket}/tree" in res.stdout
        assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
        res = fsync("cleanup", cwd=tmp_path, env=env)
        assert res.returncode == 2
        assert res.stderr.startswith("fsync: error: no REMOTE given")
    finally:
        client.close()


@pytest.mark.s3
@pytest.mark.slow
@pytest.mark.parametrize("running", ["push", "pull"])
def test_cleanup_refuses_a_root_a_running_fsync_holds(
    fsync, s3_bucket: tuple[S3Server, str], tmp_path: Path, running: str
) -> None:
    """`cleanup s3://... --local LOCAL --older-than 0` aborted the upload of a push running
    from LOCAL, and `cleanup LOCAL --older-than 0` removed the temp file of a pull running
    into LOCAL: both runs then failed. What they are writing is in use whatever its age:
    cleanup stops before discarding anything, naming the holder as a push or pull would, and
    the run ends well."""
    server, bucket = s3_bucket
    url, env = f"s3://{bucket}/tree", server.env()
    data = os.urandom(30 << 20)
    local, back = tmp_path / "local", tmp_path / "back"
    write(local, {"big.bin": data})
    slow = ("--bw-limit", "5MiB/s", "--chunk-size", "5MiB", "--quiet")

    if running == "push":
        client = server.boto3_client()
        try:
            run = _start_fsync("push", local, url, *slow, env=env)
            _wait_until(lambda: client.list_multipart_uploads(Bucket=bucket).get("Uploads"), run)
        finally:
            client.close()
        tries = [(url, "--local", local), (url,)]  # the second from LOCAL, its default
        root = local
    else:
        assert fsync("push", local, url, env=env).returncode == 0
        back.mkdir()
        run = _start_fsync("pull", url, back, *slow, env=env)
        _wait_until(lambda: [p for p in back.iterdir() if p.name.startswith(".fsync-")], run)
        tries = [(back, "--json")]
        root = back
    try:
        for args in tries:
            res = fsync("cleanup", *args, "--older-than", "0", cwd=local, env=env)
            assert res.returncode == 2, res.stdout
            assert res.stderr == (
                f"fsync: error: another fsync (pid {run.pid}) is already working on "
                f"{root}; wait for it to finish\n"
            )
    finally:
        _, stderr = run.communicate(timeout=120)
    assert run.returncode == 0, stderr
    if running == "pull":
        assert (back / "big.bin").read_bytes() == data
    res = fsync("cleanup", *tries[0], "--older-than", "0", cwd=local, env=env)
    assert res.returncode == 0, res.stderr
    assert "aborted 0" in res.stdout or json.loads(res.stdout) == {"aborted": 0}


def _start_fsync(*args: str | os.PathLike[str], env: dict[str, str]) -> subprocess.Popen[str]:
    """`fsync ARGS...` running in the background, its output kept."""
    command = [fsync_command(), *map(str, args)]
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _wait_until(check: Callable[[], object], process: subprocess.Popen[str]) -> None:
    """Poll `check` until it is true while `process` runs."""
    deadline = time.monotonic() + 60
    while not check():
        assert process.poll() is None, f"fsync ended too soon: {process.communicate()}"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _kill_while_writing(
    temps: Callable[[], list[Path]], *args: str | os.PathLike[str], env: dict[str, str]
) -> None:
    """Run `fsync ARGS...` and `kill -9` it once one of `temps()` holds bytes: it leaves
    that temp file behind, as a crash would."""
    run = _start_fsync(*args, env=env)
    try:
        _wait_until(lambda: [p for p in temps() if p.stat().st_size], run)
    finally:
        os.kill(run.pid, signal.SIGKILL)
        run.communicate(timeout=60)
    assert temps(), f"the killed {args[0]} left its temp file"


def _watch_until(
    check: Callable[[], object], *args: str | os.PathLike[str], env: dict[str, str]
) -> None:
    """Run `fsync watch ARGS...` until `check()` holds, then stop it as a service manager
    does (SIGTERM): it must end cleanly."""
    watch = _start_fsync("watch", *args, env=env)
    try:
        _wait_until(check, watch)
    finally:
        watch.send_signal(signal.SIGTERM)
        _, stderr = watch.communicate(timeout=60)
    assert watch.returncode == 0, stderr


@pytest.mark.s3
@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
@pytest.mark.parametrize("after", ["pull", "sync", "watch"])
def test_the_next_run_removes_the_temp_files_of_a_killed_pull(
    fsync, s3_bucket: tuple[S3Server, str], tmp_path: Path, after: str
) -> None:
    """`kill -9` of a pull leaves the temp file it was writing, and only `fsync cleanup
    LOCAL` removed it. The next run of LOCAL removes it as its scan meets it (a watch at
    its first scan), and a pull or sync ends with the tree equal to the remote; a user's
    file of a temp file's form stays (no run of LOCAL made it)."""
    server, bucket = s3_bucket
    url, env = f"s3://{bucket}/tree", server.env()
    src, dst = tmp_path / "src", tmp_path / "dst"
    write(src, {"small.txt": "small", "dir/big.bin": os.urandom(4 << 20)})
    assert fsync("push", src, url, env=env).returncode == 0
    mine = ".fsync-0123456789abcdef.tmp"
    write(dst, {f"dir/{mine}": "a user's file"})

    def temps() -> list[Path]:
        return [p for p in (dst / "dir").iterdir() if is_temp_name(p.name) and p.name != mine]

    _kill_while_writing(temps, "pull", url, dst, "--bw-limit", "1MiB/s", "--quiet", env=env)

    if after == "watch":
        _watch_until(lambda: not temps(), dst, url, "--quiet", env=env)
        assert (dst / "dir" / mine).read_text() == "a user's file"
        return
    args = (url, dst) if after == "pull" else (dst, url)
    again = fsync(after, *args, env=env)

    assert again.returncode == 0, again.stderr
    assert temps() == []
    assert listing(dst) == {**listing(src), f"dir/{mine}": b"a user's file"}


@pytest.mark.parametrize("after", ["push", "sync", "pull", "watch"])
def test_the_next_run_removes_the_temp_files_a_killed_push_left_in_a_folder_remote(
    fsync, tmp_path: Path, after: str
) -> None:
    """`kill -9` of a push to a folder remote leaves the temp file it was writing there, and
    the remote's listing skips temp names: only `fsync cleanup` removed it, by age. The next
    run of the same root removes it (a watch at its first scan), a dry run first leaving it;
    a temp file of another token (another machine's or root's run, writing into the same
    folder) stays, as does a user's file of a temp name's form."""
    src, out = tmp_path / "src", tmp_path / "out"
    env = dict(os.environ)
    write(src, {"small.txt": "small", "dir/big.bin": os.urandom(1 << 20) * 256})
    theirs = ".fsync-0123456789abcdef.tmp"  # a token no run of `src` had
    users = ".fsync-notes.tmp"
    write(out, {f"dir/{theirs}": "another machine's upload", users: "a user's file"})

    def temps() -> list[Path]:
        return [p for p in (out / "dir").iterdir() if is_temp_name(p.name) and p.name != theirs]

    _kill_while_writing(temps, "push", src, out, "--quiet", env=env)
    command = "push" if after == "watch" else after
    args = (out, src) if after == "pull" else (src, out)
    dry = fsync(command, *args, "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert temps(), "a dry run deletes nothing"

    if after == "watch":
        sent = (out / "small.txt", out / "dir" / "big.bin")
        _watch_until(lambda: not temps() and all(p.exists() for p in sent), src, out, "-q", env=env)
    else:
        again = fsync(after, *args, env=env)
        assert again.returncode == 0, again.stderr
    assert temps() == []
    theirs_and_users = {f"dir/{theirs}": b"another machine's upload", users: b"a user's file"}
    if after == "pull":
        assert theirs_and_users.items() <= listing(out).items()
        assert listing(src).keys() == {"small.txt", "dir/big.bin", users}
    else:
        assert listing(out) == {**listing(src), **theirs_and_users}


@pytest.mark.s3
@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
def test_an_upload_the_store_completed_as_the_run_was_killed_is_not_left_unfinished(
    fsync,
    fsync_started,
    s3_bucket: tuple[S3Server, str],
    s3_proxy: ProxiedBucket,
    tmp_path: Path,
) -> None:
    """`kill -9` after the store completed a multipart upload, before its answer came: the
    next runs adopt the object, yet `fsync status` listed the upload as unfinished through
    every one of them, until a `cleanup --older-than 0s` (crash tester). The next push
    forgets it: the version it was sending is the one synced."""
    server, bucket = s3_proxy.server, s3_proxy.bucket
    src, url = tmp_path / "src", f"s3://{bucket}/p"
    write(src, {"big.bin": os.urandom(20 << 20), "small.txt": "s"})
    hold = s3_proxy.proxy.add_rule("CompleteMultipartUpload", action="delay", delay=60)
    run = fsync_started("push", src, url, "--chunk-size", "8MiB", env=server.env())
    try:
        _wait_until(lambda: hold.fired == 1, run)
        direct = s3_bucket[0].boto3_client()  # (past the proxy, which holds fsync's)
        (upload,) = direct.list_multipart_uploads(Bucket=bucket)["Uploads"]
        parts = direct.list_parts(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
        direct.complete_multipart_upload(
            Bucket=bucket,
            Key=upload["Key"],
            UploadId=upload["UploadId"],
            MultipartUpload={
                "Parts": [{k: p[k] for k in ("PartNumber", "ETag")} for p in parts["Parts"]]
            },
        )
        run.kill()
        run.wait(timeout=60)
    finally:
        hold.released.set()
    for _ in range(2):
        assert fsync("push", src, url, "-q", env=server.env()).returncode == 0
    status = fsync("status", src, "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["unfinished_uploads"] == []
