"""The `fsync` command: parse, build options, call the app, render, exit.

Each command is a thin shell around `fsync.app`; the one place exceptions become exit
statuses and one-line messages is `_guard`. The app and its adapters are imported inside the
commands so `fsync --help` and argument errors stay fast.
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, NoReturn, TypeVar

import typer

from fsync.errors import ExitCode, exit_code_for
from fsync.model import ConflictPolicy, Direction, RunResult
from fsync.progress import NullReporter, PlainReporter, Reporter, RichReporter

if TYPE_CHECKING:
    from fsync.app import StatusReport

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
    bool, typer.Option("-v", "--verbose", help="More detail; tracebacks on errors.")
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


@app.command()
def push(
    local: Annotated[str, typer.Argument(help="Local folder to send.")],
    remote: Annotated[str, typer.Argument(help="Destination: a path or fsspec URL.")],
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
) -> None:
    """Send local changes to REMOTE."""
    _sync(locals(), Direction.PUSH, local, remote)


@app.command()
def pull(
    remote: Annotated[str, typer.Argument(help="Source: a path or fsspec URL.")],
    local: Annotated[str, typer.Argument(help="Local folder to update (created if missing).")],
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
) -> None:
    """Bring remote changes into LOCAL."""
    _sync(locals(), Direction.PULL, local, remote)


@app.command()
def status(
    local: Annotated[str, typer.Argument(help="A local folder fsync has synced.")],
    json_out: Json = False,
    verbose: Verbose = False,
    exclude: Exclude = None,
) -> None:
    """Pending local changes per remote, and the last runs."""
    from fsync import app as use_cases

    report = _guard(verbose, lambda: use_cases.status(local, tuple(exclude or ())))
    if json_out:
        typer.echo(json.dumps(_status_json(report), ensure_ascii=False))
    else:
        _print_status(report)
    raise typer.Exit(int(ExitCode.OK))


def _sync(args: dict[str, object], direction: Direction, local: str, remote: str) -> NoReturn:
    from fsync import app as use_cases
    from fsync.config import SyncOptions, parse_storage_options

    verbose = bool(args["verbose"])
    json_out, quiet = bool(args["json_out"]), bool(args["quiet"])

    def build() -> SyncOptions:
        return SyncOptions(
            local_root=local,
            remote_url=remote,
            direction=direction,
            dry_run=bool(args["dry_run"]),
            on_conflict=args["on_conflict"],  # type: ignore[arg-type]
            mirror=bool(args["mirror"]),
            max_delete=args["max_delete"],  # type: ignore[arg-type]
            force=bool(args["force"]),
            excludes=tuple(args["exclude"] or ()),  # type: ignore[call-overload]
            transfers=int(args["transfers"]),  # type: ignore[call-overload]
            storage_options=parse_storage_options(list(args["option"] or ())),  # type: ignore[call-overload]
            endpoint_url=args["endpoint_url"],  # type: ignore[arg-type]
        )

    opts = _guard(verbose, build)
    reporter = _reporter(json_out or quiet)
    result = _guard(verbose, lambda: use_cases.run(opts, reporter))
    if json_out:
        typer.echo(json.dumps(result.as_json(), ensure_ascii=False))
    elif not quiet:
        _print_summary(direction, result, verbose)
    raise typer.Exit(int(use_cases.exit_status(result)))


def _reporter(silent: bool) -> Reporter:
    if silent:
        return NullReporter(sys.stderr)
    if sys.stderr.isatty():
        return RichReporter(sys.stdout, sys.stderr)
    return PlainReporter(sys.stdout, sys.stderr)


def _guard(verbose: bool, fn: Callable[[], T]) -> T:
    """Run `fn`; turn any escaping exception into one error line and its exit status."""
    try:
        return fn()
    except KeyboardInterrupt:
        sys.stderr.write("fsync: interrupted\n")
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
    except Exception as exc:
        if verbose:
            traceback.print_exc()
        sys.stderr.write(f"fsync: error: {_one_line(exc)}\n")
        raise typer.Exit(int(exit_code_for(exc))) from None


def _one_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return " ".join(text.split())


def _print_summary(direction: Direction, r: RunResult, verbose: bool) -> None:
    moved = r.uploaded + r.downloaded + r.deleted
    if verbose:
        for n in r.notices:
            typer.echo(f"skipped {n.path}: {n.reason}")
    for e in r.errors:
        sys.stderr.write(f"fsync: error: {e.path}: {e.error}\n")
    if moved == 0 and not r.failed and not r.conflicts:
        typer.echo(f"{direction.value}: nothing to do ({r.unchanged} files unchanged)")
    else:
        moved_bytes = r.bytes_sent if direction is Direction.PUSH else r.bytes_received
        copied = r.uploaded if direction is Direction.PUSH else r.downloaded
        word = "uploaded" if direction is Direction.PUSH else "downloaded"
        if r.dry_run:
            word = "to upload" if direction is Direction.PUSH else "to download"
        parts = [
            f"{copied} {word} ({_bytes(moved_bytes)})",
            f"{r.deleted} {'to delete' if r.dry_run else 'deleted'}",
            f"{r.conflicts} conflicts",
            f"{r.failed} failed",
            f"{r.unchanged} unchanged",
        ]
        label = f"{direction.value} (dry run)" if r.dry_run else direction.value
        typer.echo(f"{label}: " + ", ".join(parts) + f" in {r.seconds:.2f} s")
    if r.notices and not verbose:
        other = "pull" if direction is Direction.PUSH else "push"
        typer.echo(
            f"{len(r.notices)} changes left for the other direction (fsync {other}; -v lists them)"
        )
    if r.unresolved:
        typer.echo(f"{r.unresolved} conflicts left unresolved (--on-conflict skip)")


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
            {"url": r.url, "changed": r.changed, "new": r.new, "deleted": r.deleted}
            for r in report.remotes
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


def _print_status(report: StatusReport) -> None:
    from datetime import datetime

    typer.echo(f"{report.root}")
    for r in report.remotes:
        pending = len(r.changed) + len(r.new) + len(r.deleted)
        typer.echo(f"  {r.url}: {pending} pending local changes")
        for label, paths in (("changed", r.changed), ("new", r.new), ("deleted", r.deleted)):
            for p in paths:
                typer.echo(f"    {label:8} {p}")
    if report.runs:
        typer.echo("last runs:")
    for run in report.runs:
        when = datetime.fromtimestamp(run.started).strftime("%Y-%m-%d %H:%M:%S")
        s = run.summary
        typer.echo(
            f"  {when} {run.command} {run.remote_url} exit {run.exit_code}: "
            f"{s.get('uploaded', 0)} up, {s.get('downloaded', 0)} down, "
            f"{s.get('deleted', 0)} deleted, {s.get('failed', 0)} failed"
        )
        for err in s.get("errors", [])[:5]:  # type: ignore[union-attr]
            typer.echo(f"    error {err['path']}: {err['error']}")
    for e in report.errors:
        sys.stderr.write(f"fsync: warning: {e.path}: {e.error}\n")


def main() -> None:
    """Entry point of the `fsync` console script."""
    app()
