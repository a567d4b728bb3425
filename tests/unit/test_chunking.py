"""Part sizes for multipart uploads: the chunk size, grown only when 10,000 parts won't do."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fsync.remote.chunking import (
    MAX_PART_SIZE,
    MAX_PARTS,
    MIB,
    needs_parts,
    part_count,
    part_size_for,
    parts,
)

GIB = 1024 * MIB


def test_small_file_is_one_request() -> None:
    assert not needs_parts(0, 16 * MIB)
    assert not needs_parts(16 * MIB, 16 * MIB)
    assert needs_parts(16 * MIB + 1, 16 * MIB)


@pytest.mark.parametrize(
    ("size", "chunk", "expected"),
    [
        (100 * MIB, 16 * MIB, 16 * MIB),
        (16 * MIB * MAX_PARTS, 16 * MIB, 16 * MIB),  # exactly 10,000 parts still fits
        (16 * MIB * MAX_PARTS + 1, 16 * MIB, 17 * MIB),  # one byte more: next whole MiB
        (1024 * GIB, 16 * MIB, 105 * MIB),  # 1 TiB needs 104.86 MiB parts
        (5 * 1024 * GIB, 5 * MIB, 525 * MIB),  # S3's 5 TiB object limit
    ],
)
def test_part_size_grows_to_fit_the_part_limit(size: int, chunk: int, expected: int) -> None:
    assert part_size_for(size, chunk) == expected
    assert part_count(size, expected) <= MAX_PARTS


def test_part_size_beyond_s3_limits_is_refused() -> None:
    with pytest.raises(ValueError, match="5368709120-byte limit"):
        part_size_for(MAX_PART_SIZE * MAX_PARTS + 1, 16 * MIB)
    with pytest.raises(ValueError, match="positive"):
        part_size_for(10, 0)


def test_parts_cover_the_file_in_order() -> None:
    assert list(parts(11 * MIB, 5 * MIB)) == [
        (1, 0, 5 * MIB),
        (2, 5 * MIB, 5 * MIB),
        (3, 10 * MIB, MIB),
    ]
    assert list(parts(10 * MIB, 5 * MIB)) == [(1, 0, 5 * MIB), (2, 5 * MIB, 5 * MIB)]
    assert list(parts(0, 5 * MIB)) == [(1, 0, 0)]


@given(
    size=st.integers(min_value=1, max_value=5 * 1024 * GIB),
    chunk=st.integers(min_value=5 * MIB, max_value=64 * MIB),
)
def test_parts_properties(size: int, chunk: int) -> None:
    part_size = part_size_for(size, chunk)
    assert part_size >= chunk
    count = part_count(size, part_size)
    assert count <= MAX_PARTS
    if part_size > chunk:
        assert part_size % MIB == 0
        assert part_count(size, part_size - MIB) > MAX_PARTS or part_size - MIB < chunk
    if count <= 50:  # enumerate only small layouts; the arithmetic above covers the rest
        layout = list(parts(size, part_size))
        assert [n for n, _, _ in layout] == list(range(1, count + 1))
        assert sum(length for _, _, length in layout) == size
        assert all(offset == (n - 1) * part_size for n, offset, _ in layout)
        assert all(0 < length <= part_size for _, _, length in layout)
