"""manifest: the SQLite state database, on real files under tmp_path."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from blake3 import blake3

from fsync.errors import ConfigError
from fsync.hashing import HASH_VERSION, CacheRecord, StatSig
from fsync.ignore import IgnoreMatcher
from fsync.manifest import Manifest, RunRecord, db
from fsync.model import BaseEntry, Digest, RelPath
from fsync.scanner import scan


def _d(text: str) -> Digest:
    return Digest(blake3(text.encode()).hexdigest())


def _rec(n: int, trusted: bool = True) -> CacheRecord:
    return CacheRecord(
        StatSig(n, 10**18 + n, 1000 + n, 10**18 + 2 * n, 0o100644), _d(str(n)), trusted
    )


def _base(n: int) -> BaseEntry:
    return BaseEntry(size=n, digest=_d(f"b{n}"), fingerprint=f"etag-{n}", mtime_ns=10**18 + n)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "root"
    path.mkdir()
    return path


@pytest.fixture
def manifest(root: Path) -> Iterator[Manifest]:
    with Manifest.open(str(root)) as m:
        yield m


def _raw(root: Path) -> sqlite3.Connection:
    return sqlite3.connect(root / ".fsync" / "state.db")


# --- files, pragmas, migrations ------------------------------------------------------------


def test_files_are_private_whatever_the_umask(root: Path) -> None:
    old = os.umask(0)
    try:
        with Manifest.open(str(root)) as m:
            m.update_cache([(RelPath("a"), _rec(1))])  # a write, so -wal and -shm exist
            names = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (root / ".fsync").iterdir()}
    finally:
        os.umask(old)

    assert stat.S_IMODE((root / ".fsync").stat().st_mode) == 0o700
    assert names["state.db"] == 0o600
    assert names["state.db-wal"] == 0o600
    assert names["state.db-shm"] == 0o600


def test_wal_mode_and_schema_version(manifest: Manifest, root: Path) -> None:
    conn = _raw(root)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    latest = db.migrations()[-1].version
    assert conn.execute("PRAGMA user_version").fetchone()[0] == latest
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE type='table'")}
    assert {"local_cache", "remotes", "base", "runs"} <= tables
    conn.close()


def test_tables_are_strict(manifest: Manifest, root: Path) -> None:
    conn = _raw(root)
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("INSERT INTO local_cache VALUES ('p', 'not a number', 1, 1, 1, 1, 'd', 1, 1)")
    conn.close()


def test_migrations_are_numbered_from_one() -> None:
    found = db.migrations()
    assert [m.version for m in found] == list(range(1, len(found) + 1))
    assert found[0].name == "0001_init.sql"


def test_migrating_twice_changes_nothing(root: Path) -> None:
    with Manifest.open(str(root)) as m:
        m.update_cache([(RelPath("a"), _rec(1))])
    with Manifest.open(str(root)) as m:
        assert m.cached(RelPath("a")) == _rec(1)
    conn = _raw(root)
    assert db.migrate(conn) == db.migrations()[-1].version
    conn.close()


def test_newer_database_is_refused(root: Path) -> None:
    Manifest.open(str(root)).close()
    conn = _raw(root)
    conn.execute("PRAGMA user_version = 999")
    conn.commit()
    conn.close()

    with pytest.raises(ConfigError, match=r"newer fsync \(schema 999"):
        Manifest.open(str(root))


def test_garbage_database_is_a_config_error(root: Path) -> None:
    (root / ".fsync").mkdir()
    (root / ".fsync" / "state.db").write_bytes(b"this is not sqlite" * 300)

    with pytest.raises(ConfigError, match="not a usable fsync state database"):
        Manifest.open(str(root))


def test_failed_migration_leaves_the_previous_version(tmp_path: Path) -> None:
    """A migration that fails after its first statement leaves nothing of itself: here the
    second one, whose index name a database at version 1 already holds (as a hand edit
    could leave it), after its table is made."""
    path = tmp_path / "s" / "state.db"
    path.parent.mkdir()
    conn = sqlite3.connect(path)
    conn.executescript(db.migrations()[0].sql)
    conn.execute("CREATE INDEX upload_journal_by_target ON runs (started)")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()

    with pytest.raises(ConfigError):
        db.connect(str(path))

    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_schema")}
    assert "upload_journal" not in names
    assert "local_cache" in names
    conn.close()


def test_s3_remotes_recorded_under_another_spelling_keep_their_base(tmp_path: Path) -> None:
    """`s3://b/p/`, `S3://b/p` and `s3a://b/p` are keyed `s3://b/p` since the URL is made
    canonical; a base recorded under the old spelling was no longer found."""
    root = tmp_path / "root"
    path = root / ".fsync" / "state.db"
    path.parent.mkdir(parents=True)
    conn = sqlite3.connect(path)
    for migration in db.migrations()[:6]:
        conn.executescript(migration.sql)
    conn.execute("PRAGMA user_version = 6")
    old = {
        "s3://b/p/ on http://127.0.0.1:9000": "s3://b/p on http://127.0.0.1:9000",
        "s3a://c/q": "s3://c/q",
        "S3://d/r//": "s3://d/r",
        "s3://e/x/": "s3://e/x/",  # both spellings were used: each keeps its own
        "s3://e/x": "s3://e/x",
        "file:///srv/f/": "file:///srv/f/",
    }
    for n, url in enumerate(old, start=1):
        conn.execute("INSERT INTO remotes (id, url) VALUES (?, ?)", (n, url))
        conn.execute(
            "INSERT INTO base (remote_id, path, size, digest, fingerprint, mtime_ns)"
            " VALUES (?, ?, 1, 'd', 'f', 0)",
            (n, f"from-{n}"),
        )
    conn.commit()
    conn.close()
    with Manifest.open(str(root)) as m:
        for n, (url, now) in enumerate(old.items(), start=1):
            assert set(m.base(now)) == {f"from-{n}"}, url


def test_s3_remotes_recorded_with_capitals_in_their_endpoint_keep_their_base(
    tmp_path: Path,
) -> None:
    """An endpoint's scheme and host are keyed in lower case since `HTTP://h` had a base of
    its own: a base recorded under capitals (typed so every time) must still be found."""
    root = tmp_path / "root"
    path = root / ".fsync" / "state.db"
    path.parent.mkdir(parents=True)
    conn = sqlite3.connect(path)
    for migration in db.migrations()[:12]:
        conn.executescript(migration.sql)
    conn.execute("PRAGMA user_version = 12")
    old = {
        "s3://b/P on http://MinIO.Local:9000": "s3://b/P on http://minio.local:9000",
        "s3://b/p on HTTPS://Store.Example/Path": "s3://b/p on https://store.example/Path",
        "s3://b/u on https://User@Host": "s3://b/u on https://User@Host",  # (as the key)
        "s3://c/q on http://A": "s3://c/q on http://A",  # both spellings were used
        "s3://c/q on http://a": "s3://c/q on http://a",
        "s3://d/On HTTP": "s3://d/On HTTP",
        "file:///Srv/F": "file:///Srv/F",
    }
    for n, url in enumerate(old, start=1):
        conn.execute("INSERT INTO remotes (id, url) VALUES (?, ?)", (n, url))
        conn.execute(
            "INSERT INTO base (remote_id, path, size, digest, fingerprint, mtime_ns)"
            " VALUES (?, ?, 1, 'd', 'f', 0)",
            (n, f"from-{n}"),
        )
    conn.commit()
    conn.close()
    with Manifest.open(str(root)) as m:
        for n, (url, now) in enumerate(old.items(), start=1):
            assert set(m.base(now)) == {f"from-{n}"}, url


def test_statement_splitting_respects_comments_and_strings() -> None:
    sql = (
        "-- a comment; with a semicolon\n"
        "CREATE TABLE t (x TEXT DEFAULT 'a;b');\n"
        "/* block; comment */ CREATE INDEX i ON t (x);\n"
        "-- trailing comment\n"
    )
    statements = db._statements(sql)
    assert len(statements) == 2
    assert "'a;b'" in statements[0]
    with pytest.raises(RuntimeError, match="incomplete"):
        db._statements("CREATE TABLE t (x TEXT)\n")


def test_open_missing_root_does_not_create_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        Manifest.open(str(tmp_path / "missing"))
    assert not (tmp_path / "missing").exists()
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(ConfigError, match="is not a directory"):
        Manifest.open(str(tmp_path / "file"))


# --- the digest cache ------------------------------------------------------------------------


def test_cache_round_trip_across_reopen(root: Path) -> None:
    updates = [(RelPath(f"d/f{i}"), _rec(i, trusted=i % 2 == 0)) for i in range(50)]
    with Manifest.open(str(root)) as m:
        assert m.cached(RelPath("d/f1")) is None
        m.update_cache(updates)
        assert m.cached(RelPath("d/f1")) == _rec(1, trusted=False)
    with Manifest.open(str(root)) as m:
        for path, record in updates:
            assert m.cached(path) == record
        assert m.cached(RelPath("other")) is None


def test_cache_update_replaces(manifest: Manifest) -> None:
    manifest.update_cache([(RelPath("a"), _rec(1))])
    manifest.update_cache([(RelPath("a"), _rec(2))])
    assert manifest.cached(RelPath("a")) == _rec(2)


def test_huge_inode_numbers_round_trip(root: Path) -> None:
    big = CacheRecord(StatSig(1, 2, 2**64 - 1, 3, 0o100600), _d("x"), True)
    edge = CacheRecord(StatSig(1, 2, 2**63, 3, 0o100600), _d("y"), True)
    with Manifest.open(str(root)) as m:
        m.update_cache([(RelPath("big"), big), (RelPath("edge"), edge)])
    with Manifest.open(str(root)) as m:
        assert m.cached(RelPath("big")) == big
        assert m.cached(RelPath("edge")) == edge


def test_rows_of_an_older_hash_version_are_ignored_and_pruned(root: Path) -> None:
    with Manifest.open(str(root)) as m:
        m.update_cache([(RelPath("old"), _rec(1)), (RelPath("new"), _rec(2))])
    conn = _raw(root)
    conn.execute("UPDATE local_cache SET hash_version = ? WHERE path = 'old'", (HASH_VERSION - 1,))
    conn.commit()
    with Manifest.open(str(root)) as m:
        assert m.cached(RelPath("old")) is None
        assert m.cached(RelPath("new")) == _rec(2)
        assert m.prune_cache({RelPath("old"), RelPath("new")}) == 1
    assert conn.execute("SELECT path FROM local_cache").fetchall() == [("new",)]
    conn.close()


@pytest.mark.parametrize("loaded", [False, True], ids=["cold", "loaded"])
def test_prune_and_drop_cache(root: Path, loaded: bool) -> None:
    with Manifest.open(str(root)) as m:
        m.update_cache([(RelPath(p), _rec(i)) for i, p in enumerate("abcde")])
    with Manifest.open(str(root)) as m:
        if loaded:
            m.cached(RelPath("a"))
        assert m.prune_cache([RelPath("a"), RelPath("b"), RelPath("c")]) == 2
        m.drop_cache([RelPath("b"), RelPath("never")])
        assert m.cached(RelPath("a")) == _rec(0)
        assert m.cached(RelPath("b")) is None
        assert m.cached(RelPath("d")) is None
    with Manifest.open(str(root)) as m:
        assert [p for p in "abcde" if m.cached(RelPath(p))] == ["a", "c"]


def test_manifest_serves_as_the_scanners_digest_cache(root: Path) -> None:
    (root / "f").write_bytes(b"data")
    far = 2**62
    with Manifest.open(str(root)) as m:
        first = scan(str(root), m, IgnoreMatcher(), now_ns=far)
        m.update_cache(first.updates)
    with Manifest.open(str(root)) as m:
        second = scan(str(root), m, IgnoreMatcher(), now_ns=far)
    assert list(first.entries) == ["f"]  # .fsync itself is never scanned
    assert second.entries == first.entries
    assert second.updates == []


# --- the base ------------------------------------------------------------------------------


def test_base_round_trip_per_remote(root: Path) -> None:
    with Manifest.open(str(root)) as m:
        assert m.base("s3://b/p") == {}
        m.set_base("s3://b/p", [(RelPath("a"), _base(1)), (RelPath("d/b"), _base(2))])
        m.set_base("file:///other", [(RelPath("a"), _base(3))])
    with Manifest.open(str(root)) as m:
        assert m.base("s3://b/p") == {"a": _base(1), "d/b": _base(2)}
        assert m.base("file:///other") == {"a": _base(3)}
        assert m.known_remotes() == ["file:///other", "s3://b/p"]


def test_set_base_replaces_and_forgets(manifest: Manifest) -> None:
    url = "memory://x"
    manifest.set_base(url, [(RelPath("a"), _base(1)), (RelPath("b"), _base(2))])
    manifest.set_base(url, [(RelPath("a"), _base(9)), (RelPath("b"), None), (RelPath("c"), None)])
    assert manifest.base(url) == {"a": _base(9)}
    manifest.set_base(url, [])
    assert manifest.base(url) == {"a": _base(9)}


def test_empty_set_base_does_not_register_a_remote(manifest: Manifest) -> None:
    manifest.set_base("memory://nothing", [])
    assert manifest.known_remotes() == []


# --- runs ----------------------------------------------------------------------------------


def test_runs_round_trip(root: Path) -> None:
    with Manifest.open(str(root)) as m:
        first = m.start_run("push", "s3://b")
        m.finish_run(first, 0, {"uploaded": 3, "errors": []})
        second = m.start_run("pull", "memory://m")
        m.finish_run(second, 1, {"failed": 1, "errors": [{"path": "x", "error": "boom"}]})
        third = m.start_run("push", "s3://b")
    with Manifest.open(str(root)) as m:
        runs = m.last_runs()
        only_s3 = m.last_runs(remote="s3://b")
        newest = m.last_runs(limit=1)

    assert [r.id for r in runs] == [third, second, first]
    running = runs[0]
    assert isinstance(running, RunRecord)
    assert (running.command, running.remote_url) == ("push", "s3://b")
    assert running.ended is None
    assert running.exit_code is None
    assert running.summary == {}
    assert runs[1].exit_code == 1
    assert runs[1].summary == {"failed": 1, "errors": [{"path": "x", "error": "boom"}]}
    assert runs[2].ended is not None
    assert runs[2].ended >= runs[2].started
    assert [r.id for r in only_s3] == [third, first]
    assert [r.id for r in newest] == [third]


def test_finish_unknown_run_raises(manifest: Manifest) -> None:
    with pytest.raises(KeyError):
        manifest.finish_run(12345, 0, {})


# --- transactions --------------------------------------------------------------------------


class Boom(Exception):
    pass


def test_transaction_rolls_back_everything_on_error(root: Path) -> None:
    with Manifest.open(str(root)) as m:
        m.update_cache([(RelPath("kept"), _rec(1))])

        def failing_batch() -> None:
            with m.transaction():
                m.update_cache([(RelPath("a"), _rec(2)), (RelPath("kept"), _rec(3))])
                m.set_base("memory://r", [(RelPath("a"), _base(1))])
                m.start_run("push", "memory://r")
                assert m.cached(RelPath("a")) == _rec(2)  # visible inside the transaction
                raise Boom

        with pytest.raises(Boom):
            failing_batch()
        assert m.cached(RelPath("a")) is None
        assert m.cached(RelPath("kept")) == _rec(1)
        assert m.base("memory://r") == {}
        assert m.known_remotes() == []
        assert m.last_runs() == []
    with Manifest.open(str(root)) as m:
        assert m.cached(RelPath("a")) is None
        assert m.cached(RelPath("kept")) == _rec(1)


def test_transaction_commits_once_at_the_end(root: Path) -> None:
    with Manifest.open(str(root)) as writer, Manifest.open(str(root)) as reader:
        with writer.transaction():
            writer.set_base("memory://r", [(RelPath("a"), _base(1))])
            writer.set_base("memory://r", [(RelPath("b"), _base(2))])
            assert reader.base("memory://r") == {}  # not committed yet
        assert reader.base("memory://r") == {"a": _base(1), "b": _base(2)}


def test_writes_outside_a_transaction_commit_themselves(root: Path) -> None:
    with Manifest.open(str(root)) as writer, Manifest.open(str(root)) as reader:
        writer.set_base("memory://r", [(RelPath("a"), _base(1))])
        assert reader.base("memory://r") == {"a": _base(1)}


def test_nested_transaction_failure_undoes_only_the_inner_block(manifest: Manifest) -> None:
    with manifest.transaction():
        manifest.update_cache([(RelPath("outer"), _rec(1))])

        def failing_inner() -> None:
            with manifest.transaction():
                manifest.update_cache([(RelPath("inner"), _rec(2))])
                raise Boom

        with pytest.raises(Boom):
            failing_inner()
        manifest.update_cache([(RelPath("after"), _rec(3))])
    assert manifest.cached(RelPath("outer")) == _rec(1)
    assert manifest.cached(RelPath("inner")) is None
    assert manifest.cached(RelPath("after")) == _rec(3)
