"""The use cases: one push or pull, and the status report.

Each run follows the data flow of DESIGN.md: lock the root, scan the local tree against the
manifest, list the remote once, plan, execute, and record the run. This module wires the
adapters together and holds no sync rule of its own: the rules live in the planner.
"""

from __future__ import annotations

import contextlib
import logging
import os
import posixpath
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Collection, Container, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TypeVar

from fsync import names, planner, scanner
from fsync.config import SyncOptions
from fsync.errors import (
    ConfigError,
    ExitCode,
    FsyncError,
    PermanentError,
    RemoteUnavailable,
    exit_code_for,
    one_line,
)
from fsync.ignore import IGNORE_FILE, STATE_DIR, IgnoreMatcher
from fsync.manifest import Manifest, RootLock, RunRecord
from fsync.manifest.journal import TransferJournal
from fsync.model import (
    ActionKind,
    ActionRecord,
    BaseEntry,
    BaseSnapshot,
    Direction,
    FileError,
    LocalEntry,
    Notice,
    PartialDownload,
    PendingUpload,
    Plan,
    RelPath,
    RemoteEntry,
    RemoteSnapshot,
    RunResult,
    Snapshot,
    SyncPolicy,
)
from fsync.paths import TEMP_TOKEN, ancestors, temp_token, under_any
from fsync.planning import plan_sync, safety_stop
from fsync.progress import Reporter
from fsync.redact import Redactor
from fsync.remote import local_path, missing_root, open_remote
from fsync.remote.base import (
    Listing,
    Remote,
    Resumer,
    RootMaker,
    TempRemover,
    incomplete_error,
    nfc_twin,
    skipped_warning,
)
from fsync.remote.retry import RetryPolicy
from fsync.roots import check_local_remote
from fsync.transfer import intents
from fsync.transfer.backup import Backup, BackupPlace, locate
from fsync.transfer.download import drop_abandoned_temps, drop_stale_partials
from fsync.transfer.engine import execute
from fsync.transfer.outcome import EngineOptions, Outcome

E = TypeVar("E")
_IN_PROCESS = ("file://", "memory://")
"""Remotes whose listing is CPU work in this process, not a wait on the network."""

_log = logging.getLogger("fsync.app")


def run(
    opts: SyncOptions,
    reporter: Reporter,
    *,
    on_action: Callable[[ActionRecord], None] | None = None,
) -> RunResult:
    """Run one push, pull or two-way sync as `opts` says and return what it did.

    `on_action` receives a record of every action as it ends (and of each path that could not
    be read or mapped), for `--log-file`. Error messages in the result and the run history
    carry no secret of `opts`. Raises `ConfigError`, `SafetyAbort` or `LockHeld` (exit 2)
    before anything is changed, and `RemoteUnavailable` (exit 1) when the remote cannot be
    listed at all.
    """
    started = time.monotonic()
    made = opts.direction is not Direction.PUSH and not os.path.lexists(opts.local_root)
    root = prepare_root(opts)
    try:
        return _run_in(root, opts, reporter, started, on_action)
    except BaseException:
        if made and not opts.dry_run:
            _unmake_root(root)
        raise


def _unmake_root(root: str) -> None:
    """Remove the local root this run made for a pull, if it failed before writing anything
    there (only fsync's state folder is in it): a pull from a missing remote, or with wrong
    credentials, left an empty folder behind that counted as synced."""
    try:
        if set(os.listdir(root)) <= {STATE_DIR}:
            shutil.rmtree(root)
    except OSError:
        pass  # best effort: what is left is an empty folder


