"""The floor of the S3 rows: the bytes moved by fsync's own S3 client and nothing else.

    python tests/bench/client_floor.py put LOCAL s3://BUCKET/PREFIX
    python tests/bench/client_floor.py get s3://BUCKET/PREFIX LOCAL

fsync talks to S3 through s3fs's aiobotocore client. This script uses that client the
leanest way it can be used: one event loop, no threads, 8 requests in flight (fsync's
`--transfers` default); `put` sends every file under LOCAL (`.fsync/` left out) with one
PutObject, `get` lists the prefix and writes every object under LOCAL with one GetObject.
It does none of what makes a sync: no listing of the other side, no hashing, no metadata, no
checks, no durability, no state. So its row says how much of the gap to rclone (Go) and the
AWS CLI is the client's CPU per request rather than fsync's own work: no tool on this client
makes the same requests in less time. That bounds a pull (one GET per object, as every tool
here makes them) and the small files of a push; a push's big files it sends in one PutObject
each, where fsync sends 16 MiB parts side by side, so there fsync can be the faster.

The endpoint comes from `AWS_ENDPOINT_URL_S3`, the keys from the environment, as for the
other tools. Prints the number of objects moved.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

IN_FLIGHT = 8
CHUNK = 1 << 20


def _split(url: str) -> tuple[str, str]:
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    return bucket, prefix.strip("/")


def _local_files(root: str) -> list[str]:
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not (folder == root and d == ".fsync")]
        found.extend(os.path.join(folder, name) for name in files)
    return found


async def _put(client: Any, root: str, bucket: str, prefix: str) -> int:
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def one(path: str) -> None:
        async with gate:
            with open(path, "rb") as f:
                body = f.read()
            key = f"{prefix}/{os.path.relpath(path, root)}"
            await client.put_object(Bucket=bucket, Key=key, Body=body)

    files = _local_files(root)
    await asyncio.gather(*(one(p) for p in files))
    return len(files)


async def _get(client: Any, bucket: str, prefix: str, root: str) -> int:
    keys: list[str] = []
    paginator = client.get_paginator("list_objects_v2")
    async for page in paginator.paginate(Bucket=bucket, Prefix=f"{prefix}/"):
        keys.extend(o["Key"] for o in page.get("Contents", []))
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def one(key: str) -> None:
        async with gate:
            answer = await client.get_object(Bucket=bucket, Key=key)
            path = os.path.join(root, key[len(prefix) + 1 :])
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                while chunk := await answer["Body"].read(CHUNK):
                    f.write(chunk)

    await asyncio.gather(*(one(k) for k in keys))
    return len(keys)


async def _main(verb: str, src: str, dst: str) -> int:
    import s3fs

    fs = s3fs.S3FileSystem(asynchronous=True)
    client = await fs.set_session()
    try:
        if verb == "put":
            return await _put(client, src, *_split(dst))
        return await _get(client, *_split(src), dst)
    finally:
        await client.close()


def main() -> int:
    """Run `put LOCAL URL` or `get URL LOCAL`; exit 2 on a usage error."""
    if len(sys.argv) != 4 or sys.argv[1] not in ("put", "get"):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    moved = asyncio.run(_main(*sys.argv[1:]))
    print(f"{moved} objects")
    return 0


if __name__ == "__main__":
    sys.exit(main())
