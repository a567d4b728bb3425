"""`fsync verify`: prove that a remote holds exactly the local tree, file by file.

The local side is scanned through the manifest's digest cache (only files whose stat moved
are read again). The remote side is listed once; for each path present on both sides with
the same size, the remote blake3 comes from the object's metadata where the backend stores
one (S3), and from re-reading the content everywhere else (a filesystem, memory), or
everywhere with `download`. Nothing in either tree is changed; without a state database
none is created.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from fsync import scanner
from fsync.config import VerifyOptions
from fsync.errors import ConfigError, FsyncError, RemoteUnavailable, VerificationError
from fsync.hashing import CacheRecord, hash_stream
from fsync.ignore import IgnoreMatcher
from fsync.manifest import Manifest
from fsync.manifest.db import DB_NAME
from fsync.model import Digest, FileError, LocalEntry, RelPath, RemoteEntry
from fsync.paths import under_any
from fsync.progress import Reporter
from fsync.redact import Redactor
from fsync.remote import missing_root, open_remote
from fsync.remote.base import Remote, incomplete_error, nfc_twin, skipped_warning
from fsync.roots import check_local_remote

STATE_DB = os.path.join(".fsync", DB_NAME)


@dataclass(frozen=True, slots=True)
class Difference:
    """A path on both sides whose size or content differs, and how."""

    path: RelPath
    reason: str


@dataclass(slots=True)
class VerifyReport:
    """What `fsync verify` found; `ok` only when both trees hold the same files and bytes."""

    local_files: int = 0
    local_bytes: int = 0
    remote_files: int = 0
    remote_bytes: int = 0
    matched: int = 0
    missing: list[RelPath] = field(default_factory=list)
    """Local files the remote lacks."""
    extra: list[RelPath] = field(default_factory=list)
    """Remote files the local tree lacks."""
    different: list[Difference] = field(default_factory=list)
    errors: list[FileError] = field(default_factory=list)
    """Paths that could not be compared: unreadable, or remote keys with no local name."""
    from_metadata: int = 0
    """Remote digests read from object metadata."""
    hashed_files: int = 0
    hashed_bytes: int = 0
    """Remote files re-read and hashed, and their bytes."""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when nothing is missing, extra, different or unreadable."""
        return not (self.missing or self.extra or self.different or self.errors)

    def as_json(self) -> dict[str, object]:
        """The `--json` object: counts, then the lists of paths."""
        return {
            "ok": self.ok,
            "local": {"files": self.local_files, "bytes": self.local_bytes},
            "remote": {"files": self.remote_files, "bytes": self.remote_bytes},
            "matched": self.matched,
            "counts": {
                "missing": len(self.missing),
                "extra": len(self.extra),
                "different": len(self.different),
                "errors": len(self.errors),
            },
            "missing": list(self.missing),
            "extra": list(self.extra),
            "different": [{"path": d.path, "reason": d.reason} for d in self.different],
            "errors": [{"path": e.path, "error": e.error} for e in self.errors],
            "remote_digests": {
                "from_metadata": self.from_metadata,
                "hashed_files": self.hashed_files,
                "hashed_bytes": self.hashed_bytes,
            },
            "seconds": round(self.seconds, 3),
        }


