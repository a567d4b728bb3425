"""The `Remote` contract, written once and run against every adapter.

A backend's test module subclasses `RemoteContract` and supplies three fixtures:

- `remote`: a fresh, empty `Remote` whose root exists;
- `make_remote(sub="")`: another `Remote` opened on the same root (or on `root/sub`), to
  check that what one instance wrote another sees;
- `raw`: a `RawBackend` that writes and lists names under the root directly in the backend,
  bypassing the adapter (to plant temp files or names the adapter must refuse).

and sets `object_store = True` where the backend has no real folders.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import ClassVar, Protocol

import blake3
import pytest

from fsync.errors import RemoteChanged
from fsync.model import Digest, RelPath, RemoteEntry
from fsync.paths import to_relpath
from fsync.remote.base import ObjectMeta, Remote

MTIME_NS = 1_600_000_000_123_456_789
"""A modification time with all nine fractional digits significant."""


class RawBackend(Protocol):
    """Direct access to the backend under the remote's root, bypassing the adapter."""

    def write(self, name: str, data: bytes) -> None:
        """Create `name` (slash-separated, relative to the root) holding `data`."""
        ...

    def names(self) -> set[str]:
        """Every file name under the root, relative to it, including temp files."""
        ...


MakeRemote = Callable[..., Remote]


def rel(name: str) -> RelPath:
    """A `RelPath` for a test name."""
    return to_relpath(name)


def meta_for(data: bytes, mtime_ns: int = MTIME_NS, mode: int = 0o100644) -> ObjectMeta:
    """The `ObjectMeta` an upload of `data` would carry."""
    return ObjectMeta(
        size=len(data), digest=Digest(blake3.blake3(data).hexdigest()), mtime_ns=mtime_ns, mode=mode
    )


def put_bytes(
    remote: Remote,
    name: str,
    data: bytes,
    *,
    expect: RemoteEntry | None = None,
    mtime_ns: int = MTIME_NS,
    before_publish: Callable[[], None] = lambda: None,
) -> RemoteEntry:
    """Upload `data` to `name` and return the entry `put` reports."""
    return remote.put(
        rel(name),
        io.BytesIO(data),
        meta_for(data, mtime_ns),
        expect=expect,
        before_publish=before_publish,
    )


def read_all(remote: Remote, name: str, chunk: int = 1 << 20) -> bytes:
    """The content of `name`, read through `open_read` in chunks."""
    parts: list[bytes] = []
    with remote.open_read(rel(name)) as src:
        while block := src.read(chunk):
            parts.append(block)
    return b"".join(parts)


class StingyReader(io.RawIOBase):
    """A source of `size` pseudo-random bytes that refuses reads larger than `limit`.

    An adapter that slurps its source (`read()` or `read(-1)`) fails here, so the test proves
    uploads stream.
    """

    def __init__(self, size: int, limit: int) -> None:
        self.remaining = size
        self.limit = limit
        self.hasher = blake3.blake3()
        self.largest = 0
        self._counter = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0 or n > self.limit:
            raise AssertionError(f"read({n}) asks for more than {self.limit} bytes at once")
        self.largest = max(self.largest, n)
        n = min(n, self.remaining)
        block = bytearray()
        while len(block) < n:
            self._counter += 1
            block += blake3.blake3(self._counter.to_bytes(8, "big")).digest(length=4096)
        data = bytes(block[:n])
        self.remaining -= len(data)
        self.hasher.update(data)
        return data