def _run_in(
    root: str,
    opts: SyncOptions,
    reporter: Reporter,
    started: float,
    on_action: Callable[[ActionRecord], None] | None,
) -> RunResult:
    """`run` once its local root `root` exists (or, for a dry run, may not)."""
    policy = opts.policy()
    place = locate(opts.backup_dir, opts.remote_url, root) if opts.backup_dir else None
    excludes = opts.excludes + (place.excludes if place is not None else ())
    with contextlib.ExitStack() as stack:
        if not os.path.isdir(root):  # a dry pull into a folder it must not create: plan
            # against an empty stand-in (its name checks then judge the stand-in's disk)
            root = stack.enter_context(tempfile.TemporaryDirectory(prefix="fsync-dry-run-"))
        journal, remote = stack.enter_context(journaled_remote(opts, root))
        with (
            RootLock(root),
            Manifest.open(root) as manifest,
            recorded_run(manifest, opts.direction.value, remote.key, sync_redactor(opts)) as entry,
        ):
            ignore = scanner.read_ignore(root, excludes)
            local, listing = _scan_and_list(
                root, manifest, ignore, remote, opts=opts, reporter=reporter
            )
            remote_entries, refused, twins, skipped = sort_listing(listing, ignore, opts, reporter)
            base = settled_base(
                manifest, remote, root, local.entries, remote_entries, dry_run=opts.dry_run
            )
            if opts.direction is not Direction.PUSH:
                ignore, local, remote_entries, refused = _with_arriving_rules(
                    ignore, remote, local, remote_entries, refused=refused, base=base
                )
            listed = remote_entries
            if opts.direction is Direction.PULL:
                for e in local.unsendable:
                    reporter.warning(f"skipping {e.path}: {e.error}")
            else:
                refused += [FileError(e.path, f"not sent: {e.error}") for e in local.unsendable]
            local_entries, remote_entries, base = _plannable(
                root,
                local,
                remote_entries,
                unignored_base(base, ignore, local.entries, remote_entries),
                refused=refused,
                alone=(twins, skipped),
                opts=opts,
            )
            # A dry run shows the plan even where a safety stop would refuse it (checked below).
            planned = replace(policy, force=True) if opts.dry_run else policy
            plan = plan_sync(
                remote,
                local_entries,
                remote_entries,
                base,
                planned,
                local_root=root,
                recorded_ns=manifest.legacy_tokens_until_ns(remote.key),
                hidden=hidden_paths(listing, listed),
            )
            _warn_if_emptied(policy, local_entries, remote_entries, base, reporter)
            if opts.direction is Direction.PUSH and (plan.notices or opts.mirror):
                plan = _unpullable_noticed(plan, root, listed, local_entries, opts.mirror)
            _log_inputs(local, remote_entries, base, plan, started)
            if opts.dry_run:
                result = dry_run_result(plan)
                result.stopped = safety_stop(plan, local_entries, remote_entries, base, policy)
                reporter.close()
                _report_planned(plan, on_action)
            else:
                drop_abandoned_temps(journal, root, local.temps, manifest.temp_tokens)
                drop_remote_temps(remote, listing, manifest.temp_tokens)
                make_remote_root(remote, listing.entries, plan)
                if opts.direction is not Direction.PULL:
                    abort_unsent_uploads(
                        remote,
                        plan,
                        local.entries,
                        unknown=lambda p: local.is_unknown(p) or ignore.ignores(p),
                        synced=base,
                    )
                entry.done = RunResult()
                sink = ManifestSink(manifest, remote.key, entry)
                engine_opts = _engine_options(
                    opts, plan, root, journal, remote.key, on_action=on_action
                )
                result = _execute(
                    plan,
                    root,
                    remote,
                    sink,
                    reporter,
                    engine_opts=engine_opts,
                    place=place,
                    opts=opts,
                    result=entry.done,
                )
            result.errors[:0] = [*local.errors, *refused]
            result.failed += len(local.errors) + len(refused)
            _report_unreadable(local.errors, refused, on_action)
            result.errors = _redacted(result.errors, opts)
            result.seconds = time.monotonic() - started
            result.read_only = not remote.capabilities.writable
            manifest.finish_run(entry.run_id, int(exit_status(result)), result.as_json())
            return result


def settled_base(
    manifest: Manifest,
    remote: Remote,
    root: str,
    local: Mapping[RelPath, LocalEntry],
    listed: Mapping[RelPath, RemoteEntry],
    *,
    dry_run: bool,
) -> dict[RelPath, BaseEntry]:
    """The base of `remote`, with the transfers that runs killed before recording them
    left on the destination taken in (`fsync.transfer.intents`), as this run's scan `local`
    (of the local `root`) and listing `listed` show them. Without that, the next run took
    such a transfer for the user's edit, and a conflict policy could put a stale version
    back over a newer one.

    The settled intents go, in the transaction that records what they settled; a dry run
    plans with them and writes nothing. Costs one query when no run was killed.
    """
    base = manifest.base(remote.key)
    left = manifest.intents(remote.key)
    if not left:
        return base
    landed, decided = intents.settle(left, remote, root, local, listed)
    if not dry_run:
        with manifest.transaction():
            manifest.set_base(remote.key, landed.items())
            manifest.settle_intents(remote.key, decided)
    if landed:
        _log.debug("%d transfers of killed runs found in place: recorded", len(landed))
    base.update(landed)
    return base


def _warn_if_emptied(
    policy: SyncPolicy,
    local: Snapshot,
    remote: RemoteSnapshot,
    base: BaseSnapshot,
    reporter: Reporter,
) -> None:
    """Warn when a push finds the remote (a pull, this folder) holding none of the files
    synced before: by DESIGN's rules it leaves them deleted there and says so in its summary,
    but `-q` prints no summary, and a cron job's backup whose remote was wiped (or which now
    points at another prefix) went on exiting 0 in silence. A warning reaches stderr always.
    (The other way round, an emptied source, is a safety stop.)"""
    if policy.mirror or policy.direction is Direction.SYNC or not base:
        return
    push = policy.direction is Direction.PUSH
    if (remote if push else local).keys() & base.keys():
        return
    if push:
        where, done, does = "the remote", "sent", "fsync push --mirror sends"
    else:
        where, done, does = "this folder", "fetched", "fsync pull --mirror fetches"
    reporter.warning(
        f"{where} holds none of the {len(base)} files synced before (emptied, or a wrong "
        f"path?); they are not {done} again: check the path, or {does} them again"
    )


@dataclass(slots=True)
class RunEntry:
    """A run in the run history, while it runs: its id, and what it has done so far."""

    run_id: int
    done: RunResult | None = None
    """The counts of the run's actions once they have begun, filled in as each ends."""
    started: float = field(default_factory=time.monotonic)


@contextlib.contextmanager
def recorded_run(
    manifest: Manifest, command: str, remote: str, redactor: Redactor
) -> Iterator[RunEntry]:
    """A run of `command` against `remote` (its `Remote.key`) in the run history; yields
    its entry, for the caller's `finish_run` when the run ends with a result.

    A run stopped whole by an exception (a remote that cannot be listed, a safety stop,
    Ctrl-C) is recorded ended here, with the exit status it gives and its one-line error
    scrubbed by `redactor`, beside the counts of what it did before the stop if its actions
    had begun (`RunEntry.done`): `fsync status` is where a cron job's failure is seen, and an
    entry left without an end reads as a run still going. A failure to record it is only
    logged: it must not hide the error that stopped the run.
    """
    entry = RunEntry(manifest.start_run(command, remote, TEMP_TOKEN))
    try:
        yield entry
    except BaseException as exc:
        stopped = "interrupted" if isinstance(exc, KeyboardInterrupt) else one_line(exc)
        summary: dict[str, object] = {}
        if entry.done is not None:
            if not entry.done.seconds:  # a watch's totals have their own
                entry.done.seconds = time.monotonic() - entry.started
            summary = entry.done.as_json()
        summary["error"] = stopped
        clean = redactor.value(summary)
        assert isinstance(clean, dict)
        try:
            manifest.finish_run(entry.run_id, int(exit_code_for(exc)), clean)
        except Exception as failure:  # the manifest itself may be what failed
            _log.debug("cannot record the end of run %d: %s", entry.run_id, failure)
        raise


