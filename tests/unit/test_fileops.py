"""`fsync.fileops`: local moves and creations that never replace a file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fsync.fileops import (
    _RENAMEAT2,
    create_exclusive,
    makedirs,
    place_new,
    rename_noreplace,
    swap_into_place,
)


def test_place_new_moves_a_file_into_a_new_folder(tmp_path: Path) -> None:
    src = tmp_path / "a.txt"
    src.write_bytes(b"alpha")
    os.utime(src, ns=(1_000_000_000, 1_000_000_000))
    place_new(str(src), str(tmp_path / "deep" / "er" / "b.txt"))
    assert not src.exists()
    moved = tmp_path / "deep" / "er" / "b.txt"
    assert moved.read_bytes() == b"alpha"
    assert moved.stat().st_mtime_ns == 1_000_000_000


def test_place_new_never_replaces(tmp_path: Path) -> None:
    src, dst = tmp_path / "a.txt", tmp_path / "b.txt"
    src.write_bytes(b"mine")
    dst.write_bytes(b"theirs")
    with pytest.raises(FileExistsError):
        place_new(str(src), str(dst))
    assert (src.read_bytes(), dst.read_bytes()) == (b"mine", b"theirs")


def test_place_new_of_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        place_new(str(tmp_path / "nothing"), str(tmp_path / "b"))


def test_create_exclusive_is_private_and_exclusive(tmp_path: Path) -> None:
    path = tmp_path / "new" / "file"
    os.close(create_exclusive(str(path)))
    assert path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(FileExistsError):
        create_exclusive(str(path))


def test_makedirs_refuses_a_file_in_the_way(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"")
    with pytest.raises(FileExistsError):
        makedirs(str(tmp_path / "f"))


@pytest.mark.skipif(_RENAMEAT2 is None, reason="no renameat2 here")
def test_rename_noreplace_is_one_rename_that_never_replaces(tmp_path: Path) -> None:
    src, dst = tmp_path / "a.txt", tmp_path / "b.txt"
    src.write_bytes(b"mine")
    ino = src.stat().st_ino
    assert rename_noreplace(str(src), str(dst))
    assert (dst.read_bytes(), dst.stat().st_ino, src.exists()) == (b"mine", ino, False)
    src.write_bytes(b"another")
    with pytest.raises(FileExistsError):
        rename_noreplace(str(src), str(dst))
    assert (src.read_bytes(), dst.read_bytes()) == (b"another", b"mine")
    (tmp_path / "folder").mkdir()
    with pytest.raises(FileExistsError):
        rename_noreplace(str(src), str(tmp_path / "folder"))
    with pytest.raises(FileNotFoundError):
        rename_noreplace(str(tmp_path / "nothing"), str(tmp_path / "c.txt"))


@pytest.mark.skipif(_RENAMEAT2 is None, reason="no renameat2 here")
def test_swap_into_place_hands_back_the_displaced_version(tmp_path: Path) -> None:
    """What was at the name, edited after any check of it, is never replaced unseen."""
    new, dst = tmp_path / ".tmp", tmp_path / "f.txt"
    dst.write_bytes(b"edited after the check")
    ino = dst.stat().st_ino
    new.write_bytes(b"downloaded")
    displaced = swap_into_place(str(new), str(dst))
    assert displaced is not None
    assert (displaced.st_ino, displaced.st_size) == (ino, len(b"edited after the check"))
    assert (dst.read_bytes(), new.read_bytes()) == (b"downloaded", b"edited after the check")


@pytest.mark.skipif(_RENAMEAT2 is None, reason="no renameat2 here")
def test_swap_into_place_of_a_free_name_and_of_a_folder(tmp_path: Path) -> None:
    new, dst = tmp_path / ".tmp", tmp_path / "f.txt"
    new.write_bytes(b"downloaded")
    assert swap_into_place(str(new), str(dst)) is None
    assert (dst.read_bytes(), new.exists()) == (b"downloaded", False)
    new.write_bytes(b"again")
    (tmp_path / "d").mkdir()
    with pytest.raises(IsADirectoryError):
        swap_into_place(str(new), str(tmp_path / "d"))
    assert (tmp_path / "d").is_dir()
    assert new.read_bytes() == b"again"
    with pytest.raises(FileNotFoundError):
        swap_into_place(str(tmp_path / "nothing"), str(dst))
    assert dst.read_bytes() == b"downloaded"
