"""The `fsync` command: parse, build options, call the app, render, exit.

Each command is a thin shell around `fsync.app`: its options are declared in `cli_options`,
merged with the config file by `cli_config`, turned into the app's options and guarded by
`cli_run`, and shown by `render`. The app and its adapters are imported inside the commands
so `fsync --help` and argument errors stay fast.
"""

# No `from __future__ import annotations` here: typer reads these signatures on every run, and
# evaluating some 120 annotation strings would cost it about 4 ms.

import gc
import os
import signal
import sys
from collections.abc import Mapping
from types import FrameType
from typing import Annotated, NoReturn

import typer

from fsync import __version__, cli_run, render
from fsync.cli_config import ConfiguredCommand
from fsync.cli_options import (
    BackupDir,
    BwLimit,
    ChunkSize,
    ConfigPath,
    DryRun,
    EndpointUrl,
    Exclude,
    Force,
    Json,
    LinkMode,
    Links,
    LocalArg,
    LogFile,
    MaxDelete,
    Mirror,
    OnConflict,
    OnError,
    PullEvery,
    Quiet,
    RemoteArg,
    RescanEvery,
    Retries,
    StorageOption,
    Timeout,
    TpsLimit,
    Transfers,
    Verbose,
    VerifyFull,
    WatchOnError,
)
from fsync.cli_params import QuickGroup
from fsync.cli_run import guard
from fsync.errors import ExitCode
from fsync.model import ConflictPolicy, Direction
from fsync.redact import Redactor
from fsync.terminal import say

