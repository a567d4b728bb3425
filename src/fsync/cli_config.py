"""A command's defaults from the local root's `.fsync/config.toml`, merged under its flags.

Before the real parse, the arguments are read once to find the local root (or `--config`);
the file's settings become click's `default_map`, so a flag given on the command line wins
and every value goes through the same conversion and checks as a flag. Reading and checking
the file's TOML is `fsync.config`'s; this module only fits it to typer's parameters.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import typer
from typer.core import TyperCommand

from fsync.cli_params import QuickCommand, json_asked
from fsync.cli_run import fail
from fsync.errors import ConfigError, FsyncError, SettingError, exit_code_for, one_line

if TYPE_CHECKING:
    from fsync.config import ConfigFile

_NOT_SETTINGS = frozenset({"config", "help", "local"})
"""Parameters a config file may not set."""

_PATH_SETTINGS = frozenset({"remote", "log_file", "backup_dir"})
"""Settings holding a path: a relative one is taken from the root, not the cwd."""

_ORIGINS = "fsync.config"
"""Where `apply_config` leaves, in the command's `ctx.meta`, the config file it read and
the table each of its settings came from (for `explained`)."""

_running: ContextVar[Callable[[str, str | None], str | None] | None] = ContextVar(
    "origin", default=None
)
"""While a configured command runs, where each of its settings came from (`_origin`)."""


class ConfiguredCommand(QuickCommand):
    """A command whose defaults come from the local root's `.fsync/config.toml`.

    A bad file stops the command with exit status 2, naming the file and line.
    """

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        """Apply the config file, then parse `args` as usual."""
        try:
            args = apply_config(self, ctx, list(args))
        except FsyncError as exc:
            fail(one_line(exc), exit_code_for(exc), json_out=json_asked(args))
        return super().parse_args(ctx, args)

    def invoke(self, ctx: typer.Context) -> Any:
        """Run the command; meanwhile `explained` can tell which values the file gave."""
        token = _running.set(functools.partial(_origin, ctx))
        try:
            return super().invoke(ctx)
        finally:
            _running.reset(token)


def apply_config(command: TyperCommand, ctx: typer.Context, args: list[str]) -> list[str]:
    """Load the config file for the LOCAL these `args` name; set `ctx.default_map` from it.

    Returns the arguments to parse: for `pull` given one argument (LOCAL), the configured
    remote is put in front of it. Raises `ConfigError` for an unreadable or invalid file,
    naming the file and the line.
    """
    from fsync.config import find_config, load_config  # noqa: PLC0415

    if ctx.resilient_parsing or any(a in ("-h", "--help") for a in args):
        return args
    try:
        parsed, _, _ = command.make_parser(ctx).parse_args(args=list(args))
    except Exception:
        return args  # the real parse reports it
    given = {k: v for k, v in parsed.items() if isinstance(v, str)}
    lone_pull = command.name == "pull" and "remote" in given and "local" not in given
    local = given.get("remote") if lone_pull else given.get("local")
    path = given.get("config") or find_config(local or ".")
    if path is None:
        return args
    file = load_config(path)
    explicit = "config" in given
    base = os.path.dirname(os.path.abspath(path))
    base = base if explicit else os.path.dirname(base)
    defaults, tables = _config_defaults(command, ctx, file, base)
    ctx.default_map = {**(ctx.default_map or {}), **defaults}
    ctx.meta[_ORIGINS] = (file, tables)
    if lone_pull and "remote" in defaults:
        return [str(defaults["remote"]), *args]  # the one argument given is LOCAL
    return args


def _config_defaults(
    command: TyperCommand, ctx: typer.Context, file: ConfigFile, base: str
) -> tuple[dict[str, object], dict[str, str | None]]:
    """The file's settings for `command`, checked against its parameters and, for those fsync
    parses itself, its parsers (`ConfigError`); and the table each was set in."""
    from fsync.config import PARSED_SETTINGS  # noqa: PLC0415

    params = {p.name: p for p in command.get_params(ctx) if p.name not in _NOT_SETTINGS}
    known = _all_parameter_names(ctx) - _NOT_SETTINGS
    defaults: dict[str, object] = {}
    tables: dict[str, str | None] = {}
    for name, (raw, table) in file.settings_for(command.name or "").items():
        param = params.get(name)
        if param is None:
            if table is not None or name not in known:
                raise file.error(f"unknown setting '{name.replace('_', '-')}'", name, table)
            continue  # a setting for other commands (e.g. `remote` for status)
        why = _wrong_kind(name, raw, param)
        if why is not None:
            raise file.error(f"{name.replace('_', '-')}: {why}", name, table)
        value = [raw] if param.multiple and isinstance(raw, str) else raw
        try:
            given = param.process_value(ctx, value)
        except typer.BadParameter as exc:
            raise file.error(f"{name.replace('_', '-')}: {exc.message}", name, table) from None
        parse = PARSED_SETTINGS.get(name)
        if parse is not None and given is not None:
            try:
                parse(str(given))
            except ConfigError as exc:
                raise file.error(str(exc), name, table) from None
        if name in _PATH_SETTINGS and isinstance(value, str) and not _is_url(value):
            value = os.path.join(base, os.path.expanduser(value))
        defaults[name] = value
        tables[name] = table
    return defaults, tables


def _wrong_kind(name: str, raw: object, param: Any) -> str | None:
    """Why the file's value `raw` cannot be the setting `name` whatever it holds, or None.

    typer turns anything into text: `remote = 7` was the folder `7` of whatever folder fsync
    ran in (a number is no path to take from the root), and `exclude = [5]` the pattern `5`.
    A TOML boolean is a Python int: `transfers = true` was read as 1.
    """
    flag = getattr(param, "is_flag", False)
    if isinstance(raw, bool) and not flag:
        return f"{'true' if raw else 'false'} is not a valid value (the setting is not on/off)"
    if flag and not isinstance(raw, bool):  # (`dry-run = "no"` was read as on)
        return f"{raw!r} is not a valid value (expected true or false, without quotes)"
    if name in _PATH_SETTINGS and not isinstance(raw, str):
        return f"{raw!r} is not a valid value (expected a path or URL in quotes)"
    many = isinstance(raw, list) and all(isinstance(item, str) for item in raw)
    if param.multiple and not (isinstance(raw, str) or many):
        return f"{raw!r} is not a valid value (expected a string or a list of strings)"
    return None


def explained(exc: Exception) -> str:
    """`exc` as the one line the user sees: a value the remote refused (`SettingError`) that
    the running command took from its config file names the file and line that set it, as
    the file's other bad values do; from the command line, it names the option."""
    origin = _running.get()
    if isinstance(exc, SettingError) and origin is not None:
        where = origin(exc.setting, exc.item)
        if where is not None:
            return one_line(exc.in_file(where))
    return one_line(exc)


