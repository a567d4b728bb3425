"""The digest cache as plain rows: `Manifest.cache_rows` and the scanner's fast path over it.

Real trees under tmp_path and a real state database; each answer of the row path is checked
against the record path (`cached`) that the scanner takes for any other `DigestCache`.
"""

from __future__ import annotations

import os
from pathlib import Path

from blake3 import blake3

from fsync.hashing import CacheRecord, StatSig
from fsync.ignore import IgnoreMatcher
from fsync.manifest import Manifest
from fsync.model import Digest, RelPath
from fsync.scanner import RowCache, ScanResult, scan

NO_IGNORE = IgnoreMatcher()
LATER = 10**19
"""A scan start long after every file here: whatever is hashed comes out trusted."""


class RecordsOnly:
    """A `DigestCache` with the manifest's records but no rows: the scanner's other path."""

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest

    def cached(self, path: RelPath) -> CacheRecord | None:
        return self.manifest.cached(path)


def _rec(n: int, *, ino: int = 0, trusted: bool = True) -> CacheRecord:
    sig = StatSig(n, 10**18 + n, ino or 1000 + n, 10**18 + 2 * n, 0o100644)
    return CacheRecord(sig, Digest(blake3(str(n).encode()).hexdigest()), trusted)


def _tree(root: Path) -> None:
    for rel in ("a", "d/b", "d/e/c", "x y.txt"):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rel)


def _same(a: ScanResult, b: ScanResult) -> None:
    assert a.entries == b.entries
    assert sorted(a.updates) == sorted(b.updates)
    assert (a.errors, a.warnings, a.removed, a.incomplete) == (
        b.errors,
        b.warnings,
        b.removed,
        b.incomplete,
    )


def test_rows_answer_what_cached_answers(tmp_path: Path) -> None:
    records = {
        RelPath("plain"): _rec(1),
        RelPath("racy"): _rec(2, trusted=False),
        RelPath("wrapped"): _rec(3, ino=(1 << 64) - 5),  # stored as a negative integer
    }
    with Manifest.open(str(tmp_path)) as m:
        m.update_cache(records.items())
    with Manifest.open(str(tmp_path)) as m:
        rows = m.cache_rows()
        assert set(rows) == set(records)
        for path, rec in records.items():
            assert m.cached(path) == rec
            sig = rec.sig
            fields = (sig.size, sig.mtime_ns, sig.ino, sig.ctime_ns, sig.mode)
            assert rows[path] == (path, *fields, rec.digest, int(rec.trusted))


def test_rows_follow_the_manifests_own_writes(tmp_path: Path) -> None:
    with Manifest.open(str(tmp_path)) as m:
        m.update_cache([(RelPath("a"), _rec(1)), (RelPath("b"), _rec(2))])
        rows = m.cache_rows()
        m.update_cache([(RelPath("a"), _rec(5))])
        m.drop_cache([RelPath("b")])
        assert set(m.cache_rows()) == {"a"}
        assert m.cache_rows()["a"][1] == 5
        assert m.cached(RelPath("a")) == _rec(5)
        assert rows is m.cache_rows()  # loaded once, kept in step


def test_manifest_is_a_row_cache(tmp_path: Path) -> None:
    with Manifest.open(str(tmp_path)) as m:
        assert isinstance(m, RowCache)
        assert not isinstance(RecordsOnly(m), RowCache)


def test_a_rescan_over_rows_equals_one_over_records(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    _tree(root)
    with Manifest.open(str(root)) as m:
        first = scan(str(root), m, NO_IGNORE, now_ns=LATER)
        m.update_cache(first.updates)
        assert len(first.updates) == 4
    (root / "d" / "b").write_text("changed, longer than before")
    os.utime(root / "a", ns=(5, 5))  # same content, another mtime: hashed again

    with Manifest.open(str(root)) as m:
        by_rows = scan(str(root), m, NO_IGNORE, now_ns=LATER)
    with Manifest.open(str(root)) as m:
        by_records = scan(str(root), RecordsOnly(m), NO_IGNORE, now_ns=LATER)

    _same(by_rows, by_records)
    assert {p for p, _ in by_rows.updates} == {"a", "d/b"}
    assert by_rows.entries[RelPath("d/e/c")].digest == blake3(b"d/e/c").hexdigest()


def test_an_untrusted_row_is_hashed_again(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    _tree(root)
    with Manifest.open(str(root)) as m:
        racy = scan(str(root), m, NO_IGNORE, now_ns=0)  # every file "just written"
        m.update_cache(racy.updates)
    with Manifest.open(str(root)) as m:
        again = scan(str(root), m, NO_IGNORE, now_ns=LATER)
    assert sorted(p for p, _ in again.updates) == sorted(racy.entries)
    assert all(rec.trusted for _, rec in again.updates)
    assert again.entries == racy.entries


def test_odd_names_take_the_full_checks(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    _tree(root)
    (root / "tab\there").write_text("x")
    (root / "back\\slash").write_text("x")
    (root / "e\u0301").write_text("not NFC on disk")
    with Manifest.open(str(root)) as m:
        m.update_cache(scan(str(root), m, NO_IGNORE, now_ns=LATER).updates)
    with Manifest.open(str(root)) as m:
        by_rows = scan(str(root), m, NO_IGNORE, now_ns=LATER)
        by_records = scan(str(root), RecordsOnly(m), NO_IGNORE, now_ns=LATER)

    _same(by_rows, by_records)
    assert by_rows.updates == []
    assert "\u00e9" in by_rows.entries
    assert not any("\t" in p or "\\" in p for p in by_rows.entries)
    assert len(by_rows.unsendable) == 2
