"""Carry out single actions of a plan: check before acting, move bytes, verify.

A `Worker` is shared by the engine's threads; each call of `run` carries out one action and
turns its failure into the result (`Done`), so one file's failure never stops the others.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import logging
import os
import stat
import threading
import time
import unicodedata
from collections.abc import Callable, Iterator

from fsync.durability import Durability
from fsync.errors import (
    FileChangedError,
    FsyncError,
    Halted,
    RemoteChanged,
    UnsafePathError,
    VerificationError,
)
from fsync.fileops import (
    file_identity,
    makedirs,
    opened_path,
    path_below,
    place_new,
    rename_exchange,
    swap_into_place,
)
from fsync.hashing import CacheRecord, HashingReader, StatSig, hash_file
from fsync.ignore import STATE_DIR
from fsync.model import (
    Action,
    ActionKind,
    BaseEntry,
    LocalEntry,
    PublishIntent,
    RelPath,
    RemoteEntry,
)
from fsync.paths import check_name_lengths, conflict_name
from fsync.progress import Reporter
from fsync.remote.base import Mover, ObjectMeta, Remote, Stager, same_version
from fsync.remote.retry import reset_retries_here, retries_here
from fsync.transfer.copies import fetch_new, free_name, send_new
from fsync.transfer.download import Fetcher
from fsync.transfer.outcome import Done, EngineOptions, Outcome

_log = logging.getLogger("fsync.transfer")

CHUNK = 1 << 20
STAGED_MAX = 1 << 20
"""Larger uploads to a `Stager` are `put` (an fsync each, small beside the write): a batch of
staged ones would hold twice their size on the disk, and lose all of it to a crash."""
FILE_CHANGE_ATTEMPTS = 3
"""How often an upload is restarted when its source keeps changing underneath it."""


class Worker:
    """Carries out single actions; safe to call from many threads at once."""

    def __init__(
        self,
        root: str,
        remote: Remote,
        reporter: Reporter,
        opts: EngineOptions,
        planned: frozenset[RelPath] = frozenset(),
    ) -> None:
        self.root = root
        self.real_root = os.path.realpath(root)
        self.remote = remote
        self.reporter = reporter
        self.opts = opts
        self.planned = planned
        """Every path the plan acts on: never a new name, whatever either side holds now."""
        self._dirs_lock = threading.Lock()
        self._odd_names: dict[str, dict[str, str]] = {}
        """Folder -> its names not in NFC, by their NFC form (`_spelled_in`)."""
        self.halted = threading.Event()
        """Set when the run is abandoned (`halt`): transfers stop at their next chunk."""
        self.stager = remote if isinstance(remote, Stager) and remote.staging else None
        """The remote, if uploads to it are staged (`isinstance` on a protocol is slow)."""
        self.mover = remote if isinstance(remote, Mover) else None
        """The remote, if it renames its files (`move`)."""
        self.durability = Durability(root)
        self.fetcher = Fetcher(
            remote,
            opts.downloads,
            root,
            file_mode=_FILE_MODE,
            on_bytes=self._advance,
        )

    def halt(self) -> None:
        """Abandon the transfers in flight: each raises `Halted` at its next chunk (Ctrl-C
        must not wait for a large file to finish; an upload or download cut there is
        journaled where the store can continue it, and otherwise its temp file goes)."""
        self.halted.set()

    def _advance(self, path: str, nbytes: int, *, shown: bool = True) -> None:
        """Progress of a transfer (unless not `shown`: counted elsewhere), and the point
        where an abandoned run stops it."""
        if self.halted.is_set():
            raise Halted(f"{path}: interrupted")
        if shown:
            self.reporter.advance(path, nbytes)

    def flush(self) -> None:
        """Make every write of both trees durable, before the manifest records them."""
        self.remote.flush()
        self.durability.flush()

    def run(self, action: Action) -> Done:
        """Carry out `action`, turning any failure into an error message on the result."""
        done = Done(action)
        started = time.monotonic()
        reset_retries_here()
        try:
            with _failure_noted(done):
                handler = _HANDLERS[action.kind]
                done.outcome = handler(self, action, done)
        finally:
            if done.outcome is None and done.staged is not None:  # failed after staging
                done.staged.discard()
                done.staged = None
            # (the retries of requests made on this thread: a multipart upload's parts go
            # out on the remote's own threads, and theirs are not counted)
            done.attempts += retries_here()
        done.seconds = time.monotonic() - started
        return done

    def intend(self, intents: list[PublishIntent]) -> None:
        """Journal `intents` before what they name is published (see `EngineOptions.intents`)."""
        if self.opts.intents is not None and intents:
            self.opts.intents.intend(self.remote.key, intents)

    def _unpublished(self, path: RelPath, tmp: str) -> None:
        """Remove the download `tmp` of `path`, never renamed into place: its intent first.

        Removed while its intent stood, the temp freed an inode a new file at `path` could
        take, and pass for the download (`transfer.intents`). If the intent cannot be dropped
        (a full disk), the temp stays for the next run's sweep, which comes after it settles.
        """
        try:
            self.unintend([path])
        except (OSError, FsyncError) as exc:
            _log.debug("%s: its intent stays (%s); so does its temp %s", path, exc, tmp)
            self.fetcher.finish(path)
            return
        self.fetcher.discard(path, tmp)

    def unintend(self, paths: list[RelPath]) -> None:
        """Drop the intents of `paths`, whose transfers will not be published."""
        if self.opts.intents is not None and paths:
            self.opts.intents.unintend(self.remote.key, paths)

    def publish(self, done: Done) -> None:
        """Publish a staged upload if its path is still as planned; a failure is noted."""
        staged = done.staged
        assert staged is not None
        outcome, done.outcome = done.outcome, None
        try:
            with _failure_noted(done):
                done.outcome = _published(outcome, staged.publish(done.action.remote))
        finally:
            done.staged = None  # published, or removed by `publish` itself
        if done.outcome is None:
            done.sent = 0

    # --- uploads -------------------------------------------------------------------------

    def upload(self, action: Action, done: Done) -> Outcome | None:
        """Send the local file, verified against the planned digest before it is published."""
        assert action.local is not None
        path = action.path
        expect = action.remote
        if action.keep_copy and expect is not None:
            self._keep_remote_version(action, expect, done)
        elif expect is not None and self.opts.backup is not None:
            self.opts.backup.save_remote(path, expect, deleting=False)
        entry = action.local
        try:
            for attempt in range(FILE_CHANGE_ATTEMPTS):
                done.attempts = attempt + 1
                try:
                    return self._upload_once(action, entry, done)
                except FileChangedError:
                    if attempt == FILE_CHANGE_ATTEMPTS - 1:
                        raise
                    entry, _ = _rehashed(self._local(path))
        except Halted:
            if not self.opts.cancelled():
                raise
            # A graceful stop left it unsent (a large file's upload stays journaled, and
            # continues from there): not a failure, and the base stays as it was.
            done.skipped = True
            return None
        except FileNotFoundError as exc:
            # Gone since the scan (also while re-hashing a file that changed): nothing to
            # send, and nothing failed; the engine counts these (`Done.vanished`).
            if exc.filename != self._local(path):
                raise
            done.vanished = done.skipped = True
            return None
        raise AssertionError("unreachable")

    def _upload_once(self, action: Action, entry: LocalEntry, done: Done) -> Outcome:
        path = action.path
        full = self._local(path)
        # Unbuffered: every reader of an upload reads in large steps, and a buffer would
        # cost an ioctl, an lseek and an extra read per file.
        with open(full, "rb", buffering=0) as raw:
            self._check_opened(path, full, raw.fileno())
            before = StatSig.from_stat(os.fstat(raw.fileno()))
            if (before.size, before.mtime_ns) != (entry.size, entry.mtime_ns):
                entry, before = _rehashed(full)
            self.reporter.file_started(path, entry.size)
            staging = (
                self.stager is not None and entry.size <= STAGED_MAX and not self.opts.verify_full
            )
            # Progress by what the store took where it says (`reports_sent`), else by reads.
            by_sends = not staging and self.remote.capabilities.reports_sent
            reader = HashingReader(
                raw, on_read=lambda n: self._advance(path, n, shown=not by_sends)
            )

            def verify() -> None:
                after = StatSig.from_stat(os.stat(full))
                if after.size != before.size or after.mtime_ns != before.mtime_ns:
                    raise FileChangedError("changed while being uploaded")
                if reader.bytes_read != entry.size or reader.digest() != entry.digest:
                    raise FileChangedError("changed while being uploaded")
                if not staging:  # (a staged file's intent goes with its batch: `_Batch`)
                    self.intend(
                        [PublishIntent(path, True, entry.digest, entry.size, "", entry.mtime_ns)]
                    )

            meta = ObjectMeta(entry.size, entry.digest, entry.mtime_ns, 0o100000 | entry.mode)
            held: list[int] = []
            if staging:
                assert self.stager is not None
                done.staged = self.stager.stage(path, reader, meta, before_publish=verify)
                new = done.staged.entry
            else:
                new = self.remote.put(
                    path,
                    reader,
                    meta,
                    expect=action.remote,
                    before_publish=verify,
                    on_held=held.append,
                    halted=self.halted,
                    stopping=self.opts.cancelled,
                    on_sent=(lambda n: self.reporter.advance(path, n)) if by_sends else None,
                )
        done.sent = entry.size - sum(held)  # parts an earlier run sent are not counted again
        if self.opts.verify_full:
            self._read_back(path, entry, new)
        base = BaseEntry(entry.size, entry.digest, new.fingerprint, entry.mtime_ns)
        settles = action.keep_copy and action.remote is not None
        return Outcome(path, base, remote=new, settles_copy=settles)

    def _check_opened(self, path: RelPath, full: str, fd: int) -> None:
        """Refuse to send what `full` was opened through a link to (`fd`), where the scan saw
        no link: a file or a folder replaced by a link during the run made a push send what
        the link led to, from outside the root too, under the old name (links are skipped
        unless `--links follow`, which never leads outside the root nor into `.fsync/`)."""
        where = opened_path(fd)
        expected = os.path.join(self.real_root, full[len(self.root) :].lstrip("/"))
        if where is None or where == expected:
            return
        if where.endswith(" (deleted)"):
            return  # (gone since it was opened: the checks before publishing tell)
        below = path_below(where, self.real_root) if self.opts.follow_links else None
        if below is not None and below.split("/", 1)[0] not in ("", STATE_DIR):
            return
        if os.path.realpath(full) == expected:
            # No link on the name: the file was moved since it was opened (an editor's
            # save renaming it aside, an mv): gone from here, as a file that vanished.
            raise FileNotFoundError(errno.ENOENT, "moved while being sent", full)
        raise UnsafePathError(
            f"{path}: not sent: it became a symbolic link (or a folder above it did) during "
            "the run; the next run skips the link"
        )

    def _read_back(self, path: RelPath, entry: LocalEntry, published: RemoteEntry) -> None:
        """Download what was just published and check it hashes to what was sent.

        A copy that does not is deleted, so its metadata (which names the right blake3) can
        never make the next run adopt it as identical; the next run sends the file again.
        The read asks for the version just published: an answer cut short or empty is read
        again rather than taken for that copy, and one replaced meanwhile is a race.
        """
        with self.remote.open_read(path, expect=published) as src:
            reader = HashingReader(src)
            while reader.read(CHUNK):
                pass
        if reader.bytes_read != entry.size or reader.digest() != entry.digest:
            self.remote.delete(path, expect=published)
            raise VerificationError(
                f"{path}: the remote copy does not match what was sent (--verify full); "
                "it will be sent again next run"
            )

    # --- moves ---------------------------------------------------------------------------

    def move(self, action: Action, done: Done) -> Outcome:
        """Move the old remote object to the new path: renamed where the remote can
        (`Mover`), else copied server-side and the old one deleted (`_copy_then_delete`).

        The old object must still be the base version (so the move carries the content the
        local file has), and the new path must still be as seen (absent), else
        `RemoteChanged`. A rename is made durable with its batch, by the flush before the
        batch is recorded: copied and fsynced one by one, the moves of a folder remote took
        four times as long as uploading the files.
        """
        old = action.moved_from
        assert old is not None
        assert action.local is not None
        if self.mover is not None and action.remote is None:
            try:
                new = self.mover.move(old.path, action.path, expect=old.remote, prune=True)
            except (FileNotFoundError, FileExistsError) as err:
                path = old.path if isinstance(err, FileNotFoundError) else action.path
                raise RemoteChanged(f"{path}: changed on the remote since it was listed") from None
        else:
            new = self._copy_then_delete(action, old)
        local = action.local
        base = BaseEntry(local.size, local.digest, new.fingerprint, local.mtime_ns)
        return Outcome(action.path, base, remote=new, moved_from=old.path)

    def _copy_then_delete(self, action: Action, old: Action) -> RemoteEntry:
        """`move` on a remote that cannot rename: both paths checked, a server-side copy,
        then the old object deleted; the new entry. A copy whose size is not the local
        file's raises `VerificationError`, and the old object stays."""
        assert action.local is not None
        if not same_version(self.remote.stat(action.path), action.remote):
            raise RemoteChanged(f"{action.path}: changed on the remote since it was listed")
        if not same_version(self.remote.stat(old.path), old.remote):
            raise RemoteChanged(f"{old.path}: changed on the remote since it was listed")
        new = self.remote.copy(old.path, action.path)
        if new.size != action.local.size:
            raise VerificationError(
                f"{action.path}: the copy of {old.path} has {new.size} bytes, "
                f"expected {action.local.size}"
            )
        self.remote.delete(old.path, expect=old.remote)
        return new

    def move_local(self, action: Action, done: Done) -> Outcome:
        """Rename the local file at the old path to the new one: the remote renamed it.

        The old file must still be the version the plan saw (the content the remote object
        at the new path has) and the new path must still be free, else `RemoteChanged`;
        nothing is fetched.
        """
        old = action.moved_from
        assert old is not None
        assert old.local is not None
        assert action.remote is not None
        check_name_lengths(action.path)
        self._check_local(old)
        if action.local is None:  # (as a download's: it failed at every run)
            self._clear_empty_folder(self._local(action.path))
        self._check_local(action)
        self._ensure_folder(action.path)
        src, dst = self._local(old.path), self._local(action.path)
        try:
            place_new(src, dst)
        except FileExistsError:
            raise RemoteChanged(f"{action.path}: a local file appeared during the run") from None
        self.durability.renamed(os.path.dirname(src))
        self.durability.renamed(os.path.dirname(dst))
        self._prune_empty(os.path.dirname(src))
        sig = StatSig.from_stat(os.stat(dst))
        digest = old.local.digest
        base = BaseEntry(sig.size, digest, action.remote.fingerprint, sig.mtime_ns)
        cache = CacheRecord(sig, digest, trusted=False)
        return Outcome(action.path, base, cache=cache, moved_from=old.path)

    # --- conflict copies on both sides (two-way sync) ------------------------------------

    def _conflict_name(self, path: RelPath, *, remote: bool, local: bool) -> RelPath:
        """`NAME.conflict-STAMP-HOST.EXT`, free on the sides named (`-HOST-2`... if not)."""
        stamp, host = self._stamp(), self.opts.host

        def taken(name: RelPath) -> bool:
            # Another action may be about to write or forget that path in this run.
            if name in self.planned or (local and os.path.lexists(self._local(name))):
                return True
            return remote and self.remote.stat(name) is not None

        return free_name(
            lambda n: conflict_name(path, stamp, host if n == 1 else f"{host}-{n}"), taken
        )

    def _keep_remote_version(self, action: Action, expect: RemoteEntry, done: Done) -> None:
        """Copy the remote version `expect` of a keep-both conflict aside on the remote (and
        to the same name locally where the copy is shared), or keep the copy an earlier run
        made of that very version and never recorded (it was killed, or its upload failed).

        The copy's name is journaled before the copy is made and forgotten when the
        conflict's outcome is recorded, so a run cut short in between is not followed by a
        second copy of the same version under another name.
        """
        path = action.path
        earlier = self._earlier_copy(path, expect)
        if earlier is not None:
            copy, kept = earlier
            done.extra.append(f"conflict: the remote version of {path} is kept as {copy}")
            # This run's plan takes the copy over where it saw it (fetch it, or adopt it).
            fetch = action.share_copy and copy not in self.planned
            fetch = fetch and not os.path.lexists(self._local(copy))
        else:
            copy = self._conflict_name(path, remote=True, local=action.share_copy)
            if self.opts.copies is not None and expect.fingerprint:
                self.opts.copies.copying(self.remote.key, path, expect.fingerprint, copy)
            kept = self.remote.copy(path, copy)
            done.extra.append(f"conflict: kept the remote version of {path} as {copy}")
            fetch = action.share_copy
        if fetch:
            done.more.append(self._fetch_copy(copy, kept, done))

    def _earlier_copy(
        self, path: RelPath, expect: RemoteEntry
    ) -> tuple[RelPath, RemoteEntry] | None:
        """The copy of version `expect` of `path` that the journal says an earlier run began,
        with its entry, if it is on the remote and holds that version (its size, and its
        digest and mtime where both are known: a copy keeps the mtime, and a folder remote
        knows no digest); else None."""
        if self.opts.copies is None or not expect.fingerprint:
            return None
        copy = self.opts.copies.copy_made(self.remote.key, path, expect.fingerprint)
        if copy is None:
            return None
        kept = self.remote.stat(copy)
        if kept is None or kept.size != expect.size:
            return None
        if kept.digest is not None and expect.digest is not None and kept.digest != expect.digest:
            return None
        if None not in (kept.mtime_ns, expect.mtime_ns) and kept.mtime_ns != expect.mtime_ns:
            return None
        return copy, kept

    def _fetch_copy(self, copy: RelPath, kept: RemoteEntry, done: Done) -> Outcome:
        """Download the remote conflict copy `copy` (the object `kept`) to the same name
        locally, so both sides hold it; its outcome records it as synced."""
        check_name_lengths(copy)
        self._ensure_folder(copy)
        full = self._local(copy)
        digest, size = fetch_new(
            self.remote, copy, full, expect=kept, on_read=lambda n: self.reporter.advance(copy, n)
        )
        done.received += size
        sig = StatSig.from_stat(os.stat(full))
        base = BaseEntry(size, digest, kept.fingerprint, sig.mtime_ns)
        return Outcome(copy, base, cache=CacheRecord(sig, digest, trusted=False))

    def _send_copy(self, copy: RelPath, entry: LocalEntry, done: Done) -> None:
        """Upload the local conflict copy `copy` (the version `entry`) to the same remote
        name; a failure is reported and left for the next sync, which sends it."""
        full = self._local(copy)
        try:
            sig = StatSig.from_stat(os.stat(full))
            entry = LocalEntry(entry.size, sig.mtime_ns, entry.digest, entry.mode)
            sent = send_new(self.remote, copy, full, entry)
        except (FsyncError, OSError) as exc:
            done.extra.append(f"{copy}: not copied to the remote ({_describe(exc)}); next run")
            return
        done.sent += entry.size
        base = BaseEntry(entry.size, entry.digest, sent.fingerprint, sig.mtime_ns)
        cache = CacheRecord(sig, entry.digest, trusted=False)
        done.more.append(Outcome(copy, base, cache=cache, remote=sent))

    # --- downloads -----------------------------------------------------------------------

    def download(self, action: Action, done: Done) -> Outcome:
        """Fetch the remote file into a temporary name, verify it, then rename it into place."""
        assert action.remote is not None
        path = action.path
        check_name_lengths(path)
        full = self._local(path)
        folder = self._ensure_folder(path)
        if self.opts.follow_links and os.path.islink(full):
            full = self._link_target(path, full)
            folder = os.path.dirname(full)
        if action.local is None:
            self._clear_empty_folder(full)
        self._check_local(action)
        self.reporter.file_started(path, action.remote.size)
        copy: RelPath | None = None
        fetched = self.fetcher.fetch(path, folder, action.remote)
        tmp, digest, size, served = fetched.temp, fetched.digest, fetched.size, fetched.served
        if fetched.resumed_at:
            done.extra.append(f"{path}: resumed a partial download at byte {fetched.resumed_at}")
        try:
            done.received = size - fetched.resumed_at
            _check_download(action, digest, size, served)
            if self.opts.verify_full:
                _check_on_disk(path, tmp, digest)
            remote_mode = served.mode if served and served.mode is not None else None
            mode = _download_mode(action, remote_mode or self._remote_mode(action))
            if mode is not None:
                os.chmod(tmp, mode)
            mtime_ns = action.remote.mtime_ns
            if mtime_ns is None and served is not None:
                mtime_ns = served.mtime_ns  # (1970's 0 is a time, not a missing one)
            if mtime_ns is not None:
                os.utime(tmp, ns=(mtime_ns, mtime_ns))
            self._check_local(action)
            dev, ino = file_identity(tmp) or (0, 0)
            fingerprint = action.remote.fingerprint
            self.intend([PublishIntent(path, False, digest, size, fingerprint, None, dev, ino)])
            copy = self._set_local_aside(action, full, done)
        except BaseException:
            self._unpublished(path, tmp)
            raise
        self._place(action, tmp, full, done)
        self.durability.renamed(folder)
        self.fetcher.finish(path)
        if copy is not None and action.share_copy:
            assert action.local is not None
            self._send_copy(copy, action.local, done)
        sig = StatSig.from_stat(os.stat(full))
        base = BaseEntry(size, digest, action.remote.fingerprint, sig.mtime_ns)
        return Outcome(path, base, cache=CacheRecord(sig, digest, trusted=False))

    def _place(self, action: Action, tmp: str, full: str, done: Done) -> None:
        """Rename the verified download `tmp` to `full` without ever losing a local version
        the plan did not see; on failure the download is discarded.

        `_check_local` has just found the planned version there, but a check then a rename
        leaves a window (milliseconds, with transfer threads sharing the interpreter) in
        which an edit or an editor's save would be replaced unseen. `swap_into_place` hands
        back the version it displaced instead: the planned one is deleted, any other kept as
        a conflict copy. (A write through a descriptor opened before the swap still goes to
        the displaced file, as with any tool that replaces files by rename; where the
        platform cannot swap, the check alone stands.)
        """
        path = action.path
        try:
            displaced = swap_into_place(tmp, full)
        except BaseException as exc:
            self._unpublished(path, tmp)
            if isinstance(exc, FileExistsError):
                raise RemoteChanged(f"{path}: a local file appeared during the run") from None
            if isinstance(exc, IsADirectoryError):
                raise RemoteChanged(f"{path}: a local folder of that name is in the way") from None
            raise
        if displaced is None:
            return
        try:  # `tmp` now holds the local version, never to be discarded with a download
            if action.local is not None and _still(displaced, action.local):
                os.unlink(tmp)
                return
            copy = self._conflict_name(path, remote=False, local=True)
            place_new(tmp, self._local(copy))
        except BaseException as exc:
            try:
                back = rename_exchange(tmp, full)  # the local version back under its name
            except OSError:
                back = False
            if not back:
                raise FsyncError(
                    f"{path}: the local version, changed during the run, could not be kept "
                    f"({exc}); it is at {tmp}: rename it before running fsync cleanup"
                ) from exc
            self._unpublished(path, tmp)
            raise
        done.kept_aside = True
        done.extra.append(
            f"conflict: {path} changed here during the run; kept the local version as {copy}"
        )

    def _link_target(self, path: RelPath, link: str) -> str:
        """The file a followed link at `path` leads to: a download writes there, so the link
        stays a link (replaced by a plain file, it no longer showed its target's edits)."""
        target = os.path.realpath(link)
        if not target.startswith(self.real_root + os.sep):
            raise UnsafePathError(f"{path}: the link leads outside the local root")
        if target.startswith(os.path.join(self.real_root, STATE_DIR) + os.sep):
            raise UnsafePathError(f"{path}: the link leads into {STATE_DIR}/, fsync's own state")
        return target

    def _set_local_aside(self, action: Action, full: str, done: Done) -> RelPath | None:
        """Keep the local version a download replaces: as a conflict copy (returned) under
        keep-both, else in the backup dir if there is one."""
        if action.local is None:
            return None
        path = action.path
        if action.keep_copy:
            copy = self._conflict_name(path, remote=action.share_copy, local=True)
            place_new(full, self._local(copy))
            done.extra.append(f"conflict: kept the local version of {path} as {copy}")
            return copy
        if self.opts.backup is not None:
            self.opts.backup.save_local(path, full, action.local)
        return None

    def _remote_mode(self, action: Action) -> int | None:
        """The remote's permission bits for a download: from the listing, or else from the
        object's metadata (one stat) where the backend keeps metadata; None if unknown."""
        assert action.remote is not None
        if action.remote.mode is not None or not self.remote.capabilities.stores_digest:
            return action.remote.mode
        try:
            entry = self.remote.stat(action.path)
        except (OSError, FsyncError):
            return None
        if entry is None or entry.fingerprint != action.remote.fingerprint:
            return None
        return entry.mode

    def _ensure_folder(self, path: RelPath) -> str:
        """Create the parent folders of `path`, refusing any that lead outside the root."""
        folder = os.path.dirname(self._local(path))
        with self._dirs_lock:
            makedirs(folder)
        real = os.path.realpath(folder)
        if real != self.real_root and not real.startswith(self.real_root + os.sep):
            raise UnsafePathError(f"{path}: a parent folder leads outside the local root")
        return folder

    def _clear_empty_folder(self, full: str) -> None:
        """Remove an empty folder where a new file is to land, or one holding only empty
        folders (`rm` of a folder's files leaves its subfolders): it holds no data, and the
        scan, which lists files, could not show it to the planner. One holding anything
        else (or not a folder) stays as it is: `_check_local` then refuses it."""
        with self._dirs_lock, contextlib.suppress(OSError, RecursionError):
            folders = _empty_tree(full)
            for folder in folders or ():
                os.rmdir(folder)  # (one that got a file meanwhile stays: rmdir refuses)

    def _check_local(self, action: Action) -> None:
        """Refuse to overwrite or delete a local file that changed since the scan: by its
        whole stat signature where the scan took it (see `LocalEntry`)."""
        try:
            st = os.stat(self._local(action.path))
        except FileNotFoundError:
            st = None
        seen = action.local
        if st is None or seen is None:
            changed = st is not None or seen is not None
        else:
            changed = (st.st_size, st.st_mtime_ns) != (seen.size, seen.mtime_ns) or (
                seen.ctime_ns != 0 and (st.st_ino, st.st_ctime_ns) != (seen.ino, seen.ctime_ns)
            )
        if changed and st is not None and stat.S_ISDIR(st.st_mode):
            if seen is None:  # (an empty one is gone: `_clear_empty_folder`)
                # The planner refuses a folder holding files it sees (`refuse_clashes`):
                # this one holds what the scan leaves out, which no later run resolves.
                raise FsyncError(
                    f"{action.path}: a local folder of that name is in the way, holding only "
                    "what fsync leaves out (ignored files, links, empty folders) or made "
                    "during the run; move it aside or rename it, then run again"
                )
            raise RemoteChanged(f"{action.path}: a local folder of that name is in the way")
        if changed:
            raise RemoteChanged(f"{action.path}: the local file changed during the run")

    # --- deletes and state-only actions --------------------------------------------------

    def delete_remote(self, action: Action, done: Done) -> Outcome:
        """Delete the remote object if it is still the version the plan saw (keeping it in
        the backup dir first, if there is one)."""
        backup = self.opts.backup
        moved = backup is not None and backup.save_remote(action.path, action.remote, deleting=True)
        if not moved:
            self.remote.delete(action.path, expect=action.remote)
        return Outcome(action.path, None, forget_base=True, remote_deleted=True)

    def delete_local(self, action: Action, done: Done) -> Outcome:
        """Delete the local file if it is still the version the plan saw."""
        self._check_local(action)
        full = self._local(action.path)
        if self.opts.backup is not None and action.local is not None:
            self.opts.backup.save_local(action.path, full, action.local)
        self._remove(action, full)
        self.durability.renamed(os.path.dirname(full))
        self._prune_empty(os.path.dirname(full))
        return Outcome(action.path, None, forget_base=True, drop_cache=True)

    def _remove(self, action: Action, full: str) -> None:
        """Delete `full` if it is still the version the plan saw, by the same means as
        `_place`: renamed aside in one step, checked, and put back if it changed since
        `_check_local`; then the delete is refused. The name aside is a conflict copy's, so
        a version that cannot be put back (another took its name meanwhile, or the disk
        refuses) stays in sight as one, never under a temp name that `cleanup` removes."""
        aside = self._local(self._conflict_name(action.path, remote=False, local=True))
        try:
            os.rename(full, aside)
        except FileNotFoundError:
            return  # already gone (or moved to the backup dir)
        try:
            displaced = os.stat(aside)  # (a followed link: its target, which the scan saw)
        except OSError:
            displaced = None
        if displaced is not None and action.local is not None and _still(displaced, action.local):
            os.unlink(aside)  # (a link: the link, never its target)
            return
        with contextlib.suppress(OSError):  # else it stays beside, as a conflict copy
            place_new(aside, full)
        raise RemoteChanged(f"{action.path}: the local file changed during the run")

    def record(self, action: Action, done: Done) -> Outcome:
        """Both sides hold the same content: remember it as the base."""
        assert action.local is not None
        assert action.remote is not None
        local = action.local
        base = BaseEntry(local.size, local.digest, action.remote.fingerprint, local.mtime_ns)
        return Outcome(action.path, base)

    def forget(self, action: Action, done: Done) -> Outcome:
        """Drop the base entry."""
        return Outcome(action.path, None, forget_base=True)

    def nothing(self, action: Action, done: Done) -> Outcome | None:
        """Leave both sides alone (a kept or unresolved conflict)."""
        return None

    # --- helpers -------------------------------------------------------------------------

    def _local(self, path: RelPath) -> str:
        """The on-disk name of `path`: the scan maps names to NFC, and a disk may hold them
        in another form (NFD, as macOS writes them, or a mix of forms in one name); such a
        file was never sent nor replaced. A name the disk does not hold (a new file) is NFC,
        in its folder's own spelling."""
        full = os.path.join(self.root, *path.split("/"))
        if path.isascii() or os.path.lexists(full):
            return full
        nfd = os.path.join(self.root, *unicodedata.normalize("NFD", path).split("/"))
        if nfd != full and os.path.lexists(nfd):
            return nfd
        folder, _, name = path.rpartition("/")
        parent = self._local(RelPath(folder)) if folder else self.root
        return os.path.join(parent, self._spelled_in(parent, name))

    def _spelled_in(self, folder: str, name: str) -> str:
        """The name in `folder` whose NFC form is `name` (the first in sorted order: the
        scan withheld twins), else `name`: for a name found in neither NFC nor NFD.

        The folder's names not in NFC are listed once a plan: listed for every file, a pull
        of 4,000 new files with accents into one folder took 27 s, not 4 (review). Names
        this run writes are NFC, so what it adds to the folder is found without the list.
        """
        odd = self._odd_names.get(folder)
        if odd is None:
            try:
                listed = os.listdir(folder)
            except OSError:
                return name  # (not kept: the folder may be made later in the run)
            odd = {}
            for other in sorted(listed, reverse=True):
                nfc = unicodedata.normalize("NFC", other)
                if nfc != other:
                    odd[nfc] = other
            self._odd_names[folder] = odd
        return odd.get(name, name)

    def _stamp(self) -> str:
        return self.opts.clock().strftime("%Y%m%d-%H%M%S")

    def _prune_empty(self, folder: str) -> None:
        # Under the folder lock: never between another action's makedirs and its mkdir.
        with self._dirs_lock:
            while os.path.abspath(folder) != self.root:
                try:
                    os.rmdir(folder)
                except OSError:
                    return
                folder = os.path.dirname(folder)


