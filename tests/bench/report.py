"""The results of a bench run as markdown: one table of every row, then the targets of issue 7.

Ratios are fsync's median over the anchor's median, both from the same run (tools run
alternately, so slow spells of a shared machine hit every tool alike): below 1 fsync is
faster. Throughput targets are stated the same way round, as a time ratio.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from measure import Row, Sample

FSYNC = "fsync"
S3_FLOOR = "S3 client floor (reference)"
"""tests/bench/client_floor.py: only the requests of an S3 initial push or pull, made with
fsync's S3 client, one request per file (see its docstring for what that bounds)."""


class Results:
    """Rows in the order they were first measured, addressed by (scenario, tool)."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], Row] = {}
        self.sections: list[tuple[str, str]] = []
        """Extra markdown sections (title, body), e.g. the watch benchmark's own output."""

    def row(self, scenario: str, tool: str) -> Row:
        """The row of `tool` in `scenario`, created empty on first use."""
        key = (scenario, tool)
        if key not in self._rows:
            self._rows[key] = Row(scenario, tool)
        return self._rows[key]

    def add(self, scenario: str, tool: str, sample: Sample) -> Row:
        """Record one sample; return its row."""
        row = self.row(scenario, tool)
        row.samples.append(sample)
        return row

    def note(self, scenario: str, tool: str, text: str) -> None:
        """Attach a note to a row (a missing anchor, a failed check, a throughput)."""
        row = self.row(scenario, tool)
        row.note = f"{row.note}; {text}" if row.note else text

    def get(self, scenario: str, tool: str) -> Row | None:
        """The row, or None if nothing was recorded for it."""
        return self._rows.get((scenario, tool))

    def median(self, scenario: str, tool: str) -> float | None:
        """The row's median seconds, or None when it is missing or failed."""
        row = self.get(scenario, tool)
        return None if row is None else row.median()

    def __iter__(self) -> Iterator[Row]:
        return iter(self._rows.values())

    def scenarios(self) -> list[str]:
        """Scenario names, in order."""
        seen: dict[str, None] = {}
        for scenario, _ in self._rows:
            seen.setdefault(scenario, None)
        return list(seen)


def _fmt_s(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def format_requests(counts: Counter[str]) -> str:
    """`PutObject 2000, ListObjectsV2 3` (most frequent first), or "" when none."""
    return ", ".join(f"{op} {n}" for op, n in counts.most_common())


def render_table(results: Results) -> str:
    """Every row: median, min–max, fsync ÷ tool, CPU, peak RSS, S3 requests, notes."""
    lines = [
        "| scenario | tool | median s | min–max s | fsync ÷ tool | CPU s | peak RSS MiB "
        "| S3 requests (last rep) | note |",
        "|---|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for scenario in results.scenarios():
        fsync_median = results.median(scenario, FSYNC)
        for row in (r for r in results if r.scenario == scenario):
            median = row.median()
            spread = row.spread()
            if row.failed:
                times = f"failed: {row.first_error()}".replace("|", "/")
                lines.append(f"| {scenario} | {row.tool} | {times} | | | | | | {row.note} |")
                continue
            if not row.samples:
                lines.append(f"| {scenario} | {row.tool} | – | | | | | | {row.note} |")
                continue
            if row.tool == FSYNC or fsync_median is None or median is None:
                ratio = ""
            else:
                ratio = f"{fsync_median / median:.2f}"
            rss = row.peak_rss_mib()
            note = row.note
            if row.megabytes and median:
                note = f"{row.megabytes / median:,.0f} MB/s" + (f"; {note}" if note else "")
            failures = len(row.samples) - len(row.good)
            if failures:
                note = f"{failures} of {len(row.samples)} runs failed: {row.first_error()}" + (
                    f"; {note}" if note else ""
                )
            lines.append(
                f"| {scenario} | {row.tool} | {_fmt_s(median)} "
                f"| {_fmt_s(spread[0]) if spread else '–'}–{_fmt_s(spread[1]) if spread else '–'} "
                f"| {ratio} | {_fmt_s(row.cpu_median())} "
                f"| {'' if rss is None else f'{rss:.0f}'} "
                f"| {format_requests(row.last_requests())} | {note.replace('|', '/')} |"
            )
    return "\n".join(lines)


@dataclass(frozen=True)
class Verdict:
    """One target of issue 7: what it asks, what was measured, and whether it is met."""

    target: str
    measured: str
    met: bool | None  # None: not measured in this run

    def status(self) -> str:
        """`met`, `NOT met` or `not measured`."""
        if self.met is None:
            return "not measured"
        return "met" if self.met else "NOT met"


Check = Callable[[Results], list[Verdict]]


def render_targets(verdicts: list[Verdict]) -> str:
    """The targets as a markdown table."""
    lines = ["| target | measured | status |", "|---|---|---|"]
    lines.extend(f"| {v.target} | {v.measured} | {v.status()} |" for v in verdicts)
    return "\n".join(lines)
