"""Project-wide test fixtures: S3 servers (moto, Ceph RGW) and an AWS-free environment.

Servers are session-scoped and lazy: a run that never asks for S3 starts nothing, and each
server starts at most once per session. Under pytest-xdist a session is one worker's: each
worker starts its own servers (a Ceph cluster takes about 2.5 s to start and next to no CPU
while idle, so one per worker costs less than sharing one across processes). Buckets are per
test and unique, so tests never see each other's objects. A test that takes ``s3_server`` or
``s3_bucket`` runs once per server (ids ``moto`` and ``ceph``) and carries the ``s3`` mark,
plus ``ceph`` for the RGW run, so ``-m "not ceph"`` keeps a run moto-only. Where Ceph is not
installed its runs skip with the install command. The launchers live in tests/servers/ (see
their docstrings).

No fixture here is autouse: tests that need no server pay nothing.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

_SERVERS_DIR = Path(__file__).parent / "servers"


def _load_launcher(name: str) -> ModuleType:
    """Load tests/servers/<name>.py by path: with --import-mode=importlib, tests/ is not on
    sys.path and is not a package, so a plain import cannot reach it."""
    qualname = f"fsync_test_servers.{name}"
    if qualname in sys.modules:
        return sys.modules[qualname]
    spec = importlib.util.spec_from_file_location(qualname, _SERVERS_DIR / f"{name}.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {_SERVERS_DIR / name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[qualname] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


_ceph = _load_launcher("ceph_rgw")
_moto = _load_launcher("moto_server")

# Settings that keep a developer's real AWS setup out of the tests, plus botocore's checksum
# mode that S3-compatible stores accept (DESIGN.md: "when_required").
AWS_ISOLATION_ENV: Mapping[str, str] = {
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
    "AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required",
}

MOTO_ACCESS_KEY = "fsync-moto-access-key"
MOTO_SECRET_KEY = "fsync-moto-secret-key"


def isolated_env(base: Mapping[str, str]) -> dict[str, str]:
    """``base`` without any AWS_* variable (profiles, keys, regions, endpoints), plus the
    isolation settings: what a process needs to see no real AWS configuration."""
    env = {key: value for key, value in base.items() if not key.startswith("AWS_")}
    env.update(AWS_ISOLATION_ENV)
    return env


@dataclass(frozen=True)
class S3Server:
    """How to reach one running S3 test server."""

    name: str  # "moto" or "ceph"
    endpoint_url: str
    access_key: str
    secret_key: str

    def storage_options(self) -> dict[str, Any]:
        """Options for ``s3fs.S3FileSystem(**options)``.

        No ``region_name``: with one, s3fs's bucket creation sends a LocationConstraint that
        RGW rejects; without one botocore signs for us-east-1, which both servers accept.
        """
        return {
            "key": self.access_key,
            "secret": self.secret_key,
            "client_kwargs": {"endpoint_url": self.endpoint_url},
        }

    def env(self) -> dict[str, str]:
        """A full environment for a CLI subprocess: no real AWS config, this server's keys,
        and its endpoint as ``AWS_ENDPOINT_URL_S3`` (botocore's per-service endpoint)."""
        env = isolated_env(os.environ)
        env.update(
            {
                "AWS_ACCESS_KEY_ID": self.access_key,
                "AWS_SECRET_ACCESS_KEY": self.secret_key,
                "AWS_ENDPOINT_URL_S3": self.endpoint_url,
            }
        )
        return env

    def boto3_client(self) -> Any:
        """A plain boto3 S3 client on this server, for tests to set up and inspect objects.

        Typed Any because boto3 ships no stubs. Close it (``client.close()``) when done.
        """
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
            config=Config(
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                s3={"addressing_style": "path"},
                retries={"max_attempts": 3, "mode": "standard"},
            ),
        )


@pytest.fixture(scope="session")
def aws_env() -> Iterator[dict[str, str]]:
    """For the session, remove AWS_* variables from os.environ and set the isolation ones.

    Requested by the server fixtures, so in-process s3fs/boto3 clients in S3 tests never read
    ~/.aws or instance metadata. Yields the isolated environment (a copy).
    """
    with pytest.MonkeyPatch.context() as patch:
        for key in [key for key in os.environ if key.startswith("AWS_")]:
            patch.delenv(key)
        for key, value in AWS_ISOLATION_ENV.items():
            patch.setenv(key, value)
        yield dict(os.environ)


