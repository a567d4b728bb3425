"""The targets of issue 7, judged from one run's results (ratios within the same run)."""

from __future__ import annotations

import statistics

from report import FSYNC, S3_FLOOR, Results, Verdict, format_requests

HASH = "hash 1 GiB"
WALK = "Python stat walk (reference)"
MMAP = "python blake3 update_mmap (reference)"


def _ratio(results: Results, scenario: str, anchor: str) -> float | None:
    mine, theirs = results.median(scenario, FSYNC), results.median(scenario, anchor)
    if mine is None or theirs is None:
        return None
    return mine / theirs


def _fmt(ratio: float | None, anchor: str) -> str:
    return "–" if ratio is None else f"{ratio:.2f}x {anchor}"


def _hash(results: Results) -> list[Verdict]:
    """Throughput >= 0.9x b3sum's, i.e. time <= b3sum's / 0.9: as a process, and in-process.

    The process figure includes Python's start-up and imports (b3sum starts in a millisecond);
    the in-process one is what hashing costs inside a sync run.
    """
    label = "hashing 1 GiB: throughput >= 0.9x b3sum (time <= 1.11x)"
    r = _ratio(results, HASH, "b3sum")
    bare = _ratio(results, HASH, MMAP)  # fsync's time over bare Python's: inverted below
    floor = "" if r is None or not bare else f"; bare Python blake3 alone: {r / bare:.2f}x"
    out = [
        Verdict(
            f"{label}, whole process",
            _fmt(r, "b3sum time") + floor,
            None if r is None else r <= 1 / 0.9,
        )
    ]
    row, theirs = results.get(HASH, FSYNC), results.median(HASH, "b3sum")
    if row is not None and row.inner_seconds and theirs:
        inner = statistics.median(row.inner_seconds) / theirs
        out.append(Verdict(f"{label}, in-process", _fmt(inner, "b3sum time"), inner <= 1 / 0.9))
    else:
        out.append(Verdict(f"{label}, in-process", "–", None))
    return out


def _local(results: Results, small: str, large: str, huge: str) -> list[Verdict]:
    out = []
    initial = f"local {small} initial"
    ratios = [
        (r, a)
        for a in ("rsync -a", "rclone sync")
        if (r := _ratio(results, initial, a)) is not None
    ]
    best = max(ratios) if ratios else None  # the best anchor is the fastest: largest ratio
    out.append(
        Verdict(
            f"local {small} initial <= 0.9x best of rsync/rclone",
            "–" if best is None else _fmt(best[0], best[1]),
            None if best is None else best[0] <= 0.9,
        )
    )
    r = _ratio(results, f"local {large} initial", "cp -a")
    out.append(
        Verdict(
            f"local {large}: throughput >= 0.9x cp -a (time <= 1.11x)",
            _fmt(r, "cp -a time"),
            None if r is None else r <= 1 / 0.9,
        )
    )
    r = _ratio(results, f"local {small} noop", "rsync -a")
    walk = results.median(f"local {small} noop", WALK)
    rsync = results.median(f"local {small} noop", "rsync -a")
    floor = "" if walk is None or not rsync else f"; a Python stat walk alone: {walk / rsync:.2f}x"
    out.append(
        Verdict(
            f"local {small} noop <= 1.0x rsync -a",
            _fmt(r, "rsync -a") + floor,
            None if r is None else r <= 1.0,
        )
    )
    m = results.median(f"local {huge} noop", FSYNC)
    out.append(
        Verdict(
            f"local {huge} noop < 2 s",
            "–" if m is None else f"{m:.2f} s",
            None if m is None else m < 2.0,
        )
    )
    row = results.get(f"local {huge} initial", FSYNC)
    rss = None if row is None or not row.good else row.peak_rss_mib()
    out.append(
        Verdict(
            f"peak RSS pushing {huge} < 200 MiB",
            "–" if rss is None else f"{rss:.0f} MiB",
            None if rss is None else rss < 200,
        )
    )
    return out


