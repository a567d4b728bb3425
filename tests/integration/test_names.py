"""Path mapping on pull and push: unsafe keys, long names, case twins, links, permission bits."""

from __future__ import annotations

import os
import stat
import unicodedata
import uuid
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pytest

from fsync import app, names
from fsync.config import SyncOptions, VerifyOptions
from fsync.model import Direction, RunResult
from fsync.names import is_case_insensitive
from fsync.progress import NullReporter
from fsync.verify import verify
from fsynctest.reporting import Warnings
from fsynctest.trees import listing, write

ODD_KEYS = ["../evil", "/abs", "a/../../b", "x" * 300]


def sync(local: Path, url: str, direction: Direction, **kw: object) -> RunResult:
    opts = SyncOptions(local_root=str(local), remote_url=url, direction=direction, **kw)  # type: ignore[arg-type]
    return app.run(opts, NullReporter())


@pytest.fixture
def memory_root() -> Iterator[str]:
    """A fresh memory:// root, removed afterwards."""
    root = f"/fsync-names-{uuid.uuid4().hex}"
    yield root
    fs = fsspec.filesystem("memory")
    for key in [k for k in fs.store if k.startswith(root + "/")]:
        del fs.store[key]


def tree_outside(tmp_path: Path) -> set[str]:
    """Every name under tmp_path's parent except tmp_path itself, and the names at `/`."""
    names = {str(p) for p in tmp_path.parent.iterdir() if p != tmp_path}
    return names | {str(p) for p in Path("/").iterdir()}


def test_pull_refuses_keys_that_escape_and_names_too_long(memory_root: str, tmp_path: Path) -> None:
    fs = fsspec.filesystem("memory")
    for key in [*ODD_KEYS, "ok.txt", "a/fine.txt"]:
        fs.pipe(f"{memory_root}/{key}", b"payload")
    assert {f"{memory_root}/{k}" for k in ODD_KEYS} <= set(fs.find(memory_root))
    dst = tmp_path / "inside" / "dst"
    dst.parent.mkdir()
    before = tree_outside(tmp_path)

    result = sync(dst, f"memory://{memory_root}", Direction.PULL)

    assert listing(dst) == {"ok.txt": b"payload", "a/fine.txt": b"payload"}
    assert set(os.listdir(tmp_path / "inside")) == {"dst"}
    assert set(os.listdir(tmp_path)) == {"inside"}
    assert tree_outside(tmp_path) == before
    assert app.exit_status(result) == 1
    reported = {e.path: e.error for e in result.errors}
    assert set(reported) == set(ODD_KEYS)
    assert "'..'" in reported["../evil"]
    assert "'..'" in reported["a/../../b"]
    assert "absolute" in reported["/abs"]
    assert "300 bytes" in reported["x" * 300]
    assert result.downloaded == 2


def test_a_key_too_deep_for_the_disk_is_left_alone_by_a_pull_and_a_mirror_push(
    memory_root: str, tmp_path: Path
) -> None:
    """Each of its names within the limit, a key 21 folders of 200 bytes deep passes the
    4,096 bytes a path may have here: the pull failed it with "file name too long", left a
    chain of empty folders, and a push --mirror then deleted it, as a file not here. Both
    leave it alone now, the pull saying why."""
    deep = "/".join(["d" * 200] * 21) + "/precious.txt"
    fs = fsspec.filesystem("memory")
    for key in (deep, "ok.txt"):
        fs.pipe(f"{memory_root}/{key}", b"payload")
    dst, url = tmp_path / "dst", f"memory://{memory_root}"

    pulled = sync(dst, url, Direction.PULL)
    pushed = sync(dst, url, Direction.PUSH, mirror=True)

    assert [(e.path, "too long for the local filesystem" in e.error) for e in pulled.errors] == [
        (deep, True)
    ]
    assert listing(dst) == {"ok.txt": b"payload"}
    assert (pushed.deleted, pushed.failed) == (0, 0)
    assert fs.cat(f"{memory_root}/{deep}") == b"payload"