def _origin(ctx: typer.Context, setting: str, item: str | None = None) -> str | None:
    """`FILE:LINE` of the config value `setting` took in `ctx` (of its entry `item`, for a
    table such as the storage options), or None where the command line (or the parameter's
    default) gave it."""
    found: tuple[ConfigFile, dict[str, str | None]] | None = ctx.meta.get(_ORIGINS)
    source = ctx.get_parameter_source(setting)
    # (by name: typer may bring its own copy of click, and with it its own enum)
    if found is None or source is None or source.name != "DEFAULT_MAP":
        return None
    file, tables = found
    table = tables.get(setting)
    line = file.line_of(setting, table) if item is None else file.option_line(item, table)
    return f"{file.path}:{line}" if line else file.path


def _is_url(value: str) -> bool:
    """Whether a path setting is a URL, `file:/p` (RFC 8089's short form) included, which
    `fsync.remote.local_path` reads as `/p`: joined to the root it named a folder `file:`.
    A URL missing its `//` (`s3:bucket/x`) counts too, so that opening it refuses it, as on
    the command line: joined to the file's folder, it was a new local folder."""
    from fsync.remote import url_meant  # noqa: PLC0415 - fsync.remote is not cheap to import

    return "://" in value or value[:5].lower() == "file:" or url_meant(value) is not None


def _all_parameter_names(ctx: typer.Context) -> set[str]:
    """The parameter names of every command of the `fsync` group."""
    group = ctx.parent.command if ctx.parent is not None else None
    commands = getattr(group, "commands", {}) or {}
    names = {p.name for p in ctx.command.params if p.name}
    for cmd in commands.values():
        names.update(p.name for p in cmd.params if p.name)
    return names