def _floor(results: Results, scenario: str, anchor: str) -> str:
    """`; the S3 client alone: 1.20x rclone sync`: what the floor run (only the requests, with
    fsync's client, one per file) took against `anchor`."""
    floor, theirs = results.median(scenario, S3_FLOOR), results.median(scenario, anchor)
    if floor is None or theirs is None:
        return ""
    return f"; the S3 client alone: {floor / theirs:.2f}x {anchor}"


def _s3(results: Results, scen: str, small_files: int) -> list[Verdict]:
    out = []
    initial = f"{scen} initial"
    r_aws = _ratio(results, initial, "aws s3 sync")
    r_rclone = _ratio(results, initial, "rclone sync")
    met = None if r_aws is None or r_rclone is None else (r_aws <= 1.0 and r_rclone <= 0.7)
    out.append(
        Verdict(
            f"{initial} <= 1.0x aws s3 sync and <= 0.7x rclone sync",
            f"{_fmt(r_aws, 'aws')}, {_fmt(r_rclone, 'rclone')}"
            + _floor(results, initial, "rclone sync"),
            met,
        )
    )
    row = results.get(initial, FSYNC)
    good = [] if row is None else row.good
    if good:
        hist = good[-1].per_small_file
        shown = ", ".join(f"{files} files: {k} request(s)" for k, files in sorted(hist.items()))
        out.append(
            Verdict(
                f"{initial}: exactly one request per small file ({small_files} small files)",
                shown or "no small-file requests seen",
                dict(hist) == {1: small_files},
            )
        )
    else:
        out.append(Verdict(f"{initial}: exactly one request per small file", "–", None))
    noop = f"{scen} noop"
    row = results.get(noop, FSYNC)
    r = _ratio(results, noop, "aws s3 sync")
    if row is not None and row.good:
        counts = row.last_requests()
        only_list = all(op.startswith("List") for op in counts)
        out.append(
            Verdict(
                f"{noop}: only LIST requests, <= 1.0x aws s3 sync",
                f"{format_requests(counts)}; {_fmt(r, 'aws')}",
                only_list and r is not None and r <= 1.0,
            )
        )
    else:
        out.append(Verdict(f"{noop}: only LIST requests, <= 1.0x aws s3 sync", "–", None))
    touch = f"{scen} touch"
    row = results.get(touch, FSYNC)
    if row is not None and row.good:
        counts = row.last_requests()
        sent = sum(counts[op] for op in ("PutObject", "UploadPart", "CreateMultipartUpload"))
        out.append(
            Verdict(f"{touch}: no bytes sent", format_requests(counts) or "no requests", sent == 0)
        )
    else:
        out.append(Verdict(f"{touch}: no bytes sent", "–", None))
    pull = f"{scen} pull"
    ratios = [
        (r, a)
        for a in ("rclone sync", "rclone sync --checksum --fast-list", "aws s3 sync", "s3cmd sync")
        if (r := _ratio(results, pull, a)) is not None
    ]
    best = max(ratios) if ratios else None
    out.append(
        Verdict(
            f"{pull} <= 1.0x the best anchor",
            "–" if best is None else _fmt(best[0], best[1]) + _floor(results, pull, best[1]),
            None if best is None else best[0] <= 1.0,
        )
    )
    return out


def judge(
    results: Results,
    *,
    small: str,
    large: str,
    huge: str,
    s3_scenarios: list[tuple[str, int]],
    watch_verdicts: list[Verdict],
) -> list[Verdict]:
    """Every target: hashing, local, each S3 server's (scenario, small files), watch."""
    verdicts = [*_hash(results), *_local(results, small, large, huge)]
    for scen, small_files in s3_scenarios:
        verdicts.extend(_s3(results, scen, small_files))
    verdicts.extend(watch_verdicts)
    return verdicts