@contextlib.contextmanager
def journaled_remote(opts: SyncOptions, root: str) -> Iterator[tuple[TransferJournal, Remote]]:
    """The transfer journal of `root` and the remote of `opts` recording chunked uploads in
    it (so a run cut short continues them next time); both closed on leaving. Raises
    `ConfigError` for a push, sync or watch to a remote that takes no writes."""
    with TransferJournal.open(root) as journal:
        remote = open_sync_remote(opts, journal)
        try:
            if opts.direction is not Direction.PULL and not remote.capabilities.writable:
                # (else each upload failed on its own, as fsspec's bare NotImplementedError)
                raise ConfigError(
                    f"remote {remote.url} is read-only (fsync can only pull from it; "
                    f"use fsync pull {remote.url} LOCAL)"
                )
            yield journal, remote
        finally:
            remote.close()


def abort_unsent_uploads(
    remote: Remote,
    plan: Plan,
    local: Mapping[RelPath, LocalEntry],
    *,
    unknown: Callable[[RelPath], bool],
    synced: Mapping[RelPath, BaseEntry],
) -> int:
    """Abort the journaled uploads of `remote` that `plan` will not continue: of a path it
    does not upload whose local file (in `local`, a full scan) is gone or holds other content
    than the upload was sending, or whose version it was sending is the one synced (in the
    base `synced`): a run killed after the store completed it, before its answer came, left
    it journaled, and `fsync status` listed it as unfinished through every run after
    (crash tester). Aborting a completed upload only forgets it. Returns how many were
    aborted.

    Otherwise only the next upload of a path continues or aborts that path's upload, and one
    a killed run left for a file deleted or changed back since would stay on the store, its
    parts billed, until `fsync cleanup`: the upload side of `drop_stale_partials`. A path
    `unknown` names (it could not be scanned, the ignore rules or `--exclude` leave it out of
    this run, or a watch leaves it for later) keeps its upload, as does a file still holding
    the content sent: a later push may continue it.
    Costs no request when nothing journaled is stale (`Resumer.abort_journaled`).
    """
    if not isinstance(remote, Resumer):
        return 0
    sending = {a.path for a in plan.actions if a.kind is ActionKind.UPLOAD}

    def stale(path: RelPath, upload: PendingUpload) -> bool:
        if path in sending or unknown(path):
            return False
        sent = (upload.digest, upload.size)
        base, entry = synced.get(path), local.get(path)
        if base is not None and (base.digest, base.size) == sent:
            return True
        return entry is None or (entry.digest, entry.size) != sent

    return remote.abort_journaled(stale)


def make_remote_root(remote: Remote, entries: Mapping[RelPath, object], plan: Plan) -> None:
    """Make a folder remote's root before `plan` sends into it, where `entries` (its listing)
    are none: a root that cannot be made (below a folder fsync may not write, a read-only
    mount) is one error for the run, not the same error for every file sent."""
    if entries or not isinstance(remote, RootMaker):
        return
    if any(a.kind is ActionKind.UPLOAD for a in plan.actions):
        remote.make_root()


def drop_remote_temps(
    remote: Remote, listing: Listing, tokens: Callable[[], Collection[str]]
) -> int:
    """Remove the temp files `listing` met on `remote` that a run whose `TEMP_TOKEN` is in
    `tokens()` made, other than this process: this root's runs (`Manifest.temp_tokens`),
    killed outright, or ended without removing them (a temp that could not be removed).
    Returns how many.

    The remote side of `drop_abandoned_temps`: a push killed mid-write left its temp file in
    a folder remote, which listings skip, so it stayed until `fsync cleanup` (by age). Call
    it holding the root's lock: no run of the root is then writing one. A temp file of any
    other token stays: a folder remote may be shared by other machines and roots, whose
    runs may be writing it now and whose tokens this root's history does not know.
    `tokens` is asked only when there are temp files to judge: most runs meet none.
    """
    if not listing.temps or not isinstance(remote, TempRemover):
        return 0
    owners = set(tokens()) - {TEMP_TOKEN}
    if not owners:
        return 0
    ours = [p for p in listing.temps if temp_token(posixpath.basename(p)) in owners]
    removed = sum(remote.remove_temp(path) for path in ours)
    if ours:
        _log.debug("removed %d of %d temp files killed runs left on the remote", removed, len(ours))
    return removed


def _engine_options(
    opts: SyncOptions,
    plan: Plan,
    root: str,
    journal: TransferJournal,
    source: str,
    *,
    on_action: Callable[[ActionRecord], None] | None,
) -> EngineOptions:
    """The engine's knobs for `plan` against the remote whose key is `source`; partial
    downloads this plan will not continue (their file was deleted or changed since), and
    journaled conflict copies it will not record (their conflict is gone), are forgotten
    first."""
    fetching = {a.path for a in plan.actions if a.kind is ActionKind.DOWNLOAD}
    drop_stale_partials(journal, root, fetching)
    keeping = {a.path for a in plan.actions if a.kind is ActionKind.UPLOAD and a.keep_copy}
    journal.drop_copies(source, keeping)
    return EngineOptions(
        transfers=opts.transfers,
        on_action=on_action,
        verify_full=opts.verify_full,
        downloads=journal,
        copies=journal,
        intents=journal,
        follow_links=opts.follow_links,
    )