def test_a_file_here_near_the_path_limit_still_syncs(memory_root: str, tmp_path: Path) -> None:
    """A path this disk holds fits it: counted with a download's temp name, a short name at
    the end of a path near the limit was refused as too long by every pull after its first
    sync (review), and its edits were never sent."""
    dst, url = tmp_path / "dst", f"memory://{memory_root}"
    room = names.path_room(str(dst))
    depth = room - 10 - len("/a")
    folders = "/".join("d" * 200 for _ in range(depth // 201))
    folders += "/" + "e" * (depth - len(folders) - 1)
    deep = f"{folders}/a"
    assert len(deep) <= room < len(deep) + len(".fsync-0123456789abcdef.tmp") - 1
    write(dst, {deep: "here"})
    assert sync(dst, url, Direction.PUSH).uploaded == 1
    write(dst, {deep: "edited"})
    for direction in (Direction.PULL, Direction.SYNC):
        result = sync(dst, url, direction)
        assert (result.failed, result.errors) == (0, [])
    assert fsspec.filesystem("memory").cat(f"{memory_root}/{deep}") == b"edited"


def test_a_key_that_is_also_a_folder_is_reported_not_a_conflict(
    memory_root: str, tmp_path: Path
) -> None:
    """Keys `f` and `f/g` cannot both become local files: the pull used to create folder
    `f` for `f/g`, then call the download of `f` a conflict with a local change (exit 3)."""
    fs = fsspec.filesystem("memory")
    for key in ("f/g", "f", "ok"):  # (a memory:// folder takes no file of its name after it)
        fs.pipe(f"{memory_root}/{key}", key.encode())

    for _ in range(2):  # and the same on the next run: nothing half done
        result = sync(tmp_path / "dst", f"memory://{memory_root}", Direction.PULL)
        assert app.exit_status(result) == 1
        assert (result.unresolved, result.conflicts) == (0, 0)
        (error,) = result.errors
        assert error.path == "f"
        assert "both a file f and files under f/" in error.error
        assert listing(tmp_path / "dst") == {"ok": b"ok"}


def test_pull_reports_non_nfc_names(memory_root: str, tmp_path: Path) -> None:
    fs = fsspec.filesystem("memory")
    fs.pipe(f"{memory_root}/cafe\u0301.txt", b"decomposed")
    result = sync(tmp_path / "dst", f"memory://{memory_root}", Direction.PULL)
    assert listing(tmp_path / "dst") == {}
    (error,) = result.errors
    assert "NFC" in error.error


def test_refused_keys_do_not_fail_a_push(memory_root: str, tmp_path: Path) -> None:
    fs = fsspec.filesystem("memory")
    fs.pipe(f"{memory_root}/../evil", b"x")
    write(tmp_path / "src", {"a.txt": "a"})
    reporter = Warnings()
    opts = SyncOptions(
        local_root=str(tmp_path / "src"),
        remote_url=f"memory://{memory_root}",
        direction=Direction.PUSH,
    )
    result = app.run(opts, reporter)
    assert (result.uploaded, result.failed) == (1, 0)
    assert any("remote key ../evil cannot be mapped" in line for line in reporter.lines)


def test_a_remote_name_too_long_for_this_disk_does_not_fail_a_push(
    memory_root: str, tmp_path: Path
) -> None:
    # Only a run that writes locally asks whether this disk can hold the remote's names.
    fs = fsspec.filesystem("memory")
    fs.pipe(f"{memory_root}/{'x' * 300}", b"x")
    write(tmp_path / "src", {"a.txt": "a"})
    result = sync(tmp_path / "src", f"memory://{memory_root}", Direction.PUSH)
    assert (result.uploaded, result.failed, result.errors) == (1, 0, [])


def test_a_push_marks_the_remote_names_a_pull_refuses(memory_root: str, tmp_path: Path) -> None:
    # They are not changes left for a pull: it refuses them. (A file and a folder of one
    # name, which memory:// cannot hold, are in tests/e2e/test_foreign_objects.py.)
    fs = fsspec.filesystem("memory")
    long, folder = "x" * 300, "y" * 300
    for key in (long, f"{folder}/in.txt", "ok.txt"):
        fs.pipe(f"{memory_root}/{key}", b"theirs")
    write(tmp_path / "src", {"mine.txt": "m"})
    result = sync(tmp_path / "src", f"memory://{memory_root}", Direction.PUSH)
    assert (result.uploaded, result.failed) == (1, 0)
    why = "a name of 300 bytes is longer than the 255 the local filesystem holds"
    assert {n.path: (n.unmappable, n.reason) for n in result.notices if n.unmappable} == {
        long: (True, why),
        f"{folder}/in.txt": (True, why),
    }
    assert [n.path for n in result.notices if not n.unmappable] == ["ok.txt"]


def test_a_mirror_push_leaves_the_remote_names_a_pull_refuses_alone(
    memory_root: str, tmp_path: Path
) -> None:
    """`push --mirror` deleted a key too long for this disk, which the plain push before it
    said it left alone, while keys mapping to no name at all (`a//b`, NFD) were never
    deleted. It leaves all of them alone, noticed as a plain push notices them; the rest
    is mirrored."""
    fs = fsspec.filesystem("memory")
    long, folder = "x" * 300, "y" * 300
    nfd = unicodedata.normalize("NFD", "cafe\u0301.txt")
    for key in (long, f"{folder}/in.txt", "a//b", nfd, "extra.txt"):
        fs.pipe(f"{memory_root}/{key}", b"theirs")
    write(tmp_path / "src", {"mine.txt": "m"})
    url = f"memory://{memory_root}"
    result = sync(tmp_path / "src", url, Direction.PUSH, mirror=True, force=True)
    assert (result.uploaded, result.deleted, result.failed) == (1, 1, 0)
    why = "a name of 300 bytes is longer than the 255 the local filesystem holds"
    assert {n.path: (n.unmappable, n.reason) for n in result.notices} == {
        long: (True, why),
        f"{folder}/in.txt": (True, why),
    }
    left = {k.removeprefix(f"{memory_root}/") for k in fs.find(memory_root)}
    assert left == {long, f"{folder}/in.txt", "a//b", nfd, "mine.txt"}


# Names as a disk may hold them that are not NFC: decomposed (macOS writes names so; copied
# to Linux they stay so), and a mix of both forms in one name (a name edited on two systems),
# which is neither NFC nor NFD: found by neither spelling, it was "vanished" on every push.
NOT_NFC = {"nfd": unicodedata.normalize("NFD", "r\u00e9sum\u00e9"), "mixed": "r\u00e9sume\u0301"}


@pytest.mark.parametrize("form", NOT_NFC)
def test_a_local_name_not_in_nfc_is_sent_and_updated(
    memory_root: str, tmp_path: Path, form: str
) -> None:
    # The remote key is NFC, and the local file keeps its own form when a pull replaces it.
    local = tmp_path / "local"
    spelled = f"{NOT_NFC[form]}.txt"
    nfc = unicodedata.normalize("NFC", spelled)
    assert nfc != spelled
    write(local, {spelled: "v1"})
    url = f"memory://{memory_root}"
    first = sync(local, url, Direction.PUSH)
    assert (first.uploaded, first.failed) == (1, 0)
    memory = fsspec.filesystem("memory")
    assert memory.cat(f"{memory_root}/{nfc}") == b"v1"
    assert sync(local, url, Direction.PUSH).uploaded == 0
    memory.pipe(f"{memory_root}/{nfc}", b"v2, theirs")
    pulled = sync(local, url, Direction.PULL)
    assert (pulled.downloaded, pulled.conflicts) == (1, 0)
    assert listing(local) == {spelled: b"v2, theirs"}
    (local / spelled).write_bytes(b"v3, mine")
    pushed = sync(local, url, Direction.PUSH)
    assert (pushed.uploaded, pushed.failed) == (1, 0)
    assert memory.cat(f"{memory_root}/{nfc}") == b"v3, mine"


@pytest.mark.parametrize("form", NOT_NFC)
def test_a_pull_into_a_folder_named_not_in_nfc_keeps_one_folder(
    memory_root: str, tmp_path: Path, form: str
) -> None:
    local = tmp_path / "local"
    nfd = NOT_NFC[form]
    nfc = unicodedata.normalize("NFC", nfd)
    write(local, {f"{nfd}/a.txt": "a", "x.txt": "x", "y.txt": "y"})
    url = f"memory://{memory_root}"
    assert sync(local, url, Direction.PUSH).uploaded == 3
    fsspec.filesystem("memory").pipe(f"{memory_root}/{nfc}/b.txt", b"b, theirs")
    assert sync(local, url, Direction.PULL).downloaded == 1
    assert sorted(os.listdir(local)) == sorted([nfd, "x.txt", "y.txt", ".fsync"])
    again = sync(local, url, Direction.PUSH)
    assert (again.deleted, again.uploaded, again.failed) == (0, 0, 0)


NFC_NAME, NFD_NAME = (unicodedata.normalize(form, "cafe\u0301.txt") for form in ("NFC", "NFD"))


def test_two_local_names_of_one_nfc_form_are_left_alone_on_both_sides(
    memory_root: str, tmp_path: Path
) -> None:
    """`café` written composed and decomposed in one folder: one path for every remote.
    Neither is sent (which one went depended on the listing's order), the remote copy of
    the path is not taken for changed or deleted, and the next runs do the same."""
    local, url = tmp_path / "local", f"memory://{memory_root}"
    write(local, {NFC_NAME: "synced", "other.txt": "o"})
    assert sync(local, url, Direction.PUSH).uploaded == 2
    write(local, {NFD_NAME: "a second file of that name"})
    for direction in (Direction.PUSH, Direction.SYNC, Direction.PUSH):
        result = sync(local, url, direction)
        assert (result.uploaded, result.downloaded, result.deleted) == (0, 0, 0)
        assert (result.conflicts, result.failed) == (0, 2)  # two files withheld
        assert all("same NFC form" in e.error for e in result.errors)
    assert fsspec.filesystem("memory").cat(f"{memory_root}/{NFC_NAME}") == b"synced"
    checked = verify(VerifyOptions(str(local), url), NullReporter())
    assert (checked.missing, checked.extra, checked.different) == ([], [], [])
    assert [e.path for e in checked.errors] == [NFC_NAME, NFC_NAME]
    assert listing(local) == {
        NFC_NAME: b"synced",
        NFD_NAME: b"a second file of that name",
        "other.txt": b"o",
    }


def test_a_key_written_decomposed_keeps_a_pull_off_its_nfc_twin(
    memory_root: str, tmp_path: Path
) -> None:
    # Another tool replaces the synced key with its NFD spelling (macOS writes names so):
    # the key cannot be addressed, and the synced NFC file must not be taken for deleted.
    local, url = tmp_path / "local", f"memory://{memory_root}"
    write(local, {NFC_NAME: "v1", "other.txt": "o"})
    assert sync(local, url, Direction.PUSH).uploaded == 2
    fs = fsspec.filesystem("memory")
    fs.rm(f"{memory_root}/{NFC_NAME}")
    fs.pipe(f"{memory_root}/{NFD_NAME}", b"v2, from a mac")
    for _ in range(2):  # the second run too: nothing was recorded as gone
        result = sync(local, url, Direction.PULL)
        assert (result.deleted, result.downloaded, result.failed) == (0, 0, 1)
        assert listing(local) == {NFC_NAME: b"v1", "other.txt": b"o"}
        (error,) = result.errors
        assert error.path == NFD_NAME
        assert "NFC" in error.error
        assert "left alone" in error.error
    assert fs.cat(f"{memory_root}/{NFD_NAME}") == b"v2, from a mac"


def test_a_push_never_sends_a_second_key_beside_a_decomposed_one(
    memory_root: str, tmp_path: Path
) -> None:
    local, url = tmp_path / "local", f"memory://{memory_root}"
    fs = fsspec.filesystem("memory")
    fs.pipe(f"{memory_root}/{NFD_NAME}", b"theirs")
    write(local, {NFC_NAME: "mine", "other.txt": "o"})
    reporter = Warnings()
    opts = SyncOptions(local_root=str(local), remote_url=url, direction=Direction.PUSH)
    result = app.run(opts, reporter)
    assert (result.uploaded, result.failed) == (1, 1)
    (error,) = result.errors
    assert (error.path, "not sent") == (NFC_NAME, error.error[: len("not sent")])
    assert any("left alone" in line for line in reporter.lines)
    assert sorted(k.rpartition("/")[2] for k in fs.find(memory_root)) == [NFD_NAME, "other.txt"]
    assert listing(local) == {NFC_NAME: b"mine", "other.txt": b"o"}


def test_a_folder_written_decomposed_gets_no_second_spelling_beside_it(
    memory_root: str, tmp_path: Path
) -> None:
    # The remote folder's name is NFD: a new local file in the NFC folder would make a
    # second folder that looks the same; a remote file's NFD name keeps the NFC folder out.
    local, url = tmp_path / "local", f"memory://{memory_root}"
    folder = NFC_NAME.removesuffix(".txt")
    fs = fsspec.filesystem("memory")
    fs.pipe(f"{memory_root}/{NFD_NAME.removesuffix('.txt')}/x.txt", b"theirs")
    fs.pipe(f"{memory_root}/re\u0301sume\u0301", b"a file")
    write(local, {f"{folder}/new.txt": "n", "résumé/a.txt": "a", "résumé/b.txt": "b", "o": "o"})
    result = sync(local, url, Direction.PUSH)
    assert (result.uploaded, result.failed) == (1, 3)
    assert sorted(e.path for e in result.errors) == sorted(
        [f"{folder}/new.txt", "résumé/a.txt", "résumé/b.txt"]
    )
    assert sorted(fs.find(memory_root)) == sorted(
        f"{memory_root}/{k}"
        for k in [f"{NFD_NAME.removesuffix('.txt')}/x.txt", "re\u0301sume\u0301", "o"]
    )


def test_verify_passes_over_a_key_whose_nfc_name_is_excluded(
    memory_root: str, tmp_path: Path
) -> None:
    local, url = tmp_path / "local", f"memory://{memory_root}"
    write(local, {"ok.txt": "ok"})
    fs = fsspec.filesystem("memory")
    fs.pipe(f"{memory_root}/ok.txt", b"ok")
    fs.pipe(f"{memory_root}/{NFD_NAME}", b"theirs")
    opts = VerifyOptions(local_root=str(local), remote_url=url)
    assert [e.path for e in verify(opts, NullReporter()).errors] == [NFD_NAME]
    excluded = VerifyOptions(local_root=str(local), remote_url=url, excludes=(NFC_NAME,))
    assert verify(excluded, NullReporter()).ok


def test_an_ignored_nfc_twin_is_no_error(memory_root: str, tmp_path: Path) -> None:
    local, url = tmp_path / "local", f"memory://{memory_root}"
    fs = fsspec.filesystem("memory")
    fs.pipe(f"{memory_root}/{NFD_NAME}", b"theirs")
    fs.pipe(f"{memory_root}/ok.txt", b"ok")
    for direction in (Direction.PULL, Direction.PUSH):
        result = sync(local, url, direction, excludes=(NFC_NAME,))
        assert (result.failed, result.errors) == (0, [])
    assert listing(local) == {"ok.txt": b"ok"}


def test_case_twins_are_reported_not_merged(memory_root: str, tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    dst.mkdir()
    (dst / ".fsync").mkdir()
    if not is_case_insensitive(str(dst / ".fsync")):
        pytest.skip("the test folder's filesystem is case-sensitive: both names fit")
    fs = fsspec.filesystem("memory")
    fs.pipe(f"{memory_root}/README.md", b"upper")
    fs.pipe(f"{memory_root}/readme.md", b"lower")
    fs.pipe(f"{memory_root}/other.txt", b"other")
    result = sync(dst, f"memory://{memory_root}", Direction.PULL)
    assert listing(dst) == {"other.txt": b"other"}
    assert {e.path for e in result.errors} == {"README.md", "readme.md"}


def test_case_twins_both_arrive_on_a_case_sensitive_disk(memory_root: str, tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    (dst / ".fsync").mkdir(parents=True)
    if is_case_insensitive(str(dst / ".fsync")):
        pytest.skip("the test folder's filesystem is case-insensitive")
    fs = fsspec.filesystem("memory")
    fs.pipe(f"{memory_root}/README.md", b"upper")
    fs.pipe(f"{memory_root}/readme.md", b"lower")
    result = sync(dst, f"memory://{memory_root}", Direction.PULL)
    assert result.failed == 0
    assert listing(dst) == {"README.md": b"upper", "readme.md": b"lower"}


# --- links ---------------------------------------------------------------------------------


def linked_tree(tmp_path: Path) -> Path:
    """src/ with a file, a link to it, a link to a folder inside, and links leading outside."""
    src = tmp_path / "src"
    write(src, {"real.txt": "real", "dir/inner.txt": "inner"})
    write(tmp_path / "outside", {"secret.txt": "not yours"})
    (src / "link.txt").symlink_to("real.txt")
    (src / "dirlink").symlink_to("dir", target_is_directory=True)
    (src / "escape.txt").symlink_to(tmp_path / "outside" / "secret.txt")
    (src / "escape-dir").symlink_to(tmp_path / "outside", target_is_directory=True)
    return src


def test_links_are_skipped_by_default(tmp_path: Path) -> None:
    src = linked_tree(tmp_path)
    reporter = Warnings()
    opts = SyncOptions(
        local_root=str(src), remote_url=str(tmp_path / "out"), direction=Direction.PUSH
    )
    app.run(opts, reporter)
    assert listing(tmp_path / "out") == {"real.txt": b"real", "dir/inner.txt": b"inner"}
    assert sum("symlink" in line for line in reporter.lines) == 4


def test_followed_links_never_leave_the_root(tmp_path: Path) -> None:
    src = linked_tree(tmp_path)
    reporter = Warnings()
    opts = SyncOptions(
        local_root=str(src),
        remote_url=str(tmp_path / "out"),
        direction=Direction.PUSH,
        follow_links=True,
    )
    result = app.run(opts, reporter)
    assert result.failed == 0
    assert listing(tmp_path / "out") == {
        "real.txt": b"real",
        "link.txt": b"real",
        "dir/inner.txt": b"inner",
        "dirlink/inner.txt": b"inner",
    }
    outside = [line for line in reporter.lines if "leads outside the root" in line]
    assert len(outside) == 2


def test_a_pull_writes_through_a_followed_link_and_keeps_it(tmp_path: Path) -> None:
    """With `--links follow` a link is its target's other name: a remote edit of the link's
    path goes to the target (replaced by a plain file, the link no longer showed the
    target's edits), and a remote delete of it removes the link, not the target."""
    local, remote = tmp_path / "local", tmp_path / "remote"
    write(local, {"a.txt": "a", "b.txt": "b", "c.txt": "c", "d.txt": "d"})
    (local / "link.txt").symlink_to("a.txt")
    (local / "other-link.txt").symlink_to("b.txt")
    assert sync(local, str(remote), Direction.PUSH, follow_links=True).uploaded == 6
    (remote / "link.txt").write_text("edited through the link")
    (remote / "other-link.txt").unlink()
    result = sync(local, str(remote), Direction.PULL, follow_links=True)
    assert (result.downloaded, result.deleted, result.failed) == (1, 1, 0), result.errors
    assert os.readlink(local / "link.txt") == "a.txt"
    assert (local / "a.txt").read_text() == "edited through the link"
    assert not (local / "other-link.txt").is_symlink()
    assert not (local / "other-link.txt").exists()
    assert (local / "b.txt").read_text() == "b"


def test_links_into_the_state_folder_are_never_followed(tmp_path: Path) -> None:
    """Pushed, such a link published the manifest; pulled through, a remote wrote the local
    config (its `remote =`) and replaced the lock of the very run."""
    local, remote = tmp_path / "local", tmp_path / "remote"
    write(local, {"a.txt": "a", ".fsync/config.toml": ""})
    (local / "cfg").symlink_to(".fsync/config.toml")
    (local / "lk").symlink_to(".fsync")
    pushed = sync(local, str(remote), Direction.PUSH, follow_links=True)
    assert (pushed.uploaded, pushed.failed) == (1, 0)
    assert listing(remote) == {"a.txt": b"a"}
    write(remote, {"cfg": 'remote = "/etc"'})
    pulled = sync(local, str(remote), Direction.PULL, follow_links=True)
    assert pulled.downloaded == 0
    assert (local / ".fsync" / "config.toml").read_text() == ""
    assert os.readlink(local / "cfg") == ".fsync/config.toml"


# --- permission bits -----------------------------------------------------------------------


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_modes_round_trip_through_a_filesystem_remote(tmp_path: Path) -> None:
    src, remote, back = tmp_path / "src", tmp_path / "remote", tmp_path / "back"
    write(src, {"run.sh": "#!/bin/sh\n", "private.txt": "p", "plain.txt": "x"})
    (src / "run.sh").chmod(0o755)
    (src / "private.txt").chmod(0o600)
    (src / "plain.txt").chmod(0o644)
    assert sync(src, f"file://{remote}", Direction.PUSH).uploaded == 3
    assert mode_of(remote / "run.sh") == 0o755
    assert mode_of(remote / "private.txt") == 0o600
    (remote / "plain.txt").chmod(0o640)
    assert sync(back, f"file://{remote}", Direction.PULL).downloaded == 3
    assert mode_of(back / "run.sh") == 0o755
    assert mode_of(back / "private.txt") == 0o600
    assert mode_of(back / "plain.txt") == 0o640


def test_setuid_and_setgid_are_never_restored(tmp_path: Path) -> None:
    src, remote, back = tmp_path / "src", tmp_path / "remote", tmp_path / "back"
    write(src, {"tool": "binary"})
    (src / "tool").chmod(0o6755)
    if mode_of(src / "tool") & (stat.S_ISUID | stat.S_ISGID) == 0:
        pytest.skip("this filesystem drops setuid/setgid bits")
    sync(src, str(remote), Direction.PUSH)
    assert mode_of(remote / "tool") == 0o755
    (remote / "tool").chmod(0o4755)
    (remote / "tool").write_text("binary, again")
    sync(back, str(remote), Direction.PULL)
    assert mode_of(back / "tool") == 0o755


def test_update_without_a_remote_mode_keeps_the_local_mode(
    memory_root: str, tmp_path: Path
) -> None:
    url = f"memory://{memory_root}"
    a, b = tmp_path / "a", tmp_path / "b"
    write(a, {"script.sh": "v1"})
    sync(a, url, Direction.PUSH)
    sync(b, url, Direction.PULL)
    (b / "script.sh").chmod(0o750)
    write(a, {"script.sh": "v2, longer"})
    sync(a, url, Direction.PUSH)
    assert sync(b, url, Direction.PULL).downloaded == 1
    assert (b / "script.sh").read_text() == "v2, longer"
    assert mode_of(b / "script.sh") == 0o750


@pytest.mark.usefixtures("aws_env")
def test_modes_round_trip_through_s3_metadata(s3_bucket, tmp_path: Path) -> None:
    server, bucket = s3_bucket
    url = f"s3://{bucket}/modes"
    src, back = tmp_path / "src", tmp_path / "back"
    write(src, {"run.sh": "#!/bin/sh\n", "private.txt": "p"})
    (src / "run.sh").chmod(0o750)
    (src / "private.txt").chmod(0o600)
    options = server.storage_options()
    assert sync(src, url, Direction.PUSH, storage_options=options).uploaded == 2
    assert sync(back, url, Direction.PULL, storage_options=options).downloaded == 2
    assert mode_of(back / "run.sh") == 0o750
    assert mode_of(back / "private.txt") == 0o600


@pytest.mark.usefixtures("aws_env")
def test_s3_pull_refuses_escaping_keys(s3_bucket, tmp_path: Path) -> None:
    server, bucket = s3_bucket
    client = server.boto3_client()
    try:
        for key in [*ODD_KEYS, "ok.txt"]:
            client.put_object(Bucket=bucket, Key=f"data/{key}", Body=b"payload")
        stored = {o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]}
    finally:
        client.close()
    expected = {f"data/{k}" for k in [*ODD_KEYS, "ok.txt"]}
    if stored != expected:
        pytest.skip(f"{server.name} normalised the keys on upload: {sorted(stored)}")
    dst = tmp_path / "inside" / "dst"
    dst.parent.mkdir()
    before = tree_outside(tmp_path)
    result = sync(
        dst, f"s3://{bucket}/data", Direction.PULL, storage_options=server.storage_options()
    )
    assert listing(dst) == {"ok.txt": b"payload"}
    assert set(os.listdir(tmp_path / "inside")) == {"dst"}
    assert set(os.listdir(tmp_path)) == {"inside"}
    assert tree_outside(tmp_path) == before
    assert {e.path for e in result.errors} == set(ODD_KEYS)
