"""Partial downloads as a killed run leaves them: a temp file and its journal row."""

from __future__ import annotations

from typing import TYPE_CHECKING

import blake3

from fsync.manifest.journal import TransferJournal
from fsync.model import PartialDownload, RelPath
from fsync.transfer.download import RESUME_BLOCK

if TYPE_CHECKING:
    from pathlib import Path

TEMP = ".fsync-0123456789abcdef.tmp"
"""The partial file's name (any fsync temp name would do)."""


def leave_partial(
    dst: Path, name: str, source: str, fingerprint: str, content: bytes, *, blocks: int
) -> Path:
    """What a run pulling `content` (the version `fingerprint` of `name` on the remote
    `source`) leaves when killed after `blocks` checkpoints: the temp file beside `name`,
    holding some bytes of the next block too, and the journal row for the blocks it
    flushed. Returns the temp file."""
    dst.mkdir(exist_ok=True)
    temp = dst / TEMP
    temp.write_bytes(content[: blocks * RESUME_BLOCK + 1000])
    digests = b"".join(
        blake3.blake3(content[i * RESUME_BLOCK : (i + 1) * RESUME_BLOCK]).digest()
        for i in range(blocks)
    )
    row = PartialDownload(
        RelPath(name), source, fingerprint, len(content), TEMP, RESUME_BLOCK, digests, 0.0
    )
    with TransferJournal.open(str(dst)) as journal:
        journal.begin_download(row)
    return temp
