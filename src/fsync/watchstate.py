"""What a watch knows about one remote between batches: its listing and the base, in memory.

Listing the whole remote for every batch would cost O(tree) per change; instead the startup
(or a full rescan) lists it once, and every engine outcome updates this copy, since fsync's
own writes are the only remote changes a push-only watch expects. A batch then plans just its
own paths: `scope` finds every known path at or below the batch's paths (a moved or deleted
folder names its whole subtree) in O(log n + k) through a sorted index, without I/O.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping

from fsync.model import BaseEntry, RelPath, RemoteEntry
from fsync.transfer.outcome import Outcome


class KnownState:
    """The base and the remote entries of one remote, kept in step with engine outcomes."""

    def __init__(
        self,
        base: Mapping[RelPath, BaseEntry] | None = None,
        remote: Mapping[RelPath, RemoteEntry] | None = None,
    ) -> None:
        self.base: dict[RelPath, BaseEntry] = {}
        self.remote: dict[RelPath, RemoteEntry] = {}
        self._sorted: list[RelPath] = []
        self._added: list[RelPath] = []
        self.reset(base or {}, remote or {})

    def reset(
        self, base: Mapping[RelPath, BaseEntry], remote: Mapping[RelPath, RemoteEntry]
    ) -> None:
        """Replace everything (after a full listing and a fresh read of the base)."""
        self.base = dict(base)
        self.remote = dict(remote)
        self._added = []
        self._reindex()

    def set_remote(self, path: RelPath, entry: RemoteEntry | None) -> None:
        """Record what the remote holds at `path` now (None: nothing)."""
        if entry is None:
            self.remote.pop(path, None)
        else:
            self._note(path)
            self.remote[path] = entry

    def apply(self, outcomes: Iterable[Outcome]) -> None:
        """Follow the engine: new base entries, and the remote objects it wrote or removed."""
        for o in outcomes:
            if o.base is not None:
                self._note(o.path)
                self.base[o.path] = o.base
            elif o.forget_base:
                self.base.pop(o.path, None)
            if o.remote is not None:
                self.set_remote(o.path, o.remote)
            elif o.remote_deleted:
                self.remote.pop(o.path, None)
            if o.moved_from is not None:
                self.base.pop(o.moved_from, None)
                self.remote.pop(o.moved_from, None)

    def scope(self, paths: Iterable[RelPath]) -> set[RelPath]:
        """Every known path (in the base or on the remote) equal to or below one of `paths`."""
        found: set[RelPath] = set()
        for path in paths:
            if path in self.base or path in self.remote:
                found.add(path)
            found.update(self._below(path))
        return found

    def _below(self, folder: RelPath) -> Iterable[RelPath]:
        prefix = folder + "/"
        for keys in (self._sorted, self._added):
            i = bisect.bisect_left(keys, prefix)
            while i < len(keys) and keys[i].startswith(prefix):
                if keys[i] in self.base or keys[i] in self.remote:
                    yield keys[i]
                i += 1

    def _note(self, path: RelPath) -> None:
        """Index a path that may be new: into a small sorted list, merged now and then.

        Keys are never removed from the index; `_below` checks presence, and a rebuild
        drops the stale ones.
        """
        if path in self.base or path in self.remote:
            return
        added = self._added
        i = bisect.bisect_left(added, path)
        if i == len(added) or added[i] != path:
            added.insert(i, path)
            if len(added) > max(1024, len(self._sorted) // 8):
                self._reindex()

    def _reindex(self) -> None:
        self._sorted = sorted(self.base.keys() | self.remote.keys() | set(self._added))
        self._added = []
