"""ETags computed from a local file the way S3 stores compute them for single and multipart."""

from __future__ import annotations

import hashlib
import random
from typing import TYPE_CHECKING

import pytest

from fsync import etags

if TYPE_CHECKING:
    from pathlib import Path

MIB = 1 << 20


def multipart_etag(data: bytes, part_size: int) -> str:
    """The ETag S3 gives an object uploaded in parts of `part_size` (the last one shorter)."""
    parts = [data[i : i + part_size] for i in range(0, len(data), part_size)]
    digests = b"".join(hashlib.md5(p).digest() for p in parts)
    return f"{hashlib.md5(digests).hexdigest()}-{len(parts)}"


@pytest.fixture
def data() -> bytes:
    return random.Random(3).randbytes(21 * MIB + 12345)


@pytest.mark.parametrize("part_mib", [5, 8, 15, 16])
def test_multipart_etags_of_common_part_sizes_match(
    tmp_path: Path, data: bytes, part_mib: int
) -> None:
    path = tmp_path / "f"
    path.write_bytes(data)
    assert etags.matches(str(path), len(data), multipart_etag(data, part_mib * MIB))


def test_a_grown_part_size_matches(tmp_path: Path, data: bytes) -> None:
    """A writer that grows its parts to a whole MiB so the file fits in N parts (here 3)."""
    path = tmp_path / "f"
    path.write_bytes(data)
    assert etags.matches(str(path), len(data), multipart_etag(data, 8 * MIB))
    assert etags.part_sizes(len(data), 3)[0] == 8 * MIB  # ceil(21.01 MiB / 3) -> 8 MiB


def test_plain_md5_and_single_part_multipart(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "f"
    path.write_bytes(data)
    assert etags.matches(str(path), len(data), hashlib.md5(data).hexdigest())
    assert etags.matches(str(path), len(data), multipart_etag(data, 64 * MIB))  # "-1"


def test_other_content_or_unknown_forms_do_not_match(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "f"
    path.write_bytes(data)
    other = data[:-1] + bytes([data[-1] ^ 1])
    assert not etags.matches(str(path), len(data), multipart_etag(other, 8 * MIB))
    assert not etags.matches(str(path), len(data), hashlib.md5(other).hexdigest())
    assert not etags.matches(str(path), len(data), multipart_etag(data, 7 * MIB))  # odd size
    assert not etags.matches(str(path), len(data), "not-an-etag")
    assert not etags.is_md5_etag("abc")
    assert etags.is_md5_etag(multipart_etag(data, 8 * MIB))


def test_part_sizes_cut_into_exactly_n_parts() -> None:
    size = 100 * MIB
    for parts in (1, 2, 7, 13, 20):
        for p in etags.part_sizes(size, parts):
            assert -(-size // p) == parts
    assert etags.part_sizes(size, 0) == []
    assert etags.part_sizes(3, 4) == []
