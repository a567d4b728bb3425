"""The use cases: one push or pull, and the status report.

Each run follows the data flow of DESIGN.md: lock the root, scan the local tree against the
manifest, list the remote once, plan, execute, and record the run. This module wires the
adapters together and holds no sync rule of its own: the rules live in the planner.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TypeVar

from fsync import planner, scanner
from fsync.config import SyncOptions
from fsync.errors import ConfigError, ExitCode, FsyncError, RemoteUnavailable
from fsync.hashing import hash_stream
from fsync.ignore import IgnoreMatcher
from fsync.manifest import Manifest, RootLock, RunRecord
from fsync.model import (
    ActionKind,
    BaseEntry,
    Digest,
    Direction,
    FileError,
    LocalEntry,
    Plan,
    RelPath,
    RemoteEntry,
    RunResult,
)
from fsync.progress import Reporter
from fsync.remote import open_remote
from fsync.remote.base import Remote
from fsync.transfer.engine import EngineOptions, Outcome, execute

E = TypeVar("E")


def run(opts: SyncOptions, reporter: Reporter) -> RunResult:
    """Run one push or pull as `opts` says and return what it did.

    Raises `ConfigError`, `SafetyAbort` or `LockHeld` (exit 2) before anything is changed,
    and `RemoteUnavailable` (exit 1) when the remote cannot be listed at all.
    """
    started = time.monotonic()
    root = _prepare_root(opts)
    policy = opts.policy()
    remote = open_remote(
        opts.remote_url, storage_options=opts.storage_options, endpoint_url=opts.endpoint_url
    )
    try:
        with RootLock(root), Manifest.open(root) as manifest:
            ignore = scanner.read_ignore(root, opts.excludes)
            local = _scan(root, manifest, ignore, reporter)
            remote_entries, refused = _list(remote, ignore, opts, reporter)
            base = manifest.base(remote.url)
            if local.errors or local.incomplete:
                # An unreadable file or folder is not a deleted one: keep it out of the plan.
                remote_entries = _known(remote_entries, local)
                base = _known(base, local)
            remote_entries = _fill_digests(remote, remote_entries, local.entries, base)
            plan = planner.plan(local.entries, remote_entries, base, policy)
            run_id = manifest.start_run(opts.direction.value, remote.url)
            if opts.dry_run:
                result = _dry_run_result(plan)
                reporter.close()
            else:
                sink = _ManifestSink(manifest, remote.url)
                engine_opts = EngineOptions(transfers=opts.transfers)
                result = execute(plan, root, remote, sink, reporter, options=engine_opts)
            result.errors[:0] = [*local.errors, *refused]
            result.failed += len(local.errors) + len(refused)
            result.seconds = time.monotonic() - started
            manifest.finish_run(run_id, int(exit_status(result)), result.as_json())
            return result
    finally:
        remote.close()


def exit_status(result: RunResult) -> ExitCode:
    """The process exit status for a finished run (DESIGN.md, Interface)."""
    if result.failed:
        return ExitCode.FAILED
    if result.unresolved:
        return ExitCode.CONFLICTS
    return ExitCode.OK


def _prepare_root(opts: SyncOptions) -> str:
    root = os.path.abspath(opts.local_root)
    if opts.direction is Direction.PULL and not os.path.lexists(root):
        try:
            os.mkdir(root)
        except FileNotFoundError:
            raise ConfigError(
                f"local root {opts.local_root} cannot be created: its parent folder does not exist"
            ) from None
    if not os.path.isdir(root):
        what = "does not exist" if not os.path.lexists(root) else "is not a directory"
        raise ConfigError(f"local root {opts.local_root} {what} (give an existing folder)")
    return root


def _scan(
    root: str, manifest: Manifest, ignore: IgnoreMatcher, reporter: Reporter
) -> scanner.ScanResult:
    result = scanner.scan(root, manifest, ignore)
    with manifest.transaction():
        manifest.update_cache(result.updates)
        manifest.prune_cache(result.entries.keys())
    for line in result.warnings:
        reporter.warning(line)
    return result


def _known(entries: Mapping[RelPath, E], scan: scanner.ScanResult) -> dict[RelPath, E]:
    return {p: e for p, e in entries.items() if not scan.is_unknown(p)}


def _list(
    remote: Remote, ignore: IgnoreMatcher, opts: SyncOptions, reporter: Reporter
) -> tuple[dict[RelPath, RemoteEntry], list[FileError]]:
    """One listing of the remote, filtered by the ignore rules; refused keys as errors on pull."""
    if opts.direction is Direction.PULL and not remote.root_exists():
        raise ConfigError(f"remote {opts.remote_url} does not exist (check the path)")
    try:
        listing = remote.list()
    except FsyncError:
        raise
    except OSError as exc:
        raise RemoteUnavailable(f"cannot list {opts.remote_url}: {exc}") from exc
    entries = {p: e for p, e in listing.entries.items() if not ignore.ignores(p)}
    refused: list[FileError] = []
    for key, why in listing.refused:
        if opts.direction is Direction.PULL:
            refused.append(FileError(key, f"refused remote key: {why}"))
        else:
            reporter.warning(f"remote key {key!r} cannot be mapped to a local name: {why}")
    return entries, refused


def _fill_digests(
    remote: Remote,
    entries: dict[RelPath, RemoteEntry],
    local: Mapping[RelPath, LocalEntry],
    base: Mapping[RelPath, BaseEntry],
) -> dict[RelPath, RemoteEntry]:
    """Learn the content digest of remote entries where it decides the plan.

    That is where a path has no base but exists on both sides, or where its fingerprint moved
    while its size did not: only the content can tell an identical rewrite from a change. A
    different size already proves a change, so it costs nothing. Where the backend stores no
    digest, the content is read and hashed; that happens only in those cases.
    """
    wanted = [
        p for p, e in entries.items() if e.digest is None and _needs_digest(p, e, local, base)
    ]
    if not wanted:
        return entries

    def learn(path: RelPath) -> tuple[RelPath, str | None]:
        try:
            digest = remote.read_digest(path)
            if digest is None and not remote.capabilities.stores_digest:
                with remote.open_read(path) as src:
                    digest = hash_stream(src)
        except (OSError, FsyncError):
            return path, None
        return path, digest

    out = dict(entries)
    with ThreadPoolExecutor(max_workers=8, thread_name_prefix="fsync-digest") as pool:
        for path, digest in pool.map(learn, wanted):
            if digest is not None:
                out[path] = replace(out[path], digest=Digest(digest))
    return out


def _needs_digest(
    path: RelPath,
    entry: RemoteEntry,
    local: Mapping[RelPath, LocalEntry],
    base: Mapping[RelPath, BaseEntry],
) -> bool:
    b = base.get(path)
    if b is not None:
        return entry.fingerprint != b.fingerprint and entry.size == b.size
    here = local.get(path)
    return here is not None and here.size == entry.size


def _dry_run_result(plan: Plan) -> RunResult:
    """The counts a real run of `plan` would report, without running it."""
    result = RunResult(unchanged=plan.unchanged, notices=list(plan.notices), dry_run=True)
    for a in plan.actions:
        result.conflicts += a.conflict
        if a.kind is ActionKind.UPLOAD:
            result.uploaded += 1
            result.bytes_sent += a.local.size if a.local else 0
        elif a.kind is ActionKind.DOWNLOAD:
            result.downloaded += 1
            result.bytes_received += a.remote.size if a.remote else 0
        elif a.kind.deletes:
            result.deleted += 1
        elif a.kind is ActionKind.CONFLICT:
            result.unresolved += 1
        elif a.kind in (ActionKind.RECORD, ActionKind.KEEP):
            result.unchanged += 1
    return result


class _ManifestSink:
    """Makes engine outcomes durable, one transaction per batch."""

    def __init__(self, manifest: Manifest, remote_url: str) -> None:
        self.manifest = manifest
        self.remote_url = remote_url

    def commit(self, outcomes: list[Outcome]) -> None:
        """Write the bases and cache entries of `outcomes` in one transaction."""
        with self.manifest.transaction():
            self.manifest.set_base(
                self.remote_url,
                [(o.path, o.base) for o in outcomes if o.base is not None or o.forget_base],
            )
            self.manifest.update_cache([(o.path, o.cache) for o in outcomes if o.cache])
            self.manifest.drop_cache([o.path for o in outcomes if o.drop_cache])


@dataclass(slots=True)
class RemoteStatus:
    """Pending local changes against one remote, by path."""

    url: str
    changed: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)


@dataclass(slots=True)
class StatusReport:
    """What `fsync status` shows: pending changes per remote and the last runs."""

    root: str
    remotes: list[RemoteStatus]
    runs: list[RunRecord]
    errors: list[FileError]


def status(local_root: str, excludes: Iterable[str] = (), runs: int = 10) -> StatusReport:
    """Pending local changes against each known remote, and the last runs; no remote I/O."""
    root = os.path.abspath(local_root)
    if not os.path.isdir(root):
        raise ConfigError(f"local root {local_root} does not exist or is not a directory")
    if not os.path.exists(os.path.join(root, ".fsync", "state.db")):
        raise ConfigError(f"{local_root} has never been synced (no .fsync/state.db)")
    with Manifest.open(root) as manifest:
        scan = scanner.scan(root, manifest, scanner.read_ignore(root, excludes))
        with manifest.transaction():
            manifest.update_cache(scan.updates)
        remotes = [
            _pending(url, scan.entries, manifest.base(url)) for url in manifest.known_remotes()
        ]
        return StatusReport(root, remotes, manifest.last_runs(runs), scan.errors)


def _pending(
    url: str, local: Mapping[RelPath, LocalEntry], base: Mapping[RelPath, BaseEntry]
) -> RemoteStatus:
    out = RemoteStatus(url)
    for path, entry in sorted(local.items()):
        b = base.get(path)
        if b is None:
            out.new.append(path)
        elif b.digest != entry.digest:
            out.changed.append(path)
    out.deleted = sorted(p for p in base if p not in local)
    return out