def _moto_server(env: dict[str, str], folder: Path) -> Iterator[S3Server]:
    process = _moto.start(folder, env=env)
    try:
        yield S3Server("moto", process.endpoint_url, MOTO_ACCESS_KEY, MOTO_SECRET_KEY)
    finally:
        _moto.stop(process)


@pytest.fixture(scope="session")
def moto_server(
    aws_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[S3Server]:
    """moto's server mode in a subprocess on a free loopback port, for the whole session."""
    yield from _moto_server(aws_env, tmp_path_factory.mktemp("moto"))


@pytest.fixture(scope="session")
def other_moto_server(
    aws_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[S3Server]:
    """A second, separate moto server: for tests where one s3:// URL names two stores."""
    yield from _moto_server(aws_env, tmp_path_factory.mktemp("moto-other"))


@pytest.fixture(scope="session")
def ceph_server(aws_env: dict[str, str]) -> Iterator[S3Server]:
    """A single-node Ceph RGW (memstore) on free loopback ports, for the whole session.

    Skips where the Debian packages are missing. The cluster lives under a fresh temporary
    directory (kept short: daemons put unix sockets there), which is wiped at the end.
    """
    if not _ceph.is_installed():
        pytest.skip(_ceph.INSTALL_HINT)
    root = Path(tempfile.mkdtemp(prefix="fsync-ceph-"))
    try:
        cluster = _ceph.start(root)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)  # start() stopped its daemons already
        raise
    try:
        yield S3Server("ceph", cluster.endpoint_url, cluster.access_key, cluster.secret_key)
    finally:
        _ceph.stop(root)


@pytest.fixture(
    params=[
        pytest.param("moto", marks=pytest.mark.s3, id="moto"),
        pytest.param("ceph", marks=[pytest.mark.s3, pytest.mark.ceph], id="ceph"),
    ]
)
def s3_server(request: pytest.FixtureRequest) -> S3Server:
    """Each S3 server in turn: a test taking this runs on moto and on Ceph RGW."""
    server: S3Server = request.getfixturevalue(f"{request.param}_server")
    return server


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> Iterator[tuple[S3Server, str]]:
    """A fresh, uniquely named, empty bucket on the parametrized server: (server, bucket).

    Afterwards its objects (every version), unfinished multipart uploads and the bucket
    itself are deleted, best effort: a failed cleanup never fails the test.
    """
    bucket = f"fsync-test-{uuid.uuid4().hex[:20]}"
    client = s3_server.boto3_client()
    try:
        client.create_bucket(Bucket=bucket)
        yield s3_server, bucket
    finally:
        try:
            _delete_bucket(client, bucket)
        finally:
            client.close()


def _delete_bucket(client: Any, bucket: str) -> None:
    """Empty ``bucket`` (versions, delete markers, multipart uploads) and delete it."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        for page in client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket):
            for upload in page.get("Uploads", []):
                client.abort_multipart_upload(
                    Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                )
        for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket):
            doomed = [
                {"Key": item["Key"], "VersionId": item["VersionId"]}
                for item in page.get("Versions", []) + page.get("DeleteMarkers", [])
            ]
            if doomed:
                client.delete_objects(Bucket=bucket, Delete={"Objects": doomed, "Quiet": True})
        client.delete_bucket(Bucket=bucket)
    except (BotoCoreError, ClientError):
        pass  # best effort: the server and its data go away at the end of the session anyway


@dataclass(frozen=True)
class ProxiedBucket:
    """A bucket reached through a fault-injecting, counting proxy (tests/fsynctest/proxy.py).

    ``server`` is the bucket's server with ``endpoint_url`` replaced by the proxy's, so its
    ``storage_options()``, ``env()`` and ``boto3_client()`` all go through the proxy.
    """

    server: S3Server
    bucket: str
    proxy: Any  # fsynctest.proxy.Proxy (imported lazily: most tests never start a proxy)


@pytest.fixture
def s3_proxy(s3_bucket: tuple[S3Server, str]) -> Iterator[ProxiedBucket]:
    """The test's bucket behind a fresh proxy on a free loopback port; runs per server.

    The proxy is closed afterwards, and the test fails if it met a request it could not parse
    (``proxy.errors``): a fault the test did not ask for must not go unnoticed.
    """
    import dataclasses

    from fsynctest.proxy import start_proxy

    server, bucket = s3_bucket
    proxy = start_proxy(server.endpoint_url)
    try:
        yield ProxiedBucket(
            dataclasses.replace(server, endpoint_url=proxy.endpoint_url), bucket, proxy
        )
    finally:
        proxy.close()
    assert not proxy.errors, f"the S3 proxy met requests it could not handle: {proxy.errors}"
