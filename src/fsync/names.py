"""Names a local filesystem cannot hold: reported before a pull, never mangled.

A remote may hold names that are valid `RelPath`s yet impossible on the local disk: a
segment longer than the filesystem's limit (S3 keys may have 1,024 bytes, ext4 names 255),
or two names that differ only by case on a case-insensitive filesystem (macOS, Windows, a
FAT stick), where downloading both would make one overwrite the other. rclone's answer is to
rename such files on the fly; fsync's is to leave them alone and say so, so the user decides.
`case_collisions` and `too_long` are pure; the two probes ask the filesystem.
"""

from __future__ import annotations

import contextlib
import os
import sys
import unicodedata
from collections import defaultdict
from collections.abc import Iterable

from fsync.model import RelPath
from fsync.paths import MAX_NAME_BYTES, TEMP_PREFIX, TEMP_SUFFIX, temp_name

_TEMP_NAME_BYTES = len(TEMP_PREFIX) + 16 + len(TEMP_SUFFIX)
"""The length of every `temp_name` (16 hex digits)."""


def case_key(path: str) -> str:
    """The form two paths share when a case-insensitive filesystem sees them as one."""
    return unicodedata.normalize("NFC", path.casefold())


def case_collisions(paths: Iterable[RelPath]) -> dict[RelPath, tuple[RelPath, ...]]:
    """Each path that differs only by case from another, mapped to its whole group (sorted).

    Folders count too: `Docs/a` and `docs/b` collide, since `Docs` and `docs` would be one
    folder. Paths without such a twin are absent from the result.
    """
    spellings: dict[str, set[str]] = defaultdict(set)
    members: dict[str, set[RelPath]] = defaultdict(set)
    for path in set(paths):
        parts = path.split("/")
        for depth in range(1, len(parts) + 1):
            prefix = "/".join(parts[:depth])
            key = case_key(prefix)
            spellings[key].add(prefix)
            members[key].add(path)
    out: dict[RelPath, tuple[RelPath, ...]] = {}
    for key, spelled in spellings.items():
        if len(spelled) > 1:
            group = tuple(sorted(members[key]))
            for member in group:
                out.setdefault(member, group)
    return out


def too_long(path: RelPath, limit: int, room: int = sys.maxsize) -> str | None:
    """Why `path` cannot be created where names hold at most `limit` bytes and paths below
    the root `room` (`path_room`), or None. A download is written under a temporary name in
    the file's folder first (`temp_name`): that path counts too."""
    for part in path.split("/"):
        size = len(part.encode("utf-8"))
        if size > limit:
            return f"a name of {size} bytes is longer than the {limit} the local filesystem holds"
    size = len(path.encode("utf-8"))
    name = len(path.rpartition("/")[2].encode("utf-8"))
    if size + max(0, _TEMP_NAME_BYTES - name) > room:
        return (
            f"the path is {size} bytes, too long for the local filesystem below this folder "
            f"(a path there may have {room}, and a download is written under a "
            f"{_TEMP_NAME_BYTES}-byte temporary name in its folder first)"
        )
    return None


def path_room(root: str) -> int:
    """The most bytes a path below `root` may have on its filesystem (Linux: 4,096 for the
    whole, its terminating zero byte and `root/` counted out). Each name within the limit,
    a key 21 folders deep failed to download, and a push --mirror then deleted it."""
    try:
        whole = int(os.pathconf(root, "PC_PATH_MAX"))
    except (OSError, ValueError):
        whole = 4096
    return whole - 1 - len(os.fsencode(os.path.abspath(root))) - 1


def name_limit(folder: str) -> int:
    """The longest name (UTF-8 bytes) the filesystem of `folder` holds; 255 if it won't say."""
    try:
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    except (OSError, ValueError):
        return MAX_NAME_BYTES


def is_case_insensitive(folder: str) -> bool:
    """True if `folder`'s filesystem treats names differing only by case as one.

    Probed by creating a lower-case temporary file and looking for its upper-case name; the
    probe is removed again. An unwritable folder is assumed case-sensitive (nothing would be
    written there anyway).
    """
    name = temp_name()  # lower case: the probe looks for its upper-case twin
    probe = os.path.join(folder, name)
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError:
        return False
    os.close(fd)
    try:
        return os.path.exists(os.path.join(folder, name.upper()))
    finally:
        with contextlib.suppress(OSError):
            os.unlink(probe)


def unmappable(
    remote: Iterable[RelPath],
    local: Iterable[RelPath],
    *,
    limit: int,
    case_insensitive: bool,
    room: int = sys.maxsize,
) -> dict[RelPath, str]:
    """Paths a pull must leave alone, with the reason: too long (a name past `limit`, a
    path past `room`), a file that is also a folder on the remote, or a case collision.

    `remote` and `local` are the paths of both snapshots (a local name colliding by case
    with a remote one is the same file on a case-insensitive disk).
    """
    remote, local = set(remote), set(local)
    # A path this disk holds already fits it (with its temp name: a path near the limit,
    # synced, failed every pull after, and its edits were never sent).
    out = {
        p: why
        for p in remote
        if (why := too_long(p, limit, sys.maxsize if p in local else room)) is not None
    }
    for path in remote & _folders(remote):
        # An object store holds keys `f` and `f/g` side by side; a disk holds one or the
        # other. Both are left alone (a refused path takes what lies below it along).
        out.setdefault(
            path,
            f"the remote holds both a file {path} and files under {path}/, which no "
            "folder can hold; both are left alone (rename one on the remote)",
        )
    if case_insensitive:
        for path, group in case_collisions(remote | set(local)).items():
            others = ", ".join(repr(p) for p in group if p != path)
            out.setdefault(
                path,
                f"differs only by case from {others}; this case-insensitive filesystem "
                "cannot hold both (rename one on the remote)",
            )
    return out


def _folders(paths: Iterable[RelPath]) -> set[str]:
    """Every folder that holds one of `paths` (each ancestor visited once)."""
    folders: set[str] = set()
    for path in paths:
        cut = path.rfind("/")
        while cut > 0 and (folder := path[:cut]) not in folders:
            folders.add(folder)
            cut = folder.rfind("/")
    return folders
