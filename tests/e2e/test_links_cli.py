"""`--links skip|follow` through the command."""

from __future__ import annotations

from pathlib import Path

from fsynctest.trees import listing, write


def test_links_follow_stays_inside_the_root(fsync, tmp_path: Path) -> None:
    src = tmp_path / "src"
    write(src, {"real.txt": "real"})
    write(tmp_path / "outside", {"secret.txt": "no"})
    (src / "link.txt").symlink_to("real.txt")
    (src / "escape.txt").symlink_to(tmp_path / "outside" / "secret.txt")

    skipped = fsync("push", src, tmp_path / "a")
    assert skipped.returncode == 0, skipped.stderr
    assert listing(tmp_path / "a") == {"real.txt": b"real"}
    assert "skipping symlink link.txt (use --links follow)" in skipped.stderr

    followed = fsync("push", src, tmp_path / "b", "--links", "follow")
    assert followed.returncode == 0, followed.stderr
    assert listing(tmp_path / "b") == {"real.txt": b"real", "link.txt": b"real"}
    assert "fsync: warning: skipping symlink escape.txt: it leads outside the root" in (
        followed.stderr
    )


def test_a_followed_link_whose_target_is_gone_deletes_nothing(fsync, tmp_path: Path) -> None:
    # `docs` -> `archive/docs`: one file synced under two paths. A pull that applies the
    # remote delete of one takes the other's content too; the next push must not take the
    # dangling link for a deleted folder and delete the last copy on the remote.
    local, remote = tmp_path / "local", tmp_path / "remote"
    write(local, {"archive/docs/thesis.txt": "the only thesis", "a.txt": "a", "b.txt": "b"})
    (local / "docs").symlink_to("archive/docs")
    assert fsync("push", local, remote, "--links", "follow", "-q").returncode == 0
    (remote / "archive" / "docs" / "thesis.txt").unlink()
    assert fsync("pull", remote, local, "--links", "follow", "-q").returncode == 0
    pushed = fsync("push", local, remote, "--links", "follow")
    assert pushed.returncode == 1
    assert "fsync: error: docs: the target of this link cannot be read" in pushed.stderr
    assert listing(remote)["docs/thesis.txt"] == b"the only thesis"


def test_links_takes_only_skip_or_follow(fsync, tmp_path: Path) -> None:
    write(tmp_path / "src", {"a": "a"})
    res = fsync("push", tmp_path / "src", tmp_path / "out", "--links", "copy")
    assert res.returncode == 2


def test_a_link_in_a_folder_remote_is_skipped_and_never_replaced(fsync, tmp_path: Path) -> None:
    # Links on the remote, as in the local tree, are skipped with a warning: a run whose
    # only odd entry is a link exits 0. A file sent where a link is fails, and the link,
    # what it leads to (outside the remote), and the local file are all kept.
    local, remote, outside = tmp_path / "local", tmp_path / "remote", tmp_path / "outside"
    write(local, {"kept.txt": "k"})
    write(remote, {"real.txt": "r"})
    write(outside, {"secret.txt": "precious"})
    (remote / "a").symlink_to(outside / "secret.txt")
    (remote / "d").symlink_to(outside, target_is_directory=True)
    skip = "on the remote: it is a symbolic link (fsync neither follows nor replaces it)"

    for args in (("push", local, remote), ("pull", remote, local)):
        run = fsync(*args)
        assert run.returncode == 0, run.stderr
        assert f"fsync: warning: skipping a {skip}" in run.stderr
        assert f"fsync: warning: skipping d {skip}" in run.stderr
    assert listing(local) == {"kept.txt": b"k", "real.txt": b"r"}

    write(local, {"a": "mine", "d/new.txt": "new"})
    pushed = fsync("push", local, remote)
    assert pushed.returncode == 1
    blocked = "is a symbolic link, which fsync neither follows nor replaces"
    assert f"fsync: error: a: not sent: on the remote, a {blocked}" in pushed.stderr
    assert f"fsync: error: d/new.txt: not sent: on the remote, d {blocked}" in pushed.stderr
    pulled = fsync("pull", remote, local)
    assert pulled.returncode == 0, pulled.stderr
    assert listing(outside) == {"secret.txt": b"precious"}
    assert (remote / "a").is_symlink()
    assert (remote / "d").is_symlink()
    assert listing(local) == {"kept.txt": b"k", "real.txt": b"r", "a": b"mine", "d/new.txt": b"new"}
