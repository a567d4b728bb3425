"""Value types shared by every layer: paths, snapshot entries, actions and plans.

Everything here is frozen and I/O-free, so the planner can be tested on plain values and a
plan can be handed between threads without copying.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, NewType

RelPath = NewType("RelPath", str)
"""A POSIX, NFC-normalised path relative to a sync root; only `paths.to_relpath` makes one."""

Digest = NewType("Digest", str)
"""Lower-case hex blake3 digest of a file's content (64 characters)."""


@dataclass(frozen=True, slots=True)
class LocalEntry:
    """A local file as the scanner last saw it.

    `ino` and `ctime_ns` (0: not known) are the rest of its stat signature: a file rewritten
    with the same size within one timestamp tick, or by a tool that restores the mtime, keeps
    size and mtime, and only they tell that it changed before it is overwritten or deleted.
    They take no part in comparisons: they say when it was seen, not what it holds.
    """

    size: int
    mtime_ns: int
    digest: Digest
    mode: int = 0o644
    ino: int = field(default=0, compare=False)
    ctime_ns: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class RemoteEntry:
    """A remote object as one listing shows it.

    `fingerprint` is the backend's cheap change marker (an S3 ETag, or size and mtime on a
    filesystem); it changes whenever the content may have. `digest` is known only where the
    backend stores it (object metadata) or where it was fetched for a decision; None means
    "not known", never "empty".
    """

    size: int
    fingerprint: str
    digest: Digest | None = None
    mtime_ns: int | None = None
    mode: int | None = None
    """Permission bits (`0o644`) where the backend keeps them (a filesystem's stat, the `mode`
    metadata on S3); None where unknown. Not part of the version: only content is compared."""
    written_ns: int | None = field(default=None, compare=False)
    """When the store wrote this version (S3's `LastModified`), where a look at the object
    told it. Never an mtime to restore; `--on-conflict newer` goes by it where `mtime_ns` is
    unknown (an object another tool wrote), or a push and a pull each kept their own side as
    "as new" and never converged."""
    sized: bool = field(default=True, compare=False)
    """False where the listing could not tell the size (an http server that answers without
    `Content-Length`): `size` is then 0, and a download holds what it received."""


@dataclass(frozen=True, slots=True)
class BaseEntry:
    """The last state both sides agreed on for one path of one remote."""

    size: int
    digest: Digest
    fingerprint: str
    mtime_ns: int


Snapshot = Mapping[RelPath, LocalEntry]
RemoteSnapshot = Mapping[RelPath, RemoteEntry]
BaseSnapshot = Mapping[RelPath, BaseEntry]


# --- one entry per file, fast ------------------------------------------------------------
# A frozen dataclass's generated `__init__` sets each field through `object.__setattr__`
# (frozen forbids plain assignment): 0.74 us for a `LocalEntry` on Python 3.11, against
# 0.38 us setting its slots directly. A no-op run builds three entries per file (the scan,
# the listing, the base), so where a run builds one per file it calls these instead: 0.1 s
# of a 2 s no-op of 100,000 files. Each takes every field in order, and unpacks its setters
# by name, so a field added to the class breaks it at once (tests/unit/test_model.py).

_new = object.__new__


def _slot_setters(cls: type) -> tuple[Callable[[object, Any], None], ...]:
    """The `__set__` of each field's slot descriptor, in field order."""
    return tuple(getattr(cls, f.name).__set__ for f in fields(cls))


_LOCAL_SETTERS = _slot_setters(LocalEntry)
_REMOTE_SETTERS = _slot_setters(RemoteEntry)
_BASE_SETTERS = _slot_setters(BaseEntry)


def local_entry(  # noqa: PLR0917 - LocalEntry's fields, positional as its constructor's
    size: int, mtime_ns: int, digest: Digest, mode: int, ino: int, ctime_ns: int
) -> LocalEntry:
    """`LocalEntry(size, mtime_ns, digest, mode, ino, ctime_ns)`, in half the time."""
    entry = _new(LocalEntry)
    set_size, set_mtime_ns, set_digest, set_mode, set_ino, set_ctime_ns = _LOCAL_SETTERS
    set_size(entry, size)
    set_mtime_ns(entry, mtime_ns)
    set_digest(entry, digest)
    set_mode(entry, mode)
    set_ino(entry, ino)
    set_ctime_ns(entry, ctime_ns)
    return entry


