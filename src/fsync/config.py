"""Frozen options for each use case, and the parsing of option values users type.

The CLI turns flags into these objects and the app reads nothing else, so tests can drive
`app.push`/`app.pull` directly with the same options a user would give.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from fsync.errors import ConfigError
from fsync.model import ConflictPolicy, Direction, SyncPolicy

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "kib": 1 << 10,
    "m": 1000**2,
    "mb": 1000**2,
    "mib": 1 << 20,
    "g": 1000**3,
    "gb": 1000**3,
    "gib": 1 << 30,
}


@dataclass(frozen=True, slots=True)
class SyncOptions:
    """Everything one push, pull or sync needs to know."""

    local_root: str
    remote_url: str
    direction: Direction
    dry_run: bool = False
    on_conflict: ConflictPolicy = ConflictPolicy.KEEP_BOTH
    mirror: bool = False
    max_delete: str | None = None
    force: bool = False
    excludes: tuple[str, ...] = ()
    transfers: int = 8
    storage_options: Mapping[str, object] = field(default_factory=dict)
    endpoint_url: str | None = None
    follow_links: bool = False
    """`--links follow`: sync what symlinks inside the root point to (never outside it)."""
    chunk_size: int | None = None
    """`--chunk-size` in bytes; None keeps the backend's default (16 MiB on S3)."""
    retries: int | None = None
    """`--retries` after the first attempt of each request; None keeps the default (5)."""
    timeout: float | None = None
    """`--timeout` seconds for connecting and for each read; None keeps the backend's."""
    tps_limit: float = 0
    """`--tps-limit` requests per second; 0 is unlimited."""
    bw_limit: float = 0
    """`--bw-limit` bytes per second; 0 is unlimited."""
    backup_dir: str | None = None
    """`--backup-dir`: a folder or URL where versions go before being overwritten or deleted."""
    verify_full: bool = False
    """`--verify full`: read each upload back and hash it before it counts as sent, and
    each download as the disk holds it before it takes its name."""

    def policy(self) -> SyncPolicy:
        """The planner's view of these options; raises `ConfigError` on a bad `--max-delete`
        or on `--mirror` for a two-way sync (which has no source to mirror)."""
        if self.mirror and self.direction is Direction.SYNC:
            raise ConfigError("--mirror makes one side equal the other: use push or pull")
        count, ratio = parse_max_delete(self.max_delete)
        return SyncPolicy(
            direction=self.direction,
            on_conflict=self.on_conflict,
            mirror=self.mirror,
            max_delete=count,
            max_delete_ratio=ratio,
            force=self.force,
        )


