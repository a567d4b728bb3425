"""The remote contract on memory://, each test with its own root; plus `open_remote` dispatch."""

from __future__ import annotations

import importlib.util
import uuid
from typing import TYPE_CHECKING

import fsspec
import pytest
from fsspec.implementations.memory import MemoryFileSystem
from tests.conformance.contract import MakeRemote, RemoteContract, put_bytes, read_all

from fsync.errors import ConfigError
from fsync.remote import open_remote

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from fsync.remote.base import Remote


class MemoryRaw:
    """Objects in fsspec's global memory store under one root, bypassing the adapter."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.fs = fsspec.filesystem("memory", skip_instance_cache=True)

    def write(self, name: str, data: bytes) -> None:
        self.fs.pipe_file(f"{self.root}/{name}", data)

    def names(self) -> set[str]:
        prefix = self.root + "/"
        return {key[len(prefix) :] for key in MemoryFileSystem.store if key.startswith(prefix)}


@pytest.fixture
def memory_root() -> Iterator[str]:
    """A root no other test uses; its objects and folders are removed afterwards."""
    root = f"/fsync-test-{uuid.uuid4().hex}"
    yield root
    for key in [k for k in MemoryFileSystem.store if k == root or k.startswith(root + "/")]:
        del MemoryFileSystem.store[key]
    MemoryFileSystem.pseudo_dirs[:] = [
        d for d in MemoryFileSystem.pseudo_dirs if not (d == root or d.startswith(root + "/"))
    ]


class TestMemory(RemoteContract):
    """memory:// through `open_remote`."""

    @pytest.fixture
    def remote(self, memory_root: str) -> Iterator[Remote]:
        fsspec.filesystem("memory", skip_instance_cache=True).makedirs(memory_root)
        remote = open_remote(f"memory://{memory_root}")
        yield remote
        remote.close()

    @pytest.fixture
    def make_remote(self, memory_root: str) -> MakeRemote:
        def make(sub: str = "") -> Remote:
            return open_remote(
                f"memory://{memory_root}/{sub}" if sub else f"memory://{memory_root}"
            )

        return make

    @pytest.fixture
    def raw(self, memory_root: str) -> MemoryRaw:
        return MemoryRaw(memory_root)

    def test_listing_is_not_cached(self, remote: Remote, raw: MemoryRaw) -> None:
        """A second listing sees objects written behind the adapter's back."""
        assert remote.list().entries == {}
        raw.write("late.txt", b"late")
        assert set(remote.list().entries) == {"late.txt"}

    def test_fingerprint_is_stable_across_listings(self, remote: Remote) -> None:
        put_bytes(remote, "a.txt", b"a")
        assert remote.list().entries == remote.list().entries

    def test_store_is_shared_between_instances(
        self, remote: Remote, make_remote: MakeRemote
    ) -> None:
        put_bytes(remote, "x.txt", b"seen by both")
        assert read_all(make_remote(), "x.txt") == b"seen by both"


def test_unknown_scheme_is_config_error() -> None:
    with pytest.raises(ConfigError, match=r"unknown URL scheme 'nosuch' in nosuch://x \(expected"):
        open_remote("nosuch://x")


def test_scheme_with_missing_package_names_the_package() -> None:
    if importlib.util.find_spec("gcsfs") is not None:
        pytest.skip("gcsfs is installed")
    with pytest.raises(ConfigError, match="gcsfs"):
        open_remote("gcs://bucket/x")


def test_endpoint_url_and_rate_limits_only_for_s3(memory_root: str) -> None:
    with pytest.raises(ConfigError, match="s3://"):
        open_remote(f"memory://{memory_root}", endpoint_url="http://localhost:9000")
    with pytest.raises(ConfigError, match="s3:// remotes only"):
        open_remote(f"memory://{memory_root}", bw_limit=1 << 20)


def test_s3_url_is_an_object_store_with_the_endpoint() -> None:
    """Opening does no I/O; the endpoint reaches botocore's client arguments."""
    remote = open_remote(
        "s3://bucket/prefix",
        storage_options={"anon": True, "client_kwargs": {"region_name": "eu-west-1"}},
        endpoint_url="http://127.0.0.1:9",
    )
    assert remote.root_exists()
    assert remote.url == "s3://bucket/prefix"
    fs = remote.fs  # type: ignore[attr-defined]
    assert fs.client_kwargs == {"region_name": "eu-west-1", "endpoint_url": "http://127.0.0.1:9"}
    assert fs.dircache.use_listings_cache is False


def test_the_state_key_of_an_s3_remote_names_its_endpoint(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """One URL on two stores is two remotes to the state database (their bases differ),
    however the endpoint is given, and the endpoint's password never reaches it; AWS's own
    endpoint (any region) adds nothing to the URL."""
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / "aws-config"
    config.write_text("[profile ceph]\nendpoint_url = http://ceph-profile:7480\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    url = "s3://bucket/prefix"
    anon = {"anon": True}

    def key(endpoint_url: str | None = None, **options: object) -> str:
        return open_remote(url, storage_options={**anon, **options}, endpoint_url=endpoint_url).key

    assert key() == url
    assert key(client_kwargs={"region_name": "eu-west-1"}) == url
    assert key("http://ceph:7480/") == f"{url} on http://ceph:7480"
    assert key(endpoint_url="http://minio:9000") == f"{url} on http://minio:9000"
    assert key(profile="ceph") == f"{url} on http://ceph-profile:7480"
    secret = key("http://u:pw@h:9000")
    assert "pw" not in secret
    assert secret.startswith(f"{url} on http://")
    # A client that cannot be built (no such profile) fails the run's first request with a
    # clear error; asking for the key before that must not raise.
    assert key("http://ceph:7480", profile="nosuch") == f"{url} on http://ceph:7480"
    assert key(profile="nosuch") == url
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://env:9000")
    assert key() == f"{url} on http://env:9000"
    local = open_remote("/some/folder")
    assert local.key == local.url == "file:///some/folder"