def remote_entry(  # noqa: PLR0917 - RemoteEntry's fields, positional as its constructor's
    size: int,
    fingerprint: str,
    digest: Digest | None,
    mtime_ns: int | None,
    mode: int | None,
    written_ns: int | None = None,
    sized: bool = True,
) -> RemoteEntry:
    """`RemoteEntry(size, fingerprint, digest, mtime_ns, mode, written_ns, sized)`, in half
    the time."""
    entry = _new(RemoteEntry)
    set_size, set_fingerprint, set_digest, set_mtime_ns, set_mode, set_written, set_sized = (
        _REMOTE_SETTERS
    )
    set_size(entry, size)
    set_fingerprint(entry, fingerprint)
    set_digest(entry, digest)
    set_mtime_ns(entry, mtime_ns)
    set_mode(entry, mode)
    set_written(entry, written_ns)
    set_sized(entry, sized)
    return entry


def base_entry(size: int, digest: Digest, fingerprint: str, mtime_ns: int) -> BaseEntry:
    """`BaseEntry(size, digest, fingerprint, mtime_ns)`, in half the time."""
    entry = _new(BaseEntry)
    set_size, set_digest, set_fingerprint, set_mtime_ns = _BASE_SETTERS
    set_size(entry, size)
    set_digest(entry, digest)
    set_fingerprint(entry, fingerprint)
    set_mtime_ns(entry, mtime_ns)
    return entry


class Direction(enum.Enum):
    """Which way a one-shot run moves changes."""

    PUSH = "push"
    PULL = "pull"
    SYNC = "sync"
    """Both ways in one run (`fsync sync`), planned by `planner_sync.plan_sync`."""


class ConflictPolicy(enum.Enum):
    """What to do when both sides changed a path differently (DESIGN.md, `--on-conflict`)."""

    KEEP_BOTH = "keep-both"
    NEWER = "newer"
    LOCAL = "local"
    REMOTE = "remote"
    SKIP = "skip"


class ActionKind(enum.Enum):
    """What the engine does for one path."""

    UPLOAD = "upload"
    DOWNLOAD = "download"
    DELETE_REMOTE = "delete-remote"
    DELETE_LOCAL = "delete-local"
    RECORD = "record"
    """Both sides already hold the same content: write the base, move no bytes."""
    FORGET = "forget"
    """Drop the path from the base (both sides gone, or a conflict resolved by keeping one)."""
    KEEP = "keep"
    """Leave both sides as they are; used for resolved conflicts where the destination wins."""
    CONFLICT = "conflict"
    """An unresolved conflict (`--on-conflict skip`): nothing is done, the run exits 3."""
    MOVE = "move"
    """A local rename: copy the old remote object to the new path server-side, then delete
    the old one (`Action.moved_from` is the delete it replaces); no content is sent."""
    MOVE_LOCAL = "move-local"
    """A remote rename: rename the local file at the old path (`Action.moved_from`, the
    DELETE_LOCAL it replaces) to the new path; no content is fetched."""

    @property
    def transfers(self) -> bool:
        """True for kinds that move file content."""
        return self in (ActionKind.UPLOAD, ActionKind.DOWNLOAD)

    @property
    def deletes(self) -> bool:
        """True for kinds that remove a file from a tree."""
        return self in (ActionKind.DELETE_REMOTE, ActionKind.DELETE_LOCAL)

    @property
    def counter(self) -> str | None:
        """The `RunResult` count one done action of this kind adds to (None: none of the
        file counts; RECORD counts as unchanged, KEEP only as the conflict it is): one table
        for a real run's counts and a dry run's, which must agree."""
        return _COUNTERS.get(self)


_COUNTERS = {
    ActionKind.MOVE: "moved",
    ActionKind.MOVE_LOCAL: "moved",
    ActionKind.UPLOAD: "uploaded",
    ActionKind.DOWNLOAD: "downloaded",
    ActionKind.DELETE_REMOTE: "deleted",
    ActionKind.DELETE_LOCAL: "deleted",
}