@dataclass(frozen=True, slots=True)
class WatchOptions:
    """Everything `fsync watch` needs to know.

    The timing knobs have the defaults DESIGN.md gives (a full rescan every hour, events
    coalesced over 150 ms); tests shrink them. `retries` failed attempts of one path, spaced
    `retry_delay` doubling up to `retry_max_delay` seconds, fire `on_error`; the path keeps
    being retried at `retry_max_delay` after that (`--retries` also sets each request's
    retries, as in a push). `pull_every` None means push only.
    """

    local_root: str
    remote_url: str
    on_conflict: ConflictPolicy = ConflictPolicy.KEEP_BOTH
    mirror: bool = False
    """`--mirror` for the pushes (never for the `--pull-every` pulls: it would delete here);
    so is `force` (a remote emptied or unmounted must not empty this folder)."""
    max_delete: str | None = None
    force: bool = False
    excludes: tuple[str, ...] = ()
    transfers: int = 8
    storage_options: Mapping[str, object] = field(default_factory=dict)
    endpoint_url: str | None = None
    chunk_size: int | None = None
    timeout: float | None = None
    tps_limit: float = 0
    bw_limit: float = 0
    backup_dir: str | None = None
    verify_full: bool = False
    dry_run: bool = False
    """Say what each change would do; change nothing in either tree, queue nothing."""
    follow_links: bool = False
    on_error: str | None = None
    rescan_every: float = 3600.0
    pull_every: float | None = None
    quiet_window: float = 0.15
    max_hold: float = 1.0
    settle_max: float = 60.0
    retries: int = 5
    retry_delay: float = 1.0
    retry_max_delay: float = 300.0

    def __post_init__(self) -> None:
        for name in ("rescan_every", "quiet_window", "max_hold", "settle_max", "retry_delay"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name.replace('_', '-')} must be a positive number of seconds")
        if self.pull_every is not None and not self.pull_every > 0:
            raise ConfigError("--pull-every must be a positive number of seconds")
        if self.retries < 0 or self.retry_max_delay < self.retry_delay:
            raise ConfigError("retries must be at least 0 and the longest delay the longest")

    def sync_options(self, direction: Direction) -> SyncOptions:
        """The one-shot options of a push (or, for `--pull-every`, a pull) with these settings."""
        return SyncOptions(
            local_root=self.local_root,
            remote_url=self.remote_url,
            direction=direction,
            on_conflict=self.on_conflict,
            mirror=self.mirror and direction is Direction.PUSH,
            max_delete=self.max_delete,
            force=self.force and direction is Direction.PUSH,
            excludes=self.excludes,
            transfers=self.transfers,
            storage_options=self.storage_options,
            endpoint_url=self.endpoint_url,
            chunk_size=self.chunk_size,
            timeout=self.timeout,
            tps_limit=self.tps_limit,
            bw_limit=self.bw_limit,
            backup_dir=self.backup_dir,
            verify_full=self.verify_full,
            dry_run=self.dry_run,
            follow_links=self.follow_links,
            retries=self.retries,
        )


@dataclass(frozen=True, slots=True)
class VerifyOptions:
    """Everything `fsync verify` needs to know."""

    local_root: str
    remote_url: str
    excludes: tuple[str, ...] = ()
    download: bool = False
    """Re-hash the remote content even where the object's metadata holds its blake3."""
    transfers: int = 8
    storage_options: Mapping[str, object] = field(default_factory=dict)
    endpoint_url: str | None = None
    follow_links: bool = False


def parse_max_delete(text: str | None) -> tuple[int | None, float]:
    """`--max-delete` as (count, ratio): `"10"` → (10, 0.5), `"25%"` → (None, 0.25).

    With no value the default is half of the base, as DESIGN.md sets.
    """
    if text is None:
        return None, 0.5
    text = text.strip()
    try:
        if text.endswith("%"):
            pct = float(text[:-1])
            if not 0 <= pct <= 100:
                raise ValueError(text)
            return None, pct / 100
        count = int(text)
        if count < 0:
            raise ValueError(text)
    except ValueError:
        raise ConfigError(
            f"invalid --max-delete {text!r} (expected a count like 100 or a percentage like 25%)"
        ) from None
    return count, 0.5


def parse_size(text: str) -> int:
    """A byte count from `8MiB`, `16M`, `1048576`; raises `ConfigError` on anything else."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", text)
    unit = m.group(2).lower() if m else ""
    if m is None or unit not in _UNITS:
        raise ConfigError(f"invalid size {text!r} (expected bytes or a unit: 8MiB, 16M, 1G)")
    return int(float(m.group(1)) * _UNITS[unit])


def parse_rate(text: str) -> int:
    """Bytes per second from `10MiB/s`, `500k/s` or `1048576` (the `/s` is optional)."""
    body = text.strip()
    if body.lower().endswith("/s"):
        body = body[:-2]
    try:
        return parse_size(body)
    except ConfigError:
        raise ConfigError(
            f"invalid rate {text!r} (expected bytes per second: 10MiB/s, 500k/s)"
        ) from None


PARSED_SETTINGS: Mapping[str, Callable[[str], object]] = {
    "max_delete": parse_max_delete,
    "chunk_size": parse_size,
    "bw_limit": parse_rate,
}
"""Options typer takes as text and fsync parses itself (`ConfigError` on a bad value), by
setting name: a config file's value goes through the parser when the file is read, so that
its error names the file and line as every other bad setting's does."""


