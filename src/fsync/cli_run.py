"""What every command does around its call into the app: options, secrets, output, errors.

A command's arguments arrive as typer hands them over (`locals()` of the command function);
`options` turns them into the app's options object, `reporting` sets up the console for the
run, and `guard` is the one place an exception becomes an exit status and a one-line message
(`fail`, which usage errors found by the commands themselves share).
The app, the config parsers and the displays are imported only when a run needs them, so
`fsync --help` and argument errors stay fast.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable, Mapping
from dataclasses import fields
from typing import TYPE_CHECKING, Any, NoReturn, Protocol, TypeVar, cast

import typer

from fsync.cli_options import LinkMode, VerifyMode
from fsync.errors import ExitCode, exit_code_for
from fsync.redact import NO_SECRETS, Redactor
from fsync.terminal import complain, say_json

if TYPE_CHECKING:
    from fsync.progress import Reporter, WatchDisplay

T = TypeVar("T")


class Options(Protocol):
    """What `options` needs of an options class (`SyncOptions`, `VerifyOptions`, ...)."""

    @property
    def storage_options(self) -> Mapping[str, object]:
        """The `-o KEY=VALUE` options, secrets among them."""
        ...


OptionsT = TypeVar("OptionsT", bound=Options)


def options(
    command: str, kind: Callable[..., OptionsT], args: Mapping[str, object], **fixed: object
) -> tuple[OptionsT, Redactor]:
    """The `kind` options of one run of `command`, and the redactor of that run.

    LOCAL and REMOTE come from `args` (exit 2 when no remote is known); an invalid value
    exits with its one-line error, scrubbed of the URL's password and the environment's
    secrets.
    """
    json_out = bool(args.get("json_out"))
    root, url = roots(
        cast("str | None", args["local"]),
        cast("str | None", args["remote"]),
        command,
        json_out,
        config=cast("str | None", args.get("config")),
    )

    def build() -> OptionsT:
        return build_options(kind, args, local_root=root, remote_url=url, **fixed)

    redactor = Redactor.build(urls=[url], env=os.environ)
    built = guard(bool(args["verbose"]), build, redactor, json_out=json_out)
    return built, redactor_for(url, built.storage_options)


def build_options(
    kind: Callable[..., OptionsT], args: Mapping[str, object], **fixed: object
) -> OptionsT:
    """`kind(**fixed, ...)` with each of its other fields taken from the command's `args`.

    A field takes the argument of its own name, or the one `converted` names, converted; a
    field that no argument gives keeps its default (`sync` has no `--mirror`). Raises
    `ConfigError` for a value the config parsers reject.
    """
    from fsync.config import parse_rate, parse_size, parse_storage_options  # noqa: PLC0415

    converted: dict[str, tuple[str, Callable[[Any], object]]] = {
        "excludes": ("exclude", lambda v: tuple(v or ())),
        "storage_options": ("option", lambda v: parse_storage_options(list(v or ()))),
        "follow_links": ("links", lambda v: v is LinkMode.FOLLOW),
        "chunk_size": ("chunk_size", lambda v: None if v is None else parse_size(str(v))),
        "bw_limit": ("bw_limit", lambda v: 0 if v is None else parse_rate(str(v))),
        "verify_full": ("verify", lambda v: v is VerifyMode.FULL),
    }
    values = dict(fixed)
    for field in fields(cast("Any", kind)):
        source, convert = converted.get(field.name, (field.name, None))
        if field.name not in values and source in args:
            value = args[source]
            values[field.name] = value if convert is None else convert(value)
    return kind(**values)


def roots(
    local: str | None,
    remote: str | None,
    command: str,
    json_out: bool = False,
    *,
    config: str | None = None,
    form: str = "LOCAL REMOTE",
) -> tuple[str, str]:
    """LOCAL (default: the current folder) and REMOTE, or exit 2 when no remote is known,
    naming the config file that gave none (`config`, from `--config`, else LOCAL's)."""
    root = local or "."
    if not remote:
        from fsync.config import CONFIG_FILE  # noqa: PLC0415

        where = config or (os.path.join(root, CONFIG_FILE) if local else CONFIG_FILE)
        # (It said "... and X sets none" of a file that did not exist.)
        given = "sets none" if os.path.isfile(where) else "does not exist to name one"
        fail(
            f"no REMOTE given and {where} {given} "
            f'(fsync {command} {form}, or set remote = "URL" in that file)',
            ExitCode.USAGE,
            json_out=json_out,
        )
    return root, remote


def redactor_for(url: str, storage_options: object) -> Redactor:
    """The redactor of one run: its URL's password, secret options and the environment."""
    opts = storage_options if isinstance(storage_options, dict) else {}
    return Redactor.build(urls=[url], storage_options=opts, env=os.environ)


def reporting(verbose: bool, silent: bool, redactor: Redactor) -> Reporter:
    """Console logging set up for a run, and its reporter; both scrub with `redactor`.

    The reporter is silent for `silent` (`--json`, `--quiet`), rich on a terminal, plain
    lines otherwise; rich itself is imported only by the rich display.
    """
    from fsync.progress import NullReporter, PlainReporter, RichReporter  # noqa: PLC0415
    from fsync.runlog import RedactingReporter, configure_console  # noqa: PLC0415

    configure_console(verbose, redactor)
    shown: Reporter
    if silent:
        shown = NullReporter(sys.stderr)
    elif sys.stderr.isatty():
        shown = RichReporter(sys.stdout, sys.stderr)
    else:
        shown = PlainReporter(sys.stdout, sys.stderr)
    return RedactingReporter(shown, redactor)


def watch_display(silent: bool) -> WatchDisplay:
    """What `fsync watch` shows: nothing, a rich status line on a terminal, or plain lines."""
    from fsync.progress import (  # noqa: PLC0415
        NullWatchDisplay,
        PlainWatchDisplay,
        RichWatchDisplay,
    )

    if silent:
        return NullWatchDisplay(sys.stderr)
    if sys.stderr.isatty():
        return RichWatchDisplay(sys.stderr)
    return PlainWatchDisplay(sys.stdout, sys.stderr)


INTERRUPTED = "interrupted (Ctrl-C or SIGTERM; the next run goes on from where this one stopped)"
"""The error line's message for a run stopped by the user (exit 130)."""


def guard(
    verbose: bool,
    fn: Callable[[], T],
    redactor: Redactor = NO_SECRETS,
    on_fail: Callable[[str, int], object] | None = None,
    *,
    json_out: bool = False,
) -> T:
    """Run `fn`; turn any escaping exception into one error line and its exit status.

    The line (and, with `verbose`, the traceback) is scrubbed by `redactor`; `on_fail` hears
    the message and status first (the run's log and alarm). With `json_out`, stdout still
    carries its one JSON object (DESIGN.md): `{"error": MESSAGE, "exit_code": STATUS}`, so
    a script reading it finds why, not nothing.
    """
    try:
        return fn()
    except KeyboardInterrupt:
        if on_fail is not None:
            on_fail("interrupted", int(ExitCode.INTERRUPTED))
        # An error line as DESIGN.md gives them: scripts look for `fsync: error:`.
        complain(f"fsync: error: {INTERRUPTED}")
        if json_out:
            say_json({"error": "interrupted", "exit_code": int(ExitCode.INTERRUPTED)})
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
    except Exception as exc:
        from fsync.cli_config import explained  # noqa: PLC0415 - it imports this module

        message = redactor.text(explained(exc))
        if on_fail is not None:
            on_fail(message, int(exit_code_for(exc)))
        if verbose:
            for line in redactor.text(traceback.format_exc()).rstrip("\n").split("\n"):
                complain(line)
        fail(message, exit_code_for(exc), json_out=json_out)


def fail(message: str, status: int, *, json_out: bool = False) -> NoReturn:
    """Say `fsync: error: MESSAGE` on stderr and exit with `status`; with `json_out`, also
    `{"error": MESSAGE, "exit_code": STATUS}` on stdout, the one object `--json` promises."""
    complain(f"fsync: error: {message}")
    if json_out:
        say_json({"error": message, "exit_code": int(status)})
    raise typer.Exit(int(status)) from None
