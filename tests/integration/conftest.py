"""Fixtures of the integration tests: a remote tree of every kind, to run one test on each."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from fsynctest.remotes import FolderTree, MemoryTree, RemoteTree, S3Tree, empty_bucket, new_bucket


@pytest.fixture(
    params=[
        "file",
        "memory",
        pytest.param("moto", marks=pytest.mark.s3),
        pytest.param("ceph", marks=[pytest.mark.s3, pytest.mark.ceph]),
    ]
)
def remote_tree(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RemoteTree]:
    """An empty remote of each kind: a folder, memory://, and a bucket prefix on moto and on
    Ceph RGW (skipped where Ceph is not installed)."""
    if request.param == "file":
        yield FolderTree(tmp_path / "remote")
        return
    if request.param == "memory":
        tree = MemoryTree(f"fsync-test-{uuid.uuid4().hex}")
        try:
            yield tree
        finally:
            tree.remove()
            tree.sibling("backup").remove()
        return
    server = request.getfixturevalue(f"{request.param}_server")
    client = server.boto3_client()
    bucket = new_bucket(client)
    try:
        yield S3Tree(server, bucket, "tree", client)
    finally:
        empty_bucket(client, bucket)
        client.close()
