"""Walk the local tree and produce its snapshot, hashing only what may have changed.

A file whose stat signature matches a trusted cache record keeps its cached digest without
being read; everything else is hashed on a thread pool (blake3 releases the GIL). The scanner
learns about the cache through the `DigestCache` protocol only, so it runs against a plain
dict in tests and against `manifest.Manifest` in the app (Syncthing's `CurrentFiler`).
"""

from __future__ import annotations

import contextlib
import gc
import os
import stat
import time
import unicodedata
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from fsync.errors import ConfigError, FileChangedError, UnsafePathError
from fsync.hashing import CacheRecord, StatSig, cpu_threads, hash_file
from fsync.ignore import IGNORE_FILE, STATE_DIR, IgnoreMatcher
from fsync.model import Digest, FileError, LocalEntry, RelPath, local_entry
from fsync.paths import ancestors, is_temp_name, to_relpath, under_any

RACY_NS = 2_000_000_000
"""A file whose ctime is this close to the scan's start is hashed again next scan.

Two seconds covers the coarsest timestamps in common use (FAT); within that window a write
can leave size and times unchanged, so an unchanged signature proves nothing (git's
"racily clean" entries).
"""

_CTIME_CHANGES = os.name == "posix"
"""True where `st_ctime` is the inode's change time (POSIX), which every write moves; on
Windows it is the creation time, and the mtime must be judged too."""

CHANGED_WHILE_READ = "changed while being read"

BATCH_FILES = 128
BATCH_BYTES = 8 << 20
"""Small files are hashed in batches of up to this many files or bytes per pool task.

Per-file tasks cost more in thread hand-offs than hashing a small cached file does
(measured on 20,000 files of 200 bytes: 1.1 s per file, 0.4 s in batches, 0.2 s serially);
batches keep the pool for what it is good at, overlapping reads that wait on the disk.
"""


class DigestCache(Protocol):
    """What the scanner needs from a store of earlier digests."""

    def cached(self, path: RelPath) -> CacheRecord | None:
        """The record last stored for `path`, or None. Called once per file: make it O(1)."""
        ...


CacheRow = tuple[RelPath, int, int, int, int, int, Digest, int]
"""A cache record as plain values: path, size, mtime_ns, ino, ctime_ns, mode (the full
st_mode), digest, trusted (0 or 1); what `RowCache.cache_rows` maps each path to."""


@runtime_checkable
class RowCache(DigestCache, Protocol):
    """A `DigestCache` that also hands over every record at once, as plain tuples.

    The fast path of a scan where little changed: comparing a row's fields with a stat
    costs far less than building a `CacheRecord` and its `StatSig` per file (`Manifest`
    keeps its cache as such rows). A scan asks for the rows once and only reads them.
    """

    def cache_rows(self) -> Mapping[RelPath, CacheRow]:
        """Every record by path; must answer what `cached` would for each path."""
        ...


