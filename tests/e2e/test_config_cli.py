"""`.fsync/config.toml` through the command: defaults, flags that override, bad files."""

from __future__ import annotations

import json
import os
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


def test_flags_the_file_sets_can_be_turned_off(fsync, src: Path, tmp_path: Path) -> None:
    """`dry-run`, `mirror` or `force` set in the file could not be turned off: `--no-dry-run`
    was no option, `--dry-run=false` took no value (verify tester). A flag's value must be
    true or false, too: `dry-run = "no"` was read as on."""
    write(tmp_path / "out", {"theirs.txt": "kept unless mirrored"})
    configure(src, 'remote = "../out"\ndry-run = true\nmirror = true\nforce = true\n')
    res = fsync("push", src, "--no-dry-run", "--no-mirror", "--no-force", "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["uploaded"] == 3
    assert listing(tmp_path / "out")["theirs.txt"] == b"kept unless mirrored"
    path = configure(src, 'remote = "../out"\ndry-run = "no"\n')
    res = fsync("push", src)
    assert res.returncode == 2
    assert res.stderr == (
        f"fsync: error: {path}:2: dry-run: 'no' is not a valid value "
        "(expected true or false, without quotes)\n"
    )


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
    """It said the config file "sets none" when there was no such file (verify tester)."""
    res = fsync("push", src)
    assert res.returncode == 2
    config = src / ".fsync" / "config.toml"
    assert res.stderr.startswith(
        f"fsync: error: no REMOTE given and {config} does not exist to name one ("
    )
    configure(src, "transfers = 2\n")
    res = fsync("push", src)
    assert res.returncode == 2
    assert res.stderr.startswith(f"fsync: error: no REMOTE given and {config} sets none (")
    other = configure(src.parent / "elsewhere", "transfers = 2\n")
    res = fsync("push", src.parent / "nowhere", "--config", other)  # (review)
    assert res.stderr.startswith(f"fsync: error: no REMOTE given and {other} sets none (")


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
        # Two spellings of one setting: the last one read won, silently.
        ("sync", 'remote = "x"\non_conflict = "local"\non-conflict = "skip"\n', ":2:", "'on_"),
        ("push", '[push]\nmax-delete = "1"\nmax_delete = "9"\n', ":2:", "and 'max_delete' both"),
        ("pull", 'remote = "x"\noption = ["anon=true"]\n[storage-options]\n', ":2:", "both"),
        # typer took any TOML value for text: `exclude = 5` excluded the pattern "5".
        ("push", 'remote = "x"\nexclude = 5\n', ":2:", "exclude: 5 is not a valid value"),
        ("push", 'remote = "x"\n\nexclude = ["*.tmp", 5]\n', ":3:", "a list of strings"),
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


@pytest.mark.parametrize("setting", ["remote = 7", "log-file = 8", "backup-dir = 1.5"])
def test_a_path_setting_that_is_not_text_is_refused(
    fsync, src: Path, tmp_path: Path, setting: str
) -> None:
    """A number was turned into a path relative to the cwd, not to LOCAL: `remote = 7` pushed
    into `./7` of whatever folder fsync ran in."""
    remote = "" if setting.startswith("remote") else 'remote = "../out"\n'
    path = configure(src, f"{remote}{setting}\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    res = fsync("push", src, cwd=elsewhere)
    assert res.returncode == 2
    line = 1 if setting.startswith("remote") else 2
    key = setting.partition(" ")[0]
    assert res.stderr.startswith(f"fsync: error: {path}:{line}: {key}: "), res.stderr
    assert "expected a path or URL in quotes" in res.stderr
    assert res.stderr.count("\n") == 1
    assert list(elsewhere.iterdir()) == []
    assert not (tmp_path / "out").exists()


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


OFFLINE_S3 = {
    "AWS_ACCESS_KEY_ID": "x",
    "AWS_SECRET_ACCESS_KEY": "y",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}
"""Credentials that never reach a store: these runs stop before the first request."""
UNREACHABLE = "http://127.0.0.1:9"
S3 = f'remote = "s3://b/p"\nendpoint-url = "{UNREACHABLE}"\n'


@pytest.mark.parametrize(
    "case",
    [
        ("push", S3 + 'chunk-size = "1MiB"\n', ":3:", "chunk-size 1048576 is below S3's 5 MiB"),
        ("sync", S3 + '[sync]\nchunk-size = "6GiB"\n', ":4:", "chunk-size 6442450944 is above"),
        ("push", 'remote = "../out"\nbw-limit = "1MiB/s"\n', ":2:", "bw-limit applies to s3://"),
        ("watch", 'remote = "../out"\n\n[watch]\ntps-limit = 5\n', ":4:", "tps-limit applies"),
        # Storage options are judged by the remote too; their errors named no file either.
        (
            "push",
            S3 + '[storage-options]\nanon = "maybe"\n',
            ":4:",
            "invalid storage option anon (expected true or false, not 'maybe')",
        ),
        (
            "sync",
            S3 + "\n[sync.storage_options]\nbogus = 1\n",
            ":5:",
            "unknown storage option bogus (s3fs takes no such option",
        ),
        ("pull", S3 + 'option = ["max_concurrency=abc"]\n', ":3:", "invalid storage option max_"),
        # A local path takes neither; from a file, neither error named it.
        ("push", 'remote = "../out"\n[storage-options]\nanon = true\n', ":3:", "invalid storage"),
        (
            "push",
            f'remote = "../out"\nendpoint-url = "{UNREACHABLE}"\n',
            ":2:",
            "endpoint-url appl",
        ),
    ],
)
def test_a_value_the_remote_cannot_take_names_its_file_and_line(
    fsync, src: Path, case: tuple[str, str, str, str]
) -> None:
    """Checked only when the remote is opened, these were refused as if typed on the command
    line (`--chunk-size 1048576 is below ...`), without the file and line that set them."""
    command, text, where, what = case
    path = configure(src, text)
    res = fsync(command, src, env=OFFLINE_S3)
    assert res.returncode == 2
    assert res.stderr.startswith(f"fsync: error: {path}{where} {what}"), res.stderr
    assert res.stderr.count("\n") == 1


def test_a_value_the_remote_cannot_take_on_the_command_line_names_the_option(
    fsync, src: Path, tmp_path: Path
) -> None:
    """The flag given wins over the file, and is what the error names; a bad value that the
    file sets for another remote than the one given counts against the file."""
    configure(src, 'remote = "s3://b/p"\nchunk-size = "8MiB"\ntps-limit = 5\n')
    s3 = ("--endpoint-url", UNREACHABLE)
    small = fsync("push", src, "--chunk-size", "1MiB", "--tps-limit", "0", *s3, env=OFFLINE_S3)
    assert small.returncode == 2
    assert small.stderr == (
        "fsync: error: --chunk-size 1048576 is below S3's 5 MiB minimum part size\n"
    )
    out = tmp_path / "out"
    folder = fsync("push", src, out, "--bw-limit", "1M", "--tps-limit", "0")
    assert folder.returncode == 2
    assert folder.stderr == f"fsync: error: --bw-limit applies to s3:// remotes only, not {out}\n"
    configured = fsync("push", src, out)
    assert configured.returncode == 2
    path = src / ".fsync" / "config.toml"
    assert configured.stderr == (
        f"fsync: error: {path}:3: tps-limit applies to s3:// remotes only, not {out}\n"
    )
