"""local->S3 and S3->local scenarios: fsync against rclone, aws s3 sync and s3cmd sync.

Every tool talks to the server through the counting proxy of tests/fsynctest/proxy.py, so
each run's row shows the requests the server received, by S3 operation. Set-up and clean-up
(creating and emptying buckets, checking object counts) go straight to the server, outside
the counts and outside the timings. Each tool has a bucket of its own; every tool pushes the
same local tree and sees the same steps (`initial`, `noop`, `mutate`, `touch`), then each
pulls the bucket fsync filled (or, if fsync failed, the first one that was filled) into an
empty folder.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import workloads
from measure import Sample
from report import S3_FLOOR

TESTS = Path(__file__).resolve().parent.parent
PREFIX = "data"

FSYNC = "fsync"
RCLONE = "rclone sync"
RCLONE_FAST = "rclone sync --checksum --fast-list"
AWS = "aws s3 sync"
S3CMD = "s3cmd sync"
FLOOR = S3_FLOOR
"""Timed for `initial` and `pull` only: it does no sync, so it has no other step to take."""
TOOLS = (FSYNC, RCLONE, RCLONE_FAST, AWS, S3CMD)
ANCHOR_OF = {RCLONE: "rclone", RCLONE_FAST: "rclone", AWS: "aws", S3CMD: "s3cmd"}
"""The anchor program each tool but fsync runs."""
STEPS = ("initial", "noop", "mutate", "touch", "pull")

AWS_ISOLATION_ENV: Mapping[str, str] = {
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
    "AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required",
}
"""As tests/conftest.py: no real AWS configuration, and the checksum mode S3 stores accept."""

MOTO_KEYS = ("fsync-moto-access-key", "fsync-moto-secret-key")


def load_test_module(relative: str, name: str) -> ModuleType:
    """Import tests/<relative> by path (tests/ is not a package on sys.path)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, TESTS / relative)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {TESTS / relative}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def isolated_env() -> dict[str, str]:
    """This process's environment without AWS_* variables, plus the isolation settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ISOLATION_ENV)
    return env


@dataclass(frozen=True)
class Server:
    """A running S3 server: name, endpoint, keys, rclone's provider, and how to stop it."""

    name: str
    endpoint_url: str
    access_key: str
    secret_key: str
    provider: str
    stop: Callable[[], None]


def start_moto(log_dir: Path) -> Server:
    """moto's server mode on a free loopback port (tests/servers/moto_server.py)."""
    moto = load_test_module("servers/moto_server.py", "fsync_bench_servers.moto_server")
    server = moto.start(log_dir, env=isolated_env())
    return Server(
        "moto", server.endpoint_url, *MOTO_KEYS, provider="Other", stop=lambda: moto.stop(server)
    )


def start_ceph() -> Server | str:
    """Ceph RGW (memstore) on loopback, or a string saying why not (not installed, failed)."""
    ceph = load_test_module("servers/ceph_rgw.py", "fsync_bench_servers.ceph_rgw")
    if not ceph.is_installed():
        return f"Ceph RGW not installed ({ceph.INSTALL_HINT})"
    root = Path(tempfile.mkdtemp(prefix="fsb-ceph-"))
    try:
        cluster = ceph.start(root)
    except Exception as exc:  # the launcher's errors carry the daemons' log tails
        shutil.rmtree(root, ignore_errors=True)
        return f"Ceph RGW did not start: {str(exc).splitlines()[0]}"

    def stop() -> None:
        ceph.stop(root)
        shutil.rmtree(root, ignore_errors=True)

    return Server(
        "ceph", cluster.endpoint_url, cluster.access_key, cluster.secret_key, "Ceph", stop
    )


def _slug(tool: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in tool).strip("-").replace("--", "-")


