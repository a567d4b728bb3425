"""What the commands print when they are done: summaries, status, verify reports, JSON.

Human lines go to stdout, errors and warnings to stderr as `fsync: error: ...`; with `--json`
stdout carries one JSON object instead (`echo_json`), whose field names scripts depend on
(DESIGN.md, Interface: extend, never rename). Secrets are scrubbed by the caller's redactor;
control characters by `fsync.terminal`, which every line goes out through.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable
from typing import TYPE_CHECKING

from fsync.model import Direction
from fsync.redact import NO_SECRETS, Redactor
from fsync.terminal import complain, human_bytes, say, say_json

if TYPE_CHECKING:
    from fsync.app import StatusReport
    from fsync.model import FileError, RunResult
    from fsync.verify import VerifyReport


def echo_json(value: object) -> None:
    """`value` as one line of JSON on stdout (non-ASCII kept as is)."""
    say_json(value)


def print_errors(errors: Iterable[FileError], redactor: Redactor | None) -> None:
    """One `fsync: error: PATH: WHY` line on stderr per failed file, scrubbed by `redactor`
    (None: as the run reported it)."""
    for e in errors:
        why = e.error if redactor is None else redactor.text(e.error)
        complain(f"fsync: error: {e.path}: {why}")


def print_summary(
    direction: Direction,
    r: RunResult,
    verbose: bool,
    redactor: Redactor = NO_SECRETS,
    shown: Container[str] = (),
) -> None:
    """The end of a push, pull or sync: the counts, the errors not `shown` as they
    happened (each is said once), and what is left for another run."""
    moved = r.uploaded + r.downloaded + r.deleted + r.moved
    if verbose:
        for n in r.notices:
            say(f"skipped {n.path}: {n.reason}")
    print_errors([e for e in r.errors if e.path not in shown], redactor)
    label = f"{direction.value} (dry run)" if r.dry_run else direction.value
    if moved == 0 and not r.failed and not r.conflicts:
        say(f"{label}: nothing to do ({r.unchanged} files unchanged)")
    else:
        parts = _transfer_parts(direction, r)
        parts += [
            f"{r.moved} {'to move' if r.dry_run else 'moved'}",
            f"{r.deleted} {'to delete' if r.dry_run else 'deleted'}",
            f"{r.conflicts} conflicts",
            f"{r.failed} failed",
            f"{r.unchanged} unchanged",
        ]
        say(f"{label}: " + ", ".join(parts) + f" in {r.seconds:.2f} s")
    unmappable = sum(1 for n in r.notices if n.unmappable)
    left = len(r.notices) - r.unresolved - unmappable
    if left > 0 and not verbose and direction is not Direction.SYNC:
        deleted = sum(1 for n in r.notices if n.deleted and not n.unmappable)
        if r.read_only:
            _print_kept(left, deleted)
        else:
            _print_left(direction, left, deleted)
    if unmappable and not verbose:
        say(
            f"{unmappable} remote changes have names this folder cannot hold, and are left "
            "alone (fsync pull refuses them; -v lists why)"
        )
    if r.unresolved:
        say(f"{r.unresolved} conflicts left unresolved (-v lists them; the next run sees them)")


def _print_left(direction: Direction, left: int, deleted: int) -> None:
    """What a push or pull saw change on its destination and left alone, and how to apply it.

    Files deleted on the destination get their own line: "nothing to do" after someone
    emptied the remote would otherwise read as if the remote were complete, and the way
    back (`--mirror`) differs from the way to apply the change (the other direction).
    """
    other = "pull" if direction is Direction.PUSH else "push"
    if deleted:
        push = direction is Direction.PUSH
        gone, kept = ("on the remote", "here") if push else ("here", "there")
        done, does = ("sent", "sends") if push else ("fetched", "fetches")
        equal = "the remote equal to this folder" if push else "this folder equal to the remote"
        say(
            f"{deleted} files deleted {gone} since the last sync are kept {kept} and not "
            f"{done} again (fsync {other} deletes them {kept} too; fsync {direction.value} "
            f"--mirror {does} them again and makes {equal}; -v lists them)"
        )
    if left > deleted:
        say(f"{left - deleted} changes left for the other direction (fsync {other}; -v lists them)")


def _print_kept(left: int, deleted: int) -> None:
    """What a pull from a read-only remote saw change here and left alone: `_print_left`'s
    lines without the push they offered, which that remote refuses."""
    if deleted:
        say(
            f"{deleted} files deleted here since the last sync are not fetched again (the "
            "remote is read-only; fsync pull --mirror fetches them again and makes this folder "
            "equal to the remote; -v lists them)"
        )
    if left > deleted:
        say(
            f"{left - deleted} changes made here are kept and not sent (the remote is "
            "read-only; -v lists them)"
        )


def _transfer_parts(direction: Direction, r: RunResult) -> list[str]:
    """The summary's copy counts: what went up, down, or (for sync) both."""
    up = f"{r.uploaded} {'to upload' if r.dry_run else 'uploaded'} ({human_bytes(r.bytes_sent)})"
    down = f"{r.downloaded} {'to download' if r.dry_run else 'downloaded'}"
    down += f" ({human_bytes(r.bytes_received)})"
    if direction is Direction.PUSH:
        return [up]
    if direction is Direction.PULL:
        return [down]
    return [up, down]


