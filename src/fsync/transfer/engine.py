"""Carry out a plan: run its actions on worker threads and record their outcomes in batches.

Actions run on a bounded pool of threads (`transfers`), each through the shared `Worker`;
their results come back to the calling thread, which is the only one that hands outcomes to
the state sink, in batches. A failure is recorded against its path and never stops the other
actions.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from fsync.hashing import cpu_threads
from fsync.model import (
    Action,
    ActionKind,
    ActionRecord,
    FileError,
    Notice,
    Plan,
    PublishIntent,
    RelPath,
    RunResult,
)
from fsync.paths import ancestors
from fsync.planner import first_below, in_the_way
from fsync.progress import Reporter
from fsync.remote.base import Remote
from fsync.terminal import interrupts_held
from fsync.transfer.outcome import Done, EngineOptions, Outcome, StateSink
from fsync.transfer.worker import STAGED_MAX, Worker

_log = logging.getLogger("fsync.transfer")

JOB_FILES = 64
JOB_BYTES = 4 << 20
"""A job of small actions for one worker thread (see `_run_all`) stops at either bound."""
STOP_NOTICE = 1.0
"""Seconds a graceful stop waits on the transfers in flight before it says so."""
STOP_POLL = 0.25
"""Seconds between looks at the stop while waiting for a transfer to end."""


def execute(
    plan: Plan,
    local_root: str,
    remote: Remote,
    sink: StateSink,
    reporter: Reporter,
    *,
    options: EngineOptions | None = None,
    result: RunResult | None = None,
) -> RunResult:
    """Run every action of `plan` and return the counts; never raises for one file's failure.

    The counts go into `result` when one is given (and it is returned), as each action ends:
    a caller holding it still knows what the run did when Ctrl-C ends it with
    `KeyboardInterrupt`, for the run history.
    """
    opts = options or EngineOptions()
    worker = Worker(os.path.abspath(local_root), remote, reporter, opts, _paths_of(plan))
    result = result if result is not None else RunResult()
    result.unchanged, result.notices = plan.unchanged, list(plan.notices)
    transfers = [a for a in plan.actions if a.kind.transfers]
    # Every action that changes a file gets its line (`file_done`), deletes and moves too:
    # counting only the transfers, a watch showed "sending 6/1" for an upload and 5 deletes.
    shown = sum(a.kind.counter is not None for a in plan.actions) + len(plan.refused)
    reporter.plan_ready(shown, sum(_size(a) for a in transfers))
    batch = _Batch(worker, sink, result, opts)
    for action in plan.refused:  # failures found by the planner: counted, never run
        batch.add(Done(action, error=action.reason, attempts=0))
    threads, job_files = max(1, opts.transfers), 1
    if worker.stager is not None and not opts.verify_full and not _waits_on_disk(plan):
        # Staged local writes keep a thread busy, never waiting on a disk flush or a network:
        # threads beyond the cores only contend (see `cpu_threads`), and the calling thread,
        # which publishes and records batches meanwhile, needs a core of its own (on 2 cores,
        # a 20,000-file push took 5.8 s with one writer thread and 7.0 s with two: the second
        # mostly traded the GIL, 1,000,000 futex calls). Small files go to them in jobs (see
        # `_run_all`). Downloads and large uploads wait on an fsync each.
        threads, job_files = max(1, cpu_threads(threads + 1) - 1), JOB_FILES
    elif worker.stager is not None and not opts.verify_full:
        job_files = JOB_FILES
    dones = _in_waves(plan.actions, worker, threads, _Stop(opts.cancelled, reporter), job_files)
    try:
        with contextlib.closing(dones):  # its cleanup runs before the last commit
            for done in dones:
                batch.add(done)
    finally:
        try:
            batch.commit()
        finally:
            _report_vanished(batch.vanished, reporter)
            reporter.close()
    return result


def _report_vanished(paths: list[RelPath], reporter: Reporter) -> None:
    """One warning for the files that were gone before they could be sent, whatever their
    number: a build making and deleting temporary files is ordinary churn, and a line per
    file buried the warnings that matter (each is named at debug level, `-v`, as it goes)."""
    if len(paths) == 1:
        reporter.warning(f"{paths[0]} vanished before it could be sent; skipped")
    elif paths:
        reporter.warning(
            f"{len(paths)} files vanished before they could be sent; skipped (-v lists them)"
        )


class _Batch:
    """Finished actions on their way to the state sink, one transaction per batch.

    Uploads a `Stager` remote staged wait here unpublished: at `commit` one `flush` makes all
    their bytes durable, then each is published (checked against the plan and renamed into
    place), then a second `flush` makes the renames durable before the sink records them.
    Runs on the calling thread only.
    """

    def __init__(self, worker: Worker, sink: StateSink, result: RunResult, opts: EngineOptions):
        self._worker = worker
        self._sink = sink
        self._result = result
        self._opts = opts
        self._outcomes: list[Outcome] = []
        self._staged: list[Done] = []
        self._unsynced = False
        """A sync failed: the outcomes since may not be durable and are never recorded."""
        self.vanished: list[RelPath] = []
        """Uploads skipped because their file was gone by then (`Done.vanished`)."""

    def add(self, done: Done) -> None:
        """Take one finished action; commit once a batch is full."""
        if done.staged is not None:
            self._staged.append(done)
        else:
            with interrupts_held():
                self._finish(done)
        if len(self._outcomes) + len(self._staged) >= self._opts.batch_size:
            self.commit()

    def commit(self) -> None:
        """Publish what is staged, then record every outcome so far in one transaction.

        Interrupted (a failed sync, Ctrl-C), it still records what it published, and leaves
        no temp file of what it did not.
        """
        staged, self._staged = self._staged, []
        try:
            if staged:
                # The intents before the flush: it makes them durable with the staged bytes.
                self._worker.intend([_intent(d) for d in staged])
                self._flush()
                with interrupts_held():  # once a batch: it costs two system calls a signal
                    for done in staged:
                        self._worker.publish(done)
                        self._finish(done)
        finally:
            for done in staged:
                if done.staged is not None:
                    done.staged.discard()
            if self._outcomes and not self._unsynced:
                self._flush()
                self._sink.commit(self._outcomes)
                self._outcomes = []

    def _flush(self) -> None:
        """Sync both trees; once a sync has failed, nothing more of this run is recorded
        (the kernel reports a lost write-back only once: a later sync would succeed)."""
        self._unsynced = True
        self._worker.flush()
        self._unsynced = False

    def _finish(self, done: Done) -> None:
        # Call with interrupts held (`interrupts_held`): a Ctrl-C between counting a file and
        # reporting it left it counted in the run history and never printed.
        # The outcome first: whatever happens in the callbacks, a published file is recorded.
        if done.outcome is not None:
            self._outcomes.append(done.outcome)
        self._outcomes.extend(done.more)
        _account(self._result, done, self._worker.reporter, again=self._opts.plans_raced_again)
        if done.vanished:
            self.vanished.append(done.action.path)
            _log.debug("%s vanished before it could be sent; skipped", done.action.path)
        if self._opts.on_action is not None:
            self._opts.on_action(_action_record(done))


def _intent(done: Done) -> PublishIntent:
    """The publish intent of a staged upload: its base names the content and the version
    the remote will show once it is renamed into place."""
    outcome = done.outcome
    assert outcome is not None
    base = outcome.base
    assert base is not None
    return PublishIntent(
        done.action.path, True, base.digest, base.size, base.fingerprint, base.mtime_ns
    )


def _run_all(
    actions: tuple[Action, ...],
    worker: Worker,
    transfers: int,
    cancelled: _Stop,
    job_files: int = 1,
) -> Iterator[Done]:
    """Yield each action's result as it finishes, with at most `transfers` jobs in flight.

    A job is one action, or with `job_files` a run of up to that many consecutive small
    ones: for staged local writes, handing each small file to a thread and back cost more
    than writing it (measured: 3 s of a 20,000-file push to a local folder). Once
    `cancelled()` is true nothing new starts: queued actions are dropped, and the results of
    those already running are still yielded (a watch's stop). If the caller stops early (an
    interrupt), the running transfers are halted at their next chunk (`Worker.halt`), and
    what they and the unyielded ones staged is discarded.
    """
    stop = threading.Event()
    unyielded: deque[Done] = deque()
    running: set[Future[list[Done]]] = set()
    waiting: set[Future[list[Done]]] = set()
    """Finished jobs whose results are not yet in `unyielded`."""
    pool = ThreadPoolExecutor(max_workers=transfers, thread_name_prefix="fsync-xfer")

    def collect(finished: _Futures) -> Iterator[Done]:
        waiting.update(finished)
        for f in finished:
            unyielded.extend(f.result())
            waiting.discard(f)
        while unyielded:
            yield unyielded.popleft()

    try:
        for job in _jobs(actions, job_files):
            if cancelled():
                break
            running.add(pool.submit(_run_job, worker, job, stop, cancelled))
            if len(running) >= transfers * 2:
                finished, running = _wait_some(running, cancelled)
                yield from collect(finished)
        while running:
            if cancelled():
                # cancel() succeeds only for jobs that have not started.
                running = {f for f in running if not f.cancel()}
                if not running:
                    break
            finished, running = _wait_some(running, cancelled)
            yield from collect(finished)
    except BaseException:  # an interrupt here, or the caller closing this early
        worker.halt()
        raise
    finally:
        stop.set()
        _shut_down(pool, running | waiting, unyielded)


def _in_waves(
    actions: tuple[Action, ...],
    worker: Worker,
    transfers: int,
    cancelled: _Stop,
    job_files: int,
) -> Iterator[Done]:
    """`_run_all` of each wave of `actions` in turn (`_waves`), the last once the first has
    finished, without those of the last whose room the first did not make.

    A delete the first wave could not make stays in the way: refused because another writer
    changed that file since the plan (a conflict: their version is kept), the upload of `d`
    waiting on it went beside their `d/e`, a pair no disk can hold and no pull brings back.
    A watch met it whenever someone wrote under `d/` behind its back, since it plans from
    what it last saw of the remote, and so did a push whose delete lost a race. Such an
    action fails for its path with the planner's message for the same clash
    (`planner.in_the_way`); the next run, or a watch's retry, plans it from what is there.
    """
    first, last, gone = _waves(actions)
    removed: dict[bool, set[RelPath]] = {True: set(), False: set()}
    for done in _run_all(first, worker, transfers, cancelled, job_files):
        removes = _removes(done.action)
        if removes is not None and _succeeded(done):
            removed[removes[0]].add(removes[1])
        yield done
    if not last or cancelled():
        return
    stays = {here: paths - removed[here] for here, paths in gone.items()}
    below = {here: first_below(paths) for here, paths in stays.items()}
    room: list[Action] = []
    for a in last:
        here = _WRITES_HERE[a.kind]
        why = in_the_way(a.path, stays[here], below[here], up=not here)
        if why is None:
            room.append(a)
        else:
            yield Done(a, error=why, attempts=0)
    if room:
        yield from _run_all(tuple(room), worker, transfers, cancelled, job_files)


def _waves(
    actions: tuple[Action, ...],
) -> tuple[tuple[Action, ...], tuple[Action, ...], dict[bool, set[RelPath]]]:
    """`actions` in two waves, and the paths the plan removes here (True) and on the remote
    (False): last, those that put a file where this plan empties a folder, or into a folder
    where it removes a file (a folder and a file of one name swapped on one side, and what
    the other side then writes there).

    Run at once, the download of `f` found folder `f` not yet emptied by the deletes of the
    files in it, and was left as a conflict with a local change (exit 3) until the next run.
    """
    gone: dict[bool, set[RelPath]] = {True: set(), False: set()}
    for a in actions:
        removes = _removes(a)
        if removes is not None:
            gone[removes[0]].add(removes[1])
    if not any(gone.values()):
        return actions, (), gone
    emptied = {here: {f for p in paths for f in ancestors(p)} for here, paths in gone.items()}

    def waits(a: Action) -> bool:
        # A file written where a folder is emptied, or in a folder where a file is removed.
        here = _WRITES_HERE.get(a.kind)
        return here is not None and (
            a.path in emptied[here] or any(f in gone[here] for f in ancestors(a.path))
        )

    first: list[Action] = []
    last: list[Action] = []
    for a in actions:
        (last if waits(a) else first).append(a)
    return tuple(first), tuple(last), gone


def _removes(action: Action) -> tuple[bool, RelPath] | None:
    """The side (True: here) and path of the file `action` removes, if it removes one: a
    delete's path, or a move's old path."""
    if action.kind in (ActionKind.DELETE_LOCAL, ActionKind.DELETE_REMOTE):
        return action.kind is ActionKind.DELETE_LOCAL, action.path
    if action.kind in (ActionKind.MOVE_LOCAL, ActionKind.MOVE) and action.moved_from is not None:
        return action.kind is ActionKind.MOVE_LOCAL, action.moved_from.path
    return None


def _succeeded(done: Done) -> bool:
    """The action was done: neither failed nor refused by a race (nor skipped)."""
    return done.outcome is not None and done.error is None and done.raced is None


_WRITES_HERE = {
    ActionKind.DOWNLOAD: True,
    ActionKind.MOVE_LOCAL: True,
    ActionKind.UPLOAD: False,
    ActionKind.MOVE: False,
}
"""The actions that write a file at their path: here (True) or on the remote (False)."""


def _shut_down(pool: ThreadPoolExecutor, left: _Futures, unyielded: Iterable[Done]) -> None:
    """Wait for the jobs still running, then remove whatever they and the results never
    yielded staged (nothing after a complete run)."""
    for f in left:
        f.cancel()
    pool.shutdown(wait=True)
    _discard(unyielded)
    for f in left:
        if not f.cancelled() and f.exception() is None:
            _discard(f.result())


def _run_job(
    worker: Worker, job: list[Action], stop: threading.Event, cancelled: Callable[[], bool]
) -> list[Done]:
    """Run the actions of `job` in turn until `stop` is set or the run is cancelled."""
    out: list[Done] = []
    try:
        for action in job:
            if stop.is_set() or cancelled():
                break
            out.append(worker.run(action))
    except BaseException:
        _discard(out)
        raise
    return out


def _discard(dones: Iterable[Done]) -> None:
    """Remove what these results staged: they will never be published."""
    for done in dones:
        if done.staged is not None:
            done.staged.discard()
            done.staged = None


def _waits_on_disk(plan: Plan) -> bool:
    """True if `plan` downloads, or uploads a file too large to stage: an fsync each."""
    return any(
        a.kind is ActionKind.DOWNLOAD or (a.kind is ActionKind.UPLOAD and _size(a) > STAGED_MAX)
        for a in plan.actions
    )


def _jobs(actions: tuple[Action, ...], most: int) -> Iterator[list[Action]]:
    """`actions` in order, cut into jobs of at most `most` actions and `JOB_BYTES` bytes;
    an action over `STAGED_MAX` (not staged: it waits on its own fsync) is a job alone."""
    job: list[Action] = []
    size = 0
    for action in actions:
        n = _size(action)
        if job and (len(job) >= most or size + n > JOB_BYTES or n > STAGED_MAX):
            yield job
            job, size = [], 0
        job.append(action)
        size += n
        if n > STAGED_MAX:
            yield job
            job, size = [], 0
    if job:
        yield job


_Futures = set[Future[list[Done]]]


class _Stop:
    """A run's graceful stop (`EngineOptions.cancelled`), and its one notice.

    A stop lets the transfers in flight finish (of a large upload, only the parts going out:
    the rest is left journaled), which under `--bw-limit` can take a while: one that has
    not ended within `STOP_NOTICE` seconds is announced once, so the wait is not silent.
    """

    def __init__(self, cancelled: Callable[[], bool], reporter: Reporter) -> None:
        self._cancelled = cancelled
        self._reporter = reporter
        self._told = False
        self._since: float | None = None

    def __call__(self) -> bool:
        return self._cancelled()

    def waiting(self, running: _Futures) -> None:
        """Say once that the stop waits for `running`, if it has for `STOP_NOTICE`."""
        if self._told or not self._cancelled():
            return
        now = time.monotonic()
        if self._since is None:
            self._since = now
        if now - self._since < STOP_NOTICE:
            return
        self._told = True
        busy = sum(f.running() for f in running) or len(running)
        self._reporter.warning(
            f"stopping: finishing {busy} transfer{'s' if busy > 1 else ''} in flight "
            "(a large file's parts already on their way; it continues from there next time); "
            "Ctrl-C again to stop now"
        )


def _wait_some(running: _Futures, stop: _Stop) -> tuple[_Futures, _Futures]:
    """Wait until one of `running` is done; a stop waiting on them says so (`_Stop`)."""
    while True:
        done, not_done = wait(running, timeout=STOP_POLL, return_when=FIRST_COMPLETED)
        if done:
            return set(done), set(not_done)
        stop.waiting(not_done)


def _paths_of(plan: Plan) -> frozenset[RelPath]:
    """The paths `plan` acts on, old paths of moves included."""
    paths = {a.path for a in plan.actions}
    paths.update(a.moved_from.path for a in plan.actions if a.moved_from is not None)
    return frozenset(paths)


def _size(action: Action) -> int:
    entry = action.local if action.kind is ActionKind.UPLOAD else action.remote
    return entry.size if entry is not None else 0


def _account(result: RunResult, done: Done, reporter: Reporter, *, again: bool) -> None:
    action = done.action
    result.bytes_sent += done.sent
    result.bytes_received += done.received
    if action.conflict or done.kept_aside:
        result.conflicts += 1
    if action.kind is ActionKind.CONFLICT:
        result.unresolved += 1
    if done.raced is not None:
        _account_raced(result, action, done.raced, reporter, again=again)
    if done.error is not None:
        result.failed += 1
        result.errors.append(FileError(action.path, done.error))
        reporter.file_done(action.path, action.kind.value, done.error)
        _account_copies(result, done, reporter)
        return
    counter = action.kind.counter
    if done.skipped or done.raced is not None:
        pass
    elif counter is not None:
        setattr(result, counter, getattr(result, counter) + 1)
        reporter.file_done(action.path, action.kind.value)
    elif action.kind is ActionKind.RECORD:
        result.unchanged += 1
    _account_copies(result, done, reporter)
    for line in done.extra:
        reporter.warning(line)


def _account_copies(result: RunResult, done: Done, reporter: Reporter) -> None:
    """Count and show the conflict copies `done` made on both sides: sent, or fetched (each
    a line of its own after its file's: the summary counted them, and no line named them)."""
    for copy in done.more:
        kind = ActionKind.UPLOAD if copy.remote is not None else ActionKind.DOWNLOAD
        if kind is ActionKind.UPLOAD:
            result.uploaded += 1
        else:
            result.downloaded += 1
        reporter.file_done(copy.path, kind.value)


def _account_raced(
    result: RunResult, action: Action, why: str, reporter: Reporter, *, again: bool
) -> None:
    """Check before act refused `action`: the other writer's version stays, a conflict for
    the next run to resolve (exit status 3 until then), or for the caller to plan again at
    once (`EngineOptions.plans_raced_again`: a watch, which a warning saying "left for the
    next run" misled)."""
    result.conflicts += not action.conflict
    result.unresolved += 1
    if again:
        reason = f"conflict: {why}; planned again shortly with what is there now"
    else:
        reason = f"conflict: {why}; left as is for the next run"
        result.notices.append(Notice(action.path, reason))
    reporter.file_done(action.path, "conflict")
    reporter.warning(reason)


def _action_record(done: Done) -> ActionRecord:
    """The log record of a finished action."""
    if done.error is not None:
        outcome = "failed"
    elif done.raced is not None:
        outcome = "conflict"
    elif done.skipped:
        outcome = "skipped"
    else:
        outcome = "done"
    return ActionRecord(
        path=done.action.path,
        action=done.action.kind.value,
        outcome=outcome,
        bytes=done.sent + done.received,
        seconds=done.seconds,
        attempts=done.attempts,
        error=done.error or done.raced,
    )
