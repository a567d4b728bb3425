"""The `fsync` command: parse, build options, call the app, render, exit.

Each command is a thin shell around `fsync.app`; the one place exceptions become exit
statuses and one-line messages is `_guard`. The app and its adapters are imported inside the
commands so `fsync --help` and argument errors stay fast.
"""

from __future__ import annotations

import enum
import gc
import json
import os
import sys
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, NoReturn, TypeVar

import typer
from typer.core import TyperCommand

from fsync.errors import ExitCode, FsyncError, exit_code_for
from fsync.model import ConflictPolicy, Direction, RunResult
from fsync.progress import (
    NullReporter,
    NullWatchDisplay,
    PlainReporter,
    PlainWatchDisplay,
    Reporter,
    RichReporter,
    RichWatchDisplay,
    WatchDisplay,
)
from fsync.redact import NO_SECRETS, Redactor

if TYPE_CHECKING:
    from fsync.app import StatusReport
    from fsync.config import ConfigFile
    from fsync.verify import VerifyReport

T = TypeVar("T")

app = typer.Typer(
    name="fsync",
    help="Keep a local folder and any fsspec tree (path, file://, memory://, s3://) in step.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

DryRun = Annotated[
    bool, typer.Option("--dry-run", help="Show what would change; change nothing in either tree.")
]
Json = Annotated[bool, typer.Option("--json", help="Print only one JSON summary on stdout.")]
Quiet = Annotated[bool, typer.Option("-q", "--quiet", help="No progress and no summary.")]
Verbose = Annotated[
    bool,
    typer.Option("-v", "--verbose", help="Debug detail on stderr; tracebacks on errors."),
]
OnConflict = Annotated[
    ConflictPolicy,
    typer.Option("--on-conflict", help="What to do when both sides changed a file."),
]
Mirror = Annotated[
    bool,
    typer.Option("--mirror", help="Make the destination exactly equal to the source."),
]
MaxDelete = Annotated[
    str | None,
    typer.Option(
        "--max-delete",
        metavar="N|N%",
        help="Stop before deleting more than N files (or N% of the synced files; default 50%).",
    ),
]
Force = Annotated[bool, typer.Option("--force", help="Override the safety stops.")]
BackupDir = Annotated[
    str | None,
    typer.Option(
        "--backup-dir",
        metavar="URL",
        help="Keep what a run overwrites or deletes here first: a folder, or a URL beside "
        "the remote.",
    ),
]


class VerifyMode(enum.Enum):
    """`--verify`: how much checking beyond the built-in per-transfer checks."""

    FULL = "full"


VerifyFull = Annotated[
    VerifyMode | None,
    typer.Option(
        "--verify",
        help="`full`: read every uploaded file back from the remote and re-hash it.",
    ),
]
Exclude = Annotated[
    list[str] | None,
    typer.Option("--exclude", metavar="PATTERN", help="gitignore-style pattern (repeatable)."),
]
Transfers = Annotated[
    int, typer.Option("--transfers", min=1, max=256, help="Files in flight at once.")
]
EndpointUrl = Annotated[
    str | None, typer.Option("--endpoint-url", metavar="URL", help="S3-compatible endpoint.")
]
StorageOption = Annotated[
    list[str] | None,
    typer.Option("-o", "--option", metavar="KEY=VALUE", help="fsspec storage option."),
]
ChunkSize = Annotated[
    str | None,
    typer.Option(
        "--chunk-size",
        metavar="SIZE",
        help="Part size of chunked uploads (8MiB, 16M; default 16MiB, grown past 10,000 parts).",
    ),
]
Retries = Annotated[
    int | None,
    typer.Option("--retries", min=0, help="Retries of each failed request (default 5)."),
]
Timeout = Annotated[
    float | None,
    typer.Option("--timeout", min=0.001, metavar="SECONDS", help="Connect and read timeout."),
]
TpsLimit = Annotated[
    float,
    typer.Option("--tps-limit", min=0, metavar="N", help="At most N requests a second (0: off)."),
]
BwLimit = Annotated[
    str | None,
    typer.Option(
        "--bw-limit", metavar="SIZE/s", help="At most SIZE bytes a second (e.g. 10MiB/s)."
    ),
]


class LinkMode(enum.Enum):
    """`--links`: what a symbolic link in the local tree means."""

    SKIP = "skip"
    FOLLOW = "follow"


LogFile = Annotated[
    str | None,
    typer.Option(
        "--log-file",
        metavar="PATH",
        help="Append JSON lines to PATH: one per action and one per run summary.",
    ),
]
OnError = Annotated[
    str | None,
    typer.Option(
        "--on-error",
        metavar="CMD",
        help="Run CMD (sh -c) with the JSON summary on stdin when the run fails.",
    ),
]
Links = Annotated[
    LinkMode,
    typer.Option(
        "--links", help="Skip symlinks (with a warning), or follow those that stay in the root."
    ),
]
ConfigPath = Annotated[
    str | None,
    typer.Option(
        "--config",
        metavar="PATH",
        help="Read defaults from PATH instead of LOCAL/.fsync/config.toml.",
    ),
]
LocalArg = Annotated[
    str | None,
    typer.Argument(
        metavar="LOCAL", help="Local folder (default: the current folder).", show_default=False
    ),
]
RemoteArg = Annotated[
    str | None,
    typer.Argument(
        metavar="REMOTE",
        help="A path or fsspec URL (default: `remote` in LOCAL/.fsync/config.toml).",
        show_default=False,
    ),
]


class ConfiguredCommand(TyperCommand):
    """A command whose defaults come from the local root's `.fsync/config.toml`.

    Before the real parse, the arguments are read once to find the local root (or
    `--config`); the file's settings become click's `default_map`, so a flag given on the
    command line wins and every value goes through the same conversion and checks as a flag.
    A bad file stops the command with exit status 2, naming the file and line.
    """

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        """Apply the config file, then parse `args` as usual."""
        try:
            args = _apply_config(self, ctx, list(args))
        except FsyncError as exc:
            sys.stderr.write(f"fsync: error: {_one_line(exc)}\n")
            raise typer.Exit(int(exit_code_for(exc))) from None
        return super().parse_args(ctx, args)


@app.command(cls=ConfiguredCommand)
def push(
    local: LocalArg = None,
    remote: RemoteArg = None,
    dry_run: DryRun = False,
    json_out: Json = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
    on_conflict: OnConflict = ConflictPolicy.KEEP_BOTH,
    mirror: Mirror = False,
    max_delete: MaxDelete = None,
    force: Force = False,
    exclude: Exclude = None,
    transfers: Transfers = 8,
    endpoint_url: EndpointUrl = None,
    option: StorageOption = None,
    log_file: LogFile = None,
    on_error: OnError = None,
    links: Links = LinkMode.SKIP,
    chunk_size: ChunkSize = None,
    retries: Retries = None,
    timeout: Timeout = None,
    tps_limit: TpsLimit = 0,
    bw_limit: BwLimit = None,
    verify: VerifyFull = None,
    backup_dir: BackupDir = None,
    config: ConfigPath = None,
) -> None:
    """Send local changes to REMOTE."""
    _sync(locals(), Direction.PUSH, local, remote)


@app.command(cls=ConfiguredCommand)
def pull(
    remote: RemoteArg = None,
    local: Annotated[
        str | None,
        typer.Argument(
            metavar="LOCAL",
            help="Local folder to update (created if missing). Given alone, it is LOCAL and "
            "the remote comes from its config file.",
            show_default=False,
        ),
    ] = None,
    dry_run: DryRun = False,
    json_out: Json = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
    on_conflict: OnConflict = ConflictPolicy.KEEP_BOTH,
    mirror: Mirror = False,
    max_delete: MaxDelete = None,
    force: Force = False,
    exclude: Exclude = None,
    transfers: Transfers = 8,
    endpoint_url: EndpointUrl = None,
    option: StorageOption = None,
    log_file: LogFile = None,
    on_error: OnError = None,
    links: Links = LinkMode.SKIP,
    chunk_size: ChunkSize = None,
    retries: Retries = None,
    timeout: Timeout = None,
    tps_limit: TpsLimit = 0,
    bw_limit: BwLimit = None,
    backup_dir: BackupDir = None,
    config: ConfigPath = None,
) -> None:
    """Bring remote changes into LOCAL."""
    if local is None and remote is not None and config is None:
        from fsync.config import CONFIG_FILE, find_config

        if find_config(".") is None:
            # Never pull into whatever folder the shell happens to be in.
            sys.stderr.write(
                "fsync: error: no LOCAL given (fsync pull REMOTE LOCAL; LOCAL alone takes "
                f"REMOTE from LOCAL/{CONFIG_FILE})\n"
            )
            raise typer.Exit(int(ExitCode.USAGE))
    _sync(locals(), Direction.PULL, local, remote)


@app.command(cls=ConfiguredCommand)
def sync(
    local: LocalArg = None,
    remote: RemoteArg = None,
    dry_run: DryRun = False,
    json_out: Json = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
    on_conflict: OnConflict = ConflictPolicy.KEEP_BOTH,
    max_delete: MaxDelete = None,
    force: Force = False,
    exclude: Exclude = None,
    transfers: Transfers = 8,
    endpoint_url: EndpointUrl = None,
    option: StorageOption = None,
    log_file: LogFile = None,
    on_error: OnError = None,
    links: Links = LinkMode.SKIP,
    chunk_size: ChunkSize = None,
    retries: Retries = None,
    timeout: Timeout = None,
    tps_limit: TpsLimit = 0,
    bw_limit: BwLimit = None,
    verify: VerifyFull = None,
    backup_dir: BackupDir = None,
    config: ConfigPath = None,
) -> None:
    """Two-way: bring the changes of each side to the other, in one run (LOCAL created if
    missing)."""
    _sync(locals(), Direction.SYNC, local, remote)


@app.command(cls=ConfiguredCommand)
def status(
    local: LocalArg = None,
    json_out: Json = False,
    verbose: Verbose = False,
    exclude: Exclude = None,
    config: ConfigPath = None,
) -> None:
    """Pending local changes per remote, unfinished transfers, and the last runs."""
    from fsync import app as use_cases

    redactor = Redactor.build(env=os.environ)
    report = _guard(verbose, lambda: use_cases.status(local or ".", tuple(exclude or ())), redactor)
    if json_out:
        typer.echo(json.dumps(redactor.value(_status_json(report)), ensure_ascii=False))
    else:
        _print_status(report, redactor)
    raise typer.Exit(int(ExitCode.OK))


@app.command(cls=ConfiguredCommand)
def verify(
    local: LocalArg = None,
    remote: RemoteArg = None,
    download: Annotated[
        bool,
        typer.Option(
            "--download",
            help="Re-hash the remote content even where its metadata holds the blake3.",
        ),
    ] = False,
    json_out: Json = False,
    verbose: Verbose = False,
    exclude: Exclude = None,
    transfers: Transfers = 8,
    endpoint_url: EndpointUrl = None,
    option: StorageOption = None,
    links: Links = LinkMode.SKIP,
    config: ConfigPath = None,
) -> None:
    """Check that REMOTE holds exactly the files of LOCAL (exit 1 on any difference)."""
    from fsync.config import VerifyOptions, parse_storage_options
    from fsync.verify import verify as run_verify

    root, url = _roots(local, remote, "verify")

    def build() -> VerifyOptions:
        return VerifyOptions(
            local_root=root,
            remote_url=url,
            excludes=tuple(exclude or ()),
            download=download,
            transfers=transfers,
            storage_options=parse_storage_options(list(option or ())),
            endpoint_url=endpoint_url,
            follow_links=links is LinkMode.FOLLOW,
        )

    opts = _guard(verbose, build, Redactor.build(urls=[url], env=os.environ))
    redactor = _redactor_for(url, opts.storage_options)
    _configure_logging(verbose, redactor)
    reporter = _redacting(_reporter(json_out), redactor)
    report = _guard(verbose, lambda: run_verify(opts, reporter), redactor)
    if json_out:
        typer.echo(json.dumps(redactor.value(report.as_json()), ensure_ascii=False))
    else:
        _print_verify(report, redactor)
    raise typer.Exit(int(ExitCode.OK if report.ok else ExitCode.FAILED))


@app.command()
def cleanup(
    remote: Annotated[str, typer.Argument(help="The remote (path or URL) to clean up.")],
    older_than: Annotated[
        str | None,
        typer.Option(
            "--older-than",
            metavar="DURATION",
            help="Only writes started at least this long ago (90, 30s, 15m, 2h, 7d).",
        ),
    ] = None,
    json_out: Json = False,
    verbose: Verbose = False,
    endpoint_url: EndpointUrl = None,
    option: StorageOption = None,
) -> None:
    """Abort unfinished uploads (S3 multipart uploads, temporary files) under REMOTE."""
    from fsync.cleanup import cleanup as run_cleanup
    from fsync.cleanup import parse_duration
    from fsync.config import parse_storage_options

    redactor = Redactor.build(urls=[remote], env=os.environ)

    def run() -> int:
        age = parse_duration(older_than) if older_than is not None else None
        options = parse_storage_options(list(option or ()))
        return run_cleanup(
            remote, older_than=age, storage_options=options, endpoint_url=endpoint_url
        )

    aborted = _guard(verbose, run, redactor)
    if json_out:
        typer.echo(json.dumps({"aborted": aborted}))
    else:
        typer.echo(f"cleanup: aborted {aborted} unfinished uploads under {redactor.text(remote)}")
    raise typer.Exit(int(ExitCode.OK))


WatchOnError = Annotated[
    str | None,
    typer.Option(
        "--on-error",
        metavar="CMD",
        help="Run CMD (sh -c, JSON summary on stdin) when a file keeps failing.",
    ),
]
RescanEvery = Annotated[
    float,
    typer.Option(
        "--rescan-every",
        metavar="SECONDS",
        min=0.1,
        help="Rescan the whole tree this often (jittered ±10%), whatever the events say.",
    ),
]
PullEvery = Annotated[
    float | None,
    typer.Option(
        "--pull-every",
        metavar="SECONDS",
        min=0.1,
        help="Also poll REMOTE this often and apply its changes (two-way).",
    ),
]


@app.command(cls=ConfiguredCommand)
def watch(
    local: LocalArg = None,
    remote: RemoteArg = None,
    json_out: Json = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
    on_conflict: OnConflict = ConflictPolicy.KEEP_BOTH,
    exclude: Exclude = None,
    transfers: Transfers = 8,
    endpoint_url: EndpointUrl = None,
    option: StorageOption = None,
    on_error: WatchOnError = None,
    rescan_every: RescanEvery = 3600.0,
    pull_every: PullEvery = None,
    config: ConfigPath = None,
) -> None:
    """Push local changes to REMOTE as they happen, until Ctrl-C or SIGTERM."""
    from fsync.config import WatchOptions, parse_storage_options
    from fsync.watch import watch as run_watch

    root, url = _roots(local, remote, "watch")

    def build() -> WatchOptions:
        return WatchOptions(
            local_root=root,
            remote_url=url,
            on_conflict=on_conflict,
            excludes=tuple(exclude or ()),
            transfers=transfers,
            storage_options=parse_storage_options(list(option or ())),
            endpoint_url=endpoint_url,
            on_error=on_error,
            rescan_every=rescan_every,
            pull_every=pull_every,
        )

    opts = _guard(verbose, build)
    display = _watch_display(json_out or quiet)
    try:
        result = _guard(verbose, lambda: run_watch(opts, display))
    finally:
        display.stop()
    if json_out:
        typer.echo(json.dumps(result.as_json(), ensure_ascii=False))
    elif not quiet:
        _print_watch_summary(result)
    raise typer.Exit(int(ExitCode.OK))


def _watch_display(silent: bool) -> WatchDisplay:
    if silent:
        return NullWatchDisplay(sys.stderr)
    if sys.stderr.isatty():
        return RichWatchDisplay(sys.stderr)
    return PlainWatchDisplay(sys.stdout, sys.stderr)


def _print_watch_summary(r: RunResult) -> None:
    for e in r.errors:
        sys.stderr.write(f"fsync: error: {e.path}: {e.error}\n")
    parts = [
        f"{r.uploaded} uploaded ({_bytes(r.bytes_sent)})",
        f"{r.moved} moved",
        f"{r.deleted} deleted",
    ]
    if r.downloaded:
        parts.append(f"{r.downloaded} downloaded ({_bytes(r.bytes_received)})")
    parts += [f"{r.conflicts} conflicts", f"{r.failed} failing"]
    typer.echo("watch: " + ", ".join(parts) + f" in {r.seconds:.1f} s")


def _sync(
    args: dict[str, object], direction: Direction, local: str | None, remote: str | None
) -> NoReturn:
    from fsync import app as use_cases
    from fsync.config import SyncOptions, parse_rate, parse_size, parse_storage_options
    from fsync.runlog import RunMonitor

    # A one-shot run builds millions of small objects and no cycles worth collecting: the
    # cyclic GC only rescans them (0.3 s of a 100,000-file no-op). `watch` keeps it on.
    gc.disable()
    verbose = bool(args["verbose"])
    json_out, quiet = bool(args["json_out"]), bool(args["quiet"])
    root, url = _roots(local, remote, direction.value)

    def build() -> SyncOptions:
        return SyncOptions(
            local_root=root,
            remote_url=url,
            direction=direction,
            dry_run=bool(args["dry_run"]),
            on_conflict=args["on_conflict"],  # type: ignore[arg-type]
            mirror=bool(args.get("mirror")),
            max_delete=args["max_delete"],  # type: ignore[arg-type]
            force=bool(args["force"]),
            excludes=tuple(args["exclude"] or ()),  # type: ignore[call-overload]
            transfers=int(args["transfers"]),  # type: ignore[call-overload]
            storage_options=parse_storage_options(list(args["option"] or ())),  # type: ignore[call-overload]
            endpoint_url=args["endpoint_url"],  # type: ignore[arg-type]
            follow_links=args["links"] is LinkMode.FOLLOW,
            chunk_size=None if args["chunk_size"] is None else parse_size(str(args["chunk_size"])),
            retries=args["retries"],  # type: ignore[arg-type]
            timeout=args["timeout"],  # type: ignore[arg-type]
            tps_limit=float(args["tps_limit"]),  # type: ignore[arg-type]
            bw_limit=0 if args["bw_limit"] is None else parse_rate(str(args["bw_limit"])),
            backup_dir=args.get("backup_dir"),  # type: ignore[arg-type]
            verify_full=args.get("verify") is VerifyMode.FULL,
        )

    opts = _guard(verbose, build, Redactor.build(urls=[url], env=os.environ))
    redactor = _redactor_for(url, opts.storage_options)
    _configure_logging(verbose, redactor)
    reporter = _redacting(_reporter(json_out or quiet), redactor)

    def monitor() -> RunMonitor:
        return RunMonitor(
            command=direction.value,
            local=os.path.abspath(root),
            remote=url,
            redactor=redactor,
            log_file=args["log_file"],  # type: ignore[arg-type]
            on_error=args["on_error"],  # type: ignore[arg-type]
            warn=reporter.warning,
        )

    with _guard(verbose, monitor, redactor) as watch:
        result = _guard(
            verbose,
            lambda: use_cases.run(opts, reporter, on_action=watch.action_done),
            redactor,
            on_fail=watch.stopped,
        )
        watch.finished(result.as_json(), int(use_cases.exit_status(result)))
    if json_out:
        typer.echo(json.dumps(redactor.value(result.as_json()), ensure_ascii=False))
    elif not quiet:
        _print_summary(direction, result, verbose, redactor)
    raise typer.Exit(int(use_cases.exit_status(result)))


def _roots(local: str | None, remote: str | None, command: str) -> tuple[str, str]:
    """LOCAL (default: the current folder) and REMOTE, or exit 2 when no remote is known."""
    root = local or "."
    if remote:
        return root, remote
    from fsync.config import CONFIG_FILE

    where = os.path.join(root, CONFIG_FILE) if local else CONFIG_FILE
    sys.stderr.write(
        f"fsync: error: no REMOTE given and {where} sets none "
        f'(fsync {command} LOCAL REMOTE, or set remote = "URL" in that file)\n'
    )
    raise typer.Exit(int(ExitCode.USAGE))


def _redactor_for(url: str, storage_options: object) -> Redactor:
    """The redactor of one run: its URL's password, secret options and the environment."""
    options = storage_options if isinstance(storage_options, dict) else {}
    return Redactor.build(urls=[url], storage_options=options, env=os.environ)


def _configure_logging(verbose: bool, redactor: Redactor) -> None:
    from fsync.runlog import configure_console

    configure_console(verbose, redactor)


def _redacting(reporter: Reporter, redactor: Redactor) -> Reporter:
    from fsync.runlog import RedactingReporter

    return RedactingReporter(reporter, redactor)


def _reporter(silent: bool) -> Reporter:
    if silent:
        return NullReporter(sys.stderr)
    if sys.stderr.isatty():
        return RichReporter(sys.stdout, sys.stderr)
    return PlainReporter(sys.stdout, sys.stderr)


def _guard(
    verbose: bool,
    fn: Callable[[], T],
    redactor: Redactor = NO_SECRETS,
    on_fail: Callable[[str, int], object] | None = None,
) -> T:
    """Run `fn`; turn any escaping exception into one error line and its exit status.

    The line (and, with `verbose`, the traceback) is scrubbed by `redactor`; `on_fail` hears
    the message and status first (the run's log and alarm).
    """
    try:
        return fn()
    except KeyboardInterrupt:
        if on_fail is not None:
            on_fail("interrupted", int(ExitCode.INTERRUPTED))
        sys.stderr.write("fsync: interrupted\n")
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
    except Exception as exc:
        message = redactor.text(_one_line(exc))
        if on_fail is not None:
            on_fail(message, int(exit_code_for(exc)))
        if verbose:
            sys.stderr.write(redactor.text(traceback.format_exc()))
        sys.stderr.write(f"fsync: error: {message}\n")
        raise typer.Exit(int(exit_code_for(exc))) from None


def _one_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return " ".join(text.split())


def _print_summary(
    direction: Direction, r: RunResult, verbose: bool, redactor: Redactor = NO_SECRETS
) -> None:
    moved = r.uploaded + r.downloaded + r.deleted + r.moved
    if verbose:
        for n in r.notices:
            typer.echo(f"skipped {n.path}: {n.reason}")
    for e in r.errors:
        sys.stderr.write(f"fsync: error: {e.path}: {redactor.text(e.error)}\n")
    if moved == 0 and not r.failed and not r.conflicts:
        typer.echo(f"{direction.value}: nothing to do ({r.unchanged} files unchanged)")
    else:
        parts = _transfer_parts(direction, r)
        parts += [
            f"{r.moved} {'to move' if r.dry_run else 'moved'}",
            f"{r.deleted} {'to delete' if r.dry_run else 'deleted'}",
            f"{r.conflicts} conflicts",
            f"{r.failed} failed",
            f"{r.unchanged} unchanged",
        ]
        label = f"{direction.value} (dry run)" if r.dry_run else direction.value
        typer.echo(f"{label}: " + ", ".join(parts) + f" in {r.seconds:.2f} s")
    left = len(r.notices) - r.unresolved
    if left > 0 and not verbose and direction is not Direction.SYNC:
        other = "pull" if direction is Direction.PUSH else "push"
        typer.echo(f"{left} changes left for the other direction (fsync {other}; -v lists them)")
    if r.unresolved:
        typer.echo(
            f"{r.unresolved} conflicts left unresolved (-v lists them; the next run sees them)"
        )


def _transfer_parts(direction: Direction, r: RunResult) -> list[str]:
    """The summary's copy counts: what went up, down, or (for sync) both."""
    up = f"{r.uploaded} {'to upload' if r.dry_run else 'uploaded'} ({_bytes(r.bytes_sent)})"
    down = f"{r.downloaded} {'to download' if r.dry_run else 'downloaded'}"
    down += f" ({_bytes(r.bytes_received)})"
    if direction is Direction.PUSH:
        return [up]
    if direction is Direction.PULL:
        return [down]
    return [up, down]


def _bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _status_json(report: StatusReport) -> dict[str, object]:
    return {
        "root": report.root,
        "remotes": [
            {
                "url": r.url,
                "changed": r.changed,
                "new": r.new,
                "deleted": r.deleted,
                "queued": r.queued,
            }
            for r in report.remotes
        ],
        "unfinished_uploads": [
            {
                "target": u.target,
                "upload_id": u.upload_id,
                "size": u.size,
                "part_size": u.part_size,
                "started": u.created,
            }
            for u in report.uploads
        ],
        "runs": [
            {
                "id": run.id,
                "remote": run.remote_url,
                "command": run.command,
                "started": run.started,
                "ended": run.ended,
                "exit_code": run.exit_code,
                "summary": run.summary,
            }
            for run in report.runs
        ],
        "errors": [{"path": e.path, "error": e.error} for e in report.errors],
    }


def _print_status(report: StatusReport, redactor: Redactor = NO_SECRETS) -> None:
    from datetime import datetime

    def when(t: float) -> str:
        return datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S")

    say = redactor.text
    typer.echo(f"{report.root}")
    for r in report.remotes:
        pending = len(r.changed) + len(r.new) + len(r.deleted)
        typer.echo(f"  {say(r.url)}: {pending} pending local changes")
        for label, paths in (("changed", r.changed), ("new", r.new), ("deleted", r.deleted)):
            for p in paths:
                typer.echo(f"    {label:8} {p}")
        if r.queued:
            typer.echo(f"    {len(r.queued)} queued by fsync watch, not sent yet")
    if report.uploads:
        typer.echo("unfinished uploads (the next push of the same content continues them):")
    for u in report.uploads:
        typer.echo(f"  {say(u.target)}: {_bytes(u.size)}, started {when(u.created)}")
    _print_runs(report, when, say)
    for e in report.errors:
        sys.stderr.write(f"fsync: warning: {e.path}: {say(e.error)}\n")


def _print_runs(
    report: StatusReport, when: Callable[[float], str], say: Callable[[str], str]
) -> None:
    if report.runs:
        typer.echo("last runs:")
    for run in report.runs:
        s = run.summary
        ended = "unfinished" if run.exit_code is None else f"exit {run.exit_code}"
        typer.echo(
            f"  {when(run.started)} {run.command} {say(run.remote_url or '?')} {ended}: "
            f"{s.get('uploaded', 0)} up, {s.get('downloaded', 0)} down, "
            f"{s.get('deleted', 0)} deleted, {s.get('failed', 0)} failed"
        )
        errors: list[dict[str, str]] = s.get("errors", [])  # type: ignore[assignment]
        for err in errors[:5]:
            typer.echo(f"    error {err['path']}: {say(err['error'])}")
        if len(errors) > 5:
            typer.echo(f"    ... and {len(errors) - 5} more (fsync status --json lists all)")


def _print_verify(report: VerifyReport, redactor: Redactor) -> None:
    for path in report.missing:
        typer.echo(f"missing    {path}  (local only)")
    for path in report.extra:
        typer.echo(f"extra      {path}  (remote only)")
    for d in report.different:
        typer.echo(f"different  {d.path}  ({d.reason})")
    for e in report.errors:
        sys.stderr.write(f"fsync: error: {e.path}: {redactor.text(e.error)}\n")
    typer.echo(f"local:  {report.local_files} files, {_bytes(report.local_bytes)}")
    typer.echo(f"remote: {report.remote_files} files, {_bytes(report.remote_bytes)}")
    how = []
    if report.from_metadata:
        how.append(f"{report.from_metadata} blake3 from metadata")
    if report.hashed_files:
        how.append(f"{report.hashed_files} re-hashed ({_bytes(report.hashed_bytes)} read)")
    verdict = "OK" if report.ok else "DIFFERENT"
    typer.echo(
        f"verify: {verdict}: {report.matched} match, {len(report.missing)} missing, "
        f"{len(report.extra)} extra, {len(report.different)} different, "
        f"{len(report.errors)} unreadable"
        + (f" ({', '.join(how)})" if how else "")
        + f" in {report.seconds:.2f} s"
    )


_NOT_SETTINGS = frozenset({"config", "help", "local"})
"""Parameters a config file may not set."""

_PATH_SETTINGS = frozenset({"remote", "log_file", "backup_dir"})
"""Settings holding a path: a relative one is taken from the root, not the cwd."""


def _apply_config(command: TyperCommand, ctx: typer.Context, args: list[str]) -> list[str]:
    """Load the config file for the LOCAL these `args` name; set `ctx.default_map` from it.

    Returns the arguments to parse: for `pull` given one argument (LOCAL), the configured
    remote is put in front of it. Raises `ConfigError` for an unreadable or invalid file,
    naming the file and the line.
    """
    from fsync.config import find_config, load_config

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
    defaults = _config_defaults(command, ctx, file, base)
    ctx.default_map = {**(ctx.default_map or {}), **defaults}
    if lone_pull and "remote" in defaults:
        return [str(defaults["remote"]), *args]  # the one argument given is LOCAL
    return args


def _config_defaults(
    command: TyperCommand, ctx: typer.Context, file: ConfigFile, base: str
) -> dict[str, object]:
    """The file's settings for `command`, checked against its parameters (`ConfigError`)."""
    params = {p.name: p for p in command.get_params(ctx) if p.name not in _NOT_SETTINGS}
    known = _all_parameter_names(ctx) - _NOT_SETTINGS
    defaults: dict[str, object] = {}
    for name, (raw, table) in file.settings_for(command.name or "").items():
        param = params.get(name)
        if param is None:
            if table is not None or name not in known:
                raise file.error(f"unknown setting '{name.replace('_', '-')}'", name, table)
            continue  # a setting for other commands (e.g. `remote` for status)
        value = [raw] if param.multiple and isinstance(raw, str) else raw
        try:
            param.process_value(ctx, value)
        except typer.BadParameter as exc:
            raise file.error(f"{name.replace('_', '-')}: {exc.message}", name, table) from None
        if name in _PATH_SETTINGS and isinstance(value, str) and "://" not in value:
            value = os.path.join(base, os.path.expanduser(value))
        defaults[name] = value
    return defaults


def _all_parameter_names(ctx: typer.Context) -> set[str]:
    """The parameter names of every command of the `fsync` group."""
    group = ctx.parent.command if ctx.parent is not None else None
    commands = getattr(group, "commands", {}) or {}
    names = {p.name for p in ctx.command.params if p.name}
    for cmd in commands.values():
        names.update(p.name for p in cmd.params if p.name)
    return names


def main() -> None:
    """Entry point of the `fsync` console script."""
    app()
