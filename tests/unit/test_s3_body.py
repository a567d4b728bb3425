"""Part buffers and request bodies of the S3 adapter: read once, never copied."""

from __future__ import annotations

import io

import pytest

from fsync.errors import FileChangedError
from fsync.remote.s3_multipart import READ_SIZE, SharedBody, read_part


class ReadOnly(io.RawIOBase):
    """A source with only `read` (its inherited `readinto` raises NotImplementedError)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.calls: list[int] = []

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        self.calls.append(n)
        chunk, self.data = self.data[:n], self.data[n:]
        return chunk


def test_read_part_fills_one_buffer_with_readinto() -> None:
    data = bytes(range(256)) * 10_000
    source = io.BufferedReader(io.BytesIO(data))  # type: ignore[arg-type]
    part = read_part(source, 2_000_000, "writing x")
    assert isinstance(part, bytearray)
    assert part == data[:2_000_000]
    assert read_part(source, 560_000, "writing x") == data[2_000_000:]


def test_read_part_falls_back_to_read_in_steps() -> None:
    source = ReadOnly(b"a" * (2 * READ_SIZE + 5))
    assert read_part(source, 2 * READ_SIZE + 5, "writing x") == b"a" * (2 * READ_SIZE + 5)
    assert max(source.calls) <= READ_SIZE


def test_read_part_refuses_a_short_source() -> None:
    with pytest.raises(FileChangedError, match="ended 3 bytes early"):
        read_part(io.BytesIO(b"12345"), 8, "writing x")


def test_shared_body_reads_seeks_and_views_the_buffer_in_place() -> None:
    buf = bytearray(b"0123456789")
    body = SharedBody(buf)
    assert body.read(4) == b"0123"
    assert body.tell() == 4
    assert body.seek(0, io.SEEK_END) == 10
    assert body.read() == b""
    body.seek(2)
    target = bytearray(3)
    assert body.readinto(target) == 3
    assert target == b"234"
    with body.getbuffer() as view:
        assert len(view) == 10
        assert view.readonly
    buf[0:1] = b"X"  # the body is a view of the caller's buffer, not a copy
    body.seek(0)
    assert body.read(1) == b"X"
    assert body.getvalue() == bytes(buf)
    assert isinstance(body, io.BytesIO)  # what aiohttp streams from the event loop