@dataclass(frozen=True, slots=True)
class Action:
    """One step of a plan.

    `local` and `remote` record what the planner saw, so the engine can refuse to act when a
    side changed since (check before act). `keep_copy` asks the engine to keep the version
    about to be overwritten beside it under a conflict name (`--on-conflict keep-both`).
    `moved_from` is set on MOVE and MOVE_LOCAL actions only: the delete of the old path that
    the move replaces, with what the planner saw there. `share_copy` (two-way sync, with
    `keep_copy`) asks for the conflict copy on both sides, so both keep both versions.
    """

    kind: ActionKind
    path: RelPath
    local: LocalEntry | None
    remote: RemoteEntry | None
    base: BaseEntry | None
    reason: str
    conflict: bool = False
    keep_copy: bool = False
    moved_from: Action | None = None
    share_copy: bool = False


@dataclass(frozen=True, slots=True)
class Notice:
    """A change the run saw but does not apply (e.g. a remote change during a push)."""

    path: RelPath
    reason: str
    deleted: bool = False
    """The destination deleted a file the source still holds unchanged; it is not sent
    again (the summary tells how to do either: apply the delete, or restore the file)."""
    unmappable: bool = False
    """A push's remote change at a name the local side cannot hold (`reason` says why, in
    the words of the pull that refuses it): not left for the other direction, which leaves
    it alone too."""


@dataclass(frozen=True, slots=True)
class Plan:
    """The planner's output: actions ordered by path, plus what was left alone and why."""

    actions: tuple[Action, ...]
    notices: tuple[Notice, ...] = ()
    unchanged: int = 0
    refused: tuple[Action, ...] = ()
    """Actions left undone, each a failure of the run with `reason` saying why: they would
    put a file and a folder at one name on a side (`planner.refuse_clashes`)."""

    def count(self, *kinds: ActionKind) -> int:
        """Number of actions of any of `kinds`."""
        return sum(1 for a in self.actions if a.kind in kinds)

    @property
    def conflicts(self) -> tuple[Action, ...]:
        """Actions that arose from a conflict, resolved or not."""
        return tuple(a for a in self.actions if a.conflict)


@dataclass(frozen=True, slots=True)
class SyncPolicy:
    """The planner's knobs, straight from the command line."""

    direction: Direction
    on_conflict: ConflictPolicy = ConflictPolicy.KEEP_BOTH
    mirror: bool = False
    max_delete: int | None = None
    """Absolute cap on deletions; None means use `max_delete_ratio`."""
    max_delete_ratio: float = 0.5
    force: bool = False
    read_only: bool = False
    """The remote takes no writes (http://): what a pull leaves here is not offered a push."""


@dataclass(frozen=True, slots=True)
class FileError:
    """One path's failure, as it appears in the `errors` list of the JSON summary."""

    path: str
    error: str


@dataclass(frozen=True, slots=True)
class PendingUpload:
    """An unfinished chunked upload as the transfer journal remembers it.

    `target` names the object (`s3://bucket/key`); `digest` and `size` the content being
    sent, so a re-run continues the upload only for the same content; `part_size` how it was
    cut; `metadata` the object metadata it was created with, in the adapter's own spelling
    (a re-run needing other metadata starts a new upload). Which parts are done is not kept
    here: the store's own record (S3 ListParts) is the truth, and each listed part is
    checked against the bytes re-read before it is skipped.
    """

    target: str
    upload_id: str
    digest: str
    size: int
    part_size: int
    created: float
    metadata: str = ""
    owner: str = ""
    """The `Remote.key` of the remote whose run made it ("" if journaled before owners were
    recorded): only that remote's runs abort it as stale (`Resumer`), since one local root's
    journal also holds its uploads to other prefixes and stores."""


@dataclass(frozen=True, slots=True)
class PartialDownload:
    """A large download cut short, as the transfer journal remembers it, so the next run
    continues from the last verified block instead of fetching everything again.

    `temp` is the partial file's name in `path`'s folder; `source` and `fingerprint` name the
    remote version being fetched (another version makes the partial worthless); `blocks` is
    the blake3 digests (32 bytes each) of the first `len(blocks) // 32` blocks of
    `block_size` bytes, each appended only after its bytes were flushed to disk, so a re-run
    can re-verify the prefix it keeps.
    """

    path: RelPath
    source: str
    fingerprint: str
    size: int
    temp: str
    block_size: int
    blocks: bytes
    created: float


