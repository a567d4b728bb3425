"""scanner: real trees under tmp_path, scanned against an in-memory DigestCache."""

from __future__ import annotations

import os
import shutil
import stat
import threading
import time
import unicodedata
from collections.abc import Callable
from pathlib import Path

import pytest
from blake3 import blake3

import fsync.scanner as scanner_mod
from fsync.errors import ConfigError
from fsync.hashing import CacheRecord, StatSig
from fsync.ignore import IgnoreMatcher
from fsync.model import Digest, RelPath
from fsync.scanner import RACY_NS, ScanResult, read_ignore, scan

NO_IGNORE = IgnoreMatcher()
FAR_FUTURE = time.time_ns() + 3600 * 10**9
"""A scan start long after every test file's mtime: every hashed file comes out trusted."""


class DictCache:
    """A DigestCache over a dict; `on_lookup` runs on every lookup (to change files mid-scan)."""

    def __init__(self, records: dict[RelPath, CacheRecord] | None = None) -> None:
        self.records = dict(records or {})
        self.lookups: list[RelPath] = []
        self.on_lookup: Callable[[RelPath], None] | None = None

    def cached(self, path: RelPath) -> CacheRecord | None:
        self.lookups.append(path)
        if self.on_lookup is not None:
            self.on_lookup(path)
        return self.records.get(path)


def _b3(data: bytes) -> Digest:
    return Digest(blake3(data).hexdigest())


