"""Names a local disk cannot hold: case twins and over-long names (pure parts)."""

from __future__ import annotations

from fsync.model import RelPath
from fsync.names import case_collisions, name_limit, too_long, unmappable


def rp(*names: str) -> list[RelPath]:
    return [RelPath(n) for n in names]


def test_no_collisions_among_distinct_names() -> None:
    assert case_collisions(rp("a.txt", "b.txt", "dir/a.txt")) == {}


def test_files_differing_by_case_collide() -> None:
    found = case_collisions(rp("README.md", "readme.md", "other.txt"))
    assert found == {
        RelPath("README.md"): ("README.md", "readme.md"),
        RelPath("readme.md"): ("README.md", "readme.md"),
    }


def test_folders_differing_by_case_collide() -> None:
    found = case_collisions(rp("Docs/a.txt", "docs/b.txt", "x/y"))
    assert set(found) == {"Docs/a.txt", "docs/b.txt"}


def test_unicode_case_folding() -> None:
    # German sharp s folds to "ss"; Greek final sigma to sigma.
    assert set(case_collisions(rp("straße", "STRASSE"))) == {"straße", "STRASSE"}
    assert set(case_collisions(rp("ΟΔΟΣ", "οδος"))) == {"ΟΔΟΣ", "οδος"}


def test_too_long_counts_utf8_bytes() -> None:
    assert too_long(RelPath("a" * 255), 255) is None
    assert too_long(RelPath("ü" * 128), 255) is not None  # 256 bytes
    assert "300 bytes" in (too_long(RelPath(f"dir/{'x' * 300}/f"), 255) or "")


def test_unmappable_reports_only_remote_names_and_case_only_when_asked() -> None:
    remote = rp("A.txt", "a.txt", "y" * 300)
    local = rp("b.txt")
    sensitive = unmappable(remote, local, limit=255, case_insensitive=False)
    assert set(sensitive) == {"y" * 300}
    insensitive = unmappable(remote, local, limit=255, case_insensitive=True)
    assert set(insensitive) == {"A.txt", "a.txt", "y" * 300}
    assert "differs only by case from 'a.txt'" in insensitive[RelPath("A.txt")]


def test_a_remote_file_that_is_also_a_folder_is_unmappable() -> None:
    remote = rp("f", "f/g", "f-x", "d/e/h", "d/e/h/i", "d/k")
    found = unmappable(remote, rp(), limit=255, case_insensitive=False)
    assert set(found) == {"f", "d/e/h"}
    assert "both a file f and files under f/" in found[RelPath("f")]


def test_local_twin_of_a_remote_name_collides() -> None:
    found = unmappable(rp("Photo.JPG"), rp("photo.jpg"), limit=255, case_insensitive=True)
    assert set(found) == {"Photo.JPG", "photo.jpg"}


def test_name_limit_of_a_real_folder(tmp_path) -> None:
    assert 14 <= name_limit(str(tmp_path)) <= 1024