def print_watch_summary(r: RunResult) -> None:
    """The end of `fsync watch`: what it did in all, and what kept failing."""
    print_errors(r.errors, None)
    parts = _transfer_parts(Direction.SYNC if r.downloaded else Direction.PUSH, r)
    parts += [
        f"{r.moved} {'to move' if r.dry_run else 'moved'}",
        f"{r.deleted} {'to delete' if r.dry_run else 'deleted'}",
        f"{r.conflicts} conflicts",
        f"{r.failed} failing",
    ]
    if r.held_back:
        parts.append(f"{r.held_back} deletions held back")
    label = "watch (dry run, nothing changed)" if r.dry_run else "watch"
    say(f"{label}: " + ", ".join(parts) + f" in {r.seconds:.1f} s")


def status_json(report: StatusReport) -> dict[str, object]:
    """`fsync status --json`: the same as `print_status` shows, as one object."""
    return {
        "root": report.root,
        "remotes": [
            {
                "url": r.url,
                "changed": r.changed,
                "new": r.new,
                "deleted": r.deleted,
                "queued": r.queued,
                "unsettled": r.unsettled,
                "synced": r.synced,
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
        "partial_downloads": [
            {
                "path": d.path,
                "source": d.source,
                "size": d.size,
                "verified_bytes": len(d.blocks) // 32 * d.block_size,
                "started": d.created,
            }
            for d in report.downloads
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


def print_status(report: StatusReport, redactor: Redactor = NO_SECRETS) -> None:
    """Pending changes per remote, unfinished uploads, the last runs; warnings on stderr."""
    from datetime import datetime  # noqa: PLC0415

    def when(t: float) -> str:
        return datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S")

    scrub = redactor.text
    say(f"{report.root}")
    for r in report.remotes:
        pending = len(r.changed) + len(r.new) + len(r.deleted)
        never = "" if r.synced else "never synced, "
        say(f"  {scrub(r.url)}: {never}{pending} pending local changes")
        for label, paths in (("changed", r.changed), ("new", r.new), ("deleted", r.deleted)):
            for p in paths:
                say(f"    {label:8} {p}")
        if r.queued:
            say(f"    {len(r.queued)} queued by fsync watch, not sent yet")
        if r.unsettled:
            say(
                f"    {len(r.unsettled)} files a run was putting in place when it stopped (or "
                "is now); the next run to this remote settles them"
            )
    if report.uploads:
        # A row may be an upload whose abort failed (`S3Remote.abort_upload`), not one to go on.
        say("unfinished uploads (the next push continues or aborts each):")
    for u in report.uploads:
        say(f"  {scrub(u.target)}: {human_bytes(u.size)}, started {when(u.created)}")
    if report.downloads:
        say(
            "partial downloads (the next pull of the same version continues them where the "
            "store keeps the file's blake3, else fetches it whole):"
        )
    for d in report.downloads:
        kept = human_bytes(len(d.blocks) // 32 * d.block_size)
        say(f"  {d.path}: {kept} of {human_bytes(d.size)} on disk, started {when(d.created)}")
    _print_runs(report, when, scrub)
    for e in report.errors:
        complain(f"fsync: warning: {e.path}: {scrub(e.error)}")


def _print_runs(
    report: StatusReport, when: Callable[[float], str], scrub: Callable[[str], str]
) -> None:
    if report.runs:
        say("last runs:")
    for run in report.runs:
        s = run.summary
        ended = "unfinished" if run.exit_code is None else f"exit {run.exit_code}"
        command = f"{run.command} (dry run)" if s.get("dry_run") else run.command
        stopped = s.get("error")  # the run stopped whole (`app.recorded_run`)
        # The summary's counts, conflicts too: a run that exited 3 read "0 up, 0 down, 0
        # deleted, 0 failed", no word of why.
        unresolved = s.get("unresolved", 0)
        left = f" ({unresolved} unresolved)" if unresolved else ""
        counts = (
            f"{s.get('uploaded', 0)} up, {s.get('downloaded', 0)} down, "
            f"{s.get('moved', 0)} moved, {s.get('deleted', 0)} deleted, "
            f"{s.get('conflicts', 0)} conflicts{left}, {s.get('failed', 0)} failed"
        )
        if stopped:
            # Counts only if its actions had begun: a stop before them did nothing.
            outcome = scrub(str(stopped)) + (f"; {counts}" if "uploaded" in s else "")
        else:
            outcome = counts
        say(f"  {when(run.started)} {command} {scrub(run.remote_url or '?')} {ended}: {outcome}")
        errors: list[dict[str, str]] = s.get("errors", [])  # type: ignore[assignment]
        for err in errors[:5]:
            say(f"    error {err['path']}: {scrub(err['error'])}")
        if len(errors) > 5:
            say(f"    ... and {len(errors) - 5} more (fsync status --json lists all)")


def print_verify(report: VerifyReport, redactor: Redactor) -> None:
    """The differences `fsync verify` found, both sides' totals and the verdict."""
    for path in report.missing:
        say(f"missing    {path}  (local only)")
    for path in report.extra:
        say(f"extra      {path}  (remote only)")
    for d in report.different:
        say(f"different  {d.path}  ({d.reason})")
    print_errors(report.errors, redactor)
    say(f"local:  {report.local_files} files, {human_bytes(report.local_bytes)}")
    say(f"remote: {report.remote_files} files, {human_bytes(report.remote_bytes)}")
    how = []
    if report.from_metadata:
        how.append(f"{report.from_metadata} blake3 from metadata")
    if report.hashed_files:
        how.append(f"{report.hashed_files} re-hashed ({human_bytes(report.hashed_bytes)} read)")
    verdict = "OK" if report.ok else "DIFFERENT"
    say(
        f"verify: {verdict}: {report.matched} match, {len(report.missing)} missing, "
        f"{len(report.extra)} extra, {len(report.different)} different, "
        f"{len(report.errors)} unreadable"
        + (f" ({', '.join(how)})" if how else "")
        + f" in {report.seconds:.2f} s"
    )