def _execute(
    plan: Plan,
    root: str,
    remote: Remote,
    sink: ManifestSink,
    reporter: Reporter,
    *,
    engine_opts: EngineOptions,
    place: BackupPlace | None,
    opts: SyncOptions,
    result: RunResult,
) -> RunResult:
    """Run `plan` with the engine, keeping versions in the backup dir of `place` (if any);
    the counts go into `result` as actions end (`execute`)."""
    with backup_for(place, remote, opts, clock=engine_opts.clock) as backup:
        engine_opts = replace(engine_opts, backup=backup)
        return execute(plan, root, remote, sink, reporter, options=engine_opts, result=result)


@contextlib.contextmanager
def backup_for(
    place: BackupPlace | None,
    remote: Remote,
    opts: SyncOptions,
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Iterator[Backup | None]:
    """The `Backup` of `place` for runs against `remote` (None without a backup dir).

    The backup dir on the remote's store is reached through the remote itself when it lies
    inside the remote root, else through a second remote opened at a tree holding both,
    closed on leaving.
    """
    if place is None:
        yield None
        return
    store: Remote | None = None
    if place.store_url is not None:
        store = remote if not place.remote_prefix else _open_url(place.store_url, opts)
    try:
        yield Backup(place, remote, store, clock=clock)
    finally:
        if store is not None and store is not remote:
            store.close()


def _open_url(url: str, opts: SyncOptions) -> Remote:
    """Another tree on the remote's store, with the same storage options and endpoint."""
    return open_remote(url, storage_options=opts.storage_options, endpoint_url=opts.endpoint_url)


def open_sync_remote(opts: SyncOptions, journal: TransferJournal | None = None) -> Remote:
    """The remote of `opts` with its transfer knobs, recording chunked uploads in `journal`
    (so a run cut short continues them next time). Raises `ConfigError` like `open_remote`."""
    return open_remote(
        opts.remote_url,
        storage_options=opts.storage_options,
        endpoint_url=opts.endpoint_url,
        chunk_size=opts.chunk_size,
        transfers=opts.transfers,
        retry=None if opts.retries is None else RetryPolicy(retries=opts.retries),
        timeout=opts.timeout,
        tps_limit=opts.tps_limit,
        bw_limit=opts.bw_limit,
        journal=journal,
    )


def exit_status(result: RunResult) -> ExitCode:
    """The process exit status for a finished run (DESIGN.md, Interface); a dry run that the
    real run's safety stop would end exits as that run would (`RunResult.stopped`)."""
    if result.stopped:
        return ExitCode.USAGE
    if result.failed:
        return ExitCode.FAILED
    if result.unresolved:
        return ExitCode.CONFLICTS
    return ExitCode.OK


def prepare_root(opts: SyncOptions) -> str:
    """The absolute local root of `opts`, created for a pull or a sync if missing.

    Raises `ConfigError` when it does not exist (or cannot be created), is not a folder, or
    is given a local remote it overlaps or that is a file (see `check_local_remote`).
    """
    root = os.path.abspath(opts.local_root)
    check_local_remote(root, opts)
    if opts.direction is not Direction.PUSH and not os.path.lexists(root):
        try:
            if not opts.dry_run:
                os.mkdir(root)
            elif not os.path.isdir(os.path.dirname(root)):
                raise FileNotFoundError(root)  # as the real run would find
            else:
                return root  # a dry run changes nothing: `run` plans against an empty stand-in
        except FileNotFoundError:
            raise ConfigError(
                f"local root {opts.local_root} cannot be created: its parent folder does not exist"
            ) from None
        except NotADirectoryError:
            raise ConfigError(
                f"local root {opts.local_root} cannot be created: a file is in its path"
            ) from None
    if not os.path.isdir(root):
        what = "does not exist" if not os.path.lexists(root) else "is not a directory"
        raise ConfigError(f"local root {opts.local_root} {what} (give an existing folder)")
    return root


def _scan(
    root: str,
    manifest: Manifest,
    ignore: IgnoreMatcher,
    reporter: Reporter,
    *,
    follow_links: bool = False,
) -> scanner.ScanResult:
    result = scanner.scan(root, manifest, ignore, follow_links=follow_links)
    with manifest.transaction():
        manifest.update_cache(result.updates)
        manifest.prune_cache(result.entries.keys())
    for line in result.warnings:
        reporter.warning(line)
    return result


def _scan_and_list(
    root: str,
    manifest: Manifest,
    ignore: IgnoreMatcher,
    remote: Remote,
    *,
    opts: SyncOptions,
    reporter: Reporter,
) -> tuple[scanner.ScanResult, Listing]:
    """Scan the local tree while a worker thread lists a remote reached over the network.

    The two reads are independent, so the shorter one hides behind the other: a network
    listing mostly waits while the scan works. The scan's error, if any, is the one raised,
    as when the listing came second; that listing is then left to finish on its own. A
    listing done by this process's CPU (a folder, memory://) runs after the scan: two
    threads trading the GIL at every stat took 1.5x as long as one after the other.

    Raises `ConfigError`, as a pull does, for a sync between a local tree with nothing to
    send (one it has just made, say) and a local remote folder that does not exist: a mistyped
    REMOTE, which said "nothing to do" and left an empty LOCAL that counted as synced.
    """
    if remote.url.startswith(_IN_PROCESS):
        local = _scan(root, manifest, ignore, reporter, follow_links=opts.follow_links)
        listing = fetch_listing(remote, opts)
    else:
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fsync-list")
        try:
            pending = pool.submit(fetch_listing, remote, opts)
            local = _scan(root, manifest, ignore, reporter, follow_links=opts.follow_links)
            listing = pending.result()
        finally:
            pool.shutdown(wait=False)
    folder = local_path(opts.remote_url) is not None  # (memory:// has no empty folders)
    empty = opts.direction is Direction.SYNC and folder and not local.entries
    if empty and not remote.root_exists():
        raise ConfigError(missing_root(opts.remote_url))
    return local, listing


def _without(entries: Mapping[RelPath, E], drop: Container[RelPath]) -> dict[RelPath, E]:
    """`entries` without the paths in `drop` and those below them."""
    return {p: e for p, e in entries.items() if not under_any(p, drop)}


def _unmappable(
    root: str, remote: Mapping[RelPath, RemoteEntry], local: Mapping[RelPath, object]
) -> dict[RelPath, str]:
    """Remote paths this root's disk cannot hold (too long, a file that is also a folder,
    case twins), with the reason: what a pull leaves alone."""
    return names.unmappable(
        remote,
        local,
        limit=names.name_limit(root),
        case_insensitive=names.is_case_insensitive(os.path.join(root, STATE_DIR)),
        room=names.path_room(root),
    )


def _unpullable_noticed(
    plan: Plan,
    root: str,
    remote: Mapping[RelPath, RemoteEntry],
    local: Snapshot,
    mirror: bool = False,
) -> Plan:
    """`plan` (a push's) with its notices at or below a remote name this disk cannot hold
    marked `Notice.unmappable`, with the reason a pull gives for refusing it: they are not
    left for a pull to apply, as every other notice is. With `mirror`, such names that
    `_plannable` kept from the plan (`_mirror_keeps`) are noticed so too."""
    blocked = _unmappable(root, remote, local)
    if not blocked:
        return plan
    notices = []
    for n in plan.notices:
        at = next((p for p in (n.path, *ancestors(n.path)) if p in blocked), None)
        notices.append(n if at is None else replace(n, reason=blocked[at], unmappable=True))
    if mirror:
        noticed = {n.path for n in notices}
        kept = _mirror_keeps(blocked, local)
        notices += [Notice(p, blocked[p], unmappable=True) for p in kept if p not in noticed]
        notices.sort(key=lambda n: n.path)
    return replace(plan, notices=tuple(notices))


def _mirror_keeps(blocked: Mapping[RelPath, str], local: Snapshot) -> list[RelPath]:
    """The remote names this disk cannot hold (`blocked`) that a mirror leaves alone: those
    the source lacks, which it would otherwise delete. A plain push and a pull leave them
    alone, as a mirror leaves the keys that map to no name at all (`a//b`, NFD): deleting
    some unmappable keys and not others was safe by accident only."""
    return sorted(p for p in blocked if p not in local)


def _log_inputs(
    scan: scanner.ScanResult,
    remote: Mapping[RelPath, RemoteEntry],
    base: Mapping[RelPath, BaseEntry],
    plan: Plan,
    started: float,
) -> None:
    """`-v` detail: what the run compared and what it plans to do."""
    if not _log.isEnabledFor(logging.DEBUG):
        return
    _log.debug(
        "local: %d files (%d hashed, %d unreadable); remote: %d files; base: %d paths",
        len(scan.entries),
        len(scan.updates),
        len(scan.errors),
        len(remote),
        len(base),
    )
    kinds = Counter(a.kind.value for a in plan.actions)
    summary = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items())) or "nothing"
    _log.debug(
        "plan after %.3f s: %s; %d unchanged, %d left for the other direction",
        time.monotonic() - started,
        summary,
        plan.unchanged,
        sum(1 for n in plan.notices if not n.unmappable),
    )