def verify(opts: VerifyOptions, reporter: Reporter) -> VerifyReport:
    """Compare the local tree of `opts` with its remote and return the differences.

    Raises `ConfigError` (exit 2) for a missing local root, or a filesystem remote whose root
    does not exist, and `RemoteUnavailable` (exit 1) when the remote cannot be listed.
    Per-file read failures are reported in `errors`, never raised.
    """
    started = time.monotonic()
    root = os.path.abspath(opts.local_root)
    if not os.path.isdir(root):
        raise ConfigError(
            f"local root {opts.local_root} does not exist or is not a directory "
            "(give the folder you push from or pull into)"
        )
    check_local_remote(root, opts)
    ignore = scanner.read_ignore(root, opts.excludes)
    remote = open_remote(
        opts.remote_url, storage_options=opts.storage_options, endpoint_url=opts.endpoint_url
    )
    try:
        scan = _scan(root, ignore, opts, reporter)
        entries, refused, unread = _list(remote, ignore, opts, reporter)
        report = _compare(scan, (entries, unread), remote, opts)
    finally:
        remote.close()
    unsendable = [FileError(e.path, f"cannot be synced: {e.error}") for e in scan.unsendable]
    report.errors[:0] = [*scan.errors, *unsendable, *refused]
    redactor = Redactor.build(
        urls=[opts.remote_url], storage_options=opts.storage_options, env=os.environ
    )
    report.errors = [FileError(e.path, redactor.text(e.error)) for e in report.errors]
    report.seconds = time.monotonic() - started
    return report


class _NoCache:
    """A digest cache that knows nothing: every file is hashed (a root never synced)."""

    def cached(self, path: RelPath) -> CacheRecord | None:
        """Always None."""
        return None


def _scan(
    root: str, ignore: IgnoreMatcher, opts: VerifyOptions, reporter: Reporter
) -> scanner.ScanResult:
    """Scan the local tree, through the manifest's cache where the root has one."""
    if not os.path.exists(os.path.join(root, STATE_DB)):
        result = scanner.scan(root, _NoCache(), ignore, follow_links=opts.follow_links)
    else:
        with Manifest.open(root) as manifest:
            result = scanner.scan(root, manifest, ignore, follow_links=opts.follow_links)
            with manifest.transaction():
                manifest.update_cache(result.updates)
    for line in result.warnings:
        reporter.warning(line)
    return result


def _list(
    remote: Remote, ignore: IgnoreMatcher, opts: VerifyOptions, reporter: Reporter
) -> tuple[dict[RelPath, RemoteEntry], list[FileError], set[RelPath]]:
    """The remote's files under the ignore rules; errors for the keys that map to no local
    name and the folders that could not be read; and the paths left out of the comparison:
    those folders, and what a key spelled in another Unicode form shadows (`nfc_twin`: runs
    leave it alone on both sides), which was listed as missing besides its error.

    What the remote skips (a link, a device) is warned about, as the scanner warns about a
    local link: a run leaves it alone, so it is no difference.
    """
    if not remote.root_exists():
        raise ConfigError(missing_root(opts.remote_url))
    try:
        listing = remote.list()
    except FsyncError:
        raise
    except OSError as exc:
        raise RemoteUnavailable(f"cannot list {opts.remote_url}: {exc}") from exc
    entries = {p: e for p, e in listing.entries.items() if not ignore.ignores(p)}
    refused = [
        FileError(key, f"remote key has no local name: {why}") for key, why in listing.refused
    ]
    refused = [e for e in refused if not _ignored(ignore, e.path)]
    for path, what in listing.skipped:
        if not ignore.ignores_unseen(path):
            reporter.warning(skipped_warning(path, what))
    files = listing.unread_files
    unread = {p for p, _ in listing.incomplete if not ignore.ignores(p, is_dir=p not in files)}
    refused += [
        FileError(p, incomplete_error(why, file=p in files))
        for p, why in listing.incomplete
        if p in unread
    ]
    unread |= {twin[1] for e in refused if (twin := nfc_twin(e.path)) is not None}
    return entries, refused, unread


