"""`--backup-dir`: where a version goes just before a run overwrites or deletes it.

`locate` works out, from the URLs alone, how a backup dir relates to the two trees of a run;
`Backup` then keeps versions there as cheaply as the pair allows:

- a remote version, when the backup dir is on the same store as the remote (the same bucket,
  the same local disk, memory): server-side, renamed where the store can (filesystems, for a
  delete) and copied otherwise; when it is a local folder instead, downloaded into it;
- a local version: renamed into a local backup dir, or uploaded to one on the remote's store.

A version keeps its relative path under the backup dir; when that name is taken (an earlier
run kept a version of the same file), a `.YYYYMMDD-HHMMSS` stamp goes before the extension.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from fsync.durability import fsync_folder
from fsync.errors import ConfigError
from fsync.fileops import path_below, place_new
from fsync.model import LocalEntry, RelPath, RemoteEntry
from fsync.paths import stamped_name, to_relpath
from fsync.remote import local_path
from fsync.remote.base import Mover, Remote
from fsync.transfer.copies import fetch_new, free_name, send_new

_SCHEME_ALIASES = {"s3a": "s3", "file": "file"}
_SHARED_ROOT_SCHEMES = frozenset({"file", "memory"})
"""Stores where two trees need no common first segment (a bucket, a host) to be one store."""


@dataclass(frozen=True, slots=True)
class BackupPlace:
    """How a backup dir relates to one run's trees; pure data, from `locate`.

    `local_dir` is set when the backup dir is a local folder. `store_url` is set when it is
    on the remote's store: a tree holding both, in which the remote root is `remote_prefix`
    and the backup dir `backup_prefix` ("" means the store's own root). `excludes` are
    patterns that keep the backup dir out of the sync where it lies inside a synced tree.
    """

    url: str
    local_dir: str | None
    store_url: str | None
    remote_prefix: str
    backup_prefix: str
    excludes: tuple[str, ...]


def locate(backup_url: str, remote_url: str, local_root: str) -> BackupPlace:
    """Where `backup_url` is, seen from a run between `local_root` and `remote_url`.

    Raises `ConfigError` when the backup dir is neither a local folder nor on the remote's
    store, or when it holds (or is) one of the synced trees.
    """
    b_scheme, b_path = _split(backup_url)
    r_scheme, r_path = _split(remote_url)
    root = os.path.abspath(local_root)
    excludes: list[str] = []
    local = b_scheme == "file"
    if local:
        excludes += _inside(b_path, root, backup_url, "the local folder", local=True)
    store_url, r_prefix, b_prefix = None, "", ""
    if b_scheme == r_scheme:
        sep = os.sep if local else "/"
        excludes += _inside(b_path, r_path, backup_url, "the remote", local=local)
        common = _common(b_scheme, b_path, r_path)
        if common is not None:
            store_url = common if b_scheme == "file" else f"{b_scheme}://{common}"
            r_prefix = _relative(r_path, common, sep)
            b_prefix = _relative(b_path, common, sep)
    local_dir = b_path if b_scheme == "file" else None
    if local_dir is None and store_url is None:
        raise ConfigError(
            f"--backup-dir {backup_url} is neither a local folder nor on the same store as "
            f"{remote_url} (give a folder, or a URL beside the remote)"
        )
    return BackupPlace(backup_url, local_dir, store_url, r_prefix, b_prefix, tuple(excludes))


def _split(url: str) -> tuple[str, str]:
    """(scheme, path): an absolute path for local folders, `bucket/key` style otherwise."""
    folder = local_path(url)
    if folder is not None:
        return "file", folder
    scheme, _, rest = url.partition("://")
    return _SCHEME_ALIASES.get(scheme.lower(), scheme.lower()), rest.strip("/")


def _inside(backup: str, tree: str, url: str, what: str, *, local: bool) -> list[str]:
    """The exclude pattern for `backup` inside `tree` (none if outside); `ConfigError` if
    `backup` is `tree` or holds it. Local folders are told apart by what they are, not how
    they are named (`path_below`): a backup dir named through a link to the local folder
    was taken for one beside it, and each run backed the backups up again, a level deeper.
    Keys of a store are names alone (never resolved against the folder fsync runs in)."""
    if local and backup and tree:
        backup, tree = os.path.realpath(backup), os.path.realpath(tree)
        holds = path_below(tree, backup) is not None
        rel = path_below(backup, tree)
    else:
        holds = backup == tree or tree.startswith(backup + "/")
        inside = not tree or backup.startswith(tree + "/")
        rel = backup[len(tree) :].strip("/") if inside else None
    if holds or not backup:
        raise ConfigError(f"--backup-dir {url} holds {what} being synced; put it beside it")
    if rel is None:
        return []
    return ["/" + "".join("\\" + c if c in "\\[]*?!#" else c for c in rel) + "/"]


def _common(scheme: str, a: str, b: str) -> str | None:
    """The deepest tree holding both paths on one store, or None if they are on two."""
    if scheme == "file":
        return os.path.commonpath([a, b])
    left, right = a.split("/"), b.split("/")
    shared: list[str] = []
    for x, y in zip(left, right, strict=False):
        if x != y:
            break
        shared.append(x)
    if not shared and scheme not in _SHARED_ROOT_SCHEMES:
        return None
    return "/".join(shared)


def _relative(path: str, common: str, sep: str) -> str:
    rel = path[len(common) :].strip(sep)
    return rel.replace(sep, "/")


class Backup:
    """Keeps versions in the backup dir of `place` for one run; safe across threads.

    `store` is a remote opened at `place.store_url` (None when the backup dir is not on the
    remote's store); `remote` is the run's remote. Every method either has the version safe
    in the backup dir when it returns, on disk (the caller then replaces or deletes the
    original at once, and a crash must not keep that and lose the copy), or raises, leaving
    the original where it was.
    """

    def __init__(
        self,
        place: BackupPlace,
        remote: Remote,
        store: Remote | None,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.place = place
        self.remote = remote
        self.store = store
        self.clock = clock

    def save_remote(self, path: RelPath, expect: RemoteEntry | None, *, deleting: bool) -> bool:
        """Keep the remote version at `path`; True when it was moved away (nothing to delete).

        Moved only for a delete on a store that renames (`Mover`), and only if it is still
        `expect` (`RemoteChanged` otherwise); else copied, and the caller acts as usual.
        """
        if self.store is not None:
            src = _under(self.place.remote_prefix, path)
            dst = free_name(self._stamped(self.place.backup_prefix, path), self._on_store)
            if deleting and isinstance(self.store, Mover):
                self.store.move(src, dst, expect=expect)  # one rename: never in two places
                return True
            self.store.copy(src, dst)
            self.store.flush()
            return False
        full = self._free_local(path)
        fetch_new(self.remote, path, full, expect=expect)
        fsync_folder(os.path.dirname(full))
        return False

    def save_local(self, path: RelPath, full: str, entry: LocalEntry) -> None:
        """Keep the local file `full` (the version `entry`): renamed into a local backup dir,
        or uploaded to one on the remote's store. `full` may be gone afterwards."""
        if self.place.local_dir is not None:
            kept = self._free_local(path)
            place_new(full, kept)
            fsync_folder(os.path.dirname(kept))
            return
        assert self.store is not None
        dst = free_name(self._stamped(self.place.backup_prefix, path), self._on_store)
        send_new(self.store, dst, full, entry)
        self.store.flush()

    def _free_local(self, path: RelPath) -> str:
        assert self.place.local_dir is not None
        folder = self.place.local_dir
        rel = free_name(
            self._stamped("", path),
            lambda p: os.path.lexists(os.path.join(folder, *p.split("/"))),
        )
        return os.path.join(folder, *rel.split("/"))

    def _on_store(self, path: RelPath) -> bool:
        assert self.store is not None
        return self.store.stat(path) is not None

    def _stamped(self, prefix: str, path: RelPath) -> Callable[[int], RelPath]:
        """Names for the `n`th try: the path itself, then stamped, then stamped and counted."""
        stamp = self.clock().strftime("%Y%m%d-%H%M%S")

        def make(n: int) -> RelPath:
            if n == 1:
                return _under(prefix, path)
            return _under(prefix, stamped_name(path, stamp if n == 2 else f"{stamp}-{n - 1}"))

        return make


def _under(prefix: str, path: RelPath) -> RelPath:
    return to_relpath(f"{prefix}/{path}") if prefix else path