def _report_planned(plan: Plan, on_action: Callable[[ActionRecord], None] | None) -> None:
    """Tell `on_action` what a dry run would have done, one record per action."""
    if on_action is None:
        return
    for a in plan.refused:
        on_action(ActionRecord(a.path, a.kind.value, "failed", attempts=0, error=a.reason))
    for a in plan.actions:
        entry = a.local if a.kind is ActionKind.UPLOAD else a.remote
        size = entry.size if entry is not None and a.kind.transfers else 0
        on_action(ActionRecord(a.path, a.kind.value, "planned", bytes=size, attempts=0))


def _report_unreadable(
    unreadable: Iterable[FileError],
    refused: Iterable[FileError],
    on_action: Callable[[ActionRecord], None] | None,
) -> None:
    """Tell `on_action` about paths that never became actions: unreadable, or refused."""
    if on_action is None:
        return
    for e in unreadable:
        on_action(ActionRecord(e.path, "scan", "failed", attempts=1, error=e.error))
    for e in refused:
        on_action(ActionRecord(e.path, "map", "failed", attempts=0, error=e.error))


def _redacted(errors: list[FileError], opts: SyncOptions) -> list[FileError]:
    """`errors` with every secret of `opts` (and of the environment) masked."""
    redactor = sync_redactor(opts)
    return [FileError(e.path, redactor.text(e.error)) for e in errors]


def sync_redactor(opts: SyncOptions) -> Redactor:
    """Masks every secret of `opts` (and of the environment)."""
    return Redactor.build(
        urls=[opts.remote_url], storage_options=opts.storage_options, env=os.environ
    )