@dataclass(frozen=True, slots=True)
class PublishIntent:
    """A transfer about to take its name on the destination, journaled before it does, so a
    run killed before recording it does not leave fsync's own transfer looking like an edit.

    `upload` says which side is written: the remote (True) or the local file. `digest` and
    `size` are the content published. `fingerprint` is, for a download, the remote version
    fetched, and for an upload the version the remote will show where that is known before
    the publish ("" if not). `mtime_ns` is an upload's local mtime (None for a download: the
    local file's is read by the next scan). `dev` and `ino` are a download's temp file (0: not
    known): the rename keeps them, so the local file still having them proves the download
    was published even after an edit changed its content (`fsync.transfer.intents`).
    """

    path: RelPath
    upload: bool
    digest: Digest
    size: int
    fingerprint: str = ""
    mtime_ns: int | None = None
    dev: int = 0
    ino: int = 0


@dataclass(frozen=True, slots=True)
class ActionRecord:
    """How one action of a run ended: a line of `--log-file`, and `-v` detail.

    `outcome` is `done`, `failed`, `skipped` (nothing to do by the time it ran), `conflict`
    (the destination changed since the plan, so it was left for the next run) or `planned`
    (a dry run); `attempts` counts the engine's tries of the whole action.
    """

    path: str
    action: str
    outcome: str
    bytes: int = 0
    seconds: float = 0.0
    attempts: int = 1
    error: str | None = None


@dataclass(slots=True)
class RunResult:
    """What a run did: the counts and names of DESIGN.md's `--json` summary."""

    uploaded: int = 0
    downloaded: int = 0
    deleted: int = 0
    moved: int = 0
    conflicts: int = 0
    unresolved: int = 0
    failed: int = 0
    unchanged: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    seconds: float = 0.0
    dry_run: bool = False
    errors: list[FileError] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    read_only: bool = False
    """The remote refuses writes (http://, `Capabilities.writable`): what a pull leaves
    alone here has no other direction to go, and the summary says so."""
    stopped: str | None = None
    """Why the real run would stop whole before acting (a dry run whose plan a safety stop
    refuses: the stop's message); the dry run then exits as that run would."""
    held_back: int | None = None
    """The deletions a watch's delete limit held back, still undone when it stopped: its
    summary said "0 failing" while the remote kept every file they name. None for the
    commands that have no such limit (a watch's `--json` always carries it, 0 as well)."""

    def as_json(self) -> dict[str, object]:
        """The summary object printed by `--json` and handed to `--on-error` (with `error`,
        as a run stopped whole has it, when `stopped`)."""
        return {
            **self.counts(),
            "errors": [{"path": e.path, "error": e.error} for e in self.errors],
            "skipped": [{"path": n.path, "reason": n.reason} for n in self.notices],
            **({"error": self.stopped} if self.stopped else {}),
            **({"held_back": self.held_back} if self.held_back is not None else {}),
        }

    def counts(self) -> dict[str, object]:
        """`as_json` without its lists: what a run records after each batch (its lists grow
        with the run, and building them every batch made that cost grow with it too)."""
        return {
            "uploaded": self.uploaded,
            "downloaded": self.downloaded,
            "deleted": self.deleted,
            "moved": self.moved,
            "conflicts": self.conflicts,
            "unresolved": self.unresolved,
            "failed": self.failed,
            "unchanged": self.unchanged,
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
            "seconds": round(self.seconds, 3),
            "dry_run": self.dry_run,
        }


def digest_equal(a: Digest | None, b: Digest | None) -> bool:
    """True only when both digests are known and equal; an unknown digest matches nothing."""
    return a is not None and a == b


def mapping_paths(*maps: Mapping[RelPath, object]) -> list[RelPath]:
    """The sorted union of the keys of `maps`: the order every plan is built in."""
    keys: set[RelPath] = set()
    for m in maps:
        keys.update(m)
    return sorted(keys)
