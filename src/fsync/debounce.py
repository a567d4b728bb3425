"""Coalesce a stream of filesystem events into batches of settled paths.

The watcher feeds every event here (`record`, O(depth of the path), no I/O) from watchdog's
dispatch thread; its own thread calls `take_ready` every tick. A path is released once it has
been quiet for the quiet window and its size and mtime held still across it, so a file that
is still being written is never handed over half-way. Where the platform reports closes
(inotify), a file modified and not yet closed is held until it is closed, however slowly it
is written, up to `settle_max`. A path that keeps changing without ever being mid-write (a
file rewritten and closed every 100 ms) is released after `max_hold` anyway: the scanner
hashes a consistent snapshot of it, and its next change starts a new hold.

A folder that was created, moved or deleted is held as one *tree* entry: events below it
only extend its hold, and the batch names the folder alone (the scanner walks it). The two
ends of a rename are released together, so the planner sees the delete and the create in one
plan and can turn them into a server-side move.

No clock and no `os` call is made here: `now` comes in as an argument and `stat` is injected,
so the rules are unit-tested with plain numbers. Thread-safe: `stat` runs outside the lock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from fsync.model import RelPath
from fsync.paths import ancestors

Sig = tuple[int, int] | None
"""What `stat` returns for a path: (size, mtime_ns) of a file, (-1, 0) for a folder, None
when nothing is there."""

FOLDER_SIG: Sig = (-1, 0)

SUPPRESS_SECONDS = 30.0
"""How long a path fsync wrote itself (`suppress`) is recognised when its event arrives."""


@dataclass(slots=True)
class _Pending:
    """One held path: when its events came, and what was last seen there."""

    first: float
    last: float
    seq: int = 0
    """Bumped by every event, so a stat taken before the latest event is known to be stale."""
    tree: bool = False
    partner: RelPath | None = None
    writing: set[RelPath] = field(default_factory=set)
    """Files at or below this path modified and not yet closed (close-reporting platforms)."""
    closed: bool = False
    """A writer closed a file of this hold: its coalescing restarted then (once per hold)."""
    sig: Sig = None
    sig_seq: int = -1
    sig_time: float = 0.0


class Debouncer:
    """Holds changed paths until they settle; see the module docstring for the rules."""

    def __init__(
        self,
        stat: Callable[[RelPath], Sig],
        *,
        quiet: float = 0.15,
        max_hold: float = 1.0,
        settle_max: float = 60.0,
        tick: float = 0.025,
    ) -> None:
        self._stat = stat
        self.quiet = quiet
        self.max_hold = max_hold
        self.settle_max = settle_max
        self.tick = tick
        self._lock = threading.Lock()
        self._pending: dict[RelPath, _Pending] = {}
        self._suppressed: dict[tuple[RelPath, int], float] = {}
        self._snapshots: set[RelPath] = set()
        """Files released at `settle_max` while still written, until a writer closes them:
        not `held`, or the batch of the snapshot dropped them as held again by the next write
        (a log kept open was never sent)."""

    def __len__(self) -> int:
        return len(self._pending)

    # --- feeding (watchdog's dispatch thread) ---------------------------------------------

    def record(
        self,
        path: RelPath,
        now: float,
        *,
        tree: bool = False,
        writing: bool | None = None,
        partner: RelPath | None = None,
    ) -> bool:
        """Note an event on `path`; return True if nothing was held before (wake the taker).

        `tree` marks a folder created, moved or deleted; `writing` True means "modified"
        (held until closed), False means "closed after writing", None says nothing about it.
        `partner` links the two ends of a rename.
        """
        with self._lock:
            was_empty = not self._pending
            owner = self._tree_above(path)
            entry = self._pending.get(owner or path)
            if entry is None:
                entry = self._pending[path] = _Pending(first=now, last=now)
            entry.last = now
            entry.seq += 1
            entry.tree = entry.tree or (tree and owner is None)
            if partner is not None and owner is None:
                entry.partner = partner
            if writing is True:
                entry.writing.add(path)
            elif writing is False and path in entry.writing:
                entry.writing.discard(path)
                self._snapshots.discard(path)
                if not entry.writing and not entry.closed:
                    # The writer is done: coalescing starts from here. Only at the hold's
                    # first close: a file appended to and closed every 100 ms, its hold
                    # restarted at each, was held for as long as the appends went on.
                    entry.first = now
                    entry.closed = True
            if tree and owner is None:
                # Events already held below a new tree entry now ride along with it.
                entry.writing.update(self._absorb(path))
            return was_empty

    def _tree_above(self, path: RelPath) -> RelPath | None:
        """The nearest held tree entry strictly above `path`, or None."""
        end = path.find("/")
        while end != -1:
            folder = RelPath(path[:end])
            held = self._pending.get(folder)
            if held is not None and held.tree:
                return folder
            end = path.find("/", end + 1)
        return None

    def _absorb(self, folder: RelPath) -> set[RelPath]:
        """Drop held entries below `folder`; return the files among them still being written.

        O(held paths), paid only when a folder event arrives while paths below it are held.
        """
        prefix = folder + "/"
        below = [p for p in self._pending if p.startswith(prefix)]
        writing: set[RelPath] = set()
        for p in below:
            writing.update(self._pending.pop(p).writing)
        return writing

    def suppress(self, path: RelPath, mtime_ns: int, now: float) -> None:
        """Remember that fsync itself just wrote `path` with `mtime_ns`: not a local change.

        An event for it is dropped when the file still has that mtime on release.
        """
        with self._lock:
            self._suppressed[(path, mtime_ns)] = now + SUPPRESS_SECONDS

    def held(self) -> set[RelPath]:
        """The paths (files and tree folders) held right now, but files written without
        pause since their last snapshot (`settle_max`): no moment of theirs is a settled
        one, so a snapshot is all there is to send."""
        with self._lock:
            snapshots = self._snapshots
            return {
                p for p, e in self._pending.items() if not (e.writing and e.writing <= snapshots)
            }

    # --- taking (the watcher's thread) ----------------------------------------------------

    def take_ready(self, now: float) -> set[RelPath]:
        """Release and return the paths that settled by `now` (with their rename partners).

        Paths below a released tree folder are folded into it. Stats are taken here, outside
        the lock, for paths due for a check.
        """
        with self._lock:
            due = [(p, e.seq, e.tree) for p, e in self._pending.items() if self._due(e, now)]
            self._expire_suppressed(now)
        if not due:
            return set()
        sigs = {p: (seq, None if tree else self._stat(p)) for p, seq, tree in due}
        with self._lock:
            ready = {p for p, (seq, sig) in sigs.items() if self._settled(p, seq, sig, now)}
            for p in list(ready):
                mate = self._pending[p].partner
                held = self._pending.get(mate) if mate is not None else None
                if mate is not None and held is not None and not held.writing:
                    ready.add(mate)  # a partner still being written waits for its own batch
            for p in ready:
                del self._pending[p]
            ready -= {p for p in ready if self._is_suppressed(p, sigs.get(p))}
        return _fold(ready)

    def _due(self, e: _Pending, now: float) -> bool:
        """Worth a look now: a stale stat to refresh, or a hold that may end."""
        return e.sig_seq != e.seq or now - e.last >= self.quiet or now - e.first >= self.max_hold

    def _settled(self, path: RelPath, seq: int, sig: Sig, now: float) -> bool:
        """Decide one due path with its fresh `sig`; record the observation if it waits."""
        e = self._pending.get(path)
        if e is None or e.seq != seq:
            return False  # gone, or a new event arrived while we were looking
        if e.writing:
            if now - e.first >= self.settle_max:
                # Written for that long without a close, and maybe still being written every
                # few milliseconds (a log kept open): take a snapshot now, or never.
                self._snapshots.update(e.writing)
                return True
            self._observe(e, sig, now)
            return False
        if now - e.last < self.quiet:
            self._observe(e, sig, now)
            return now - e.first >= self.max_hold
        if e.tree:
            return True
        if e.sig_seq != e.seq or e.sig != sig:
            e.sig, e.sig_seq, e.sig_time = sig, e.seq, now  # a new observation: wait it out
            return False
        return now - e.sig_time >= self.quiet - self.tick

    @staticmethod
    def _observe(e: _Pending, sig: Sig, now: float) -> None:
        """Keep `sig` as the first observation after the latest event (not a later one)."""
        if e.sig_seq != e.seq:
            e.sig, e.sig_seq, e.sig_time = sig, e.seq, now

    def _is_suppressed(self, path: RelPath, seen: tuple[int, Sig] | None) -> bool:
        sig = seen[1] if seen is not None else None
        return sig is not None and (path, sig[1]) in self._suppressed

    def _expire_suppressed(self, now: float) -> None:
        if self._suppressed:
            for key in [k for k, until in self._suppressed.items() if until <= now]:
                del self._suppressed[key]


def _fold(paths: set[RelPath]) -> set[RelPath]:
    """`paths` without those lying below another member (the scanner walks folders)."""
    return {p for p in paths if not any(a in paths for a in ancestors(p))}