_HANDLERS: dict[ActionKind, Callable[[Worker, Action, Done], Outcome | None]] = {
    ActionKind.UPLOAD: Worker.upload,
    ActionKind.MOVE: Worker.move,
    ActionKind.MOVE_LOCAL: Worker.move_local,
    ActionKind.DOWNLOAD: Worker.download,
    ActionKind.DELETE_REMOTE: Worker.delete_remote,
    ActionKind.DELETE_LOCAL: Worker.delete_local,
    ActionKind.RECORD: Worker.record,
    ActionKind.FORGET: Worker.forget,
    ActionKind.KEEP: Worker.nothing,
    ActionKind.CONFLICT: Worker.nothing,
}


def _still(st: os.stat_result, seen: LocalEntry) -> bool:
    """Whether the file renamed aside (`st`) is the version the scan saw: the rename changed
    its ctime, so size, mtime and inode tell (`_check_local` compared the ctime before)."""
    if not stat.S_ISREG(st.st_mode):
        return False
    same = (st.st_size, st.st_mtime_ns) == (seen.size, seen.mtime_ns)
    return same and seen.ino in (0, st.st_ino)  # (0: the scan did not take it)


def _published(outcome: Outcome | None, entry: RemoteEntry) -> Outcome | None:
    """`outcome` of a staged upload, with the entry its publish left: a rename moves the
    change time a folder remote's fingerprint holds, and a base recorded with the staged
    file's would read as changed by someone else at the next listing."""
    if outcome is None or outcome.remote == entry:
        return outcome
    base = outcome.base
    if base is not None:
        base = dataclasses.replace(base, fingerprint=entry.fingerprint)
    return dataclasses.replace(outcome, base=base, remote=entry)