def arriving_rules(
    remote: Remote,
    listed: Mapping[RelPath, RemoteEntry],
    local: Mapping[RelPath, LocalEntry],
    base: Mapping[RelPath, BaseEntry],
) -> IgnoreMatcher | None:
    """The rules of the remote's `.fsyncignore` where a pull or sync may bring it here: it
    changed there since the last sync, and is not the local one. None where not.

    The local rules are read as the run starts. A sync that brought down a new `secrets/`
    rule sent `secrets/key.pem` in the same run, and a pull `--mirror` deleted the files
    the new rule keeps out of the remote; the run follows both files' rules (`also`) now.
    Costs one read of the file, on the runs that find it changed on the remote.
    """
    path = RelPath(IGNORE_FILE)
    theirs, was, mine = listed.get(path), base.get(path), local.get(path)
    if theirs is None or (was is not None and theirs.fingerprint == was.fingerprint):
        return None
    if mine is not None and theirs.digest is not None and theirs.digest == mine.digest:
        return None
    try:
        with remote.open_read(path) as src:
            text = src.read().decode("utf-8-sig")
    except FileNotFoundError:
        return None  # (gone since the listing: nothing arrives)
    except UnicodeDecodeError:
        raise ConfigError(
            f"the remote's {IGNORE_FILE} is not UTF-8 text; save it there as UTF-8, or send "
            "this one over it with fsync push"
        ) from None
    except (OSError, FsyncError) as exc:
        raise RemoteUnavailable(
            f"cannot read the remote's {IGNORE_FILE}, whose rules this run must follow "
            f"({exc}); make it readable there, or send this one over it with fsync push"
        ) from exc
    return IgnoreMatcher.from_patterns(text.splitlines())


def _with_arriving_rules(
    ignore: IgnoreMatcher,
    remote: Remote,
    local: scanner.ScanResult,
    listed: dict[RelPath, RemoteEntry],
    *,
    refused: list[FileError],
    base: Mapping[RelPath, BaseEntry],
) -> tuple[IgnoreMatcher, scanner.ScanResult, dict[RelPath, RemoteEntry], list[FileError]]:
    """`ignore`, the scan, the listing and its refused keys under the remote's new rules too,
    if any (`arriving_rules`): what they leave out is neither synced nor a failure."""
    theirs = arriving_rules(remote, listed, local.entries, base)
    if theirs is None:
        return ignore, local, listed, refused
    folders = set(local.incomplete)

    def out(path: str) -> bool:
        # (of an error's path, only the scan's unread folders are known to be folders)
        return theirs.ignores(RelPath(path), is_dir=path in folders)

    local = replace(
        local,
        entries=_unignored(local.entries, theirs),
        errors=[e for e in local.errors if not out(e.path)],
        unsendable=[e for e in local.unsendable if not out(e.path)],
        incomplete=[p for p in local.incomplete if not out(p)],
    )
    refused = [e for e in refused if not out(e.path)]
    return ignore.also(theirs), local, _unignored(listed, theirs), refused


def _unignored(entries: Mapping[RelPath, E], ignore: IgnoreMatcher) -> dict[RelPath, E]:
    """`entries` without the paths `ignore` leaves out."""
    return {p: e for p, e in entries.items() if not ignore.ignores(p)}


def unignored_base(
    base: BaseSnapshot,
    ignore: IgnoreMatcher,
    local: Container[RelPath],
    remote: Container[RelPath],
) -> BaseSnapshot:
    """`base` without the paths the ignore rules (and `--exclude`) leave out of this run.

    Such a path is in neither listing, so the planner would take it for deleted on both
    sides and forget it; once the rule is lifted, a change made meanwhile on one side would
    then look like a conflict (and `--on-conflict remote` would overwrite a local edit).
    Kept out of the plan, its base stays until it is synced again.
    """
    return {p: e for p, e in base.items() if p in local or p in remote or not ignore.ignores(p)}


def _plannable(
    root: str,
    local: scanner.ScanResult,
    remote: RemoteSnapshot,
    base: BaseSnapshot,
    *,
    refused: list[FileError],
    alone: tuple[set[RelPath], Mapping[RelPath, str]],
    opts: SyncOptions,
) -> tuple[Snapshot, RemoteSnapshot, BaseSnapshot]:
    """The three snapshots the planner may act on: what could not be read is left out.

    An unreadable local file or folder is not a deleted one, nor is a path this disk holds
    something else at (a link not followed, a device: `ScanResult.skipped`). Where the run
    writes locally (pull, sync), so are names this disk cannot hold and remote entries fsync
    refuses (a link, a device: `refused`, to which those names are added): they stay out of
    the plan on all three sides, neither fetched nor taken for deleted. In every direction so
    are the paths `alone` names, and what lies below them: the `twins`, names a refused key
    spells in another Unicode form (`nfc_twin`), and the remote's skipped paths (a link, a
    device: `Listing.skipped`, with what each is); and so is whatever `refused` names, a
    remote folder that could not be read among them (`Listing.incomplete`). A push says in
    `refused` which of its files it leaves out: under a twin all, under a skipped path those
    it would send.
    """
    twins, skipped = alone
    local_entries: Snapshot = local.entries
    if local.errors or local.incomplete:
        # (the scan may hold a file at such a path: the first of two names in one folder
        # with the same NFC form; sending it, whichever the listing gave first, made a
        # conflict with the remote copy that no run resolved)
        local_entries = _known(local_entries, local)
        remote = _known(remote, local)
        base = _known(base, local)
    left_out = set(twins) | set(local.skipped) | skipped.keys()
    if opts.direction is not Direction.PULL:
        refused += _not_sendable(local_entries, base, skipped)
    if opts.direction is Direction.PUSH:
        if twins:
            refused += [
                FileError(p, _TWIN_NOT_SENT)
                for p in sorted(local_entries.keys() | base.keys())
                if under_any(p, twins)
            ]
        if opts.mirror:
            left_out.update(_mirror_keeps(_unmappable(root, remote, local_entries), local_entries))
    else:
        blocked = _unmappable(root, remote, local_entries)
        refused += [FileError(p, why) for p, why in sorted(blocked.items())]
    left_out.update(RelPath(e.path) for e in refused)
    if left_out:  # (a refused folder, e.g. a link: what lies below it too)
        local_entries = _without(local_entries, left_out)
        remote = _without(remote, left_out)
        base = _without(base, left_out)
    return local_entries, remote, base