def parse_storage_options(pairs: list[str]) -> dict[str, object]:
    """`-o KEY=VALUE` pairs as fsspec storage options (`true`/`false`/numbers decoded)."""
    out: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"invalid -o {pair!r} (expected KEY=VALUE)")
        out[key] = _decode(value)
    return out


def _decode(value: str) -> object:
    lowered = value.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


CONFIG_FILE = ".fsync/config.toml"
"""A local root's defaults, relative to the root (never synced: `.fsync/` never is)."""

COMMAND_TABLES = frozenset({"push", "pull", "sync", "watch", "verify", "status", "cleanup"})
"""Tables of the config file that hold one command's settings (`[push]`, `[watch]`...)."""

STORAGE_TABLE = "storage-options"
"""The table whose keys and values are fsspec storage options (what `-o KEY=VALUE` sets)."""


@dataclass(frozen=True, slots=True)
class ConfigFile:
    """A parsed config file: settings for every command, and per-command overrides.

    Keys are kept as written (`on-conflict` or `on_conflict`); `settings_for` gives them
    with underscores. Storage options come as `KEY=VALUE` strings, as `-o` takes them.
    """

    path: str
    text: str
    common: Mapping[str, object]
    commands: Mapping[str, Mapping[str, object]]

    def settings_for(self, command: str) -> dict[str, tuple[object, str | None]]:
        """`command`'s settings: name (underscored) → (value, table it came from or None)."""
        out: dict[str, tuple[object, str | None]] = {}
        for table, values in ((None, self.common), (command, self.commands.get(command, {}))):
            for key, value in values.items():
                out[key.replace("-", "_")] = (value, table)
        return out

    def line_of(self, key: str, table: str | None = None) -> int | None:
        """The 1-based line where `key` is set (inside `[table]` when given), if found."""
        current: str | None = None
        wanted = {key, key.replace("_", "-"), key.replace("-", "_")}
        for number, raw in enumerate(self.text.splitlines(), start=1):
            line = raw.strip()
            header = re.fullmatch(r"\[\s*([^\]]+?)\s*\]\s*(#.*)?", line)
            if header:
                current = header.group(1).strip("\"'").replace("_", "-")
                continue
            name = line.partition("=")[0].strip().strip("\"'")
            if "=" in line and name in wanted and current == (table and table.replace("_", "-")):
                return number
        return None

    def option_line(self, name: str, command: str | None = None) -> int | None:
        """The 1-based line setting the storage option `name` (in `[storage-options]`, or
        `[COMMAND.storage-options]`), else that of the list or table that holds it."""
        table = f"{command}.{STORAGE_TABLE}" if command else STORAGE_TABLE
        return (
            self.line_of(name, table)
            or self.line_of(STORAGE_TABLE, command)
            or self.line_of("option", command)
            or self.header_line(table)
        )

    def header_line(self, table: str) -> int | None:
        """The 1-based line of the `[table]` header, if found."""
        for number, raw in enumerate(self.text.splitlines(), start=1):
            header = re.fullmatch(r"\[\s*([^\]]+?)\s*\]\s*(#.*)?", raw.strip())
            if header and header.group(1).strip("\"'").replace("_", "-") == table.replace("_", "-"):
                return number
        return None

    def error(self, message: str, key: str | None = None, table: str | None = None) -> ConfigError:
        """A `ConfigError` naming this file and, where found, the line of `key` (or `[table]`)."""
        line = self.line_of(key, table) if key else None
        if line is None and table and not key:
            line = self.header_line(table)
        where = f"{self.path}:{line}" if line else self.path
        return ConfigError(f"{where}: {message}")


