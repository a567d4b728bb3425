"""What a watch knows about one remote between batches: its listing and the base, in memory.

Listing the whole remote for every batch would cost O(tree) per change; instead the startup
(or a full rescan) lists it once, and every engine outcome updates this copy, since fsync's
own writes are the only remote changes a push-only watch expects. A batch then plans just its
own paths: `scope` finds every known path at or below the batch's paths (a moved or deleted
folder names its whole subtree) in O(log n + k) through a sorted index, without I/O; and
`with_content` finds the known paths of a content, for a rename whose two ends reach the
watch in different batches.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping

from fsync.model import BaseEntry, Digest, RelPath, RemoteEntry
from fsync.paths import ancestors
from fsync.transfer.outcome import Outcome

SHARED_CONTENT = 8
"""`with_content` names no path of a content that more known paths than this hold (many
copies of one file): each name it gives costs the caller a stat."""


_MANY: frozenset[RelPath] = frozenset()
"""The index's mark for a content more than `SHARED_CONTENT` known paths share: nothing is
looked up for it, so its paths are not kept (copies of one file cost no memory there)."""


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
        self._by_content: dict[Digest, RelPath | set[RelPath] | frozenset[RelPath]] = {}
        """The base's paths by digest: one path alone (most contents), a set where shared,
        `_MANY` once more than `SHARED_CONTENT` share it. Empty files are not indexed."""
        self.reset(base or {}, remote or {})

    def reset(
        self, base: Mapping[RelPath, BaseEntry], remote: Mapping[RelPath, RemoteEntry]
    ) -> None:
        """Replace everything (after a full listing and a fresh read of the base)."""
        self.base = dict(base)
        self.remote = dict(remote)
        self._added = []
        self._reindex()
        self._by_content = {}
        for path, entry in self.base.items():
            if entry.size:
                self._index(path, entry.digest)

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
                self._forget_base(o.path)
                self.base[o.path] = o.base
                if o.base.size:
                    self._index(o.path, o.base.digest)
            elif o.forget_base:
                self._forget_base(o.path)
            if o.remote is not None:
                self.set_remote(o.path, o.remote)
            elif o.remote_deleted:
                self.remote.pop(o.path, None)
            if o.moved_from is not None:
                self._forget_base(o.moved_from)
                self.remote.pop(o.moved_from, None)

    def with_content(self, digest: Digest) -> set[RelPath]:
        """The paths whose base content is `digest`; none if more than `SHARED_CONTENT`
        share it."""
        held = self._by_content.get(digest)
        if held is None:
            return set()
        return set(held) if isinstance(held, set | frozenset) else {held}

    def _forget_base(self, path: RelPath) -> None:
        old = self.base.pop(path, None)
        if old is None:
            return
        held = self._by_content.get(old.digest)
        if held == path:
            del self._by_content[old.digest]
        elif isinstance(held, set):  # (`_MANY` stays: its paths are not kept)
            held.discard(path)
            if len(held) == 1:
                self._by_content[old.digest] = next(iter(held))

    def _index(self, path: RelPath, digest: Digest) -> None:
        held = self._by_content.get(digest)
        if held is None:
            self._by_content[digest] = path
        elif isinstance(held, set):
            held.add(path)
            if len(held) > SHARED_CONTENT:
                self._by_content[digest] = _MANY
        elif isinstance(held, str) and held != path:
            self._by_content[digest] = {held, path}

    def scope(self, paths: Iterable[RelPath]) -> set[RelPath]:
        """Every known path (in the base or on the remote) equal to or below one of `paths`."""
        found: set[RelPath] = set()
        for path in paths:
            if path in self.base or path in self.remote:
                found.add(path)
            found.update(self._below(path))
        return found

    def above(self, paths: Iterable[RelPath]) -> set[RelPath]:
        """The known paths (in the base or on the remote) at a folder above one of `paths`:
        a file `d` that the file `d/x` here replaced, which a plan of `d/x` alone never saw
        (it sent `d/x` beside `d`, a pair no disk can hold)."""
        return {
            folder
            for path in paths
            for folder in ancestors(path)
            if folder in self.base or folder in self.remote
        }

    def new_folders(self, paths: Iterable[RelPath]) -> set[RelPath]:
        """The folders above `paths` that nothing known is at or below: folders the remote
        holds nothing of, as far as this state knows. A file in a known folder costs a set
        lookup per folder above it; each new folder, one look at the index."""
        found: set[RelPath] = set()
        seen: set[RelPath] = set()
        for path in paths:
            for folder in ancestors(path):
                if folder in seen:
                    continue
                seen.add(folder)
                if folder in self.base or folder in self.remote:
                    continue
                if next(iter(self._below(folder)), None) is None:
                    found.add(folder)
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
