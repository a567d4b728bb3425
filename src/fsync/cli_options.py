"""The options and arguments the `fsync` commands share: names, help texts, types, bounds.

Each is an `Annotated` type that a command's signature names, so an option spelled once here
reads the same in every command's help. typer reads the signatures when the command line is
parsed, so this module holds no behaviour: what the values mean is `cli_run`'s and the app's.
"""

from __future__ import annotations

import enum
from typing import Annotated

import typer

from fsync.model import ConflictPolicy


class VerifyMode(enum.Enum):
    """`--verify`: how much checking beyond the built-in per-transfer checks."""

    FULL = "full"


class LinkMode(enum.Enum):
    """`--links`: what a symbolic link in the local tree means."""

    SKIP = "skip"
    FOLLOW = "follow"


DryRun = Annotated[
    bool,
    typer.Option(
        "--dry-run/--no-dry-run",
        help="Show what would change; change nothing in either tree.",
        show_default=False,
    ),
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
    typer.Option(
        "--mirror/--no-mirror",
        help="Make the destination exactly equal to the source.",
        show_default=False,
    ),
]
MaxDelete = Annotated[
    str | None,
    typer.Option(
        "--max-delete",
        metavar="N|N%",
        help="Stop before deleting more than N files (or N% of the synced files; default 50%).",
    ),
]
Force = Annotated[
    bool,
    typer.Option("--force/--no-force", help="Override the safety stops.", show_default=False),
]
BackupDir = Annotated[
    str | None,
    typer.Option(
        "--backup-dir",
        metavar="URL",
        help="Keep what a run overwrites or deletes here first: a folder, or a URL beside "
        "the remote.",
    ),
]
VerifyFull = Annotated[
    VerifyMode | None,
    typer.Option(
        "--verify",
        help="`full`: re-hash every file sent as the remote holds it, and every file "
        "received as the disk holds it.",
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
    # Bounded: `inf` (which a float takes) failed every request as an "HTTPClientError".
    typer.Option(
        "--timeout", min=0.001, max=86_400, metavar="SECONDS", help="Connect and read timeout."
    ),
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
