"""How a file is cut into parts for a chunked (multipart) upload: pure arithmetic.

S3 allows at most 10,000 parts per upload, each at least 5 MiB except the last and at most
5 GiB. The user's `--chunk-size` is the part size for every file that fits in 10,000 such
parts; a larger file gets the smallest bigger part size (a whole number of MiB) that fits, as
rclone does, so memory per part grows only as far as the file forces it to.
"""

from __future__ import annotations

from collections.abc import Iterator

MIB = 1 << 20
MAX_PARTS = 10_000
"""S3's limit on the parts of one multipart upload."""
MIN_PART_SIZE = 5 * MIB
"""S3's smallest part (all but the last); a smaller chunk size cannot be used for multipart."""
MAX_PART_SIZE = 5 * 1024 * MIB
"""S3's largest part."""


def needs_parts(size: int, chunk_size: int) -> bool:
    """True when a file of `size` bytes goes in parts rather than one request.

    A file of exactly `chunk_size` bytes still fits in one request.
    """
    return size > chunk_size


def part_size_for(size: int, chunk_size: int, max_parts: int = MAX_PARTS) -> int:
    """The part size for a file of `size` bytes: `chunk_size`, grown so `max_parts` suffice.

    The grown size is rounded up to a whole MiB. Raises `ValueError` for a non-positive chunk
    size, or when even `MAX_PART_SIZE` parts cannot hold the file (S3's 48.8 TiB ceiling
    with 10,000 parts is never reached: objects are capped at 5 TiB).
    """
    if chunk_size <= 0:
        raise ValueError(f"chunk size must be positive, not {chunk_size}")
    if max_parts <= 0:
        raise ValueError(f"max_parts must be positive, not {max_parts}")
    if size <= chunk_size * max_parts:
        return chunk_size
    needed = -(-size // max_parts)
    grown = -(-needed // MIB) * MIB
    if grown > MAX_PART_SIZE:
        raise ValueError(
            f"a file of {size} bytes needs parts of {grown} bytes, more than S3's "
            f"{MAX_PART_SIZE}-byte limit"
        )
    return grown


def part_count(size: int, part_size: int) -> int:
    """How many parts of `part_size` hold `size` bytes (at least 1: an empty upload has one)."""
    if part_size <= 0:
        raise ValueError(f"part size must be positive, not {part_size}")
    return max(1, -(-size // part_size))


def parts(size: int, part_size: int) -> Iterator[tuple[int, int, int]]:
    """(part number from 1, offset, length) of each part, in order; the last may be shorter."""
    for index in range(part_count(size, part_size)):
        offset = index * part_size
        yield index + 1, offset, min(part_size, size - offset)
