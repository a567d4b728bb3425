"""Objects another tool wrote, with metadata fsync cannot use, pulled through the command.

A store holds whatever its other writers put there; one object's nonsense must cost that
object's metadata at most, never the rest of the pull.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from fsynctest.trees import listing

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
