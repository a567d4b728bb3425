"""Frozen options for each use case, and the parsing of option values users type.

The CLI turns flags into these objects and the app reads nothing else, so tests can drive
`app.push`/`app.pull` directly with the same options a user would give.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
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
    """Everything one push or pull needs to know."""

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

    def policy(self) -> SyncPolicy:
        """The planner's view of these options; raises `ConfigError` on a bad `--max-delete`."""
        count, ratio = parse_max_delete(self.max_delete)
        return SyncPolicy(
            direction=self.direction,
            on_conflict=self.on_conflict,
            mirror=self.mirror,
            max_delete=count,
            max_delete_ratio=ratio,
            force=self.force,
        )


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
