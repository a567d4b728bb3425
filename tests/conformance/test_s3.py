"""The remote contract on s3:// (fsync's S3 adapter), against moto and Ceph RGW alike.

Each test gets a fresh bucket (the `s3_bucket` fixture) and works under the prefix `root/`.
Three contract tests are restated here, because an S3 listing carries no user metadata: a
listed entry has the size and ETag of the object but not the digest, mtime and mode that
`stat` and `put` read from (or wrote to) its metadata. They check the same thing: the
listing agrees with `stat` on everything the listing can know, and the planner compares
only size and fingerprint.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pytest
from tests.conformance.contract import MakeRemote, RemoteContract, put_bytes, read_all, rel

from fsync.model import RemoteEntry
from fsync.remote import open_remote

if TYPE_CHECKING:
    from collections.abc import Iterator

    from conftest import S3Server
    from fsync.remote.base import Remote

ROOT = "root"


def listed(entry: RemoteEntry | None) -> RemoteEntry | None:
    """`entry` as a listing shows it: without what only the object's metadata holds."""
    if entry is None:
        return None
    return replace(entry, digest=None, mtime_ns=None, mode=None)


class S3Raw:
    """Objects under `root/` of the test bucket, written and listed with plain boto3."""

    def __init__(self, server: S3Server, bucket: str) -> None:
        self.client: Any = server.boto3_client()
        self.bucket = bucket

    def write(self, name: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=f"{ROOT}/{name}", Body=data)

    def names(self) -> set[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=f"{ROOT}/"
        )
        return {item["Key"][len(ROOT) + 1 :] for page in pages for item in page.get("Contents", [])}


def open_s3(server: S3Server, bucket: str, sub: str = "", **knobs: Any) -> Remote:
    """An S3 remote on `s3://bucket/root[/sub]` of `server`."""
    url = f"s3://{bucket}/{ROOT}" + (f"/{sub}" if sub else "")
    return open_remote(url, storage_options=server.storage_options(), **knobs)


class TestS3(RemoteContract):
    """s3:// through `open_remote`, on each S3 server."""

    object_store = True

    @pytest.fixture
    def remote(self, s3_bucket: tuple[S3Server, str]) -> Iterator[Remote]:
        remote = open_s3(*s3_bucket)
        yield remote
        remote.close()

    @pytest.fixture
    def make_remote(self, s3_bucket: tuple[S3Server, str]) -> Iterator[MakeRemote]:
        opened: list[Remote] = []

        def make(sub: str = "") -> Remote:
            remote = open_s3(*s3_bucket, sub)
            opened.append(remote)
            return remote

        yield make
        for remote in opened:
            remote.close()

    @pytest.fixture
    def raw(self, s3_bucket: tuple[S3Server, str]) -> Iterator[S3Raw]:
        raw = S3Raw(*s3_bucket)
        yield raw
        raw.client.close()

    def test_put_then_list(self, remote: Remote, make_remote: MakeRemote) -> None:
        """The listing agrees with `stat` on size and ETag; `stat` adds the metadata."""
        put_bytes(remote, "one.txt", b"1")
        put_bytes(remote, "sub/two.txt", b"22")
        listing = make_remote().list()
        assert set(listing.entries) == {rel("one.txt"), rel("sub/two.txt")}
        for path, entry in listing.entries.items():
            full = remote.stat(path)
            assert full is not None
            assert entry == listed(full)
            assert full.digest is not None
            assert full.mtime_ns is not None
        assert listing.entries[rel("sub/two.txt")].size == 2

    def test_zero_length_file(self, remote: Remote) -> None:
        entry = put_bytes(remote, "empty", b"")
        assert entry.size == 0
        assert remote.list().entries[rel("empty")] == listed(entry)
        assert remote.stat(rel("empty")) == entry
        assert read_all(remote, "empty") == b""

    def test_deep_paths(self, remote: Remote) -> None:
        name = "/".join(f"level{i}" for i in range(12)) + "/leaf.txt"
        entry = put_bytes(remote, name, b"deep")
        assert remote.list().entries == {rel(name): listed(entry)}
        assert read_all(remote, name) == b"deep"
        remote.delete(rel(name), expect=entry)
        assert remote.list().entries == {}

    def test_listing_is_not_cached(self, remote: Remote, raw: S3Raw) -> None:
        """A second listing sees objects written behind the adapter's back."""
        assert remote.list().entries == {}
        raw.write("late.txt", b"late")
        assert set(remote.list().entries) == {"late.txt"}

    def test_capabilities(self, remote: Remote) -> None:
        caps = remote.capabilities
        assert caps.stores_digest
        assert caps.server_side_copy
        assert not caps.sets_mtime