class S3Bench:
    """One server behind one counting proxy, with a bucket per tool."""

    def __init__(self, server: Server, work: Path, fsync: str, anchors: Any) -> None:
        proxy_mod = load_test_module("fsynctest/proxy.py", "fsync_bench_proxy")
        self.server = server
        self.proxy = proxy_mod.start_proxy(server.endpoint_url)
        self.url = self.proxy.endpoint_url
        self.work = work
        self.fsync = fsync
        self.anchors = anchors
        self.client = self._client()
        self.buckets: dict[str, str] = {}
        self.env = isolated_env()
        self.env.update(
            {
                "AWS_ACCESS_KEY_ID": server.access_key,
                "AWS_SECRET_ACCESS_KEY": server.secret_key,
                "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_ENDPOINT_URL_S3": self.url,
                "RCLONE_CONFIG_BENCH_TYPE": "s3",
                "RCLONE_CONFIG_BENCH_PROVIDER": server.provider,
                "RCLONE_CONFIG_BENCH_ACCESS_KEY_ID": server.access_key,
                "RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY": server.secret_key,
                "RCLONE_CONFIG_BENCH_ENDPOINT": self.url,
                "RCLONE_CONFIG_BENCH_REGION": "us-east-1",
                "RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE": "true",
            }
        )
        self.s3cmd_cfg = work / f"s3cmd-{server.name}.cfg"
        host = self.url.removeprefix("http://")
        self.s3cmd_cfg.write_text(
            "[default]\n"
            f"access_key = {server.access_key}\n"
            f"secret_key = {server.secret_key}\n"
            f"host_base = {host}\n"
            f"host_bucket = {host}\n"
            "bucket_location = us-east-1\n"
            "use_https = False\n"
            "signature_v2 = False\n"
        )

    def _client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.server.endpoint_url,
            aws_access_key_id=self.server.access_key,
            aws_secret_access_key=self.server.secret_key,
            region_name="us-east-1",
            config=Config(
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                s3={"addressing_style": "path"},
            ),
        )

    # --- buckets (straight to the server) ----------------------------------------------

    def bucket(self, tool: str) -> str:
        """The bucket of `tool`, created on first use."""
        if tool not in self.buckets:
            name = f"bench-{_slug(tool)}".lower()[:63]
            self.client.create_bucket(Bucket=name)
            self.buckets[tool] = name
        return self.buckets[tool]

    def empty(self, bucket: str) -> None:
        """Delete every object and unfinished upload in `bucket`."""
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                self.client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
        uploads = self.client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        for up in uploads:
            self.client.abort_multipart_upload(
                Bucket=bucket, Key=up["Key"], UploadId=up["UploadId"]
            )

    def count(self, bucket: str) -> int:
        """How many objects lie under the prefix in `bucket`."""
        paginator = self.client.get_paginator("list_objects_v2")
        return sum(
            len(page.get("Contents", []))
            for page in paginator.paginate(Bucket=bucket, Prefix=PREFIX + "/")
        )

    def close(self) -> None:
        """Delete the buckets, stop the proxy."""
        for bucket in self.buckets.values():
            try:
                self.empty(bucket)
                self.client.delete_bucket(Bucket=bucket)
            except Exception as exc:  # clean-up is best effort
                print(f"  (could not delete {bucket}: {exc})", flush=True)
        self.client.close()
        self.proxy.close()

    # --- commands ----------------------------------------------------------------------

    def push_argv(self, tool: str, src: Path) -> list[str] | str:
        """The command that makes `tool`'s bucket equal to `src`, or why there is none."""
        return self._argv(tool, self.bucket(tool), src, push=True)

    def pull_argv(self, tool: str, bucket: str, dst: Path) -> list[str] | str:
        """The command that brings `bucket`'s prefix into the empty folder `dst`."""
        return self._argv(tool, bucket, dst, push=False)

    def _argv(self, tool: str, bucket: str, folder: Path, *, push: bool) -> list[str] | str:
        """`tool`'s command between `folder` and `bucket`'s prefix, or why there is none.

        A push makes the prefix equal to `folder` (deleting extra objects, leaving `.fsync/`
        out); a pull brings the prefix into `folder`.
        """
        url = f"s3://{bucket}/{PREFIX}"
        if tool == FLOOR:
            script = str(Path(__file__).with_name("client_floor.py"))
            verb, ends = ("put", [str(folder), url]) if push else ("get", [url, str(folder)])
            return [sys.executable, script, verb, *ends]
        if tool == FSYNC:
            program: str | None = self.fsync
        else:
            program = self.anchors.get(ANCHOR_OF[tool])
            if program is None:
                return self.anchors.missing_note(ANCHOR_OF[tool])
        if tool == FSYNC:
            verb, ends = ("push", [str(folder), url]) if push else ("pull", [url, str(folder)])
            return [program, verb, *ends, "-q", "--endpoint-url", self.url]
        if tool in (RCLONE, RCLONE_FAST):
            remote = f"bench:{bucket}/{PREFIX}"
            ends = [str(folder), remote] if push else [remote, str(folder)]
            excluded = ["--exclude", "/.fsync/**"] if push else []
            extra = ["--checksum", "--fast-list"] if tool == RCLONE_FAST else []
            return [program, "sync", *ends, "-q", *excluded, *extra]
        if tool == AWS:
            ends = [str(folder), url] if push else [url, str(folder)]
            deleting = ["--delete", "--exclude", ".fsync/*"] if push else []
            options = ["--only-show-errors", "--endpoint-url", self.url]
            return [program, "s3", "sync", *ends, *deleting, *options]
        deleting = ["--delete-removed", "--exclude", ".fsync/*"] if push else []
        ends = [f"{folder}/", f"{url}/"] if push else [f"{url}/", f"{folder}/"]
        config = ["-c", str(self.s3cmd_cfg)]
        return [program, *config, "sync", *deleting, "--no-progress", "--quiet", *ends]


Measure = Callable[[list[str], Mapping[str, str]], Sample]
Record = Callable[[str, str, Sample | str], None]
Rotate = Callable[[list[str], int], list[str]]


def count_files(root: Path) -> int:
    """Regular files under `root`, `.fsync/` left out."""
    total = 0
    for _folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != ".fsync"]
        total += len(files)
    return total


