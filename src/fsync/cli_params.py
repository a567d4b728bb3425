"""Command-line values converted without pydantic wherever the conversion is plain.

typer 0.2x converts every parameter value through a pydantic `TypeAdapter` built on first
use, so any real command (not `--help`) imports pydantic and builds some twenty adapters:
about 75 ms of a 215 ms no-op push of a small tree, all of it before fsync reads a file.
fsync's commands take only plain types (str, bool, int and float with bounds, enums, lists of
str), and for an ordinary value of those the result is obvious: "8" is 8, "keep-both" is
`ConflictPolicy.KEEP_BOTH`. `QuickCommand` converts such values itself and hands everything
else (other spellings, values out of bounds, wrong types) to typer's own conversion, so every
result and every error message stays exactly typer's.

This leans on typer's private `_TyperParameter._runtime_param` hook. Where a typer release
lacks it, nothing is installed and typer converts everything as before, only slower.
"""

from __future__ import annotations

import enum
import math
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any, get_args, get_origin

import typer
from typer.core import TyperCommand, TyperGroup

from fsync.terminal import complain, say_json

try:
    from typer._coercion import build_runtime_param
except ImportError:  # a typer without adapter-based conversion: nothing to bypass
    build_runtime_param = None
try:
    from typer._click.exceptions import ClickException
except ImportError:  # a typer that uses the click package rather than its own copy
    from click.exceptions import ClickException  # type: ignore[no-redef]

MISS: Any = object()
"""What a converter returns for a value it leaves to typer."""

Converter = Callable[[Any, Any], Any]
"""`(value, click context) -> converted value`, or `MISS`."""

_INT = re.compile(r"[+-]?[0-9]{1,18}")
"""Integers as a person types them; pydantic reads exactly these the same as `int()`."""

_DECIMAL = re.compile(r"[+-]?[0-9]{1,18}(?:\.[0-9]{1,18})?")
"""Decimal numbers as a person types them; read the same by pydantic and `float()`."""

_EXACT_FLOAT = 2**53
"""Integers beyond this do not convert to float exactly; typer decides those."""


def converter(annotation: object, info: Any) -> Converter | None:
    """The plain conversion of values of `annotation` under typer's parameter `info`, if any.

    Follows the order typer picks its own conversion in (a custom parser first, then enums,
    numbers, bool, str); None for anything else, such as paths, files and dates.
    """
    if getattr(info, "parser", None) is not None or getattr(info, "clamp", False):
        return None
    if get_origin(annotation) is list:
        (item,) = get_args(annotation)
        each = converter(item, info)
        return None if each is None else _each(each)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return _choice(annotation) if getattr(info, "case_sensitive", False) else None
    if annotation is int:
        return _bounded(_int, getattr(info, "min", None), getattr(info, "max", None))
    if annotation is float:
        return _bounded(_float, getattr(info, "min", None), getattr(info, "max", None))
    if annotation is bool:
        return _bool
    if annotation is str:
        return _str
    return None


def _str(value: object, ctx: Any) -> object:
    return value if type(value) is str else MISS


def _bool(value: object, ctx: Any) -> object:
    return value if type(value) is bool else MISS


def _int(value: object, ctx: Any) -> object:
    if type(value) is int:
        return value
    if type(value) is str and _INT.fullmatch(value):
        return int(value)
    return MISS


def _float(value: object, ctx: Any) -> object:
    if type(value) is int and abs(value) <= _EXACT_FLOAT:
        return float(value)
    if type(value) is float and math.isfinite(value):
        return value
    if type(value) is str and _DECIMAL.fullmatch(value):
        return float(value)
    return MISS


def _bounded(read: Converter, low: float | None, high: float | None) -> Converter:
    """`read`, with values outside [low, high] left to typer (which words the error)."""

    def convert(value: object, ctx: Any) -> object:
        number = read(value, ctx)
        if number is MISS or (low is not None and number < low):
            return MISS
        return MISS if high is not None and number > high else number

    return convert


def _choice(kind: type[enum.Enum]) -> Converter:
    """A member of `kind`, given itself or its value's exact spelling."""
    by_value = {str(member.value): member for member in kind}

    def convert(value: object, ctx: Any) -> object:
        if isinstance(value, kind):
            return value
        if type(value) is not str or getattr(ctx, "token_normalize_func", None) is not None:
            return MISS
        return by_value.get(value, MISS)

    return convert


