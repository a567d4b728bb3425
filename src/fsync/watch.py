"""The `fsync watch` use case: keep a remote in step with a local tree as it changes.

The data flow of DESIGN.md, run continuously. On start: lock the root, scan the whole tree,
list the remote once and push (which also catches whatever changed while fsync was not
running, and whatever the last session left in the outbox). Then each batch of settled paths
from the `Watcher` is scanned alone (`only=`), written to the outbox in the same transaction
as the cache update of its paths, planned against the in-memory `KnownState` (no listing)
and executed; the sink records the outcomes and empties the outbox in one transaction.

Everything touching the manifest runs on the calling thread (SQLite connections belong to
one thread); the watcher's thread only puts batches on a queue. A failed path is retried with
exponential backoff and, once its retries are spent, `--on-error` fires (one whose remote
changed under it is planned again after the first delay, not failing); nothing stops the
watch but a stop request (Ctrl-C, SIGTERM, or the `stop` event), after which the transfers in
flight finish, their outcomes are committed, and the session's summary is returned.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from functools import partial
from types import FrameType

from fsync import app, names, planner, scanner
from fsync.config import WatchOptions
from fsync.errors import ExitCode, FsyncError, SafetyAbort, one_line
from fsync.ignore import IGNORE_FILE, STATE_DIR
from fsync.manifest import Manifest, RootLock
from fsync.manifest.journal import TransferJournal
from fsync.model import (
    Action,
    ActionKind,
    ActionRecord,
    Direction,
    FileError,
    Plan,
    RelPath,
    RemoteEntry,
    RunResult,
)
from fsync.paths import under_any
from fsync.progress import NullReporter, WatchDisplay
from fsync.remote.base import Listing, Remote, same_version
from fsync.roots import check_local_remote
from fsync.transfer.backup import Backup, locate
from fsync.transfer.download import drop_abandoned_temps
from fsync.transfer.engine import execute
from fsync.transfer.outcome import EngineOptions, Outcome
from fsync.watcher import Watcher
from fsync.watchretry import Alarm, Retries
from fsync.watchstate import KnownState

POLL_SECONDS = 0.1
"""Longest wait of the main loop between checks of the stop request."""

DELETE_SETTLE = 0.5
"""A batch that deletes waits this long for more batches (a delete going on) to join it."""

DELETE_SETTLE_MAX = 1.0
"""...but no longer than this in all: a program writing all the time (logs, a build) never
leaves the watcher quiet for `DELETE_SETTLE`, and held every change back until it stopped.
Deletions that go on past it are judged with this batch's by the delete limit all the same
(`_Session.synced`)."""

_STATE_ONLY = frozenset({ActionKind.RECORD, ActionKind.FORGET, ActionKind.KEEP})
"""Actions that write only the base: a dry run has nothing to say of them."""

IGNORE_GONE_SETTLE = 2.0
"""How long `.fsyncignore` must stay gone before a watch drops its rules: an editor that
saves by renaming the old file away and writing a new one left it gone for most of a
second, and the watch meanwhile sent what the rules leave out (and a `--mirror` deleted it
on the remote)."""

KEEP_NOTICES = 100
"""The session summary keeps the latest this many notices (a watch may run for months)."""


class StopRequest:
    """Set by a signal handler (a plain attribute: safe there) or through an `Event`."""

    def __init__(self, event: threading.Event | None = None) -> None:
        self.requested = False
        self._event = event

    def is_set(self) -> bool:
        """True once a stop was asked for, by signal or by the event."""
        return self.requested or (self._event is not None and self._event.is_set())


def watch(
    opts: WatchOptions,
    display: WatchDisplay,
    *,
    stop: threading.Event | None = None,
    on_action: Callable[[ActionRecord], None] | None = None,
) -> RunResult:
    """Push the local root to the remote, then follow local changes until told to stop.

    `on_action` receives a record of every action as it ends (for `--log-file`).

    Ctrl-C and SIGTERM (when called on the main thread), or `stop` being set, end the
    session gracefully; a second Ctrl-C raises `KeyboardInterrupt`. Raises what `app.run`
    raises when the startup push cannot run (`ConfigError`, `SafetyAbort`, `LockHeld`,
    `RemoteUnavailable`); after that, failures are retried and reported, never raised.
    Returns the session's totals; `failed` and `errors` name the paths still failing.
    """
    push = opts.sync_options(Direction.PUSH)
    root = app.prepare_root(push)
    push.policy()  # a bad --max-delete is a usage error before anything starts
    # A dry run keeps nothing: nothing is overwritten or deleted to keep.
    keep = opts.backup_dir and not opts.dry_run
    place = locate(opts.backup_dir, opts.remote_url, root) if keep else None
    if place is not None:  # a backup dir inside a synced tree is never synced itself
        opts = replace(opts, excludes=opts.excludes + place.excludes)
    stopper = StopRequest(stop)
    # The journal lets a chunked upload cut short (a stop, a crash) go on where it was, and
    # a conflict met again keep the copy made before.
    with (
        app.journaled_remote(push, root) as (journal, remote),
        RootLock(root),
        Manifest.open(root) as manifest,
        app.backup_for(place, remote, push) as backup,
        _stop_on_signals(stopper),
    ):
        session = _Session(
            opts,
            root,
            remote=remote,
            manifest=manifest,
            display=display,
            stopper=stopper,
            on_action=on_action,
            backup=backup,
            journal=journal,
        )
        return session.run()


@contextlib.contextmanager
def _stop_on_signals(stopper: StopRequest) -> Iterator[None]:
    """While inside, SIGINT and SIGTERM request a graceful stop (main thread only).

    The handler only sets a flag: the loop polls it, and the engine stops starting new
    transfers. A second SIGINT raises `KeyboardInterrupt`, for a user who will not wait.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if stopper.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stopper.requested = True

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class _Session:
    """One watch from start to stop; all its methods run on the calling thread."""

    def __init__(
        self,
        opts: WatchOptions,
        root: str,
        *,
        remote: Remote,
        manifest: Manifest,
        display: WatchDisplay,
        stopper: StopRequest,
        on_action: Callable[[ActionRecord], None] | None = None,
        backup: Backup | None = None,
        journal: TransferJournal,
    ) -> None:
        self.opts = opts
        self.root = root
        self.remote = remote
        self.manifest = manifest
        self.display = display
        self.stopper = stopper
        self.push_opts = opts.sync_options(Direction.PUSH)
        self.push_policy = self.push_opts.policy()
        self.on_action = on_action
        """Hears each action's record as it ends (`--log-file`)."""
        self.peak = 0
        """The most files synced at once since the last full sync (at it: the files the
        ignore rules leave in, synced or found there, the larger count): what the delete
        limit is a share of until the next one (base entries the rules leave out are never
        touched by a batch; a new ignore file brings a full sync). Taken from the base alone,
        a first watch of a tree had a limit of 1 for the whole session; without the files
        synced since, 8 deletions among 30 files made while watching a 10-file tree were
        refused."""
        self.synced = 0
        """The files synced now, as the counts go (the base at the full sync, less every
        deletion since, on either side, the full sync's own included; plus every file first
        synced since, its own too): `peak - synced` is what the tree lost since its largest,
        which the limit holds for all batches together. An `rm -rf` reaches the watcher in
        several batches: judged one batch at a time against a base shrinking with each, all
        of them went through. Counting every deletion since the full sync instead, a build that
        deletes its output and writes it anew every few seconds used the limit up in a few
        rounds, and no deletion went through for the rest of the session: its net loss is
        one round's output at most."""
        self.held_back: set[RelPath] = set()
        """Deletions the limit held back since the last full sync: still held when a later
        batch plans them again (a retry of what they were in the way of), and counted with
        any new ones. Else a retry planned one of them alone, under the limit, and it went
        through a second after the warning said it would not."""
        self.backup = backup
        """Where versions go before being overwritten or deleted (`--backup-dir`)."""
        self.journal = journal
        """Where remote conflict copies are journaled until recorded (`CopyJournal`), and
        partial downloads a pull may continue."""
        self.pull_policy = opts.sync_options(Direction.PULL).policy()
        self.ignore = scanner.read_ignore(root, opts.excludes)
        self.links = opts.follow_links
        self.state = KnownState()
        self.shadowed: set[RelPath] = set()
        """Paths left alone with what lies below them: those a refused remote key names in
        another Unicode form (`nfc_twin`), and the remote's links and devices
        (`Listing.skipped`)."""
        self.hidden = planner.Hidden()
        """The remote's paths the ignore rules leave out, as of the last listing."""
        self.name_rules: tuple[int, bool, int] | None = None
        """The longest name this disk holds, whether it ignores case, and the longest path
        below the root (`_unholdable`)."""
        self.batches: queue.SimpleQueue[tuple[set[RelPath], bool]] = queue.SimpleQueue()
        self.retries = Retries(opts.retries, opts.retry_delay, opts.retry_max_delay)
        self.alarm = Alarm(opts.on_error, display.warning)
        self.total = RunResult()
        self.started = time.monotonic()
        self.next_pull = self.started if opts.pull_every else None
        self.pull_again: set[RelPath] = set()
        """Remote changes a push saw and left alone (its plan's notices: a change made there
        while the watch was off, a file deleted here but changed there): the next pull
        applies them, as it would have had it seen them first. Each pull looks only at what
        changed since the last listing, and a push's listing or stat is such a look."""
        self.full_due: float | None = None
        """When a full sync is due outside the watcher's schedule (a retry, new rules)."""
        self.history: app.RunEntry | None = None
        """The session in the run history, whose counts each committed batch records."""
        self.ignore_gone_since: float | None = None
        """Since when `.fsyncignore` is gone while its rules still apply (`IGNORE_GONE_SETTLE`)."""
        self.full_failures = 0
        self.once = _OnceWarner(display)
        self.watcher = Watcher(
            root,
            lambda paths, full: self.batches.put((paths, full)),
            on_warning=display.warning,
            ignore=scanner.read_ignore(root, opts.excludes).ignores_unseen,
            quiet=opts.quiet_window,
            max_hold=opts.max_hold,
            settle_max=opts.settle_max,
            rescan_every=opts.rescan_every,
        )

    # --- the session ---------------------------------------------------------------------

    def run(self) -> RunResult:
        """Start up, follow changes until stopped, and return the session's totals.

        The session goes into the run history with its totals, and one that fails or is
        interrupted with its error as well (`app.recorded_run`).
        """
        redactor = app.sync_redactor(self.push_opts)
        with app.recorded_run(self.manifest, "watch", self.remote.key, redactor) as entry:
            entry.done, self.history = self.total, entry
            try:
                self.watcher.start()
                try:
                    self._startup()
                    self.display.watching(self.root, self.remote.url)
                    self._loop()
                    if self.held_back:  # (the summary counts them, but -q shows no summary)
                        self.display.warning(
                            f"stopped with {len(self.held_back)} deletions held back by the "
                            "delete limit; if they are meant, run fsync push --force (or pull)"
                        )
                finally:
                    self.watcher.stop()
                    self.alarm.wait()
            finally:
                self._finish_totals()
                self.display.stop()
            self.manifest.finish_run(entry.run_id, int(ExitCode.OK), self.total.as_json())
        return self.total

    def _startup(self) -> None:
        """The full scan and push that every session starts with (and the last one's outbox)."""
        leftover = self.manifest.queued(self.remote.key)
        if leftover:
            self.display.warning(
                f"{len(leftover)} changes queued by an earlier watch that did not finish; "
                "sending them now"
            )
        if self.links:
            self.display.warning(
                "--links follow: a file changed through a link is sent under the link's name "
                "at the next rescan (--rescan-every), under its own name at once"
            )
        result = self._full_sync(startup=True)
        self.total.unchanged = result.unchanged
        if not self.stopper.is_set() and not self.opts.dry_run:
            failed = {RelPath(e.path) for e in result.errors}
            self.manifest.unqueue(self.remote.key, [p for p in leftover if p not in failed])

    def _loop(self) -> None:
        while not self.stopper.is_set():
            if not self.watcher.alive():  # its thread died: changes would go unseen
                self.watcher.revive()
            paths, full = self._next_batch()
            if self.stopper.is_set():
                return
            if full or (self.full_due is not None and time.monotonic() >= self.full_due):
                self.full_due = None  # (before: the full sync may ask for another)
                if self._attempt(self._full_sync):
                    self.full_failures = 0
                    paths = set()  # the full sync covered them
                else:
                    self.full_failures += 1
                    self.full_due = time.monotonic() + self._backoff(self.full_failures)
            if paths:  # (the batch grows by those it takes in: all are retried on a failure)
                self._attempt(partial(self._sync_batch, paths), paths)
            if self.next_pull is not None and time.monotonic() >= self.next_pull:
                self.next_pull = time.monotonic() + (self.opts.pull_every or 0)
                self._attempt(self._pull)
            self.display.queued(len(self.watcher.debouncer) + len(self.retries))

    def _attempt(self, step: Callable[[], object], paths: Iterable[RelPath] = ()) -> bool:
        """Run one step; a failure of the whole step (the remote unreachable, the root gone)
        is reported and its `paths` scheduled for a retry, and the watch goes on."""
        try:
            step()
        except (FsyncError, OSError) as exc:
            self.once.warning(f"{one_line(exc)} (will retry)")
            for path in paths:
                self._failed(path, one_line(exc))
            return False
        return True

    def _backoff(self, failures: int) -> float:
        delay = self.opts.retry_delay * 2 ** (failures - 1)
        return float(min(delay, self.opts.retry_max_delay))

    def _next_batch(self) -> tuple[set[RelPath], bool]:
        """Wait for work (a batch, a due retry, a due pull) and merge whatever is queued."""
        now = time.monotonic()
        due = (self.retries.next_due(), self.next_pull, self.full_due)
        deadlines = [d for d in due if d is not None]
        timeout = min([POLL_SECONDS, *(max(0.0, d - now) for d in deadlines)])
        paths: set[RelPath] = set()
        full = False
        try:
            item: tuple[set[RelPath], bool] | None = self.batches.get(timeout=timeout)
        except queue.Empty:
            item = None
        while item is not None:
            paths |= item[0]
            full |= item[1]
            try:
                item = self.batches.get_nowait()
            except queue.Empty:
                item = None
        paths |= self.retries.due(time.monotonic())
        return paths, full

    # --- full syncs ----------------------------------------------------------------------

    def _full_sync(self, *, startup: bool = False) -> RunResult:
        """Scan everything, list the remote, push; the start of a session and every rescan."""
        self._reload_ignore(quiet=startup)
        held = self.watcher.held()
        scan = scanner.scan(self.root, self.manifest, self.ignore, follow_links=self.links)
        self._warn_scan(scan)
        listing, entries = self._list_remote()
        base = app.settled_base(
            self.manifest, self.remote, self.root, scan.entries, entries, dry_run=self.opts.dry_run
        )
        self.state.reset(base, entries)
        keep = _Scope(held | self.shadowed, scan)
        local = {p: e for p, e in scan.entries.items() if keep(p)}
        remote = {p: e for p, e in entries.items() if keep(p)}
        if self.push_policy.mirror:  # names this disk cannot hold are not the source's to delete
            kept = self._unholdable(remote, local).keys() - local.keys()
            remote = {p: e for p, e in remote.items() if not under_any(p, kept)}
        base = app.unignored_base(self.state.base, self.ignore, local, remote)
        self.peak, self.synced = max(len(base), len(local)), len(base)
        held_before, self.held_back = self.held_back, set()
        base = {p: e for p, e in base.items() if keep(p)}
        recorded_ns = self.manifest.legacy_tokens_until_ns(self.remote.key)
        try:
            plan = app.plan_sync(
                self.remote,
                local,
                remote,
                base,
                self.push_policy,
                recorded_ns=recorded_ns,
                hidden=self.hidden,
            )
        except SafetyAbort as exc:
            if startup:
                raise
            self.display.warning(f"{exc}; deleting nothing")
            policy = replace(self.push_policy, force=True)
            plan = app.plan_sync(
                self.remote,
                local,
                remote,
                base,
                policy,
                recorded_ns=recorded_ns,
                hidden=self.hidden,
            )
            self.held_back = {a.path for a in plan.actions if a.kind.deletes}
            plan = planner.without_deletes(plan)
        # What the limit held back stays held until a run with --force, though the window
        # starts again here: measured against a base its first deletions had shrunk, the
        # rest went through at the next rescan, a few seconds after the warning.
        if still := {a.path for a in plan.actions if a.kind.deletes} & held_before:
            self.held_back |= still  # (none with --force: nothing is held)
            plan = planner.without_deletes(plan, only=still)
        self._leave_for_pull(plan)
        with self.manifest.transaction():
            self.manifest.update_cache(scan.updates)
            self.manifest.prune_cache(scan.entries.keys())
        if not self.opts.dry_run and not self.stopper.is_set():
            drop_abandoned_temps(self.journal, self.root, scan.temps, self.manifest.temp_tokens)
            app.drop_remote_temps(self.remote, listing, self.manifest.temp_tokens)
            if startup:  # (one that cannot be made ends the watch as it starts)
                app.make_remote_root(self.remote, listing.entries, plan)
            app.abort_unsent_uploads(
                self.remote,
                plan,
                scan.entries,
                unknown=lambda p: not keep(p) or self.ignore.ignores(p),
                synced=self.state.base,
            )
        # Failing paths it judged and did not fail are done (or held back, counted so): left
        # to their backed-off retries, a deleted and recreated root's files were still said
        # to fail, with the error of the root's absence, and counted twice when the watch
        # stopped.
        judged = [p for p in self.retries.failing() if keep(p)]
        return self._execute(plan, queue_paths=[*_acted_paths(plan), *judged], scan=scan)

    def _list_remote(self) -> tuple[Listing, dict[RelPath, RemoteEntry]]:
        """List the remote: the listing as it comes, and its entries under the ignore rules.

        What the session leaves alone from now on is noted in `shadowed`, and each warned
        about once: the names refused keys spell in another Unicode form, the remote's links
        and devices, and the folders it could not read (`Listing.incomplete`).
        """
        listing = app.fetch_listing(self.remote, self.push_opts)
        entries, unread, twins, skipped = app.sort_listing(
            listing, self.ignore, self.push_opts, self.once
        )
        for e in unread:
            self.once.warning(f"{e.path}: {e.error}")
        self.shadowed = twins | skipped.keys() | {RelPath(e.path) for e in unread}
        self.hidden = app.hidden_paths(listing, entries)
        return listing, entries

    # --- batches -------------------------------------------------------------------------

    def _sync_batch(self, paths: set[RelPath]) -> None:
        """Scan `paths` alone, plan them against what is known, and carry the plan out.

        A batch in which files are gone first takes in the batches that follow within
        `DELETE_SETTLE`: deletions that go on (an `rm -rf` walking the tree, an unmount) are
        judged by the delete limit together, not a slice at a time, and a path deleted and
        made again (`rm -rf d; cp -r backup d`, an editor's save) is planned as it ends up.
        Those are added to `paths` itself, which the caller retries if the batch fails as a
        whole: the remote unreachable, it retried only the first batch's, and the changes
        taken in waited for the hourly rescan.
        """
        settled_by = time.monotonic() + DELETE_SETTLE_MAX
        removed = 0
        while True:
            if IGNORE_FILE in paths and self._reload_ignore():
                self.full_due = time.monotonic()
            held = self.watcher.held()
            scan = self._scan_only(paths)
            if gone := self._moved_away(paths, scan, held):
                paths |= gone
                scan.removed.extend(sorted(gone))
            # Scanned again even when the batches that joined name only paths it holds: such
            # a path was made again after this scan saw it gone (dropped, the batch deleted
            # it on the remote and never sent the new file).
            if not scan.removed or not (more := self._more_soon(settled_by)):
                break
            if len(paths | more) > len(paths) and len(scan.removed) > removed:
                # Deletions still coming (an `rm -rf` slower than the cap): all of them are
                # judged by the delete limit together, as before the cap; cut off at the cap,
                # a slice under the limit went through and deleted remote copies.
                settled_by = time.monotonic() + DELETE_SETTLE_MAX
            removed = len(scan.removed)
            paths |= more
        self._warn_scan(scan)
        keep = _Scope(held | self.shadowed, scan)
        self._look_in_new_folders(scan.entries)
        # A known file at a folder above a file here is gone from here: planned with it.
        known = self.state.scope(paths) | self.state.above(scan.entries)
        scope = {p for p in known | scan.entries.keys() if keep(p)}
        plan = self._plan_subset(scope, scan, Direction.PUSH)
        self._leave_for_pull(plan)
        self._execute(plan, queue_paths=paths, scan=scan)

    def _look_in_new_folders(self, files: Iterable[RelPath]) -> None:
        """Stat, on the remote, each folder above `files` that the watch knows nothing at or
        below (`KnownState.new_folders`), and know what is there: a file someone else put
        there since the last listing is then in the way of the files sent into that folder,
        and the plan refuses them as a push does. Unseen, `d/x` was sent beside a key `d`, a
        pair no disk can hold and no pull brings back. Files in known folders cost nothing;
        each new folder, one stat (`--transfers` at once)."""
        folders = sorted(self.state.new_folders(p for p in files if p not in self.state.remote))
        if not folders:
            return
        workers = min(len(folders), max(1, self.opts.transfers))
        with ThreadPoolExecutor(workers, thread_name_prefix="fsync-stat") as pool:
            found = list(pool.map(self.remote.stat, folders))
        for folder, entry in zip(folders, found, strict=True):
            if entry is not None:
                self.state.set_remote(folder, entry)

    def _warn_scan(self, scan: scanner.ScanResult) -> None:
        """Say, once each, what a scan skipped and which names it will not send: as a push
        says them, at once. A name spelled twice in one folder (`ScanResult.twins`) is a
        failing path too, but only a live display showed it, and a plain one at the stop."""
        for line in scan.warnings:
            self.once.warning(line)
        for e in scan.unsendable:
            self.once.warning(f"not sent: {e.path}: {e.error}")
        if scan.twins:
            for e in scan.errors:
                if e.path in scan.twins:
                    self.once.warning(f"not sent: {e.path}: {e.error}")

    def _moved_away(
        self, paths: set[RelPath], scan: scanner.ScanResult, held: set[RelPath]
    ) -> set[RelPath]:
        """Known files gone from here whose content is a new file of this batch: where a
        rename's other end, still to come, left from.

        The two ends of a rename can reach the watch apart: moved into a folder made just
        before (`mkdir a && mv d a/`), a folder has no watch yet, so the kernel reports no
        arrival; watchdog reports the folder as made with its files in it, and the departure
        alone, half a second later. Planned in one batch with the new files, as a full scan
        would see them, the pair becomes a move instead of an upload now and a delete later.
        Empty files are left out: one costs nothing to send, and many share their content.
        """
        sources: set[RelPath] = set()
        for path, entry in scan.entries.items():
            if entry.size == 0 or path in self.state.base or path in self.state.remote:
                continue
            for source in self.state.with_content(entry.digest):
                if not (
                    source in scan.entries or under_any(source, paths) or under_any(source, held)
                ):
                    sources.add(source)
        if not sources:
            return set()
        return set(self._scan_only(sources).removed) & sources

    def _leave_for_pull(self, plan: Plan) -> None:
        """Keep the remote changes a push plan leaves alone for the `--pull-every` pulls."""
        if self.next_pull is not None:
            self.pull_again.update(notice.path for notice in plan.notices)

    def _more_soon(self, until: float) -> set[RelPath]:
        """The paths of the batches that arrive before the watcher has been quiet for
        `DELETE_SETTLE` seconds, or the clock (`time.monotonic`) reaches `until` (a full sync
        asked for meanwhile is made due)."""
        more: set[RelPath] = set()
        while not self.stopper.is_set():
            wait = min(DELETE_SETTLE, until - time.monotonic())
            if wait <= 0:
                break
            try:
                paths, full = self.batches.get(timeout=wait)
            except queue.Empty:
                break
            more |= paths
            if full:
                self.full_due = time.monotonic()
        return more

    def _scan_only(self, paths: set[RelPath]) -> scanner.ScanResult:
        return scanner.scan(
            self.root, self.manifest, self.ignore, only=paths, follow_links=self.links
        )

    def _plan_subset(self, scope: set[RelPath], scan: scanner.ScanResult, d: Direction) -> Plan:
        """Plan the paths of `scope` alone; the delete cap counts against the largest tree
        since the last full sync, with what it lost since (`peak`, `synced`), and holds back,
        with what they make room for (`planner.without_deletes`), the deletes it held back
        before (`held_back`) and any new ones while they are past it."""
        local = {p: scan.entries[p] for p in scope if p in scan.entries}
        remote = {p: self.state.remote[p] for p in scope if p in self.state.remote}
        base = {p: self.state.base[p] for p in scope if p in self.state.base}
        base = app.unignored_base(base, self.ignore, local, remote)
        policy = self.push_policy if d is Direction.PUSH else self.pull_policy
        forced = replace(policy, force=True)
        plan = app.plan_sync(self.remote, local, remote, base, forced, hidden=self.hidden)
        deletes = {a.path for a in plan.actions if a.kind.deletes}
        self.held_back -= scope - deletes  # deleted no more: made again, or gone on both sides
        if not deletes or policy.force:
            return plan
        lost = max(0, self.peak - self.synced)  # (since the tree's largest: `synced`)
        limit = planner.delete_limit(policy, self.peak)
        if lost + len(self.held_back | deletes) <= limit:
            self.held_back -= deletes
            return plan
        if new := deletes - self.held_back:
            # (one file beyond a large deletion held back: its count alone read "not
            # deleting 1 files ..., more than the limit of 200")
            held = f", {len(self.held_back)} held back already" if self.held_back else ""
            self.display.warning(
                f"not deleting {len(new)} {'file' if len(new) == 1 else 'files'}: with "
                f"{lost} deleted since the tree's largest ({self.peak} files, since the last "
                f"full scan){held}, deletions pass the limit of {limit} (a wrong path or an "
                f"unmounted disk?); if it is meant, stop this watch and run fsync {d.value} "
                "--force"
            )
            self.held_back |= new
        return planner.without_deletes(plan)

    # --- pulls ---------------------------------------------------------------------------

    def _unpullable(
        self, entries: Mapping[RelPath, RemoteEntry], changed: set[RelPath]
    ) -> set[RelPath]:
        """The `changed` paths at or below a name this disk cannot hold, each warned about
        once and known from now on as the remote has it (so not looked at again until it
        changes there): left alone, as a pull leaves them. Fetched every time, they failed,
        or made a conflict with what was fetched of them, on every pull."""
        blocked = self._unholdable(entries, self.state.base)
        left = {p for p in changed if under_any(p, blocked)}
        for path in sorted(blocked.keys() & left):
            self.once.warning(f"not pulled: {path}: {blocked[path]}")
        for path in left:
            self.state.set_remote(path, entries.get(path))
        return left

    def _unholdable(
        self, entries: Mapping[RelPath, RemoteEntry], local: Iterable[RelPath]
    ) -> dict[RelPath, str]:
        """`names.unmappable` of `entries` on this disk: what a pull leaves alone, and a
        mirror push too (as `app` does), why."""
        if self.name_rules is None:  # probed once a session: the probe writes a file
            self.name_rules = (
                names.name_limit(self.root),
                names.is_case_insensitive(os.path.join(self.root, STATE_DIR)),
                names.path_room(self.root),
            )
        limit, case_insensitive, room = self.name_rules
        return names.unmappable(
            entries, local, limit=limit, case_insensitive=case_insensitive, room=room
        )

    def _pull(self) -> None:
        """List the remote and apply what changed there since the last look (`--pull-every`)."""
        listing, entries = self._list_remote()
        # Refused keys (warned) are not deleted there, nor are the paths they name in NFC,
        # nor what the remote skips.
        refused = {RelPath(key) for key, _ in listing.refused} | self.shadowed
        known = self.state.remote
        again = set(self.pull_again)
        changed = {
            p
            for p in entries.keys() | known.keys() | again
            if (p in again or not same_version(entries.get(p), known.get(p)))
            and not under_any(p, refused)
        }
        if changed:
            changed -= self._unpullable(entries, changed)
        if not changed:
            self.pull_again -= again
            return
        for path in changed:
            self.state.set_remote(path, entries.get(path))
        held = self.watcher.held()
        # With the known files above the changed paths and what lies here below them: a
        # file become a folder (or back) there is planned whole, and a file is not fetched
        # over a folder of files here (it failed, at every pull).
        looked = changed | self.state.above(changed)
        scan = self._scan_only(looked)
        keep = _Scope(held | self.shadowed, scan)
        scope = {p for p in looked | scan.entries.keys() if keep(p)}
        plan = self._plan_subset(scope, scan, Direction.PULL)
        self._execute(plan, queue_paths=(), scan=scan)
        if any(a.path == IGNORE_FILE for a in plan.actions) and self._reload_ignore():
            # Written by fsync, so the watcher takes it for an echo: its rules (files now
            # left out: a secret one not to send) would wait for the hourly rescan.
            self.full_due = time.monotonic()
        # A path left out now (being written here, or unreadable) is known as it is there
        # from this listing on: only a later pull that looks at it again will bring it.
        self.pull_again = (self.pull_again - again) | (changed - scope)

    # --- carrying plans out --------------------------------------------------------------

    def _action_done(self, record: ActionRecord, raced: list[FileError]) -> None:
        _note_raced(record, raced)
        if self.on_action is not None:
            self.on_action(record)
        if record.outcome == "done" and ActionKind(record.action).deletes:
            self.synced -= 1  # (the delete limit's counts, the full sync's too: `_plan_subset`)

    def _execute(
        self, plan: Plan, *, queue_paths: Iterable[RelPath], scan: scanner.ScanResult
    ) -> RunResult:
        """Queue, execute and account for one plan; failed paths are scheduled for retry."""
        if self.stopper.is_set():
            return RunResult()
        if self.opts.dry_run:
            return self._dry_run(plan)
        queued = list(queue_paths)
        with self.manifest.transaction():
            self.manifest.update_cache(scan.updates)
            self.manifest.drop_cache(scan.removed)
            self.manifest.queue(self.remote.key, queued)
        result = RunResult()
        sink = _WatchSink(self, result)
        raced: list[FileError] = []
        options = EngineOptions(
            transfers=self.opts.transfers,
            cancelled=self.stopper.is_set,
            on_action=lambda r: self._action_done(r, raced),
            verify_full=self.opts.verify_full,
            backup=self.backup,
            copies=self.journal,
            intents=self.journal,
            follow_links=self.links,
            plans_raced_again=True,
        )
        execute(plan, self.root, self.remote, sink, self.display, options=options, result=result)
        _uncount_raced(result, plan, raced)
        failed = _failed_paths(plan, result.errors)
        again = _failed_paths(plan, raced)
        self._refresh_remote(failed | again)
        errors = {RelPath(e.path): e.error for e in [*raced, *result.errors]}
        for error in scan.errors:
            failed.add(RelPath(error.path))
            errors[RelPath(error.path)] = error.error
        for path in sorted(failed):
            self._failed(path, errors.get(path, "failed"))
        again -= failed  # changed there under them: planned again soon (`Retries.raced`)
        for path in sorted(again):
            self.manifest.queue(self.remote.key, [path])
            ours = scan.entries.get(path)
            version = None if ours is None else ours.digest
            if self.retries.raced(path, errors.get(path, "changed"), time.monotonic(), version):
                self._alarm()
        done = [p for p in queued if p not in failed and p not in again]
        if not self.stopper.is_set():
            self.manifest.unqueue(self.remote.key, done)
            self.retries.succeeded(done)
        self.retries.succeeded(sink.done)
        _accumulate(self.total, result)
        failing = {str(p): e for p, e in self.retries.failing().items()}
        self.display.totals(self.total, failing)
        return result

    def _dry_run(self, plan: Plan) -> RunResult:
        """`--dry-run`: report what each action would do, as it would be done; the trees,
        the base and the outbox stay as they are, so a path is reported at each change."""
        result = app.dry_run_result(plan)
        for action in plan.actions:
            if action.kind not in _STATE_ONLY:
                self.display.file_done(action.path, f"would {action.kind.value}")
        _accumulate(self.total, result)
        self.total.dry_run = True
        self.display.totals(self.total, {})
        return result

    def _refresh_remote(self, paths: Iterable[RelPath]) -> None:
        """Look again at the remote objects of failed actions (one stat each).

        The in-memory listing follows fsync's own writes only; an action refused because the
        object changed (someone else wrote it) would fail the same way on every retry until
        the next full rescan, whereas with the fresh entry the retry plans what is really
        there (a conflict, resolved per `--on-conflict`).
        """
        for path in paths:
            try:
                self.state.set_remote(path, self.remote.stat(path))
            except (FsyncError, OSError):
                continue  # unreachable, or not a file: the retry will tell

    def _failed(self, path: RelPath, error: str) -> None:
        """Schedule `path` again; fire `--on-error` once its retries are spent.

        The queue in the manifest keeps it for a later session too, where the disk lets it:
        on a full disk, that write failed inside the handler of the failure it recorded,
        and ended the watch that had just said it would retry."""
        spent = self.retries.failed(path, error, time.monotonic())
        with contextlib.suppress(FsyncError):
            self.manifest.queue(self.remote.key, [path])
        if spent:
            self._alarm()

    def _alarm(self) -> None:
        """Fire `--on-error` with the session's totals (a path's retries are spent)."""
        self._finish_totals()
        where = {"command": "watch", "local": self.root, "remote": self.remote.url}
        self.alarm.fire(where | self.total.as_json())

    def _reload_ignore(self, *, quiet: bool = False) -> bool:
        """Re-read `.fsyncignore`; True if the rules changed. A broken file keeps the old
        rules, and so do rules that no longer leave out a remote kept inside the tree (the
        start refuses that: each push would copy the tree into itself, one level deeper)."""
        try:
            fresh = scanner.read_ignore(self.root, self.opts.excludes)
            if fresh.patterns != self.ignore.patterns:
                check_local_remote(self.root, self.push_opts)
        except FsyncError as exc:
            if not quiet:
                self.display.warning(f"{exc}; keeping the previous rules")
            return False
        if fresh.patterns == self.ignore.patterns:
            if self.ignore_gone_since is not None:  # back as it was: no full sync to make
                if self.full_due == self.ignore_gone_since + IGNORE_GONE_SETTLE:
                    self.full_due = None  # (only if none was due for another reason)
                self.ignore_gone_since = None
            return False
        if not os.path.lexists(os.path.join(self.root, IGNORE_FILE)):
            now = time.monotonic()
            if self.ignore_gone_since is None:
                self.ignore_gone_since = now
            settled = self.ignore_gone_since + IGNORE_GONE_SETTLE
            if now < settled:  # (the full sync then looks again)
                self.full_due = min(self.full_due or settled, settled)
                return False
        self.ignore_gone_since = None
        self.ignore = fresh
        self.watcher.set_ignore(scanner.read_ignore(self.root, self.opts.excludes).ignores_unseen)
        return True

    def _finish_totals(self) -> None:
        failing = self.retries.failing()
        self.total.held_back = len(self.held_back)
        self.total.failed = len(failing)
        self.total.errors = [FileError(p, e) for p, e in sorted(failing.items())]
        self.total.seconds = time.monotonic() - self.started