def _not_sendable(
    local: Snapshot, base: BaseSnapshot, skipped: Mapping[RelPath, str]
) -> list[FileError]:
    """Errors for the local files a run would send (new, or changed since the base) to a
    path at or below one the remote skips (`Listing.skipped`): sending one would replace
    that link or device, or write through the link. The rest under it are left alone."""
    if not skipped:
        return []
    errors = []
    for path, entry in sorted(local.items()):
        b = base.get(path)
        if b is not None and b.digest == entry.digest:
            continue
        at = next((p for p in (path, *ancestors(path)) if p in skipped), None)
        if at is not None:
            errors.append(
                FileError(
                    path,
                    f"not sent: on the remote, {at} is {skipped[at]}, which fsync neither "
                    "follows nor replaces (remove it there, or rename this file)",
                )
            )
    return errors


_TWIN_LEFT_ALONE = "the name spelled in NFC is left alone while this key exists"
_TWIN_NOT_SENT = (
    "not sent: the remote holds this name in another Unicode form (a key fsync cannot "
    "address); rename or remove one of the two"
)


def _known(entries: Mapping[RelPath, E], scan: scanner.ScanResult) -> dict[RelPath, E]:
    return {p: e for p, e in entries.items() if not scan.is_unknown(p)}


def fetch_listing(remote: Remote, opts: SyncOptions) -> Listing:
    """One listing of the remote as it comes (see `sort_listing`).

    Raises `ConfigError` for a pull from a root that does not exist, `RemoteUnavailable`
    when the remote cannot be listed.
    """
    if opts.direction is Direction.PULL and not remote.root_exists():
        raise ConfigError(missing_root(opts.remote_url))
    try:
        return remote.list()
    except FsyncError:
        raise
    except OSError as exc:
        raise RemoteUnavailable(f"cannot list {opts.remote_url}: {exc}") from exc


def hidden_paths(listing: Listing, listed: Mapping[RelPath, RemoteEntry]) -> planner.Hidden:
    """The paths of `listing` that its entries under the ignore rules, `listed`, leave out."""
    if len(listing.entries) == len(listed):  # (the usual case: no pass over the keys)
        return planner.Hidden()
    return planner.Hidden.of(p for p in listing.entries if p not in listed)


def sort_listing(
    listing: Listing, ignore: IgnoreMatcher, opts: SyncOptions, reporter: Reporter
) -> tuple[dict[RelPath, RemoteEntry], list[FileError], set[RelPath], dict[RelPath, str]]:
    """`listing` filtered by the ignore rules; its refused keys, errors where the run would
    fetch them (pull, sync), warnings on push, and the folders it could not read
    (`Listing.incomplete`), errors in every direction; the names those keys spell in another
    Unicode form (`nfc_twin`), which a run leaves alone with what lies below them. A key
    whose NFC form is ignored is ignored too. Last, the remote's skipped paths with what each
    is (`Listing.skipped`), each warned about as a local link is: also left alone."""
    entries = _unignored(listing.entries, ignore)
    refused = [
        FileError(path, incomplete_error(why, file=path in listing.unread_files))
        for path, why in listing.incomplete
        if not ignore.ignores(path, is_dir=path not in listing.unread_files)
    ]
    skipped: dict[RelPath, str] = {}
    for path, what in listing.skipped:
        # (what a link leads to is not looked at: only a rule for both kinds leaves it out)
        if not ignore.ignores_unseen(path):
            reporter.warning(skipped_warning(path, what))
            skipped[path] = what
    twins: set[RelPath] = set()
    for key, reason in listing.refused:
        twin = nfc_twin(key)
        if twin is not None:
            if ignore.ignores(twin[0]):
                continue
            twins.add(twin[1])
        # The reason starts with the key's repr (`UnsafePathError`); the line names the key
        # already, and `fsync.terminal` escapes it there: a repr would be escaped twice.
        bare = reason.removeprefix(f"{key!r}: ")
        why = bare if twin is None else f"{bare}; {_TWIN_LEFT_ALONE}"
        if opts.direction is not Direction.PUSH:
            refused.append(FileError(key, f"refused remote key: {why}"))
        else:
            reporter.warning(f"remote key {key} cannot be mapped to a local name: {why}")
    return entries, refused, twins, skipped