def find_config(local_root: str) -> str | None:
    """`LOCAL/.fsync/config.toml` if that file exists, else None."""
    path = os.path.join(local_root, *CONFIG_FILE.split("/"))
    return path if os.path.isfile(path) else None


def load_config(path: str) -> ConfigFile:
    """Read and check the shape of the config file at `path`.

    Raises `ConfigError` naming the file (and the line, where TOML gives one) when it cannot
    be read, is not valid TOML, has an unknown table, or a storage option that is not a
    string, number or boolean. Whether each setting is a known option with a valid value is
    for the command that reads it to check (`ConfigFile.error` words the message).
    """
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise ConfigError(f"cannot read the config file {path} ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8-sig")
        data = tomllib.loads(text)
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text; save it as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        line = re.search(r"line (\d+)", str(exc))
        where = f"{path}:{line.group(1)}" if line else path
        raise ConfigError(f"{where}: invalid TOML ({exc})") from None
    partial = ConfigFile(path, text, {}, {})
    common, commands = _split_tables(partial, data)
    return ConfigFile(path, text, common, commands)


def _split_tables(
    file: ConfigFile, data: Mapping[str, object]
) -> tuple[dict[str, object], dict[str, dict[str, object]]]:
    common: dict[str, object] = {}
    commands: dict[str, dict[str, object]] = {}
    _refuse_two_spellings(file, data, None)
    for key, value in data.items():
        if key.replace("_", "-") == STORAGE_TABLE:
            common["option"] = _storage_pairs(file, value, None)
        elif key in COMMAND_TABLES:
            if not isinstance(value, Mapping):
                raise file.error(f"'{key}' must be a table ([{key}])", key)
            commands[key] = _command_table(file, key, value)
        elif isinstance(value, Mapping):
            known = ", ".join(f"[{t}]" for t in sorted(COMMAND_TABLES | {STORAGE_TABLE}))
            raise file.error(f"unknown table [{key}] (known: {known})", table=key)
        else:
            common[key] = value
    return common, commands


def _command_table(
    file: ConfigFile, command: str, table: Mapping[str, object]
) -> dict[str, object]:
    out: dict[str, object] = {}
    _refuse_two_spellings(file, table, command)
    for key, value in table.items():
        if key.replace("_", "-") == STORAGE_TABLE:
            out["option"] = _storage_pairs(file, value, command)
        elif isinstance(value, Mapping):
            raise file.error(f"unknown table [{command}.{key}]", table=f"{command}.{key}")
        else:
            out[key] = value
    return out


def _refuse_two_spellings(
    file: ConfigFile, table: Mapping[str, object], command: str | None
) -> None:
    """Raise `ConfigError` where one table sets a setting under two spellings (`on_conflict`
    and `on-conflict`; `option` and `[storage-options]`, which both give `-o`): the last
    one read would win, and the other be silently ignored."""
    seen: dict[str, str] = {}
    for key in table:
        name = key.replace("_", "-")
        name = "option" if name == STORAGE_TABLE else name
        first = seen.setdefault(name, key)
        if first != key:
            why = f"'{first}' and '{key}' both set {name} (one would be ignored; keep one)"
            raise file.error(why, first, command)


def _storage_pairs(file: ConfigFile, table: object, command: str | None) -> list[str]:
    """A `[storage-options]` table as `KEY=VALUE` strings, the form `-o` takes."""
    where = f"{command}.{STORAGE_TABLE}" if command else STORAGE_TABLE
    if not isinstance(table, Mapping):
        raise file.error(f"'{STORAGE_TABLE}' must be a table ([{where}])", STORAGE_TABLE, command)
    pairs = []
    for key, value in table.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, int | float | str):
            text = str(value)
        else:
            raise file.error(
                f"storage option '{key}' must be a string, number or boolean", key, where
            )
        pairs.append(f"{key}={text}")
    return pairs