class _OnceWarner(NullReporter):
    """Passes each distinct warning on once: a skipped symlink is reported by the first full
    scan, not again by every rescan and every pull of a session that runs for months."""

    def __init__(self, display: WatchDisplay) -> None:
        super().__init__()
        self._display = display
        self._seen: set[str] = set()

    def warning(self, message: str) -> None:
        """Show `message` unless it was shown before."""
        if message not in self._seen:
            if len(self._seen) < 10_000:
                self._seen.add(message)
            self._display.warning(message)


class _WatchSink:
    """Commits outcomes, empties the outbox of their paths, and follows them in memory."""

    def __init__(self, session: _Session, running: RunResult) -> None:
        self._session = session
        self._inner = app.ManifestSink(session.manifest, session.remote.key)
        self._running = running
        """The counts of the plan running, as the engine fills them in."""
        self.done: list[RelPath] = []

    def commit(self, outcomes: list[Outcome]) -> None:
        """One transaction: the bases and cache entries, the outbox rows of these paths, and
        the session's counts so far in the run history (`fsync status` showed a watch
        running, or killed, as "0 up, 0 down" whatever it had sent)."""
        s = self._session
        paths = [o.path for o in outcomes] + [o.moved_from for o in outcomes if o.moved_from]
        with s.manifest.transaction():
            self._inner.commit(outcomes)
            s.manifest.unqueue(s.remote.key, paths)
            if s.history is not None:
                so_far = replace(s.total, notices=[])
                _accumulate(so_far, self._running)
                so_far.failed = len(s.retries.failing())
                s.manifest.note_progress(s.history.run_id, so_far.counts())
        # the delete limit's share (`_Session.peak`, `synced`), the full sync's files too
        s.synced += sum(
            1
            for o in outcomes
            if o.base is not None and o.moved_from is None and o.path not in s.state.base
        )
        s.peak = max(s.peak, s.synced)
        s.state.apply(outcomes)
        self.done.extend(paths)
        for o in outcomes:
            if o.cache is not None:  # fsync wrote this local file (a pull): not a change
                s.watcher.suppress(o.path, o.cache.sig.mtime_ns)


