"""Loading `.fsync/config.toml`: its shape, and errors that name the file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from fsync.config import CONFIG_FILE, find_config, load_config
from fsync.errors import ConfigError, ExitCode


def write_config(root: Path, text: str) -> Path:
    path = root / CONFIG_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_find_config(tmp_path: Path) -> None:
    assert find_config(str(tmp_path)) is None
    path = write_config(tmp_path, 'remote = "x"\n')
    assert find_config(str(tmp_path)) == str(path)


def test_common_and_command_settings(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        """
# defaults for every command
remote = "s3://bucket/photos"
exclude = ["*.tmp", "build/"]
transfers = 16

[storage-options]
anon = false
profile = "backup"

[push]
on-conflict = "newer"
transfers = 4

[push.storage-options]
requester_pays = true
""",
    )
    config = load_config(str(path))
    push = config.settings_for("push")
    assert push["remote"] == ("s3://bucket/photos", None)
    assert push["exclude"] == (["*.tmp", "build/"], None)
    assert push["transfers"] == (4, "push")
    assert push["on_conflict"] == ("newer", "push")
    assert push["option"] == (["requester_pays=true"], "push")
    pull = config.settings_for("pull")
    assert pull["transfers"] == (16, None)
    assert pull["option"] == (["anon=false", "profile=backup"], None)
    assert "on_conflict" not in pull


def test_invalid_toml_names_file_and_line(tmp_path: Path) -> None:
    path = write_config(tmp_path, 'remote = "x"\ntransfers = = 3\n')
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    assert str(info.value).startswith(f"{path}:2: invalid TOML")
    assert info.value.exit_code is ExitCode.USAGE


def test_unknown_table_names_its_line(tmp_path: Path) -> None:
    path = write_config(tmp_path, 'remote = "x"\n\n[pushh]\ntransfers = 3\n')
    with pytest.raises(ConfigError, match=r"config.toml:3: unknown table \[pushh\]"):
        load_config(str(path))


def test_storage_option_must_be_scalar(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[storage-options]\nanon = false\nclient = [1, 2]\n")
    with pytest.raises(ConfigError, match=r"config.toml:3: storage option 'client'"):
        load_config(str(path))


def test_not_utf8(tmp_path: Path) -> None:
    path = write_config(tmp_path, "")
    path.write_bytes(b'remote = "\xff"\n')
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(str(path))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load_config(str(tmp_path / "nope.toml"))


def test_error_points_at_key_inside_its_table(tmp_path: Path) -> None:
    path = write_config(tmp_path, "transfers = 2\n[push]\ntransfers = 3\n")
    config = load_config(str(path))
    assert str(config.error("bad", "transfers", "push")) == f"{path}:3: bad"
    assert str(config.error("bad", "transfers")) == f"{path}:1: bad"
    assert str(config.error("bad", "absent")) == f"{path}: bad"
