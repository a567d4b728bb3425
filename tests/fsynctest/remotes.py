"""A remote tree as a second writer sees it: write, read, delete, rename and list, directly.

Tests drive fsync through `app.run` with the tree's `url` and `storage_options`, and act as
"someone else" on the remote through these methods, which never go through fsync: a folder
through the filesystem, memory:// through fsspec, S3 through a plain boto3 client (objects
written so carry no fsync metadata, as another tool's would).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any, Protocol


class RemoteTree(Protocol):
    """One remote root and the means to change it behind fsync's back."""

    name: str
    url: str
    storage_options: dict[str, Any]

    def write(self, path: str, data: bytes, mtime_ns: int | None = None) -> None:
        """Write `path`; `mtime_ns` is its modification time where the store keeps one
        (a folder: the file's; S3: rclone's `mtime` metadata; memory: ignored, it is now)."""
        ...

    def read(self, path: str) -> bytes: ...
    def delete(self, path: str) -> None: ...
    def rename(self, src: str, dst: str) -> None: ...
    def tree(self) -> dict[str, bytes]: ...
    def sibling(self, name: str) -> RemoteTree:
        """Another root beside this one on the same store (a backup dir, say)."""
        ...


class FolderTree:
    """A local folder remote (`file://`)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.name = "file"
        self.url = f"file://{root}"
        self.storage_options: dict[str, Any] = {}

    def _full(self, path: str) -> Path:
        return self.root / path

    def write(self, path: str, data: bytes, mtime_ns: int | None = None) -> None:
        full = self._full(path)
        full.parent.mkdir(parents=True, exist_ok=True)
        full.write_bytes(data)
        if mtime_ns is not None:
            os.utime(full, ns=(mtime_ns, mtime_ns))

    def read(self, path: str) -> bytes:
        return self._full(path).read_bytes()

    def delete(self, path: str) -> None:
        self._full(path).unlink()

    def rename(self, src: str, dst: str) -> None:
        self._full(dst).parent.mkdir(parents=True, exist_ok=True)
        os.rename(self._full(src), self._full(dst))

    def tree(self) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        if not self.root.exists():
            return out
        for dirpath, _, files in os.walk(self.root):
            for name in files:
                full = Path(dirpath) / name
                out[full.relative_to(self.root).as_posix()] = full.read_bytes()
        return out

    def sibling(self, name: str) -> FolderTree:
        return FolderTree(self.root.parent / name)


class MemoryTree:
    """A root of fsspec's one global memory store (`memory://`)."""

    def __init__(self, root: str) -> None:
        import fsspec

        self.fs = fsspec.filesystem("memory")
        self.root = root.strip("/")
        self.name = "memory"
        self.url = f"memory://{self.root}"
        self.storage_options: dict[str, Any] = {}

    def _full(self, path: str) -> str:
        return f"/{self.root}/{path}"

    def write(self, path: str, data: bytes, mtime_ns: int | None = None) -> None:
        self.fs.pipe_file(self._full(path), data)

    def read(self, path: str) -> bytes:
        data: bytes = self.fs.cat_file(self._full(path))
        return data

    def delete(self, path: str) -> None:
        self.fs.rm_file(self._full(path))

    def rename(self, src: str, dst: str) -> None:
        self.fs.mv(self._full(src), self._full(dst))

    def tree(self) -> dict[str, bytes]:
        prefix = f"/{self.root}/"
        found = self.fs.find(f"/{self.root}", detail=False) if self.fs.exists(prefix) else []
        return {name[len(prefix) :]: self.fs.cat_file(name) for name in found}

    def sibling(self, name: str) -> MemoryTree:
        return MemoryTree(f"{self.root}-{name}")

    def remove(self) -> None:
        if self.fs.exists(f"/{self.root}"):
            self.fs.rm(f"/{self.root}", recursive=True)


class S3Tree:
    """A prefix of a bucket on an S3 test server (`s3://bucket/prefix`)."""

    def __init__(self, server: Any, bucket: str, prefix: str, client: Any) -> None:
        self.server, self.bucket, self.prefix, self.client = server, bucket, prefix, client
        self.name = server.name
        self.url = f"s3://{bucket}/{prefix}"
        self.storage_options: dict[str, Any] = server.storage_options()
        self._bodies: dict[str, bytes] = {}
        """Bodies `tree` read, by ETag: the store's MD5 of the bytes it holds (of the parts'
        MD5s for a multipart upload), so an object listed with a known ETag holds those."""

    def _key(self, path: str) -> str:
        return f"{self.prefix}/{path}"

    def write(self, path: str, data: bytes, mtime_ns: int | None = None) -> None:
        from fsync.remote.s3_meta import format_mtime

        meta = {"mtime": format_mtime(mtime_ns)} if mtime_ns is not None else {}
        self.client.put_object(Bucket=self.bucket, Key=self._key(path), Body=data, Metadata=meta)

    def read(self, path: str) -> bytes:
        body: bytes = self.client.get_object(Bucket=self.bucket, Key=self._key(path))["Body"].read()
        return body

    def delete(self, path: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(path))

    def rename(self, src: str, dst: str) -> None:
        """Server-side, keeping the metadata (as `aws s3 mv` and rclone do)."""
        self.client.copy_object(
            Bucket=self.bucket,
            Key=self._key(dst),
            CopySource={"Bucket": self.bucket, "Key": self._key(src)},
            MetadataDirective="COPY",
        )
        self.delete(src)

    def tree(self) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=f"{self.prefix}/"
        )
        for page in pages:
            for item in page.get("Contents", []):
                key = item["Key"]
                body = self._bodies.get(item["ETag"])
                if body is None:
                    got = self.client.get_object(Bucket=self.bucket, Key=key)
                    body = self._bodies[got["ETag"]] = got["Body"].read()
                out[key[len(self.prefix) + 1 :]] = body
        return out

    def sibling(self, name: str) -> S3Tree:
        return S3Tree(self.server, self.bucket, f"{self.prefix}-{name}", self.client)


def new_bucket(client: Any) -> str:
    """Create a uniquely named bucket; the session's server goes away with its data."""
    bucket = f"fsync-test-{uuid.uuid4().hex[:20]}"
    client.create_bucket(Bucket=bucket)
    return bucket


def empty_bucket(client: Any, bucket: str) -> None:
    """Delete every object of `bucket` and the bucket, best effort."""
    try:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for page in pages:
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
        client.delete_bucket(Bucket=bucket)
    except Exception:  # cleanup must never fail a test
        pass
