"""The outbox of `fsync watch`, in a real SQLite database under tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

from fsync.hashing import CacheRecord, StatSig
from fsync.manifest import Manifest
from fsync.model import Digest, RelPath

URL = "file:///remote"


def test_queue_then_unqueue(tmp_path: Path) -> None:
    with Manifest.open(str(tmp_path)) as m:
        assert m.queued(URL) == []
        m.queue(URL, [RelPath("b"), RelPath("a/c")])
        m.queue(URL, [RelPath("b")])  # already queued: kept once
        m.queue("file:///other", [RelPath("x")])
        assert sorted(m.queued(URL)) == ["a/c", "b"]
        m.unqueue(URL, [RelPath("b"), RelPath("never-queued")])
        assert m.queued(URL) == ["a/c"]
        assert m.queued("file:///other") == ["x"]
        m.unqueue("file:///unknown", [RelPath("x")])  # an unknown remote is fine


def test_queue_survives_a_reopen(tmp_path: Path) -> None:
    with Manifest.open(str(tmp_path)) as m:
        m.queue(URL, [RelPath("a")])
    with Manifest.open(str(tmp_path)) as m:
        assert m.queued(URL) == ["a"]


def test_the_queue_and_the_cache_commit_or_roll_back_together(tmp_path: Path) -> None:
    record = CacheRecord(StatSig(1, 2, 3, 4, 0o100644), Digest("d" * 64), trusted=True)
    with Manifest.open(str(tmp_path)) as m:

        def interrupted() -> None:
            with m.transaction():
                m.update_cache([(RelPath("a"), record)])
                m.queue(URL, [RelPath("a")])
                raise RuntimeError("killed between the two")

        with pytest.raises(RuntimeError):
            interrupted()
        assert m.queued(URL) == []
        assert m.cached(RelPath("a")) is None
        with m.transaction():
            m.update_cache([(RelPath("a"), record)])
            m.queue(URL, [RelPath("a")])
    with Manifest.open(str(tmp_path)) as m:
        assert m.queued(URL) == ["a"]
        assert m.cached(RelPath("a")) == record