@dataclass(slots=True)
class ScanResult:
    """What one scan found.

    `entries` holds every regular file found. `updates` are the cache records to store (files
    hashed by this scan). `removed` lists the `only=` paths that are gone, and files that
    vanished while a folder was being scanned for `only=`; a `removed` folder means everything
    the caller knows under it is gone. A full scan leaves `removed` empty: whatever is not in
    `entries` is gone (and so is, after an `only=` scan, whatever the caller knows under a
    walked `only` folder that is not in `entries`). `errors` are files and folders that could
    not be read; `incomplete` are the folders among them, whose contents are unknown. A path
    for which `is_unknown` is true must not be treated as deleted.
    """

    entries: dict[RelPath, LocalEntry] = field(default_factory=dict)
    updates: list[tuple[RelPath, CacheRecord]] = field(default_factory=list)
    removed: list[RelPath] = field(default_factory=list)
    errors: list[FileError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    incomplete: list[RelPath] = field(default_factory=list)
    skipped: list[RelPath] = field(default_factory=list)
    """Paths here that are no synced file (a link not followed, a device, a socket): left
    out of every plan, on both sides. Taken for gone, a file replaced by a link had its
    remote copy deleted, and a remote edit of it met the link at every run (a conflict that
    no run resolved)."""
    unsendable: list[FileError] = field(default_factory=list)
    """Files and folders whose names no remote can hold (not UTF-8, a control character, a
    backslash), shown as `repr` would: a push counts each as failed, since its content would
    otherwise be on this disk alone, unnoticed (renaming a synced folder to such a name
    deletes its remote copies, as for any folder that is gone)."""

    twins: set[RelPath] = field(default_factory=set)
    """Paths the disk spells by two or more names of one folder that differ only in
    Unicode form: withheld whole, with what lies below them (each spelling has its error in
    `errors`, and the path is in `incomplete`)."""

    temps: list[RelPath] = field(default_factory=list)
    """fsync's temp files (`is_temp_name`) met in the folders walked: left out of every
    plan, and of a killed run's, removed by the next run that holds the root's lock
    (`drop_abandoned_temps`)."""

    def is_unknown(self, path: RelPath) -> bool:
        """True if `path` failed to scan or lies in a folder that could not be listed."""
        if any(e.path == path for e in self.errors):
            return True
        return any(path.startswith(folder + "/") for folder in self.incomplete)


def read_ignore(root: str, excludes: Iterable[str] = ()) -> IgnoreMatcher:
    """The matcher for `root`: its `.fsyncignore` (if any) followed by `excludes`, and what
    the rules of each conflict copy of that file at the root leave out (`_rule_copies`).

    Raises `ConfigError` when the file exists but cannot be read or is not UTF-8 text, is
    not a regular file (a fifo hung the run, `/dev/zero` ran out of memory), or is a link
    that leads nowhere: read as no rules, an ignore file kept on a disk not mounted let a
    push send what it leaves out, and a `--mirror` delete it on the remote.
    """
    rules = IgnoreMatcher.from_patterns([*_rule_lines(os.path.join(root, IGNORE_FILE)), *excludes])
    for copy in _rule_copies(root):
        rules = rules.also(IgnoreMatcher.from_patterns(_rule_lines(copy)))
    return rules


def _rule_copies(root: str) -> list[str]:
    """The conflict copies of `.fsyncignore` at `root` (`.fsyncignore.conflict-...`).

    When two machines change the rules at once, keep-both leaves one version under the
    name and the other in a copy, whose rules then held no more: a `secrets/` rule made on
    one machine let the next run send `secrets/`. They hold until the user merges the two
    and deletes the copy (README)."""
    prefix = IGNORE_FILE + ".conflict-"
    try:
        with os.scandir(root) as entries:
            return sorted(e.path for e in entries if e.name.startswith(prefix))
    except OSError:
        return []  # (an unreadable root is the walk's to report)


def _rule_lines(path: str) -> list[str]:
    """The lines of the rules file `path`; none if there is no such file (see `read_ignore`
    for what raises `ConfigError`)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # (a fifo's open waits for a writer)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise ConfigError(f"{path} is not a file; make it one, or remove it")
        with open(fd, encoding="utf-8-sig") as f:
            return f.read().splitlines()
    except FileNotFoundError:
        if os.path.islink(path):
            raise ConfigError(
                f"{path} is a link to {os.readlink(path)}, which does not exist; "
                "make it lead to the rules, or remove it"
            ) from None
        return []
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text; save it as UTF-8") from None
    except OSError as e:
        raise ConfigError(f"cannot read {path} ({e.strerror or e})") from None


def scan(
    root: str,
    cache: DigestCache,
    ignore: IgnoreMatcher,
    *,
    only: Iterable[RelPath] | None = None,
    workers: int | None = None,
    now_ns: int | None = None,
    follow_links: bool = False,
) -> ScanResult:
    """Scan the tree under `root` (or just the `only` paths and folders) into a `ScanResult`.

    Unreadable files and folders are reported in the result and the scan goes on. Raises
    `ConfigError` when `root` does not exist, is not a directory or cannot be listed.
    `now_ns` (default: now) is the scan's start time, against which racily clean files are
    judged. With `follow_links`, symlinks are followed as long as they stay inside the root.
    `workers` threads hash (default: up to 8, no more than the cores, see `cpu_threads`).
    """
    workers = cpu_threads(8) if workers is None else workers
    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    start = time.time_ns() if now_ns is None else now_ns
    walker = _Walker(
        _check_root(root),
        cache,
        ignore,
        trust_before_ns=start - RACY_NS,
        follow_links=follow_links,
        workers=workers,
    )
    with (
        _collector_paused(),
        ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fsync-hash") as pool,
    ):
        walker.pool = pool
        try:
            if only is None:
                walker.walk(walker.root, "")
            else:
                walker.scan_only(only)
            walker.drain(0)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    return walker.result


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for the duration of a scan.

    A scan allocates a few objects per file (entries, and the cache records it reads) and
    frees none, so every generation-0 threshold crossed triggers collections that end up
    traversing everything allocated so far, again and again, and find nothing: 0.13 s of a
    100,000-file scan (measured). Nothing a scan allocates forms a cycle; collection resumes
    afterwards (unless someone else had it off already).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _check_root(root: str) -> str:
    try:
        st = os.stat(root)
    except FileNotFoundError:
        raise ConfigError(f"local root {root} does not exist") from None
    except OSError as e:
        raise ConfigError(f"local root {root} cannot be read ({e.strerror or e})") from None
    if not stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"local root {root} is not a directory")
    return os.path.abspath(root)


def _hash_guarded(path: str, sig: StatSig) -> tuple[Digest, StatSig]:
    """`hash_file`, retried once with a fresh signature if the file changed while read."""
    try:
        return hash_file(path, before=sig)
    except FileChangedError:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise FileNotFoundError(path) from None
        return hash_file(path, before=StatSig.from_stat(st))


_Outcome = tuple[Digest, StatSig] | OSError | FileChangedError


def _hash_batch(batch: list[tuple[RelPath, str, StatSig]]) -> list[tuple[RelPath, _Outcome]]:
    """Hash each file of `batch`; a file's failure is returned in its place, not raised."""
    done: list[tuple[RelPath, _Outcome]] = []
    for rel, path, sig in batch:
        try:
            done.append((rel, _hash_guarded(path, sig)))
        except (OSError, FileChangedError) as e:
            done.append((rel, e))
    return done


def _describe(exc: OSError) -> str:
    return f"cannot read ({exc.strerror or exc})"


class _Walker:
    """The state of one scan: the walk runs on the calling thread, hashing on `pool`."""

    def __init__(
        self,
        root: str,
        cache: DigestCache,
        ignore: IgnoreMatcher,
        *,
        trust_before_ns: int,
        follow_links: bool,
        workers: int,
    ) -> None:
        self.root = root
        self.real_root = os.path.realpath(root)
        self.cache = cache
        self.rows = cache.cache_rows() if isinstance(cache, RowCache) else None
        self.ignore = ignore
        self.trust_before_ns = trust_before_ns
        self.follow_links = follow_links
        self.max_pending = workers * 4
        self.pool: ThreadPoolExecutor | None = None
        self.pending: deque[Future[list[tuple[RelPath, _Outcome]]]] = deque()
        self.batch: list[tuple[RelPath, str, StatSig]] = []
        self.batch_bytes = 0
        self.result = ScanResult()
        self.only_mode = False
        self._nonascii_seen: dict[RelPath, str] = {}
        """The non-ASCII paths met so far, each with the name as the disk spells it."""
        self._visited_dirs: dict[tuple[int, int], str] = {}
        """The folders reached through a followed link, with that link's path."""
        self._listed: dict[str, dict[str, list[str]]] = {}
        """The non-ASCII names of the folders `_spelled` looked in, by their NFC form."""

    # --- walking -------------------------------------------------------------------------

    def walk(self, start: str, prefix: str) -> None:
        """Walk the folder `start` (whose relative path plus "/" is `prefix`) iteratively."""
        stack = [(start, prefix)]
        visit = self._visit
        while stack:
            folder, rel_prefix = stack.pop()
            try:
                with _listing(folder) as it:
                    for entry in it:
                        visit(entry, folder, rel_prefix, stack)
            except OSError as e:
                if not rel_prefix:
                    raise ConfigError(
                        f"local root {self.root} cannot be read ({e.strerror or e}); "
                        "check its permissions"
                    ) from None
                where = RelPath(rel_prefix[:-1])
                self.result.errors.append(FileError(where, _describe(e)))
                self.result.incomplete.append(where)

    def _relpath(self, rel: str, name: str, entry: os.DirEntry[str], folder: str) -> RelPath | None:
        """`rel` (`name` in `folder`) as a `RelPath`, or None when the name cannot be synced
        (noted as unsendable) or is a twin (`_twin`)."""
        if name.isascii():
            # No encoding or Unicode-form question: the common case, kept short.
            try:
                return to_relpath(rel)
            except UnsafePathError as e:
                self._unsendable(rel, str(e), entry)
                return None
        if not _utf8(rel):
            self._unsendable(rel, f"{rel!r}: the name is not valid UTF-8", entry)
            return None
        try:
            path = to_relpath(rel)
        except UnsafePathError as e:
            self._unsendable(rel, str(e), entry)
            return None
        # Two names that differ only in Unicode form would become one path.
        first = self._nonascii_seen.get(path)
        nfc = path.rpartition("/")[2]
        if first is None and nfc.isascii() and self._spellings(folder)[nfc][0] == nfc:
            # A name whose NFC form is ASCII (KELVIN SIGN for K) beside that plain name,
            # which takes the walk's short way and is looked for here instead.
            first = rel[: len(rel) - len(name)] + nfc
        if first is not None:
            self._twin(path, first, rel)
            return None
        self._nonascii_seen[path] = rel
        return path

    def _twin(self, path: RelPath, first: str, rel: str) -> None:
        """Withhold `path`, which the disk spells both `first` and `rel` in one folder.

        Both files are withheld, so both are failures, each named by its spelling (one
        error for the two said "1 failed" for two files left unsent). Unknown, not gone:
        the twins' files must not be taken for deleted.
        """
        if path not in self.result.twins:  # the first name's error once, however many more
            self.result.twins.add(path)
            self.result.errors.append(FileError(path, _twin_error(first, rel)))
        self.result.errors.append(FileError(path, _twin_error(rel, first)))
        self.result.incomplete.append(path)

    def _unsendable(self, rel: str, why: str, entry: os.DirEntry[str] | None) -> None:
        """Note a name that cannot be synced (`why` starts with its `repr`), unless the ignore
        rules leave it out anyway (then nothing), or it is a link or a device, which a scan
        skips whatever its name (then a warning). `entry` is None for a watcher's path."""
        try:
            is_dir = entry is not None and entry.is_dir(follow_symlinks=False)
            other = entry is not None and not is_dir and not entry.is_file(follow_symlinks=False)
        except OSError:
            is_dir = other = False
        # Patterns match such a name as they would a valid one: `*.log` leaves `bad\xff.log` out.
        if self.ignore.ignores(RelPath(rel), is_dir, parents_checked=entry is not None):
            return
        # The name as it is, undecodable bytes too (as `os` decodes them: lone surrogates):
        # every output escapes what it cannot hold (`fsync.terminal.printable`, `json_line`),
        # as for a remote's names. Spelt with `repr` here, the terminal escaped the escape.
        reason = why.removeprefix(f"{rel!r}: ")
        if other:
            self.result.warnings.append(f"skipping {rel}: {reason}")
        else:
            self.result.unsendable.append(FileError(rel, reason))

    def _visit(
        self, entry: os.DirEntry[str], folder: str, prefix: str, stack: list[tuple[str, str]]
    ) -> None:
        """Sort one entry of `folder` (whose relative path plus "/" is `prefix`)."""
        name = entry.name
        if name.isascii() and name.isprintable() and "\\" not in name:
            # `prefix` is a RelPath (plus "/") and a listed name is never empty, ".", ".."
            # nor holds a "/": printable ASCII without a backslash is all `to_relpath` would
            # check here, and such a name is its own NFC form (one check per file, not two).
            rel = RelPath(prefix + name)
        else:
            checked = self._relpath(prefix + name, name, entry, folder)
            if checked is None:
                return
            rel = checked
        try:
            if not entry.is_file(follow_symlinks=False):
                # A file needs neither question; asked only for what is not one.
                if entry.is_symlink():
                    self._symlink(os.path.join(folder, name), rel)
                    return
                if entry.is_dir(follow_symlinks=False):
                    if rel != STATE_DIR and not self.ignore.ignores(
                        rel, True, parents_checked=True
                    ):
                        stack.append((os.path.join(folder, name), rel + "/"))
                    return
            if self.ignore.ignores(rel, parents_checked=True):
                if is_temp_name(name) and entry.is_file(follow_symlinks=False):
                    self.result.temps.append(rel)
                return
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            if self.only_mode:
                self.result.removed.append(rel)
            return
        except OSError as e:
            self.result.errors.append(FileError(rel, _describe(e)))
            return
        self._file(rel, st, folder, name)

    def _symlink(self, path: str, rel: RelPath) -> None:
        """Skip the link at `path` with a warning, or follow it if allowed and inside the root."""
        if self.ignore.ignores(rel, os.path.isdir(path), parents_checked=True):
            return
        if not self.follow_links:
            self.result.warnings.append(f"skipping symlink {rel} (use --links follow)")
            self.result.skipped.append(rel)
            return
        target = os.path.realpath(path)
        if target != self.real_root and not target.startswith(self.real_root + os.sep):
            self.result.warnings.append(f"skipping symlink {rel}: it leads outside the root")
            self.result.skipped.append(rel)
            return
        state = os.path.join(self.real_root, STATE_DIR)
        if target == state or target.startswith(state + os.sep):
            # fsync's own state is never synced: pushed, it published the manifest; pulled
            # through, a remote wrote the local config and replaced the lock.
            self.result.warnings.append(f"skipping symlink {rel}: it leads into {STATE_DIR}/")
            self.result.skipped.append(rel)
            return
        try:
            st = os.stat(path)
        except OSError as e:
            # Unreadable, not gone: what was synced through the link (a file, or a folder's
            # files) must not be taken for deleted. It may be the same file as another path
            # (a link inside the root), deleted through that one by a pull.
            why = f"the target of this link cannot be read ({e.strerror or e})"
            self.result.errors.append(FileError(rel, why))
            self.result.incomplete.append(rel)
            return
        if stat.S_ISDIR(st.st_mode):
            here = os.path.realpath(os.path.dirname(path))
            first = self._visited_dirs.get((st.st_dev, st.st_ino))
            if here == target or here.startswith(target + os.sep):
                why = "it makes a loop"
            elif first is not None:
                # (Said as a loop, it sent users looking for one that was not there.)
                why = f"it leads to the folder {first} leads to, synced through that link"
            else:
                self._visited_dirs[(st.st_dev, st.st_ino)] = rel
                self.walk(path, rel + "/")
                return
            self.result.warnings.append(f"skipping symlink {rel}: {why}")
            self.result.skipped.append(rel)
        else:
            self._file(rel, st, *os.path.split(path))

    # --- files and hashing ---------------------------------------------------------------

    def _file(self, rel: RelPath, st: os.stat_result, folder: str, name: str) -> None:
        """Take the file `rel` (`name` in `folder`) from the cache if unchanged, else hash it."""
        if not stat.S_ISREG(st.st_mode):
            self.result.warnings.append(f"skipping {rel}: not a regular file")
            self.result.skipped.append(rel)
            return
        rows = self.rows
        if rows is not None:
            row = rows.get(rel)
            if (
                row is not None
                and row[7]
                and row[2] == st.st_mtime_ns
                and row[1] == st.st_size
                and row[3] == st.st_ino
                and row[4] == st.st_ctime_ns
                and row[5] == st.st_mode
            ):
                self.result.entries[rel] = _entry(st, row[6])
                return
        elif (
            (rec := self.cache.cached(rel)) is not None
            and rec.trusted
            and (sig := rec.sig).mtime_ns == st.st_mtime_ns
            and sig.size == st.st_size
            and sig.ino == st.st_ino
            and sig.ctime_ns == st.st_ctime_ns
            and sig.mode == st.st_mode
        ):
            self.result.entries[rel] = _entry(st, rec.digest)
            return
        self.batch.append((rel, os.path.join(folder, name), StatSig.from_stat(st)))
        self.batch_bytes += st.st_size
        if len(self.batch) >= BATCH_FILES or self.batch_bytes >= BATCH_BYTES:
            self._submit()

    def _submit(self) -> None:
        """Hand the current batch to the pool, collecting old results if too many wait."""
        assert self.pool is not None
        self.pending.append(self.pool.submit(_hash_batch, self.batch))
        self.batch = []
        self.batch_bytes = 0
        if len(self.pending) > self.max_pending:
            # Bound what is held at once: a first scan of millions of files would otherwise
            # keep every result alive until the walk ends.
            self.drain(self.max_pending // 2)

    def drain(self, keep: int) -> None:
        """Collect finished batches, oldest first, until at most `keep` are pending.

        With `keep=0` the unsubmitted batch is submitted first, so everything is collected.
        """
        if keep == 0 and self.batch:
            self._submit()
        while len(self.pending) > keep:
            for rel, outcome in self.pending.popleft().result():
                self._record(rel, outcome)

    def _record(self, rel: RelPath, outcome: _Outcome) -> None:
        if isinstance(outcome, FileChangedError):
            self.result.errors.append(FileError(rel, CHANGED_WHILE_READ))
        elif isinstance(outcome, FileNotFoundError):
            if self.only_mode:
                self.result.removed.append(rel)
        elif isinstance(outcome, OSError):
            self.result.errors.append(FileError(rel, _describe(outcome)))
        else:
            digest, sig = outcome
            # By ctime: every write and `utime` moves it to the kernel's now, so it is never
            # older than the last change, even where a tool restores an old mtime (cp -p,
            # rsync -t). The mtime proves nothing more: taken too, a file dated in the
            # future was never trusted, and every run read it again.
            changed_ns = sig.ctime_ns if _CTIME_CHANGES else max(sig.mtime_ns, sig.ctime_ns)
            trusted = changed_ns < self.trust_before_ns
            self.result.entries[rel] = LocalEntry(
                sig.size, sig.mtime_ns, digest, stat.S_IMODE(sig.mode), sig.ino, sig.ctime_ns
            )
            self.result.updates.append((rel, CacheRecord(sig, digest, trusted)))

    # --- subset scans --------------------------------------------------------------------

    def scan_only(self, paths: Iterable[RelPath]) -> None:
        """Scan just `paths`: files are checked, folders walked, missing paths reported."""
        self.only_mode = True
        walked: set[str] = set()
        for rel in sorted(set(paths)):
            if any(folder in walked for folder in ancestors(rel)):
                continue
            if self._scan_one(rel):
                walked.add(rel)

    def _scan_one(self, rel: RelPath) -> bool:
        """Scan one `only=` path; True if it was a folder (now walked)."""
        if rel.split("/", 1)[0] == STATE_DIR or self.ignore.ignores_unseen(rel):
            return False  # (a file or a folder: both are checked again once known)
        if not rel.isascii() and not _utf8(rel):
            # A watcher's path holds what the disk does; a walk would refuse this name too.
            self._unsendable(rel, f"{rel!r}: the name is not valid UTF-8", None)
            return False
        path = self._locate(rel)
        if path is None:
            if not (self.result.twins and under_any(rel, self.result.twins)):
                self.result.removed.append(rel)
            return False
        try:
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            self.result.removed.append(rel)
            return False
        except OSError as e:
            self.result.errors.append(FileError(rel, _describe(e)))
            return False
        if stat.S_ISDIR(st.st_mode):
            if self.ignore.ignores(rel, is_dir=True):
                return False
            self.walk(path, rel + "/")
            return True
        if self.ignore.ignores(rel):
            return False
        if stat.S_ISLNK(st.st_mode):
            self._symlink(path, rel)
            return False
        self._file(rel, st, *os.path.split(path))
        return False

    def _spelled(self, rel: RelPath) -> str | None:
        """The on-disk path of `rel`, or None if a name on the way is gone,
        or spelled by two names of one folder that differ only in Unicode form (the twins
        then withheld with what lies below them, as a walk withholds them).

        `rel` is NFC, and the disk may hold another form (Linux keeps names as written).
        Each name is looked for among all the spellings in its folder: found as given, an
        NFD file `café` beside a new NFC folder `café/` went unseen, the folder passed for
        the file made a folder, and the file's remote copy was deleted while it was here.
        A folder is listed once a scan, and only for a name on the way that is not ASCII or
        may be the NFC form of one there (`_other_spelling_may_exist`: a K, `;` or backquote
        in it spelled as the singleton it also stands for).
        """
        path = self.root
        at = ""
        for segment in rel.split("/"):
            at = f"{at}/{segment}" if at else segment
            if segment.isascii() and not _other_spelling_may_exist(path, segment):
                path = os.path.join(path, segment)
                continue
            if at in self.result.twins:
                return None
            names = self._spellings(path).get(segment)
            if names is None:
                if segment.isascii():  # (no other spelling: the plain name, if any)
                    path = os.path.join(path, segment)
                    continue
                return None
            for other in names[1:]:
                self._twin(RelPath(at), names[0], other)
            if len(names) > 1:
                return None
            path = os.path.join(path, names[0])
        return path

    def _spellings(self, folder: str) -> dict[str, list[str]]:
        """The names of `folder` that are not ASCII, by their NFC form (listed once a scan).

        Where that form is ASCII (KELVIN SIGN for K), the plain name comes first among its
        spellings when the folder holds it: the twin a walk's or a batch's short way for
        ASCII names would not look for."""
        found = self._listed.get(folder)
        if found is None:
            try:
                listed = os.listdir(folder)
            except OSError:
                listed = []  # gone, or not a folder: `_scan_one` says it is gone
            found = {}
            for name in sorted(name for name in listed if not name.isascii()):
                found.setdefault(unicodedata.normalize("NFC", name), []).append(name)
            if any(nfc.isascii() for nfc in found):
                plain = {name for name in listed if name.isascii()}
                for nfc, names in found.items():
                    if nfc in plain:
                        names.insert(0, nfc)
            self._listed[folder] = found
        return found

    def _locate(self, rel: RelPath) -> str | None:
        """The on-disk path of `rel`, or None if it is gone, lies under a skipped link, or
        is spelled twice (then withheld, as a walk withholds it: `_spelled`)."""
        path = (
            os.path.join(self.root, rel)
            if rel.isascii() and not _may_be_spelled_otherwise(rel)
            else self._spelled(rel)
        )
        if path is None:
            return None
        folder = os.path.dirname(path)
        if folder != self.root and os.path.realpath(folder) != os.path.join(
            self.real_root, os.path.relpath(folder, self.root)
        ):
            # A folder on the way is a symlink: part of the tree only when links are followed
            # and it stays inside the root.
            real = os.path.realpath(folder)
            inside = real == self.real_root or real.startswith(self.real_root + os.sep)
            if not (self.follow_links and inside):
                return None
        return path


def _entry(st: os.stat_result, digest: Digest) -> LocalEntry:
    """The entry of a file whose cached digest still holds for its stat `st`."""
    return local_entry(
        st.st_size, st.st_mtime_ns, digest, st.st_mode & 0o7777, st.st_ino, st.st_ctime_ns
    )


_SCANDIR_FD = os.scandir in os.supports_fd and hasattr(os, "O_DIRECTORY")
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)


@contextlib.contextmanager
def _listing(folder: str) -> Iterator[Iterator[os.DirEntry[str]]]:
    """The entries of `folder`, through an open descriptor of it where the platform allows.

    An entry of a listing by descriptor is stat'ed relative to it (`fstatat`), so the kernel
    resolves one name instead of the whole path again for every file: 15 % of a walk's time
    (measured on 20,000 files). Such an entry's `path` is its bare name: use `folder`.
    """
    if not _SCANDIR_FD:
        with os.scandir(folder) as it:
            yield it
        return
    fd = os.open(folder, _DIR_FLAGS)
    try:
        with os.scandir(fd) as it:
            yield it
    finally:
        os.close(fd)


def _twin_error(name: str, other: str) -> str:
    """Why the file at `name` is not synced: `other`, in its folder, differs only in
    Unicode form. Both have one path (NFC), so the error says which spelling it is about."""
    return (
        "another name in its folder has the same NFC form (this one is written in "
        f"{_form(name)}, the other in {_form(other)}); rename one of them"
    )


def _form(name: str) -> str:
    """The Unicode form a name is written in, as `_twin_error` names it."""
    base = name.rpartition("/")[2]
    if unicodedata.is_normalized("NFC", base):
        return "NFC"
    if unicodedata.is_normalized("NFD", base):
        return "NFD"
    return "neither NFC nor NFD"


_SINGLETONS = {"K": "\u212a", ";": "\u037e", "`": "\u1fef"}
"""The ASCII characters that are also the NFC form of another character (a singleton:
KELVIN SIGN, GREEK QUESTION MARK, GREEK VARIA), with that character: the only ones through
which an ASCII name shares its NFC form with a name that is not ASCII. Unicode's stability
policy keeps this set as it is."""


def _may_be_spelled_otherwise(name: str) -> bool:
    """False for an ASCII `name` that no other name has as its NFC form: it cannot have a
    twin (`_twin`), and its folder needs no look for one."""
    return not _SINGLETONS.keys().isdisjoint(name)


def _other_spelling_may_exist(folder: str, name: str) -> bool:
    """False if `folder` surely holds no other name whose NFC form is the ASCII `name`.

    Up to two characters of `name` that a singleton stands for (`Kconfig`, `K;K`) are
    tried spelled so, one `lstat` each (three at most): listing a folder of 20,000 files
    for every name with a K in it cost a batch 15 ms. True when one is there (it may be
    the plain name itself, on a disk that compares names by their normal form: the
    folder's listing tells), or when more such characters would make too many names."""
    at = [i for i, char in enumerate(name) if char in _SINGLETONS]
    if len(at) > 2:
        return True
    for mask in range(1, 1 << len(at)):
        chars = list(name)
        for bit, i in enumerate(at):
            if mask >> bit & 1:
                chars[i] = _SINGLETONS[name[i]]
        if os.path.lexists(os.path.join(folder, "".join(chars))):
            return True
    return False


def _utf8(name: str) -> bool:
    """True if `name` (as `os` decodes it: undecodable bytes become lone surrogates) is
    valid UTF-8 on disk, which every remote and the manifest need."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