def _compare(
    scan: scanner.ScanResult,
    listed: tuple[Mapping[RelPath, RemoteEntry], set[RelPath]],
    remote: Remote,
    opts: VerifyOptions,
) -> VerifyReport:
    """Compare the scan with the remote's entries, leaving out what lies below the remote
    folders that could not be read (`listed` holds both)."""

    # What could not be read (or is named twice, in two Unicode forms), here or there, is an
    # error already, on both sides: neither missing nor extra.
    def known(path: RelPath) -> bool:
        return not scan.is_unknown(path) and not (unread and under_any(path, unread))

    remote_entries, unread = listed
    local = {p: e for p, e in scan.entries.items() if known(p)}
    remote_entries = {p: e for p, e in remote_entries.items() if known(p)}
    report = VerifyReport(
        local_files=len(local),
        local_bytes=sum(e.size for e in local.values()),
        remote_files=len(remote_entries),
        remote_bytes=sum(e.size for e in remote_entries.values()),
    )
    report.missing = sorted(p for p in local if p not in remote_entries)
    report.extra = sorted(p for p in remote_entries if p not in local)
    same_size: list[RelPath] = []
    for path in sorted(p for p in local if p in remote_entries):
        here, there = local[path], remote_entries[path]
        if here.size != there.size:
            reason = f"size: {here.size} bytes local, {there.size} remote"
            report.different.append(Difference(path, reason))
        else:
            same_size.append(path)
    checker = _Checker(remote, opts.download)
    wanted = [remote_entries[p] for p in same_size]
    with ThreadPoolExecutor(max_workers=opts.transfers, thread_name_prefix="fsync-verify") as pool:
        outcomes = pool.map(checker.digest_of, same_size, wanted)
        for path, outcome in zip(same_size, outcomes, strict=True):
            _judge(report, path, local[path], outcome)
    report.from_metadata = checker.from_metadata
    report.hashed_files = checker.hashed_files
    report.hashed_bytes = checker.hashed_bytes
    return report


def _judge(
    report: VerifyReport,
    path: RelPath,
    here: LocalEntry,
    outcome: Digest | FileError | Difference,
) -> None:
    if isinstance(outcome, FileError):
        report.errors.append(outcome)
    elif isinstance(outcome, Difference):
        report.different.append(outcome)
    elif outcome == here.digest:
        report.matched += 1
    else:
        report.different.append(
            Difference(path, f"content: blake3 {here.digest[:16]}… local, {outcome[:16]}… remote")
        )


class _Checker:
    """Learns remote digests, from metadata or by reading the content; thread-safe counts."""

    def __init__(self, remote: Remote, download: bool) -> None:
        self.remote = remote
        self.use_metadata = remote.capabilities.stores_digest and not download
        self.from_metadata = 0
        self.hashed_files = 0
        self.hashed_bytes = 0
        self._lock = threading.Lock()

    def digest_of(self, path: RelPath, entry: RemoteEntry) -> Digest | FileError | Difference:
        """The remote blake3 of `path`, or the error that kept it unknown.

        A reader that checks content against stored metadata (S3) may find them apart
        itself: that is a difference, the remote bytes being corrupt.
        """
        try:
            if self.use_metadata:
                stored = entry.digest or self.remote.read_digest(path)
                if stored is not None:
                    with self._lock:
                        self.from_metadata += 1
                    return Digest(stored)
                # No blake3 in the metadata (written by another tool): read the content.
            with self.remote.open_read(path) as src:
                digest = hash_stream(src)
            with self._lock:
                self.hashed_files += 1
                self.hashed_bytes += entry.size
            return digest
        except FileNotFoundError:
            return FileError(path, "vanished from the remote during the check")
        except VerificationError as exc:
            with self._lock:
                self.hashed_files += 1
                self.hashed_bytes += entry.size
            return Difference(path, f"content: the remote bytes do not match ({exc})")
        except (FsyncError, OSError) as exc:
            return FileError(path, f"cannot read the remote file: {exc}")


def _ignored(ignore: IgnoreMatcher, key: str) -> bool:
    """True if a raw remote key, taken as a path (in NFC where that is all that is wrong with
    it, as a sync takes it), is excluded (`.fsync/` and temp names too)."""
    twin = nfc_twin(key)
    try:
        return ignore.ignores(twin[0] if twin is not None else RelPath(key))
    except ValueError:
        return False