class RemoteContract:
    """Tests every adapter must pass; names follow rclone's fstests and the fsspec mixins."""

    object_store: ClassVar[bool] = False
    """True where the backend has no folders, so a missing root still "exists"."""

    # -- listing -------------------------------------------------------------------------

    def test_list_empty_root(self, remote: Remote) -> None:
        listing = remote.list()
        assert listing.entries == {}
        assert listing.refused == ()
        assert listing.skipped == ()
        assert remote.root_exists()

    def test_missing_root_lists_empty(self, make_remote: MakeRemote) -> None:
        missing = make_remote("no/such/folder")
        assert missing.list().entries == {}
        assert missing.stat(rel("x")) is None
        assert missing.root_exists() is self.object_store

    def test_put_creates_missing_root(self, make_remote: MakeRemote) -> None:
        fresh = make_remote("new/root")
        put_bytes(fresh, "a/b.txt", b"hello")
        assert fresh.root_exists()
        assert set(fresh.list().entries) == {rel("a/b.txt")}

    # -- put, stat, list -------------------------------------------------------------------

    def test_put_then_stat(self, remote: Remote) -> None:
        entry = put_bytes(remote, "a.txt", b"hello world")
        assert entry.size == 11
        assert entry.fingerprint
        assert remote.stat(rel("a.txt")) == entry
        assert read_all(remote, "a.txt") == b"hello world"
        assert remote.stat(rel("b.txt")) is None

    def test_put_then_list(self, remote: Remote, make_remote: MakeRemote) -> None:
        """The listing's fingerprint equals stat's: the planner compares one to the other."""
        put_bytes(remote, "one.txt", b"1")
        put_bytes(remote, "sub/two.txt", b"22")
        listing = make_remote().list()
        assert set(listing.entries) == {rel("one.txt"), rel("sub/two.txt")}
        for path, entry in listing.entries.items():
            assert entry == remote.stat(path)
        assert listing.entries[rel("sub/two.txt")].size == 2

    def test_second_instance_sees_writes(self, remote: Remote, make_remote: MakeRemote) -> None:
        put_bytes(remote, "shared.bin", b"\x00\x01\x02")
        other = make_remote()
        assert read_all(other, "shared.bin") == b"\x00\x01\x02"
        other.delete(rel("shared.bin"), expect=other.stat(rel("shared.bin")))
        assert remote.stat(rel("shared.bin")) is None

    def test_overwrite_changes_fingerprint(self, remote: Remote) -> None:
        first = put_bytes(remote, "f.txt", b"version 1", mtime_ns=MTIME_NS)
        second = put_bytes(remote, "f.txt", b"version 2", expect=first, mtime_ns=MTIME_NS + 10**9)
        assert second.size == first.size
        assert second.fingerprint != first.fingerprint
        assert remote.stat(rel("f.txt")) == second
        assert read_all(remote, "f.txt") == b"version 2"

    def test_zero_length_file(self, remote: Remote) -> None:
        entry = put_bytes(remote, "empty", b"")
        assert entry.size == 0
        assert remote.list().entries[rel("empty")] == entry
        assert read_all(remote, "empty") == b""

    def test_unicode_and_spaces_in_names(self, remote: Remote) -> None:
        names = [
            "dir with space/naïve café.txt",
            "日本語/ファイル.txt",
            "emoji 🎉 #1.txt",
            "%41+&=.md",
        ]
        for i, name in enumerate(names):
            put_bytes(remote, name, f"content {i}".encode())
        assert set(remote.list().entries) == {rel(n) for n in names}
        for i, name in enumerate(names):
            assert read_all(remote, name) == f"content {i}".encode()

    def test_deep_paths(self, remote: Remote) -> None:
        name = "/".join(f"level{i}" for i in range(12)) + "/leaf.txt"
        entry = put_bytes(remote, name, b"deep")
        assert remote.list().entries == {rel(name): entry}
        assert read_all(remote, name) == b"deep"
        remote.delete(rel(name), expect=entry)
        assert remote.list().entries == {}

    def test_large_file_streams(self, remote: Remote) -> None:
        size = 20 << 20
        source = StingyReader(size, limit=8 << 20)
        meta = ObjectMeta(size=size, digest=Digest(""), mtime_ns=MTIME_NS)
        entry = remote.put(
            rel("big.bin"),
            source,  # type: ignore[arg-type]
            meta,
            expect=None,
            before_publish=lambda: None,
        )
        assert entry.size == size
        assert source.remaining == 0
        hasher = blake3.blake3()
        with remote.open_read(rel("big.bin")) as src:
            while block := src.read(1 << 20):
                hasher.update(block)
        assert hasher.hexdigest() == source.hasher.hexdigest()

    def test_readers_are_independent(self, remote: Remote) -> None:
        put_bytes(remote, "r.txt", b"abcdefgh")
        with remote.open_read(rel("r.txt")) as one, remote.open_read(rel("r.txt")) as two:
            assert one.read(4) == b"abcd"
            assert two.read(2) == b"ab"
            assert one.read() == b"efgh"
            assert two.read() == b"cdefgh"

    def test_read_from_an_offset_of_the_listed_version(self, remote: Remote) -> None:
        """A resumed download asks for the rest of the very version it started on."""
        entry = put_bytes(remote, "o.txt", b"0123456789")
        listed = remote.list().entries[rel("o.txt")]
        assert listed.fingerprint == entry.fingerprint
        with remote.open_read(rel("o.txt"), offset=6, expect=listed) as src:
            assert src.read() == b"6789"
        with remote.open_read(rel("o.txt"), offset=0, expect=listed) as src:
            assert src.read() == b"0123456789"

    def test_read_of_another_version_is_refused(self, remote: Remote, raw: RawBackend) -> None:
        """Bytes of two versions are never spliced: a changed object fails the read."""
        put_bytes(remote, "v.txt", b"first version")
        listed = remote.list().entries[rel("v.txt")]
        raw.write("v.txt", b"second, longer version")
        with pytest.raises(RemoteChanged):
            remote.open_read(rel("v.txt"), offset=4, expect=listed).close()

    # -- reading and deleting what is not there -------------------------------------------

    def test_open_missing_raises_file_not_found(self, remote: Remote) -> None:
        with pytest.raises(FileNotFoundError):
            remote.open_read(rel("nope.txt"))
        with pytest.raises(FileNotFoundError):
            remote.open_read(rel("no/such/dir/nope.txt"))

    def test_delete_missing_is_noop(self, remote: Remote) -> None:
        """Deleting an absent path returns quietly, whatever `expect` says: the goal is met."""
        put_bytes(remote, "keep.txt", b"k")
        remote.delete(rel("gone.txt"), expect=None)
        remote.delete(rel("gone.txt"), expect=RemoteEntry(size=1, fingerprint="stale"))
        assert set(remote.list().entries) == {rel("keep.txt")}

    def test_delete_removes_object(self, remote: Remote) -> None:
        entry = put_bytes(remote, "d/x.txt", b"x")
        put_bytes(remote, "d/y.txt", b"y")
        remote.delete(rel("d/x.txt"), expect=entry)
        assert remote.stat(rel("d/x.txt")) is None
        assert set(remote.list().entries) == {rel("d/y.txt")}

    # -- check before act ------------------------------------------------------------------

    def test_delete_with_stale_expect_raises_remote_changed(self, remote: Remote) -> None:
        old = put_bytes(remote, "f.txt", b"old!", mtime_ns=MTIME_NS)
        put_bytes(remote, "f.txt", b"new!", expect=old, mtime_ns=MTIME_NS + 10**9)
        with pytest.raises(RemoteChanged):
            remote.delete(rel("f.txt"), expect=old)
        assert read_all(remote, "f.txt") == b"new!"

    def test_delete_with_expect_absent_but_present_raises(self, remote: Remote) -> None:
        put_bytes(remote, "f.txt", b"here")
        with pytest.raises(RemoteChanged):
            remote.delete(rel("f.txt"), expect=None)
        assert read_all(remote, "f.txt") == b"here"

    def test_put_with_stale_expect_raises_remote_changed_and_keeps_object(
        self, remote: Remote, raw: RawBackend
    ) -> None:
        old = put_bytes(remote, "f.txt", b"v1", mtime_ns=MTIME_NS)
        current = put_bytes(remote, "f.txt", b"v2", expect=old, mtime_ns=MTIME_NS + 10**9)
        with pytest.raises(RemoteChanged):
            put_bytes(remote, "f.txt", b"v3", expect=old, mtime_ns=MTIME_NS + 2 * 10**9)
        assert remote.stat(rel("f.txt")) == current
        assert read_all(remote, "f.txt") == b"v2"
        assert raw.names() == {"f.txt"}

    def test_put_expect_absent_but_present_raises(self, remote: Remote, raw: RawBackend) -> None:
        put_bytes(remote, "f.txt", b"first")
        with pytest.raises(RemoteChanged):
            put_bytes(remote, "f.txt", b"second", expect=None)
        assert read_all(remote, "f.txt") == b"first"
        assert raw.names() == {"f.txt"}

    def test_put_expect_present_but_absent_raises(self, remote: Remote, raw: RawBackend) -> None:
        entry = put_bytes(remote, "f.txt", b"first")
        remote.delete(rel("f.txt"), expect=entry)
        with pytest.raises(RemoteChanged):
            put_bytes(remote, "f.txt", b"second", expect=entry)
        assert raw.names() == set()

    def test_before_publish_runs_after_staging_and_before_publishing(self, remote: Remote) -> None:
        seen: list[RemoteEntry | None] = []
        put_bytes(
            remote, "f.txt", b"data", before_publish=lambda: seen.append(remote.stat(rel("f.txt")))
        )
        assert seen == [None]
        assert remote.stat(rel("f.txt")) is not None

    def test_before_publish_failure_leaves_no_object_and_no_temp(
        self, remote: Remote, raw: RawBackend
    ) -> None:
        class Refused(Exception):
            pass

        def refuse() -> None:
            raise Refused

        with pytest.raises(Refused):
            put_bytes(remote, "a/new.txt", b"never published", before_publish=refuse)
        old = put_bytes(remote, "old.txt", b"old")
        with pytest.raises(Refused):
            put_bytes(remote, "old.txt", b"replacement", expect=old, before_publish=refuse)
        assert raw.names() == {"old.txt"}
        assert remote.stat(rel("a/new.txt")) is None
        assert read_all(remote, "old.txt") == b"old"

    def test_failing_source_leaves_no_temp(self, remote: Remote, raw: RawBackend) -> None:
        class Broken(io.RawIOBase):
            def readable(self) -> bool:
                return True

            def read(self, n: int = -1) -> bytes:
                raise ValueError("source broke")

        with pytest.raises(ValueError, match="source broke"):
            remote.put(
                rel("x.txt"),
                Broken(),  # type: ignore[arg-type]
                meta_for(b"x"),
                expect=None,
                before_publish=lambda: None,
            )
        assert raw.names() == set()

    # -- copy ------------------------------------------------------------------------------

    def test_copy(self, remote: Remote) -> None:
        src = put_bytes(remote, "src.txt", b"copy me")
        copied = remote.copy(rel("src.txt"), rel("dir/dst.txt"))
        assert copied.size == 7
        assert remote.stat(rel("dir/dst.txt")) == copied
        assert remote.stat(rel("src.txt")) == src
        assert read_all(remote, "dir/dst.txt") == b"copy me"
        assert set(remote.list().entries) == {rel("src.txt"), rel("dir/dst.txt")}

    def test_copy_missing_raises_file_not_found(self, remote: Remote) -> None:
        with pytest.raises(FileNotFoundError):
            remote.copy(rel("nope"), rel("dst"))
        assert remote.list().entries == {}

    # -- names the adapter hides or refuses ------------------------------------------------

    def test_listing_skips_temp_names(self, remote: Remote, raw: RawBackend) -> None:
        raw.write(".fsync-0123456789abcdef.tmp", b"half")
        raw.write("sub/.fsync-fedcba9876543210.tmp", b"half")
        raw.write(".fsync/state.db", b"db")
        raw.write("sub/real.txt", b"real")
        raw.write(".fsync-not-temp.txt", b"a real file whose name only starts like one")
        assert set(remote.list().entries) == {rel("sub/real.txt"), rel(".fsync-not-temp.txt")}

    def test_refused_keys_reported(self, remote: Remote, raw: RawBackend) -> None:
        raw.write("ok.txt", b"fine")
        raw.write("back\\slash.txt", b"bad")
        raw.write("cafe\u0301.txt", b"not NFC")
        listing = remote.list()
        assert set(listing.entries) == {rel("ok.txt")}
        refused = dict(listing.refused)
        assert set(refused) == {"back\\slash.txt", "cafe\u0301.txt"}
        assert "backslash" in refused["back\\slash.txt"]
        assert "NFC" in refused["cafe\u0301.txt"]

    # -- capabilities ----------------------------------------------------------------------

    def test_mtime_round_trips(self, remote: Remote) -> None:
        if not remote.capabilities.sets_mtime:
            pytest.skip("backend does not set mtimes")
        entry = put_bytes(remote, "t.txt", b"time", mtime_ns=MTIME_NS)
        assert entry.mtime_ns == MTIME_NS
        assert remote.list().entries[rel("t.txt")].mtime_ns == MTIME_NS
        copied = remote.copy(rel("t.txt"), rel("t2.txt"))
        assert copied.mtime_ns == MTIME_NS

    def test_stored_digest_round_trips(self, remote: Remote) -> None:
        if not remote.capabilities.stores_digest:
            assert remote.read_digest(rel("missing")) is None
            put_bytes(remote, "d.txt", b"digest")
            assert remote.read_digest(rel("d.txt")) is None
            return
        data = b"digest"
        put_bytes(remote, "d.txt", data)
        assert remote.read_digest(rel("d.txt")) == meta_for(data).digest
