"""The command line's quick value conversion agrees with typer's own, value for value.

`fsync.cli_params` converts plain values itself so that a run never imports pydantic; these
tests hold it to typer's (pydantic-based) conversion for every parameter of every command:
the same result of the same type, or the same error message.
"""

from __future__ import annotations

import math
from dataclasses import fields
from typing import Any

import pytest
import typer
import typer.main
from hypothesis import given, settings
from hypothesis import strategies as st
from typer._coercion import build_runtime_param

from fsync.cli import app
from fsync.cli_options import LinkMode, VerifyMode
from fsync.cli_params import QuickConversion
from fsync.cli_run import build_options
from fsync.config import SyncOptions, VerifyOptions, WatchOptions
from fsync.model import ConflictPolicy, Direction

GROUP = typer.main.get_command(app)
COMMANDS: dict[str, Any] = GROUP.commands  # type: ignore[attr-defined]
PARAMETERS = [(name, param) for name, command in COMMANDS.items() for param in command.params] + [
    ("fsync", GROUP.get_help_option(typer.Context(GROUP, info_name="fsync")))
]


def outcome(convert: Any, value: object, param: Any, ctx: typer.Context) -> tuple[str, str]:
    """What converting `value` gives: ("ok", repr with type) or ("error", the message)."""
    try:
        out = convert.coerce(value, param=param, ctx=ctx)
    except typer.BadParameter as exc:
        return "error", exc.message
    return "ok", f"{type(out).__name__}:{out!r}"


TYPERS: dict[Any, Any] = {}
"""typer's own conversion of each parameter, built once."""

_PLAIN = st.one_of(
    st.from_regex(r"[+-]?[0-9]{1,20}(\.[0-9]{0,20})?", fullmatch=True),
    st.from_regex(r"[ +\-0-9._eE]{0,8}", fullmatch=True),
    st.sampled_from(["keep-both", "newer", "KEEP-BOTH", "full", "follow", "skip", "inf"]),
    st.text(max_size=6),
    st.integers(min_value=-(2**60), max_value=2**60),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.sampled_from(list(ConflictPolicy) + list(LinkMode) + list(VerifyMode)),
)
VALUES = st.one_of(_PLAIN, st.lists(_PLAIN, max_size=3), st.tuples(_PLAIN, _PLAIN))
"""Values as they reach a parameter: from the command line (str) or a config file."""


def test_every_plain_parameter_converts_quickly() -> None:
    """Every parameter of fsync's commands, `--help` too, has the quick conversion: a
    parameter typer alone converts would import pydantic on each run."""
    slow = [
        f"{name} {param.name}"
        for name, param in PARAMETERS
        if not isinstance(param._runtime_param, QuickConversion)
    ]
    assert slow == []


@pytest.mark.parametrize(
    ("command", "param"), PARAMETERS, ids=[f"{c}-{p.name}" for c, p in PARAMETERS]
)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_quick_conversion_agrees_with_typer(command: str, param: Any, data: st.DataObject) -> None:
    ctx = typer.Context(COMMANDS.get(command, GROUP), info_name=command)
    if param not in TYPERS:
        TYPERS[param] = build_runtime_param(param.type_descriptor)
    theirs = TYPERS[param]
    value = data.draw(VALUES)
    assert outcome(param._runtime_param, value, param, ctx) == outcome(theirs, value, param, ctx)


EDGES: list[object] = [
    "8", "+5", "-0", "007", "8.0", "8.5", "0.0005", "1e3", "1_0", "0x10", " 8 ", "", "٣",
    "inf", "nan", "keep-both", "FOLLOW", b"bytes", 8, 0, -1, 300, 2**70, 8.0, 8.5, -0.0,
    float("inf"), float("nan"), True, False, None, [], (), ["a", "b"], ("a", 1), {"a": 1},
    ConflictPolicy.SKIP, LinkMode.SKIP, VerifyMode.FULL,
]  # fmt: skip
"""Spellings and types where a quick conversion could go wrong, tried on every parameter."""


@pytest.mark.parametrize(
    ("command", "param"), PARAMETERS, ids=[f"{c}-{p.name}" for c, p in PARAMETERS]
)
def test_quick_conversion_agrees_on_edge_values(command: str, param: Any) -> None:
    ctx = typer.Context(COMMANDS.get(command, GROUP), info_name=command)
    theirs = build_runtime_param(param.type_descriptor)
    for value in EDGES:
        quick = outcome(param._runtime_param, value, param, ctx)
        assert quick == outcome(theirs, value, param, ctx), value