@dataclass
class Suite:
    """The scenarios of one tree on one server; rows are `S3 SERVER TREE STEP`."""

    bench: S3Bench
    src: Path
    scen: str
    reps: int
    measure: Measure
    record: Record
    rotate: Rotate

    def note(self, step: str, tool: str, result: Sample | str) -> None:
        """Record `result` (a sample, or a note) in the row of `step` for `tool`."""
        self.record(f"{self.scen} {step}", tool, result)

    def rounds(
        self, start: Callable[[int], object] | None = None, tools: tuple[str, ...] = TOOLS
    ) -> Iterator[tuple[int, str]]:
        """(rep, tool) for `reps` rounds, every tool once a round in the round's rotated order.

        `start(rep)` runs as a round begins, before its first tool.
        """
        for rep in range(self.reps):
            if start is not None:
                start(rep)
            for tool in self.rotate(list(tools), rep):
                yield rep, tool

    def timed(self, step: str, tool: str, argv: list[str] | str) -> Sample | None:
        """Run `argv` with the proxy's counts reset; record the sample (or why there is none)."""
        if isinstance(argv, str):
            self.note(step, tool, argv)
            return None
        proxy = self.bench.proxy
        proxy.reset_counts()
        sample = self.measure(argv, self.bench.env)
        sample.requests.update(proxy.counts())
        # Keys under the prefix alone: fsync's first push asks once after the prefix itself
        # (is it an object?), a request per run, not per file.
        per_key = Counter(
            e.path for e in list(proxy.log) if f"/{PREFIX}/" in e.path and "/big/" not in e.path
        )
        sample.per_small_file.update(Counter(per_key.values()))
        self.note(step, tool, sample)
        return sample

    def initial(self) -> dict[str, bool]:
        """Push into empty buckets `reps` times; return which tools' last push worked."""
        pushed: dict[str, bool] = {}
        for _rep, tool in self.rounds(tools=(*TOOLS, FLOOR)):
            argv = self.bench.push_argv(tool, self.src)
            if not isinstance(argv, str):
                self.bench.empty(self.bench.bucket(tool))
            if tool == FSYNC:
                shutil.rmtree(self.src / ".fsync", ignore_errors=True)
            workloads.warm(self.src)
            sample = self.timed("initial", tool, argv)
            pushed[tool] = sample is not None and sample.ok
        expected = count_files(self.src)
        for tool, ok in pushed.items():
            if ok and (found := self.bench.count(self.bench.bucket(tool))) != expected:
                self.note("initial", tool, f"CHECK: {found} objects, {expected} files")
        return pushed

    def step(self, step: str, change: Callable[[int], object] | None) -> None:
        """`reps` times: apply `change` to the tree, then let every tool push."""
        for _rep, tool in self.rounds(change):
            workloads.warm(self.src)
            self.timed(step, tool, self.bench.push_argv(tool, self.src))

    def pull(self, pushed: dict[str, bool]) -> None:
        """Every tool pulls one filled bucket (fsync's if it worked) into an empty folder."""
        filled = (t for t, ok in pushed.items() if ok and t != FLOOR)  # no metadata in FLOOR's
        source = FSYNC if pushed.get(FSYNC) else next(filled, None)
        if source is None:
            for tool in TOOLS:
                self.note("pull", tool, "no bucket was filled: nothing to pull")
            return
        bucket = self.bench.bucket(source)
        expected = self.bench.count(bucket)
        tools = (*TOOLS, FLOOR)
        dsts = {tool: self.bench.work / f"s3-pull-{_slug(tool)}" for tool in tools}
        for rep, tool in self.rounds(tools=tools):
            workloads.set_aside(dsts[tool])
            dsts[tool].mkdir(parents=True)
            sample = self.timed("pull", tool, self.bench.pull_argv(tool, bucket, dsts[tool]))
            if sample is not None and sample.ok and rep == self.reps - 1:
                found = count_files(dsts[tool])
                if found != expected:
                    self.note("pull", tool, f"CHECK: {found} files, {expected} objects")
        self.note("pull", source, f"all pulled the bucket {source} filled")
        for path in dsts.values():
            workloads.set_aside(path)


def run_suite(
    bench: S3Bench,
    spec: workloads.Spec,
    trees: Path,
    *,
    reps: int,
    measure: Measure,
    record: Record,
    rotate: Rotate,
) -> None:
    """All steps for every tool on one server: initial, noop, mutate, touch, pull."""
    tree = workloads.generate(spec, trees)
    src = workloads.clone(tree, bench.work / f"s3-src-{bench.server.name}")
    suite = Suite(bench, src, f"S3 {bench.server.name} {spec.name}", reps, measure, record, rotate)
    try:
        pushed = suite.initial()
        suite.step("noop", None)
        suite.step("mutate", lambda rep: workloads.mutate(src, rep))
        suite.step("touch", lambda rep: workloads.touch(src, rep))
        suite.pull(pushed)
    finally:
        workloads.set_aside(src)