def _download_mode(action: Action, remote_mode: int | None) -> int | None:
    """The permission bits a downloaded file gets, or None for the default (umask) mode.

    The remote's mode where it keeps one, else the mode of the local file being replaced.
    Never setuid or setgid: those bits came from another machine's owner.
    """
    if remote_mode is not None:
        mode = remote_mode
    elif action.local is not None:
        mode = action.local.mode
    else:
        return None
    return mode & 0o7777 & ~(stat.S_ISUID | stat.S_ISGID)


def _check_on_disk(path: RelPath, tmp: str, digest: str) -> None:
    """`--verify full` for a download: hash the file as the disk holds it, its cached pages
    dropped first (it was fsync'ed, so they are clean), and refuse it if that is not what
    was received: a write lost or garbled below the page cache is never renamed into place."""
    fd = os.open(tmp, os.O_RDONLY)
    try:
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    if hash_file(tmp)[0] != digest:
        raise VerificationError(f"{path}: the file written does not read back as received")


def _check_download(action: Action, digest: str, size: int, served: RemoteEntry | None) -> None:
    """Refuse what does not match the object's stored blake3 or the listing's size and
    blake3: it is never renamed into place.

    Where the read itself vouched for the version's blake3 (the object's metadata, checked
    against the bytes or, where the store's MD5 showed that metadata stale, recomputed),
    that is the word on it: the plan's may be the stale one, which failed every run."""
    assert action.remote is not None
    if served is not None and served.digest is not None and digest != served.digest:
        raise VerificationError(f"{action.path}: content does not match its stored blake3")
    if action.remote.sized and size != action.remote.size:
        raise VerificationError(
            f"{action.path}: received {size} bytes, the listing said {action.remote.size}"
        )
    vouched = served is not None and served.digest is not None
    vouched = vouched and served.fingerprint == action.remote.fingerprint
    if not vouched and action.remote.digest is not None and digest != action.remote.digest:
        raise VerificationError(f"{action.path}: content does not match its recorded blake3")


