"""`.fsync/config.toml` through the command: defaults, flags that override, bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fsynctest.trees import listing, write


def configure(root: Path, text: str) -> Path:
    path = root / ".fsync" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def src(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    write(root, {"a.txt": "a", "b.log": "log", "dir/c.txt": "c"})
    return root


def test_push_with_no_arguments_in_a_configured_folder(fsync, src: Path, tmp_path: Path) -> None:
    configure(src, 'remote = "../out"\nexclude = ["*.log"]\n')
    res = fsync("push", "--json", cwd=src)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["uploaded"] == 2
    assert listing(tmp_path / "out") == {"a.txt": b"a", "dir/c.txt": b"c"}


def test_push_with_just_local(fsync, src: Path, tmp_path: Path) -> None:
    configure(src, f'remote = "{tmp_path / "out"}"\n')
    res = fsync("push", src, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert set(listing(tmp_path / "out")) == {"a.txt", "b.log", "dir/c.txt"}


def test_a_short_file_url_is_not_taken_from_the_root(fsync, src: Path, tmp_path: Path) -> None:
    """`file:/p` is a URL (RFC 8089's short form), not a path relative to the root."""
    configure(src, f'remote = "file:{tmp_path / "out"}"\n')
    res = fsync("push", src, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert set(listing(tmp_path / "out")) == {"a.txt", "b.log", "dir/c.txt"}
    assert not (src / "file:").exists()


def test_flags_override_the_file(fsync, src: Path, tmp_path: Path) -> None:
    configure(src, 'remote = "../out"\ntransfers = 2\n\n[push]\ndry-run = true\n')
    dry = fsync("push", src, "--json")
    assert json.loads(dry.stdout)["dry_run"] is True
    assert not (tmp_path / "out").exists()
    real = fsync("push", src, tmp_path / "elsewhere", "--json")
    assert real.returncode == 0, real.stderr
    # The REMOTE argument wins over `remote`; [push] dry-run still applies.
    assert json.loads(real.stdout)["dry_run"] is True
    assert not (tmp_path / "elsewhere").exists()


def test_pull_and_verify_read_the_file_too(fsync, src: Path, tmp_path: Path) -> None:
    assert fsync("push", src, tmp_path / "remote").returncode == 0
    back = tmp_path / "back"
    configure(back, 'remote = "../remote"\n')
    pulled = fsync("pull", back)
    assert pulled.returncode == 0, pulled.stderr
    assert listing(back) == listing(src)
    checked = fsync("verify", "--json", cwd=back)
    assert checked.returncode == 0, checked.stderr
    assert json.loads(checked.stdout)["matched"] == 3


def test_explicit_config_file(fsync, src: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "conf" / "photos.toml"
    cfg.parent.mkdir()
    cfg.write_text('remote = "../out"\n[storage-options]\n')
    res = fsync("push", src, "--config", cfg)
    assert res.returncode == 0, res.stderr
    # Relative paths in an explicit file are taken from the file's folder.
    assert (tmp_path / "out" / "a.txt").exists()


def test_no_remote_anywhere_is_a_usage_error(fsync, src: Path) -> None:
    res = fsync("push", src)
    assert res.returncode == 2
    assert "no REMOTE given" in res.stderr


@pytest.mark.parametrize(
    "case",
    [
        ("push", 'remote = "x"\ntransfers = "lots"\n', ":2:", "transfers"),
        ("push", 'remote = "x"\n\nbogus = 1\n', ":3:", "unknown setting 'bogus'"),
        ("push", 'remote = "x\n', ":1:", "invalid TOML"),
        ("push", '[push]\non-conflict = "sometimes"\n', ":2:", "on-conflict"),
        ("push", '[pushh]\nremote = "x"\n', ":1:", "unknown table [pushh]"),
        ("status", '[status]\nremote = "x"\n', ":2:", "unknown setting 'remote'"),
        # Values fsync parses itself, not typer: their errors lacked the file and line.
        ("push", 'remote = "x"\nmax-delete = "150%"\n', ":2:", "invalid --max-delete '150%'"),
        ("push", 'remote = "x"\n[push]\nchunk-size = "1x"\n', ":3:", "invalid size '1x'"),
        ("watch", 'remote = "x"\nbw-limit = "fast"\n', ":2:", "invalid rate 'fast'"),
        # A TOML boolean is a Python int, and a float may be infinite: both were taken.
        ("push", 'remote = "x"\ntransfers = true\n', ":2:", "transfers: true is not a valid"),
        ("pull", 'remote = "x"\ntimeout = false\n', ":2:", "timeout: false is not a valid"),
        ("push", 'remote = "x"\ntimeout = inf\n', ":2:", "less than or equal to 86400"),
    ],
)
def test_invalid_config_exits_2_naming_file_and_line(
    fsync, src: Path, case: tuple[str, str, str, str]
) -> None:
    command, text, where, what = case
    path = configure(src, text)
    res = fsync(command, src)
    assert res.returncode == 2
    assert res.stderr.startswith(f"fsync: error: {path}{where}"), res.stderr
    assert what in res.stderr
    assert "Traceback" not in res.stderr


def test_settings_for_other_commands_are_ignored(fsync, src: Path, tmp_path: Path) -> None:
    # `remote` and `transfers` mean nothing to status; they must not break it.
    configure(src, 'remote = "../out"\ntransfers = 3\n')
    assert fsync("push", src).returncode == 0
    res = fsync("status", "--json", cwd=src)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["runs"][0]["exit_code"] == 0


def test_pull_never_defaults_to_an_unconfigured_current_folder(fsync, tmp_path: Path) -> None:
    write(tmp_path / "remote", {"a.txt": "a"})
    here = tmp_path / "here"
    here.mkdir()
    res = fsync("pull", tmp_path / "remote", cwd=here)
    assert res.returncode == 2
    assert "no LOCAL given" in res.stderr
    assert list(here.iterdir()) == []