def _each(item: Converter) -> Converter:
    """A list of `item`s, from the tuple or list of a repeatable option."""

    def convert(values: object, ctx: Any) -> object:
        if not isinstance(values, list | tuple):
            return MISS
        out = [item(value, ctx) for value in values]
        return MISS if any(value is MISS for value in out) else out

    return convert


class QuickConversion:
    """A parameter's conversion: the plain one where it applies, typer's for the rest.

    Stands in for typer's own runtime parameter (same `coerce` contract), which is built
    only when a value needs it.
    """

    def __init__(self, descriptor: Any, plain: Converter) -> None:
        self._descriptor = descriptor
        self._plain = plain
        self._typer: Any = None

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        """`value` converted for `param`; typer's behaviour for None and for bare strings
        given to a repeatable option."""
        many = param.multiple or param.nargs == -1
        if value is None:
            return () if many else None
        if not (many and isinstance(value, str)):
            out = self._plain(value, ctx)
            if out is not MISS:
                return out
        if self._typer is None:
            self._typer = build_runtime_param(self._descriptor)
        return self._typer.coerce(value, param=param, ctx=ctx)


def install(param: object) -> bool:
    """Give typer's `param` the quick conversion; False where typer's stays in charge."""
    descriptor = getattr(param, "type_descriptor", None)
    if build_runtime_param is None or descriptor is None:
        return False
    if getattr(param, "_runtime_param", MISS) is not None or getattr(
        descriptor, "file_annotation", None
    ):
        return False
    plain = converter(descriptor.annotation, descriptor.parameter_info)
    if plain is None:
        return False
    param._runtime_param = QuickConversion(descriptor, plain)  # type: ignore[attr-defined]
    return True


class _QuickParameters:
    """Gives each parameter of a typer command or group, `--help` too, the quick conversion."""

    params: list[Any]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            install(param)

    def get_help_option(self, ctx: Any) -> Any:
        """typer's `--help` option (made on first use), converting quickly too."""
        option = super().get_help_option(ctx)  # type: ignore[misc]
        if option is not None:
            install(option)
        return option


class QuickCommand(_QuickParameters, TyperCommand):
    """A typer command whose parameters convert plain values without pydantic."""


class QuickGroup(_QuickParameters, TyperGroup):
    """The typer group of the commands: its own `--help` converts without pydantic too, and
    its usage errors are one line, `fsync: error: WHAT (see ... --help)`, as DESIGN.md's
    Interface has every error (typer draws a box of several lines around them)."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        """typer's `main`, ending the process itself with the exit status."""
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            status = super().main(*args, standalone_mode=False, **kwargs)
        except ClickException as e:
            if type(e).__name__ == "NoArgsIsHelpError":  # `fsync` alone: the help, as typer
                if e.format_message():  # (typer's rich help printed itself, leaving "")
                    e.show()
                sys.exit(e.exit_code)
            argv = args[0] if args else kwargs.get("args")
            where = getattr(e, "ctx", None)
            path = where.command_path if where is not None else self._command_path(argv)
            hint = f" (see {path} --help)" if path else ""
            message = " ".join(e.format_message().split())
            complain(f"fsync: error: {message}{hint}")
            if json_asked(argv):
                say_json({"error": message, "exit_code": e.exit_code})
            sys.exit(e.exit_code)
        except typer.Abort:  # end of input where one was read (fsync reads none)
            complain("fsync: error: aborted")
            sys.exit(1)
        sys.exit(status if isinstance(status, int) else 0)

    def _command_path(self, args: Sequence[str] | None) -> str | None:
        """`fsync COMMAND` of a command line whose error carries no context (click raises
        "Option '--transfers' requires an argument" without one), or None."""
        argv = sys.argv[1:] if args is None else args
        name = next((a for a in argv if not str(a).startswith("-")), None)
        return f"fsync {name}" if name in self.commands else None


def json_asked(args: Sequence[str] | None) -> bool:
    """Whether the command line has `--json` (before any `--`): a usage or config error then
    puts its one JSON object on stdout too, as every other stop does (DESIGN.md), so a
    script reading stdout finds why, not nothing."""
    for token in sys.argv[1:] if args is None else args:
        if token == "--":
            return False
        if token == "--json":
            return True
    return False