def _rehashed(full: str) -> tuple[LocalEntry, StatSig]:
    """The local file at `full` as it is now, hashed again, and its stats; `FileChangedError`
    (its message without the path, which the failure is reported under) if it changes
    meanwhile too."""
    try:
        digest, sig = hash_file(full)
    except FileChangedError as exc:
        raise FileChangedError("changed while being uploaded") from exc
    return LocalEntry(sig.size, sig.mtime_ns, digest, sig.mode), sig


@contextlib.contextmanager
def _failure_noted(done: Done) -> Iterator[None]:
    """Turn a failure of one action into its result: a conflict (the destination changed
    since the plan), or an error message; anything else (an interrupt) propagates."""
    try:
        yield
    except RemoteChanged as exc:
        done.raced = str(exc)
    except FileChangedError as exc:
        done.error = f"{exc} (not published; the next run sends it)"
    except (FsyncError, OSError) as exc:
        done.error = _describe(exc)


def _describe(exc: BaseException) -> str:
    """One line for a failure, without a traceback."""
    if isinstance(exc, FsyncError):
        return str(exc)
    if isinstance(exc, PermissionError):
        return f"permission denied ({exc.filename or exc})"
    if isinstance(exc, FileNotFoundError):
        return f"no such file ({exc.filename or exc})"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower() + (f" ({exc.filename})" if exc.filename else "")
    return str(exc) or type(exc).__name__


def _read_umask() -> int:
    # os.umask can only be read by setting it; do it once, before any worker thread exists.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_read_umask()


def _empty_tree(folder: str) -> list[str] | None:
    """The folders of `folder`'s tree, deepest first, if it holds folders alone (links are
    not followed, nor are they folders); else None."""
    if not stat.S_ISDIR(os.lstat(folder).st_mode):
        return None
    found: list[str] = []
    with os.scandir(folder) as entries:
        for entry in entries:
            below = _empty_tree(entry.path) if entry.is_dir(follow_symlinks=False) else None
            if below is None:
                return None
            found += below
    return [*found, folder]
