"""What the engine and its workers hand each other: the options of a run, each action's
result on its way back (`Done`), and the `Outcome` that the state sink records.

Plain data, below both `engine` (which schedules actions and records their outcomes) and
`worker` (which carries single actions out).
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from fsync.hashing import CacheRecord
from fsync.model import Action, ActionRecord, BaseEntry, RelPath, RemoteEntry

if TYPE_CHECKING:
    from fsync.remote.base import Staged
    from fsync.transfer.backup import Backup
    from fsync.transfer.copies import CopyJournal
    from fsync.transfer.download import DownloadJournal
    from fsync.transfer.intents import IntentJournal


class StateSink(Protocol):
    """Where outcomes become durable (the manifest, through the app)."""

    def commit(self, outcomes: list[Outcome]) -> None:
        """Persist a batch of outcomes in one transaction."""
        ...


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one action changed in the state: the new base and local cache entry.

    `remote` is the object an action wrote at `path` (an upload or a move), and
    `remote_deleted` says it removed the object there, so a caller that mirrors the remote in
    memory can follow without listing it again. `moved_from` is a MOVE's old path: gone from
    the remote, and its base entry with it.
    """

    path: RelPath
    base: BaseEntry | None
    forget_base: bool = False
    cache: CacheRecord | None = None
    drop_cache: bool = False
    remote: RemoteEntry | None = None
    remote_deleted: bool = False
    moved_from: RelPath | None = None
    settles_copy: bool = False
    """The outcome of a keep-both upload, whose copy of the remote version the transfer
    journal holds until this is recorded (`CopyJournal`)."""


@dataclass(frozen=True, slots=True)
class EngineOptions:
    """Knobs of one execution."""

    transfers: int = 8
    host: str = field(default_factory=socket.gethostname)
    batch_size: int = 256
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    cancelled: Callable[[], bool] = field(default=lambda: False)
    """Polled between actions: once true, no further action starts, those in flight finish
    and their outcomes are committed (a graceful stop); the rest are left undone."""
    on_action: Callable[[ActionRecord], None] | None = None
    """Called on the calling thread as each action ends, with its bytes, time and outcome
    (the `--log-file` lines); it must not raise."""
    backup: Backup | None = None
    """`--backup-dir`: every destination version an action overwrites or deletes is kept
    there first (a conflict copy already keeps it, so keep-both actions do not use it)."""
    verify_full: bool = False
    """`--verify full`: read every uploaded object back and re-hash it (costs a download)."""
    downloads: DownloadJournal | None = None
    """Where large downloads are journaled so a later run resumes them; None: never."""
    copies: CopyJournal | None = None
    """Where keep-both conflicts journal the copies they make on the remote, so a run that
    meets a conflict again keeps the copy made before; None: never journaled."""
    intents: IntentJournal | None = None
    """Where each transfer is journaled before it takes its name on the destination, so the
    next run knows it for fsync's own should this one be killed before recording it
    (`fsync.transfer.intents`); None: never journaled."""
    follow_links: bool = False
    """`--links follow`: a download to a path the scan saw through a link writes the link's
    target (inside the root, as the scan checked); the link stays a link."""
    plans_raced_again: bool = False
    """The caller plans an action whose destination changed since the plan again at once
    (a watch), so its warning says so and it is no notice left for the next run."""


@dataclass(slots=True)
class Done:
    """One finished action: its outcome or error, bytes moved, time, and what it staged."""

    action: Action
    outcome: Outcome | None = None
    sent: int = 0
    received: int = 0
    error: str | None = None
    skipped: bool = False
    vanished: bool = False
    """An upload skipped because its local file was gone by then (a build's temporary file):
    not a failure; the engine counts these in one warning and names each at debug level."""
    extra: list[str] = field(default_factory=list)
    attempts: int = 1
    seconds: float = 0.0
    more: list[Outcome] = field(default_factory=list)
    """Outcomes of paths an action wrote besides its own (conflict copies on both sides);
    committed even when the action itself then failed. One with a `remote` entry was sent,
    one without was fetched: each counts as an upload or a download."""
    raced: str | None = None
    """Why the action was not done: its destination changed since the plan (a conflict)."""
    kept_aside: bool = False
    """The action was done, but the local version it replaced had changed since the plan
    (an edit during the run): kept as a conflict copy, and counted as a conflict."""
    staged: Staged | None = None
    """An upload written but not yet published: `_Batch.commit` publishes it."""