def dry_run_result(plan: Plan) -> RunResult:
    """The counts a real run of `plan` would report, without running it."""
    result = RunResult(unchanged=plan.unchanged, notices=list(plan.notices), dry_run=True)
    result.failed = len(plan.refused)
    result.errors = [FileError(a.path, a.reason) for a in plan.refused]
    for a in plan.actions:
        result.conflicts += a.conflict
        counter = a.kind.counter
        if counter is not None:
            setattr(result, counter, getattr(result, counter) + 1)
        elif a.kind is ActionKind.CONFLICT:
            result.unresolved += 1
        elif a.kind is ActionKind.RECORD:
            result.unchanged += 1
        if a.kind is ActionKind.UPLOAD and a.local is not None:
            result.bytes_sent += a.local.size
        elif a.kind is ActionKind.DOWNLOAD and a.remote is not None:
            result.bytes_received += a.remote.size
        if a.share_copy and a.local is not None and a.remote is not None:
            # The version set aside goes to the other side too (`Worker`'s shared copies).
            if a.kind is ActionKind.UPLOAD:
                result.downloaded += 1
                result.bytes_received += a.remote.size
            elif a.kind is ActionKind.DOWNLOAD:
                result.uploaded += 1
                result.bytes_sent += a.local.size
    return result


class ManifestSink:
    """Makes engine outcomes durable, one transaction per batch."""

    def __init__(self, manifest: Manifest, remote: str, run: RunEntry | None = None) -> None:
        self.manifest = manifest
        self.remote = remote
        """The remote's `Remote.key`."""
        self.run = run
        """The run in the history whose counts each batch records (`Manifest.note_progress`)."""

    def commit(self, outcomes: list[Outcome]) -> None:
        """Write the bases and cache entries of `outcomes` in one transaction (with the run's
        counts so far, if it has a `run`)."""
        with self.manifest.transaction():
            if self.run is not None and self.run.done is not None:
                self.manifest.note_progress(self.run.run_id, self.run.done.counts())
            changes = [(o.path, o.base) for o in outcomes if o.base is not None or o.forget_base]
            changes += [(o.moved_from, None) for o in outcomes if o.moved_from is not None]
            self.manifest.set_base(self.remote, changes)
            self.manifest.update_cache([(o.path, o.cache) for o in outcomes if o.cache])
            dropped = [o.path for o in outcomes if o.drop_cache]
            dropped += [o.moved_from for o in outcomes if o.moved_from is not None]
            self.manifest.drop_cache(dropped)
            settled = [o.path for o in outcomes if o.settles_copy]
            self.manifest.forget_copies(self.remote, settled)
            recorded = [o.path for o in outcomes if o.base is not None or o.forget_base]
            self.manifest.settle_intents(self.remote, recorded)


@dataclass(slots=True)
class RemoteStatus:
    """Pending local changes against one remote, by path."""

    url: str
    changed: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    queued: list[str] = field(default_factory=list)
    """Paths `fsync watch` saw change and has not sent yet (its outbox)."""
    unsettled: list[str] = field(default_factory=list)
    """Paths a run was putting in place when it was killed, before it recorded them (or is
    putting in place now): their publish intents, which the next run to this remote settles
    (`transfer.intents`)."""
    synced: int = 0
    """The files both sides last agreed on (the base): 0 for a remote only a dry run, or a
    run that failed before any transfer, has named (it is listed all the same: its runs are
    in the history)."""


@dataclass(slots=True)
class StatusReport:
    """What `fsync status` shows: pending changes per remote, unfinished transfers, runs."""

    root: str
    remotes: list[RemoteStatus]
    runs: list[RunRecord]
    errors: list[FileError]
    uploads: list[PendingUpload] = field(default_factory=list)
    """Chunked uploads started and not completed (the transfer journal); the next push of
    the same content continues them."""
    downloads: list[PartialDownload] = field(default_factory=list)
    """Large downloads cut short; the next pull of the same version continues them."""


def status(local_root: str, excludes: Iterable[str] = (), runs: int = 10) -> StatusReport:
    """Pending local changes against each known remote, and the last runs; no remote I/O."""
    root = os.path.abspath(local_root)
    if not os.path.isdir(root):
        raise ConfigError(
            f"local root {local_root} does not exist or is not a directory "
            "(give the folder you push from or pull into)"
        )
    try:
        os.stat(os.path.join(root, STATE_DIR, "state.db"))
    except PermissionError:
        raise ConfigError(
            f"{local_root}/{STATE_DIR} cannot be read (permission denied); check its permissions"
        ) from None
    except OSError:
        raise ConfigError(
            f"{local_root} has never been synced (no .fsync/state.db; give the folder you "
            "push from or pull into, or run fsync push or pull there first)"
        ) from None
    with Manifest.open(root) as manifest:
        ignore = scanner.read_ignore(root, excludes)
        scan = scanner.scan(root, manifest, ignore)
        # The cache only spares the next scan its hashing: a disk too full to take it (a run
        # stopped by that is what status is asked about then) must not keep status silent.
        with contextlib.suppress(PermanentError), manifest.transaction():
            manifest.update_cache(scan.updates)
        # What a run leaves alone is not pending: a path a skipped link holds, or one that
        # could not be read (not a deleted file either way; see `_plannable`).
        alone = set(scan.skipped)
        remotes = []
        for url in manifest.known_remotes():
            synced = manifest.base(url)
            base = _known(unignored_base(synced, ignore, scan.entries, ()), scan)
            remotes.append(_pending(url, scan.entries, _without(base, alone)))
            remotes[-1].synced = len(synced)
        for remote in remotes:
            remote.queued = list(manifest.queued(remote.url))
            remote.unsettled = [i.path for i in manifest.intents(remote.url)]
        with TransferJournal.open(root) as journal:
            uploads, downloads = journal.all(), journal.partials()
        last = manifest.last_runs(runs)
        return StatusReport(root, remotes, last, scan.errors, uploads, downloads)


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