def _write(root: Path, rel: str, data: bytes | str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    path.write_bytes(data)
    return path


def _scan(root: Path, cache: DictCache | None = None, **kw: object) -> ScanResult:
    kw.setdefault("now_ns", FAR_FUTURE)
    return scan(str(root), cache or DictCache(), kw.pop("ignore", NO_IGNORE), **kw)  # type: ignore[arg-type]


def test_nested_tree(tmp_path: Path) -> None:
    files = {"a.txt": b"a", "d/b.txt": b"bb", "d/e/f/c.bin": os.urandom(5000), "x y/z": b"z"}
    for rel, data in files.items():
        _write(tmp_path, rel, data)
    os.chmod(tmp_path / "a.txt", 0o600)
    (tmp_path / "empty-dir").mkdir()

    result = _scan(tmp_path)

    assert sorted(result.entries) == sorted(files)
    for rel, data in files.items():
        entry = result.entries[RelPath(rel)]
        st = os.stat(tmp_path / rel)
        assert entry.digest == _b3(data)
        assert entry.size == len(data)
        assert entry.mtime_ns == st.st_mtime_ns
        assert entry.mode == stat.S_IMODE(st.st_mode)
    assert result.entries[RelPath("a.txt")].mode == 0o600
    assert sorted(p for p, _ in result.updates) == sorted(files)
    for path, record in result.updates:
        assert record.sig == StatSig.from_stat(os.stat(tmp_path / path))
        assert record.digest == result.entries[path].digest
        assert record.trusted
    assert result.errors == []
    assert result.warnings == []
    assert result.removed == []


def test_empty_file(tmp_path: Path) -> None:
    _write(tmp_path, "empty", b"")
    result = _scan(tmp_path)
    assert result.entries[RelPath("empty")].digest == _b3(b"")
    assert result.entries[RelPath("empty")].size == 0


def test_nfd_names_become_nfc(tmp_path: Path) -> None:
    nfd = "cafe\u0301/re\u0301sume\u0301.txt"
    _write(tmp_path, nfd, b"menu")

    result = _scan(tmp_path)

    assert list(result.entries) == ["caf\u00e9/r\u00e9sum\u00e9.txt"]
    assert result.entries[RelPath("caf\u00e9/r\u00e9sum\u00e9.txt")].digest == _b3(b"menu")


def test_names_equal_after_normalisation_are_reported(tmp_path: Path) -> None:
    _write(tmp_path, "caf\u00e9", b"nfc")
    _write(tmp_path, "cafe\u0301", b"nfd")

    result = _scan(tmp_path)

    assert list(result.entries) == ["caf\u00e9"]
    # Errors, not warnings: the twins are unknown, and must not be taken for deleted. Both
    # files are withheld, so each is a failure, told apart by its spelling (one error said
    # "1 failed" of the two).
    assert sorted(e.error for e in result.errors) == [
        f"another name in its folder has the same NFC form (this one is written in {this}, "
        f"the other in {other}); rename one of them"
        for this, other in (("NFC", "NFD"), ("NFD", "NFC"))
    ]
    assert {e.path for e in result.errors} == {"caf\u00e9"}
    assert result.is_unknown(RelPath("caf\u00e9"))


def test_unmappable_names_are_noted_as_unsendable(tmp_path: Path) -> None:
    _write(tmp_path, "back\\slash", b"x")
    os.close(os.open(os.path.join(os.fsencode(tmp_path), b"bad-\xff"), os.O_CREAT | os.O_WRONLY))
    _write(tmp_path, "ok", b"ok")

    result = _scan(tmp_path)

    assert list(result.entries) == ["ok"]
    assert not result.warnings
    assert sorted((e.path, e.error) for e in result.unsendable) == [
        ("back\\slash", "contains a backslash"),
        ("bad-\udcff", "the name is not valid UTF-8"),
    ]
    # A watcher hands the scanner such a name as the disk holds it.
    only = _scan(tmp_path, only=[RelPath(os.fsdecode(b"bad-\xff"))])
    assert [e.error for e in only.unsendable] == ["the name is not valid UTF-8"]


def test_state_folder_and_ignored_folders_are_pruned(tmp_path: Path) -> None:
    _write(tmp_path, ".fsync/state.db", b"db")
    _write(tmp_path, "keep.txt", b"k")
    _write(tmp_path, "build/out.o", b"o")
    _write(tmp_path, "sub/node_modules/m.js", b"m")
    _write(tmp_path, "x.log", b"log")
    _write(tmp_path, ".fsyncignore", b"build/\nnode_modules/\n*.log\n")
    # Anything inside a pruned folder would make a warning if it were looked at.
    _write(tmp_path, "build/bad\\name", b"")
    os.symlink("/etc", tmp_path / "sub/node_modules/link")
    os.symlink("/etc", tmp_path / ".fsync/link")

    result = _scan(tmp_path, ignore=read_ignore(str(tmp_path)))

    assert sorted(result.entries) == [".fsyncignore", "keep.txt"]
    assert result.warnings == []


def test_extra_excludes_and_nested_negation(tmp_path: Path) -> None:
    _write(tmp_path, "a.tmp", b"")
    _write(tmp_path, "b.tmp", b"")
    _write(tmp_path, "logs/a.log", b"")
    _write(tmp_path, "logs/keep.log", b"")
    _write(tmp_path, ".fsyncignore", "logs/*\n!logs/keep.log\n")

    result = _scan(tmp_path, ignore=read_ignore(str(tmp_path), ["*.tmp", "!b.tmp"]))

    assert sorted(result.entries) == [".fsyncignore", "b.tmp", "logs/keep.log"]


def test_a_file_brought_back_from_under_a_double_star_is_scanned(tmp_path: Path) -> None:
    """`build/**` is what lies in build, not build: `!build/out.txt` keeps that file, as
    in git (the folder used to be pruned whole)."""
    for name in ("build/out.txt", "build/tmp.o", "build/sub/x.o", "keep.txt"):
        _write(tmp_path, name, b"")
    _write(tmp_path, ".fsyncignore", "build/**\n!build/out.txt\n")

    result = _scan(tmp_path, ignore=read_ignore(str(tmp_path)))

    assert sorted(result.entries) == [".fsyncignore", "build/out.txt", "keep.txt"]


def test_read_ignore_without_file_and_with_bad_file(tmp_path: Path) -> None:
    assert read_ignore(str(tmp_path), ["x"]).patterns == ("x",)
    (tmp_path / ".fsyncignore").write_bytes(b"\xff\xfe bad\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        read_ignore(str(tmp_path))
    (tmp_path / ".fsyncignore").unlink()
    (tmp_path / ".fsyncignore").mkdir()
    with pytest.raises(ConfigError, match="is not a file"):
        read_ignore(str(tmp_path))


@pytest.mark.parametrize("kind", ["dangling link", "fifo", "device"])
def test_an_ignore_file_that_is_no_file_stops_the_run(tmp_path: Path, kind: str) -> None:
    """Read as no rules, a link to rules on a disk not mounted let a push send what they
    leave out (and a `--mirror` delete it on the remote); a fifo hung the run, and a link
    to `/dev/zero` ran it out of memory (ignore tester)."""
    path = tmp_path / ".fsyncignore"
    if kind == "dangling link":
        path.symlink_to("/mnt/not-mounted/rules")
        why = "is a link to /mnt/not-mounted/rules, which does not exist"
    elif kind == "fifo":
        os.mkfifo(path)
        why = "is not a file"
    else:
        path.symlink_to("/dev/zero")
        why = "is not a file"
    with pytest.raises(ConfigError, match=why):
        read_ignore(str(tmp_path))


def test_symlinks_are_skipped_with_a_warning(tmp_path: Path) -> None:
    _write(tmp_path, "real/f", b"f")
    os.symlink("real/f", tmp_path / "file-link")
    os.symlink("real", tmp_path / "dir-link")
    os.symlink("missing", tmp_path / "broken")

    result = _scan(tmp_path)

    assert list(result.entries) == ["real/f"]
    assert sorted(result.warnings) == [
        "skipping symlink broken (use --links follow)",
        "skipping symlink dir-link (use --links follow)",
        "skipping symlink file-link (use --links follow)",
    ]


def test_followed_symlinks_stay_inside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    _write(outside, "secret", b"s")
    _write(root, "real/f", b"f")
    os.symlink("real/f", root / "file-link")
    os.symlink("real", root / "dir-link")
    os.symlink(outside, root / "out-link")
    os.symlink("..", root / "real/loop")
    os.symlink("real", root / "dir-link2")  # (a second way in is no loop)

    result = _scan(root, follow_links=True)

    entries = sorted(result.entries)
    assert entries in (
        ["dir-link/f", "file-link", "real/f"],
        ["dir-link2/f", "file-link", "real/f"],
    )
    first = "dir-link" if "dir-link/f" in entries else "dir-link2"  # (the walk's order)
    second = "dir-link2" if first == "dir-link" else "dir-link"
    assert result.entries[RelPath("file-link")].digest == _b3(b"f")
    assert any("out-link: it leads outside the root" in w for w in result.warnings)
    assert "skipping symlink real/loop: it makes a loop" in result.warnings
    assert (
        f"skipping symlink {second}: it leads to the folder {first} leads to, synced through "
        "that link"
    ) in result.warnings


def test_file_replaced_by_a_folder_before_hashing_is_an_error(tmp_path: Path) -> None:
    """Root reads every file, so an unreadable one is made by swapping it mid-scan."""
    for name in ("a", "bad", "c"):
        _write(tmp_path, name, name)
    cache = DictCache()

    def swap(path: RelPath) -> None:
        if path == "bad":
            (tmp_path / "bad").unlink()
            (tmp_path / "bad").mkdir()

    cache.on_lookup = swap
    result = _scan(tmp_path, cache)

    assert sorted(result.entries) == ["a", "c"]
    assert [e.path for e in result.errors] == ["bad"]
    assert "cannot read" in result.errors[0].error
    assert result.is_unknown(RelPath("bad"))
    assert not result.is_unknown(RelPath("a"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file_and_folder_are_errors(tmp_path: Path) -> None:
    _write(tmp_path, "ok", b"ok")
    _write(tmp_path, "secret", b"s").chmod(0)
    _write(tmp_path, "closed/inner", b"i")
    (tmp_path / "closed").chmod(0)
    try:
        result = _scan(tmp_path)
    finally:
        (tmp_path / "closed").chmod(0o755)

    assert list(result.entries) == ["ok"]
    assert sorted(e.path for e in result.errors) == ["closed", "secret"]
    assert result.incomplete == ["closed"]
    assert result.is_unknown(RelPath("closed/inner"))


def test_file_rewritten_between_stat_and_hash_is_read_again(tmp_path: Path) -> None:
    _write(tmp_path, "f", b"old")
    cache = DictCache()

    def rewrite(path: RelPath) -> None:
        (tmp_path / "f").write_bytes(b"new and longer")

    cache.on_lookup = rewrite
    result = _scan(tmp_path, cache)

    assert result.errors == []
    assert result.entries[RelPath("f")].digest == _b3(b"new and longer")
    assert result.entries[RelPath("f")].size == len(b"new and longer")


def test_file_deleted_before_hashing_is_just_gone(tmp_path: Path) -> None:
    _write(tmp_path, "f", b"x")
    _write(tmp_path, "g", b"y")
    cache = DictCache()
    cache.on_lookup = lambda p: (tmp_path / "f").unlink() if p == "f" else None

    result = _scan(tmp_path, cache)

    assert list(result.entries) == ["g"]
    assert result.errors == []
    assert result.removed == []


def _sig(path: Path) -> StatSig:
    return StatSig.from_stat(os.stat(path))


def test_trusted_cache_hit_is_reused_without_reading(tmp_path: Path) -> None:
    path = _write(tmp_path, "f", b"content")
    wrong = _b3(b"something else")  # proves the digest came from the cache, not the file
    cache = DictCache({RelPath("f"): CacheRecord(_sig(path), wrong, trusted=True)})

    result = _scan(tmp_path, cache)

    assert result.entries[RelPath("f")].digest == wrong
    assert result.updates == []


def test_untrusted_cache_entry_is_hashed_again(tmp_path: Path) -> None:
    path = _write(tmp_path, "f", b"content")
    wrong = _b3(b"something else")
    cache = DictCache({RelPath("f"): CacheRecord(_sig(path), wrong, trusted=False)})

    result = _scan(tmp_path, cache)

    assert result.entries[RelPath("f")].digest == _b3(b"content")
    assert result.updates == [(RelPath("f"), CacheRecord(_sig(path), _b3(b"content"), True))]


@pytest.mark.parametrize("field", ["size", "mtime_ns", "ino", "ctime_ns", "mode"])
def test_any_signature_difference_means_rehash(tmp_path: Path, field: str) -> None:
    path = _write(tmp_path, "f", b"content")
    sig = _sig(path)
    moved = StatSig(**{f: getattr(sig, f) + (1 if f == field else 0) for f in sig.__slots__})
    cache = DictCache({RelPath("f"): CacheRecord(moved, _b3(b"stale"), trusted=True)})

    result = _scan(tmp_path, cache)

    assert result.entries[RelPath("f")].digest == _b3(b"content")
    assert [p for p, _ in result.updates] == ["f"]


def test_racily_clean_files_are_not_trusted(tmp_path: Path) -> None:
    path = _write(tmp_path, "f", b"content")
    st = os.stat(path)
    newest = max(st.st_mtime_ns, st.st_ctime_ns)

    racy = _scan(tmp_path, now_ns=newest + RACY_NS)
    settled = _scan(tmp_path, now_ns=newest + RACY_NS + 1)
    default_now = _scan(tmp_path, now_ns=None)  # the file was just written: racy now

    assert racy.updates[0][1].trusted is False
    assert settled.updates[0][1].trusted is True
    assert default_now.updates[0][1].trusted is False


def test_old_mtime_with_fresh_ctime_is_racy(tmp_path: Path) -> None:
    """A tool that restores an old mtime (cp -p) still leaves a fresh ctime."""
    path = _write(tmp_path, "f", b"content")
    os.utime(path, ns=(10**18, 10**18))
    st = os.stat(path)

    result = _scan(tmp_path, now_ns=st.st_ctime_ns + RACY_NS // 2)

    assert result.updates[0][1].trusted is False


def test_a_future_mtime_with_a_settled_ctime_is_trusted(tmp_path: Path) -> None:
    """Any write or `utime` moves ctime to the kernel's now, so a settled ctime proves the
    file settled whatever its mtime says. Judged by its mtime too, a file dated 2030 was
    hashed again on every run: a no-op re-read every such file."""
    path = _write(tmp_path, "f", b"content")
    os.utime(path, ns=(1_900_000_000 * 10**9, 1_900_000_000 * 10**9))  # 2030
    st = os.stat(path)

    result = _scan(tmp_path, now_ns=st.st_ctime_ns + RACY_NS + 1)

    assert result.updates[0][1].trusted is True


def test_many_files_in_small_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scanner_mod, "BATCH_FILES", 3)
    files = {f"d{i % 7}/f{i}": os.urandom(i) for i in range(200)}
    for rel, data in files.items():
        _write(tmp_path, rel, data)
    threads_before = threading.active_count()

    result = _scan(tmp_path, workers=2)

    assert {p: e.digest for p, e in result.entries.items()} == {p: _b3(d) for p, d in files.items()}
    assert len(result.updates) == 200
    assert threading.active_count() == threads_before


def test_workers_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="workers"):
        _scan(tmp_path, workers=0)


def test_missing_root_and_file_root_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"local root .*nope does not exist"):
        _scan(tmp_path / "nope")
    _write(tmp_path, "file", b"")
    with pytest.raises(ConfigError, match=r"local root .*file is not a directory"):
        _scan(tmp_path / "file")


def test_only_scans_just_the_given_paths(tmp_path: Path) -> None:
    for rel in ("a", "b", "d/x", "d/y", "e/z"):
        _write(tmp_path, rel, rel)
    cache = DictCache()

    result = _scan(tmp_path, cache, only=[RelPath("a"), RelPath("d"), RelPath("gone")])

    assert sorted(result.entries) == ["a", "d/x", "d/y"]
    assert result.removed == ["gone"]
    assert sorted(cache.lookups) == ["a", "d/x", "d/y"]


def test_only_skips_ignored_and_duplicate_paths(tmp_path: Path) -> None:
    _write(tmp_path, "d/x", b"x")
    _write(tmp_path, "skip.log", b"l")
    _write(tmp_path, ".fsync/state.db", b"db")
    _write(tmp_path, "build/out.o", b"o")
    paths = ("d", "d/x", "skip.log", ".fsync/state.db", ".fsync", "build", "build/gone")
    only = [RelPath(p) for p in paths]

    result = _scan(tmp_path, only=only, ignore=IgnoreMatcher.from_patterns(["*.log", "build/"]))

    assert list(result.entries) == ["d/x"]
    assert len(result.updates) == 1
    assert result.removed == []


def test_only_finds_nfd_names_from_nfc_paths(tmp_path: Path) -> None:
    _write(tmp_path, "cafe\u0301/menu", b"m")

    result = _scan(tmp_path, only=[RelPath("caf\u00e9/menu"), RelPath("caf\u00e9/absent")])

    assert list(result.entries) == ["caf\u00e9/menu"]
    assert result.removed == ["caf\u00e9/absent"]


@pytest.mark.parametrize("file_form", ["NFD", "NFC"])
def test_only_reports_a_twin_as_a_walk_does(tmp_path: Path, file_form: str) -> None:
    """A file `café` beside a folder `café/` spelled in the other Unicode form: a watcher's
    NFC paths found one spelling, and the folder passed for the file made a folder (its
    remote copy deleted while the file was still here). Both spellings are withheld, with
    what lies below them, as a walk withholds them."""
    folder_form = "NFC" if file_form == "NFD" else "NFD"
    _write(tmp_path, unicodedata.normalize(file_form, "cafe\u0301"), b"file")
    _write(tmp_path, unicodedata.normalize(folder_form, "cafe\u0301") + "/x", b"in folder")
    walked = _scan(tmp_path)

    for only in (["caf\u00e9"], ["caf\u00e9/x"], ["caf\u00e9", "caf\u00e9/x", "caf\u00e9/y"]):
        result = _scan(tmp_path, only=[RelPath(p) for p in only])

        assert result.entries == {}
        assert result.removed == []
        assert _errors(result) == _errors(walked)
        assert result.twins == {"caf\u00e9"} == walked.twins
        assert result.is_unknown(RelPath("caf\u00e9"))
        assert result.is_unknown(RelPath("caf\u00e9/x"))


KELVIN, GREEK_QUESTION_MARK, VARIA = "\u212a", "\u037e", "\u1fef"
"""The characters whose NFC form is ASCII (K, `;`, a backquote): a name spelled with them
has an ASCII name for its path."""
ODD = "neither NFC nor NFD"


@pytest.mark.parametrize(
    ("files", "twins", "forms"),
    [
        # A file with an ASCII name, and one whose NFC form is that name (a singleton).
        ({"K": "plain", KELVIN: "kelvin"}, {"K"}, ["NFC", ODD]),
        ({"a;b": "plain", f"a{GREEK_QUESTION_MARK}b": "greek"}, {"a;b"}, ["NFC", ODD]),
        ({"x`": "plain", f"x{VARIA}": "varia"}, {"x`"}, ["NFC", ODD]),
        ({"d/K": "plain", f"d/{KELVIN}": "kelvin", "d/o": "o"}, {"d/K"}, ["NFC", ODD]),
        # A folder of the one name beside a file of the other, either way round.
        ({"K/x": "in folder", KELVIN: "file"}, {"K"}, ["NFC", ODD]),
        ({f"{KELVIN}/x": "in folder", "K": "file"}, {"K"}, ["NFC", ODD]),
        # Three spellings of one path: each is withheld, with its own error.
        ({"KK": "1", f"K{KELVIN}": "2", f"{KELVIN}K": "3"}, {"KK"}, ["NFC", ODD, ODD]),
        # Singletons whose NFC form is not ASCII (OHM SIGN, ANGSTROM SIGN).
        ({"\u2126": "ohm", "\u03a9": "omega"}, {"\u03a9"}, ["NFC", ODD]),
        (
            {"\u212b": "angstrom", "\u00c5": "nfc", "A\u030a": "nfd"},
            {"\u00c5"},
            ["NFC", "NFD", ODD],
        ),
        # No twin: one spelling alone, or names whose NFC forms differ.
        ({KELVIN: "kelvin", "k": "lower", "Kaf\u00e9": "nfc"}, set(), []),
        ({"K": "plain", f"{KELVIN}af\u00e9": "other name"}, set(), []),
    ],
)
def test_names_of_one_nfc_form_are_twins_in_a_walk_and_in_a_batch(
    tmp_path: Path, files: dict[str, str], twins: set[str], forms: list[str]
) -> None:
    """A name spelled with KELVIN SIGN beside the plain K: one path (NFC "K"). Only the
    NFD/NFC twins were refused: a walk and a batch took ASCII names the short way, so one of
    the two files was sent as K and the other never, without a word (and a batch scanning
    K read whichever file the plain name is). Both are withheld, as NFD/NFC twins are."""
    for rel, data in files.items():
        _write(tmp_path, rel, data)

    walked = _scan(tmp_path)
    assert walked.twins == twins
    for twin in twins:
        assert walked.is_unknown(RelPath(twin))
        assert walked.is_unknown(RelPath(f"{twin}/x"))
    # One error for each spelling, which names the form it is written in.
    said = sorted(e.error.split("(this one is written in ")[1].split(",")[0] for e in walked.errors)
    assert said == sorted(forms)
    assert all("same NFC form" in error for _, error in _errors(walked))
    assert {e.path for e in walked.errors} == twins
    if not twins:
        assert len(walked.entries) == len(files)
    for only in (sorted(twins) or [RelPath(next(iter(walked.entries)))], sorted(walked.entries)):
        batch = _scan(tmp_path, only=[RelPath(p) for p in only])
        assert batch.twins == twins
        assert _errors(batch) == _errors(walked)
        assert not any(p in twins for p in batch.entries)
        assert batch.removed == []


def test_the_singletons_a_batch_looks_for_are_all_those_with_an_ascii_nfc_form() -> None:
    """A batch looks beside an ASCII name only for these spellings (`_SINGLETONS`)."""
    found = {
        unicodedata.normalize("NFC", chr(c)): chr(c)
        for c in range(0x80, 0x110000)
        if unicodedata.normalize("NFC", chr(c)).isascii()
    }
    assert found == scanner_mod._SINGLETONS


def _errors(result: ScanResult) -> list[tuple[str, str]]:
    return sorted((e.path, e.error) for e in result.errors)


def test_only_path_under_a_symlinked_folder(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _write(root, "real/f", b"f")
    os.symlink("real", root / "link")
    only = [RelPath("link/f")]

    assert _scan(root, only=only).removed == ["link/f"]
    assert list(_scan(root, only=only, follow_links=True).entries) == ["link/f"]


def test_only_symlink_itself_is_skipped(tmp_path: Path) -> None:
    _write(tmp_path, "real", b"r")
    os.symlink("real", tmp_path / "link")

    result = _scan(tmp_path, only=[RelPath("link")])

    assert result.entries == {}
    assert result.warnings == ["skipping symlink link (use --links follow)"]


def test_only_file_deleted_before_hashing_is_removed(tmp_path: Path) -> None:
    _write(tmp_path, "f", b"x")
    cache = DictCache()
    cache.on_lookup = lambda p: (tmp_path / "f").unlink()

    result = _scan(tmp_path, cache, only=[RelPath("f")])

    assert result.entries == {}
    assert result.removed == ["f"]


def test_special_files_are_skipped_with_a_warning(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    _write(tmp_path, "f", b"")

    result = _scan(tmp_path)

    assert list(result.entries) == ["f"]
    assert result.warnings == ["skipping pipe: not a regular file"]


def test_scan_of_a_tree_copy_reuses_nothing_but_matches(tmp_path: Path) -> None:
    """Scanning a copy gives the same digests: content identity, not stat identity."""
    for i in range(20):
        _write(tmp_path / "a", f"f{i}", os.urandom(i * 100))
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    first = _scan(tmp_path / "a")
    cache = DictCache(dict(first.updates))

    second = _scan(tmp_path / "b", cache)

    assert {p: e.digest for p, e in first.entries.items()} == {
        p: e.digest for p, e in second.entries.items()
    }
    assert len(second.updates) == 20  # other inodes: nothing could be trusted
