"""Settling the publish intents a killed run left (`fsync.transfer.intents`), against a real
folder remote and the manifest's own journal rows."""

from __future__ import annotations

import os
from pathlib import Path

from fsync.hashing import hash_file
from fsync.manifest import Manifest
from fsync.manifest.journal import TransferJournal
from fsync.model import BaseEntry, Digest, LocalEntry, PublishIntent, RelPath
from fsync.remote.local import LocalRemote
from fsync.transfer.intents import settle


def _digest(path: Path) -> Digest:
    return hash_file(str(path))[0]


def test_intents_round_trip_and_go_with_the_record(tmp_path: Path) -> None:
    """What the journal writes the manifest reads back, per remote; settling drops them."""
    up = PublishIntent(RelPath("a"), True, Digest("ab" * 32), 3, "3:1:2", 1)
    down = PublishIntent(RelPath("b/c"), False, Digest("cd" * 32), 4, "etag")
    with TransferJournal.open(str(tmp_path)) as journal:
        journal.intend("r1", [up, down])
        journal.intend("r2", [down])
    with Manifest.open(str(tmp_path)) as manifest:
        assert manifest.intents("r1") == [up, down]
        manifest.settle_intents("r1", [RelPath("a"), RelPath("b/c")])
        assert manifest.intents("r1") == []
        assert manifest.intents("r2") == [down]


def test_a_download_in_place_is_the_base_and_one_edited_since_is_dropped(
    tmp_path: Path,
) -> None:
    remote = LocalRemote(str(tmp_path / "r"))
    (tmp_path / "x").write_bytes(b"v1")
    digest, sig = _digest(tmp_path / "x"), os.stat(tmp_path / "x")
    here = {
        RelPath("x"): LocalEntry(2, sig.st_mtime_ns, digest),
        RelPath("y"): LocalEntry(2, sig.st_mtime_ns, Digest("00" * 32)),
    }
    intents = [PublishIntent(RelPath(p), False, digest, 2, "fp-v1") for p in ("x", "y", "gone")]

    bases, decided = settle(intents, remote, str(tmp_path), here, {})

    assert bases == {RelPath("x"): BaseEntry(2, digest, "fp-v1", sig.st_mtime_ns)}
    assert decided == [RelPath("x"), RelPath("y"), RelPath("gone")]


def test_an_upload_in_place_is_the_base_by_its_version_or_its_content(tmp_path: Path) -> None:
    """Expected version listed: adopted unread. No version known beforehand (a file `put`):
    the folder keeps no digest, so the content is hashed. Other content: dropped."""
    root = tmp_path / "r"
    root.mkdir()
    for name, body in (("same", b"L1"), ("unknown", b"L1"), ("other", b"XX")):
        (root / name).write_bytes(body)
    remote = LocalRemote(str(root))
    listed = remote.list().entries
    digest = _digest(root / "same")
    intents = [
        PublishIntent(RelPath("same"), True, digest, 2, listed[RelPath("same")].fingerprint, 7),
        PublishIntent(RelPath("unknown"), True, digest, 2, "", 7),
        PublishIntent(RelPath("other"), True, digest, 2, "", 7),
        PublishIntent(RelPath("absent"), True, digest, 2, "", 7),
    ]

    bases, decided = settle(intents, remote, str(tmp_path), {}, listed)

    assert bases == {
        p: BaseEntry(2, digest, listed[p].fingerprint, 7)
        for p in (RelPath("same"), RelPath("unknown"))
    }
    assert len(decided) == 4