@pytest.mark.parametrize(
    ("value", "expected"),
    [("8", 8), ("+5", 5), ("256", 256), ("1", 1)],
)
def test_ordinary_numbers_are_read_without_typer(value: str, expected: int) -> None:
    transfers = next(p for p in COMMANDS["push"].params if p.name == "transfers")
    ctx = typer.Context(COMMANDS["push"], info_name="push")
    fresh = QuickConversion(transfers.type_descriptor, transfers._runtime_param._plain)
    assert fresh.coerce(value, param=transfers, ctx=ctx) == expected
    assert fresh._typer is None  # typer's pydantic adapter was never built


def test_values_out_of_bounds_get_typers_message() -> None:
    transfers = next(p for p in COMMANDS["push"].params if p.name == "transfers")
    ctx = typer.Context(COMMANDS["push"], info_name="push")
    with pytest.raises(typer.BadParameter, match="less than or equal to 256"):
        transfers._runtime_param.coerce("257", param=transfers, ctx=ctx)


def params_of(command: str) -> set[str]:
    return {p.name for p in COMMANDS[command].params}


PUSH_ARGS: dict[str, object] = {
    "local": "L",
    "remote": "R",
    "dry_run": True,
    "json_out": False,
    "quiet": False,
    "verbose": False,
    "on_conflict": ConflictPolicy.NEWER,
    "mirror": True,
    "max_delete": "3",
    "force": True,
    "exclude": ["*.x"],
    "transfers": 3,
    "endpoint_url": "http://127.0.0.1:9",
    "option": ["anon=true"],
    "log_file": None,
    "on_error": None,
    "links": LinkMode.FOLLOW,
    "chunk_size": "8MiB",
    "retries": 2,
    "timeout": 1.5,
    "tps_limit": 2.0,
    "bw_limit": "1MiB/s",
    "verify": VerifyMode.FULL,
    "backup_dir": "bk",
    "config": None,
}


def changed_fields(options: object) -> set[str]:
    """The fields of `options` that differ from the class defaults."""
    out = set()
    for f in fields(options):  # type: ignore[arg-type]
        default = f.default_factory() if callable(f.default_factory) else f.default
        value = getattr(options, f.name)
        if value != default and not (isinstance(value, float) and math.isnan(value)):
            out.add(f.name)
    return out


def test_every_push_option_reaches_sync_options() -> None:
    """A push option renamed on one side only would silently keep its default."""
    assert set(PUSH_ARGS) == params_of("push")
    opts = build_options(
        SyncOptions, PUSH_ARGS, local_root="L", remote_url="R", direction=Direction.PULL
    )
    assert changed_fields(opts) == {f.name for f in fields(SyncOptions)}
    assert (opts.excludes, opts.storage_options) == (("*.x",), {"anon": True})
    assert (opts.chunk_size, opts.bw_limit) == (8 << 20, 1 << 20)
    assert opts.follow_links
    assert opts.verify_full


def test_pull_takes_the_push_options_and_sync_all_but_mirror() -> None:
    assert params_of("pull") == params_of("push")
    assert params_of("sync") == params_of("push") - {"mirror"}
    sync_args = {k: v for k, v in PUSH_ARGS.items() if k != "mirror"}
    opts = build_options(
        SyncOptions, sync_args, local_root="L", remote_url="R", direction=Direction.SYNC
    )
    assert opts.mirror is False
    assert opts.verify_full is True


def test_every_verify_option_reaches_verify_options() -> None:
    args = {k: v for k, v in PUSH_ARGS.items() if k in params_of("verify")} | {"download": True}
    assert set(args) == params_of("verify")
    opts = build_options(VerifyOptions, args, local_root="L", remote_url="R")
    assert changed_fields(opts) == {f.name for f in fields(VerifyOptions)}


def test_every_watch_option_reaches_watch_options() -> None:
    args = {k: v for k, v in PUSH_ARGS.items() if k in params_of("watch")}
    args |= {"on_error": "true", "rescan_every": 5.0, "pull_every": 7.0}
    assert set(args) == params_of("watch")
    opts = build_options(WatchOptions, args, local_root="L", remote_url="R")
    assert changed_fields(opts) == {
        "local_root",
        "remote_url",
        "on_conflict",
        "mirror",
        "max_delete",
        "force",
        "excludes",
        "transfers",
        "storage_options",
        "endpoint_url",
        "chunk_size",
        "timeout",
        "tps_limit",
        "bw_limit",
        "backup_dir",
        "verify_full",
        "dry_run",
        "follow_links",
        "retries",
        "on_error",
        "rescan_every",
        "pull_every",
    }