app = typer.Typer(
    name="fsync",
    cls=QuickGroup,
    help="Keep a local folder and any fsspec tree (path, file://, memory://, s3://) in step.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _show_version(asked: bool) -> None:
    if asked:
        say(f"fsync {__version__}")
        raise typer.Exit(int(ExitCode.OK))


@app.callback()
def _commands(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """The group's own options; each command does its work itself."""


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
    _transfer(Direction.PUSH, locals())


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
    verify: VerifyFull = None,
    backup_dir: BackupDir = None,
    config: ConfigPath = None,
) -> None:
    """Bring remote changes into LOCAL."""
    if local is None and remote is not None and config is None:
        from fsync.config import CONFIG_FILE, find_config

        if find_config(".") is None:
            # Never pull into whatever folder the shell happens to be in.
            cli_run.fail(
                "no LOCAL given (fsync pull REMOTE LOCAL; LOCAL alone takes "
                f"REMOTE from LOCAL/{CONFIG_FILE})",
                ExitCode.USAGE,
                json_out=json_out,
            )
    _transfer(Direction.PULL, locals())


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
    """Two-way: bring each side's changes to the other in one run (LOCAL made if missing)."""
    _transfer(Direction.SYNC, locals())


def _transfer(direction: Direction, args: Mapping[str, object]) -> NoReturn:
    """One push, pull or sync: run the app, log the run, show its summary, exit."""
    # A one-shot run builds millions of small objects and no cycles worth collecting: the
    # cyclic GC only rescans them (0.3 s of a 100,000-file no-op; a few ms of importing the
    # app, hence before the imports). `watch` keeps it on.
    gc.disable()
    from fsync import app as use_cases
    from fsync.config import SyncOptions
    from fsync.runlog import RunMonitor

    verbose, json_out, quiet = bool(args["verbose"]), bool(args["json_out"]), bool(args["quiet"])
    opts, redactor = cli_run.options(direction.value, SyncOptions, args, direction=direction)
    reporter = cli_run.reporting(verbose, json_out or quiet, redactor)

    def monitor() -> RunMonitor:
        return RunMonitor(
            command=direction.value,
            local=os.path.abspath(opts.local_root),
            remote=opts.remote_url,
            redactor=redactor,
            log_file=args["log_file"],  # type: ignore[arg-type]
            on_error=args["on_error"],  # type: ignore[arg-type]
            warn=reporter.warning,
        )

    with guard(verbose, monitor, redactor, json_out=json_out) as watch:
        result = guard(
            verbose,
            lambda: use_cases.run(opts, reporter, on_action=watch.action_done),
            redactor,
            on_fail=watch.stopped,
            json_out=json_out,
        )
        watch.finished(result.as_json(), int(use_cases.exit_status(result)))
    if json_out:
        render.echo_json(redactor.value(result.as_json()))
    if json_out or quiet:
        # DESIGN: errors go to stderr even so; a script logging stderr lost them with --json,
        # while the warnings were there.
        render.print_errors(result.errors, redactor)
    else:
        shown = getattr(reporter, "shown_errors", ())
        render.print_summary(direction, result, verbose, redactor, shown)
    if result.stopped:  # a dry run past a safety stop: the real run's error line, after the plan
        cli_run.fail(redactor.text(result.stopped), use_cases.exit_status(result))
    raise typer.Exit(int(use_cases.exit_status(result)))


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
    report = guard(
        verbose,
        lambda: use_cases.status(local or ".", tuple(exclude or ())),
        redactor,
        json_out=json_out,
    )
    if json_out:
        render.echo_json(redactor.value(render.status_json(report)))
    else:
        render.print_status(report, redactor)
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
    from fsync.config import VerifyOptions
    from fsync.verify import verify as run_verify

    opts, redactor = cli_run.options("verify", VerifyOptions, locals())
    reporter = cli_run.reporting(verbose, json_out, redactor)
    report = guard(verbose, lambda: run_verify(opts, reporter), redactor, json_out=json_out)
    if json_out:
        render.echo_json(redactor.value(report.as_json()))
    else:
        render.print_verify(report, redactor)
    raise typer.Exit(int(ExitCode.OK if report.ok else ExitCode.FAILED))


@app.command(cls=ConfiguredCommand)
def cleanup(
    remote: Annotated[
        str | None,
        typer.Argument(
            metavar="REMOTE",
            help=(
                "The remote (path or URL) to clean up (default: `remote` in the"
                " .fsync/config.toml of LOCAL)."
            ),
            show_default=False,
        ),
    ] = None,
    older_than: Annotated[
        str | None,
        typer.Option(
            "--older-than",
            metavar="DURATION",
            help=(
                "Only writes started at least this long ago (90, 30s, 15m, 2h, 7d). Without"
                " it, all but those written to in the last 2 minutes, which a running fsync"
                " may own."
            ),
        ),
    ] = None,
    local: Annotated[
        str | None,
        typer.Option(
            "--local",
            metavar="LOCAL",
            help=(
                "The local folder that pushes to REMOTE: its record of unfinished uploads"
                " forgets those aborted, so fsync status stops listing them. Default: the"
                " current folder, if fsync has synced it. Refused (exit 2) while another fsync"
                " works on LOCAL (or on REMOTE, a synced folder): what it writes is in use."
            ),
        ),
    ] = None,
    json_out: Json = False,
    verbose: Verbose = False,
    endpoint_url: EndpointUrl = None,
    option: StorageOption = None,
    config: ConfigPath = None,
) -> None:
    """Abort unfinished uploads (S3 multipart uploads, temporary files) under REMOTE."""
    from fsync.cleanup import cleanup as run_cleanup
    from fsync.cleanup import is_synced_root, parse_duration
    from fsync.config import parse_storage_options

    _, remote = cli_run.roots(local, remote, "cleanup", json_out, config=config, form="REMOTE")
    redactor = Redactor.build(urls=[remote], env=os.environ)

    def run() -> int:
        age = parse_duration(older_than) if older_than is not None else None
        options = parse_storage_options(list(option or ()))
        root = local if local is not None or not is_synced_root(".") else "."
        return run_cleanup(
            remote,
            older_than=age,
            storage_options=options,
            endpoint_url=endpoint_url,
            local_root=root,
        )

    aborted = guard(verbose, run, redactor, json_out=json_out)
    if json_out:
        render.echo_json({"aborted": aborted})
    else:
        say(f"cleanup: aborted {aborted} unfinished uploads under {redactor.text(remote)}")
    raise typer.Exit(int(ExitCode.OK))


@app.command(cls=ConfiguredCommand)
def watch(
    local: LocalArg = None,
    remote: RemoteArg = None,
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
    chunk_size: ChunkSize = None,
    timeout: Timeout = None,
    tps_limit: TpsLimit = 0,
    bw_limit: BwLimit = None,
    log_file: LogFile = None,
    verify: VerifyFull = None,
    backup_dir: BackupDir = None,
    dry_run: DryRun = False,
    links: Links = LinkMode.SKIP,
    retries: Retries = 5,
    on_error: WatchOnError = None,
    rescan_every: RescanEvery = 3600.0,
    pull_every: PullEvery = None,
    config: ConfigPath = None,
) -> None:
    """Push local changes to REMOTE as they happen, until Ctrl-C or SIGTERM."""
    from fsync.config import WatchOptions
    from fsync.runlog import RunMonitor, configure_console
    from fsync.watch import watch as run_watch

    opts, redactor = cli_run.options("watch", WatchOptions, locals())
    configure_console(verbose, redactor)
    display = cli_run.watch_display(json_out or quiet)

    def monitor() -> RunMonitor:
        # The watch raises its alarm itself, per path (`WatchOnError`); this one fires only
        # when the session itself fails (its start, say: the remote unreachable).
        return RunMonitor(
            command="watch",
            local=os.path.abspath(opts.local_root),
            remote=opts.remote_url,
            redactor=redactor,
            log_file=log_file,
            on_error=opts.on_error,
            warn=display.warning,
        )

    try:
        with guard(verbose, monitor, redactor, json_out=json_out) as log:
            result = guard(
                verbose,
                lambda: run_watch(opts, display, on_action=log.action_done),
                redactor,
                on_fail=log.stopped,
                json_out=json_out,
            )
            log.finished(result.as_json(), int(ExitCode.OK))
    finally:
        display.stop()
    if json_out:
        render.echo_json(redactor.value(result.as_json()))
    elif not quiet:
        render.print_watch_summary(result)
    raise typer.Exit(int(ExitCode.OK))


PATH_DEPTH_MAX = 2_048
"""The most folders a path can name: the kernel takes paths of up to 4,096 bytes."""


def main() -> None:
    """Entry point of the `fsync` console script.

    Python's recursion limit (1,000) is raised above `PATH_DEPTH_MAX`: code that goes one
    call deeper per folder (`os.walk` in watchdog, `os.makedirs`) ended a run on a tree 1,000
    folders deep, a legal one, with "maximum recursion depth exceeded".
    """
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 2 * PATH_DEPTH_MAX + 1_000))
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _stop_as_interrupted)
    app()


def _stop_as_interrupted(signum: int, frame: FrameType | None) -> NoReturn:
    """SIGTERM (`kill`, a service manager's stop) ends a run as Ctrl-C does: transfers halted
    at their next chunk, what was done recorded, "interrupted" and exit 130. By default it
    ended the process at once, leaving the run "unfinished" in the history, with no word.
    A watch installs its own handler (a graceful stop) over this one."""
    raise KeyboardInterrupt