class _Scope:
    """Which paths a plan may touch: none that is held by the watcher, failed to scan, or
    holds something fsync does not sync (a skipped link, a device).

    A held path is still changing (it gets its own batch once settled), so acting on it now
    could send a file half-written; an unreadable one is not a deleted one, nor is a file
    replaced by a link (`ScanResult.skipped`).
    """

    def __init__(self, held: set[RelPath], scan: scanner.ScanResult) -> None:
        self._held = held | set(scan.skipped)
        self._scan = scan

    def __call__(self, path: RelPath) -> bool:
        if self._held and under_any(path, self._held):
            return False
        return not ((self._scan.errors or self._scan.incomplete) and self._scan.is_unknown(path))


def _acted_paths(plan: Plan) -> list[RelPath]:
    paths = [a.path for a in plan.actions]
    paths += [a.moved_from.path for a in plan.actions if a.moved_from is not None]
    return paths


def _failed_paths(plan: Plan, errors: list[FileError]) -> set[RelPath]:
    """The paths of failed actions; a failed MOVE fails its old path too."""
    failed = {RelPath(e.path) for e in errors}
    moves: Mapping[RelPath, Action] = {
        a.path: a.moved_from for a in plan.actions if a.moved_from is not None
    }
    return failed | {moves[p].path for p in failed if p in moves}


def _note_raced(record: ActionRecord, raced: list[FileError]) -> None:
    """Collect the actions the engine left because their destination changed meanwhile."""
    if record.outcome == "conflict":
        raced.append(FileError(record.path, record.error or "changed during the run"))


def _uncount_raced(result: RunResult, plan: Plan, raced: list[FileError]) -> None:
    """A one-shot run leaves a raced action as a conflict for the next run; a watch retries
    it at once (after looking at the remote again), and counts it when that resolves it."""
    planned = {a.path for a in plan.actions if a.conflict}
    result.unresolved -= len(raced)
    result.conflicts -= sum(1 for e in raced if e.path not in planned)


def _accumulate(total: RunResult, r: RunResult) -> None:
    """Add one plan's counts to the session's (failures are tracked per path instead)."""
    total.uploaded += r.uploaded
    total.downloaded += r.downloaded
    total.deleted += r.deleted
    total.moved += r.moved
    total.conflicts += r.conflicts
    total.unresolved += r.unresolved
    total.bytes_sent += r.bytes_sent
    total.bytes_received += r.bytes_received
    total.notices = (total.notices + r.notices)[-KEEP_NOTICES:]
