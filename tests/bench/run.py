"""fsync side by side with cp, rsync, rclone, aws s3 sync, s3cmd and b3sum: one command.

    python tests/bench/run.py [--quick] [--only local,s3,hash,watch] [--reps N] [--s3-reps N]

Runs the installed `fsync` (the one next to this interpreter) and the anchors alternately in
the same run (the order rotates each repetition), several repetitions each (3, and 2 for the
S3 scenarios, whose uploads dominate the run time), and prints a
markdown table of medians, min-max, fsync ÷ anchor, CPU time, peak RSS and, for S3, the
requests the server received by operation; then the targets of issue 7 with a verdict each.
The same text goes to tests/bench/results.md. Missing anchors are installed (Debian packages
with apt-get, awscli from PyPI into a venv of its own); one that still is missing shows as
such in its row. A failing fsync run is reported in its row and the bench goes on.

Trees are generated once under $FSYNC_BENCH_DIR (default /tmp/fsync-bench, on the same disk
as /work here) and reused; everything a run writes besides them is deleted at its end.

The watch benchmark lives in tests/bench/bench_watch.py (written with `fsync watch`). When it
exists it is run as it is (with `--edits 50 --events 2000` for `--quick`); its output goes
into the report, and its latency and RSS-growth lines are judged against the targets.
"""

from __future__ import annotations

import argparse
import compileall
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import anchors as anchors_mod
import s3suite
import targets
import workloads
from measure import Sample, per_tool_rss, run_measured
from report import FSYNC, Results, Verdict, render_table, render_targets

import fsync

HERE = Path(__file__).resolve().parent
SUITES = ("hash", "local", "s3", "watch")
DURABLE_RSYNC = "rsync -a --fsync"
"""The one local anchor that, like fsync, syncs every file it writes to the disk."""


@dataclass
class Bench:
    """What every suite needs: where to work, what to run, where results go."""

    root: Path
    trees: Path
    work: Path
    quick: bool
    reps: int
    s3_reps: int
    fsync: str
    anchors: anchors_mod.Anchors
    results: Results

    def measure(self, argv: list[str], env: Mapping[str, str] | None = None) -> Sample:
        """Flush dirty pages (untimed), then run `argv` timed."""
        os.sync()
        return run_measured(argv, env=env)

    def record(self, scenario: str, tool: str, what: Sample | str) -> None:
        """Add a sample (printed as it comes) or a note to a row."""
        if isinstance(what, str):
            self.results.note(scenario, tool, what)
            print(f"  {scenario:<34} {tool:<36} {what}", flush=True)
            return
        self.results.add(scenario, tool, what)
        status = "ok" if what.ok else f"FAILED {what.error}"
        print(
            f"  {scenario:<34} {tool:<36} {what.seconds:8.3f} s "
            f"{what.rss_kib / 1024:6.0f} MiB  {status}",
            flush=True,
        )


def rotate(tools: list[str], rep: int) -> list[str]:
    """`tools` starting at a different one each repetition, so none always runs first."""
    k = rep % len(tools)
    return tools[k:] + tools[:k]


# --- hashing ---------------------------------------------------------------------------------

_FSYNC_HASH = (
    "import sys, time\n"
    "from fsync.hashing import hash_file\n"
    "t = time.perf_counter(); d, _ = hash_file(sys.argv[1])\n"
    "print(f'{time.perf_counter() - t:.4f} {d}')\n"
)
_MMAP_HASH = (
    "import sys, time\n"
    "from blake3 import blake3\n"
    "t = time.perf_counter(); h = blake3(max_threads=blake3.AUTO); h.update_mmap(sys.argv[1])\n"
    "print(f'{time.perf_counter() - t:.4f} {h.hexdigest()}')\n"
)

_WALK = (
    "import os, sys\n"
    "def walk(folder):\n"
    "    n = 0\n"
    "    with os.scandir(folder) as entries:\n"
    "        for e in entries:\n"
    "            if e.is_dir(follow_symlinks=False):\n"
    "                n += walk(e.path) if e.name != '.fsync' else 0\n"
    "            else:\n"
    "                e.stat(follow_symlinks=False)\n"
    "                n += 1\n"
    "    return n\n"
    "print(walk(sys.argv[1]), walk(sys.argv[2]))\n"
)
WALK = targets.WALK
"""The least a Python no-op between two folders does: start, and stat every entry of both
trees (os.scandir); nothing compared, nothing recorded. No Python tool's no-op is faster."""


def hash_suite(b: Bench) -> None:
    """blake3 of a 1 GiB file (in the page cache): fsync's `hash_file` against b3sum."""
    path = workloads.one_gib_file(b.trees)
    size_mb = path.stat().st_size / 1e6
    with path.open("rb") as f:  # warm the page cache: every tool reads from memory
        while f.read(64 << 20):
            pass
    scen = targets.HASH
    tools: dict[str, list[str] | str] = {
        FSYNC: [sys.executable, "-c", _FSYNC_HASH, str(path)],
        "b3sum": [p, "--no-names", str(path)]
        if (p := b.anchors.get("b3sum"))
        else b.anchors.missing_note("b3sum"),
        targets.MMAP: [sys.executable, "-c", _MMAP_HASH, str(path)],
    }
    digests: dict[str, str] = {}
    for rep in range(b.reps):
        for tool in rotate(list(tools), rep):
            argv = tools[tool]
            if isinstance(argv, str):
                if rep == 0:
                    b.record(scen, tool, argv)
                continue
            sample = b.measure(argv)
            b.record(scen, tool, sample)
            row = b.results.row(scen, tool)
            row.megabytes = size_mb
            if sample.ok:
                words = sample.stdout.split()
                if tool != "b3sum":
                    row.inner_seconds.append(float(words[0]))
                digests[tool] = words[-1]
    for row in b.results:
        if row.scenario == scen and row.inner_seconds:
            inner = statistics.median(row.inner_seconds)
            b.record(
                scen, row.tool, f"in-process median {inner:.3f} s = {size_mb / inner:,.0f} MB/s"
            )
    if len(set(digests.values())) > 1:
        b.record(scen, FSYNC, f"CHECK: digests differ {digests}")


# --- local -> local --------------------------------------------------------------------------


def _entries(src: Path) -> list[str]:
    return sorted(str(p) for p in src.iterdir() if p.name != ".fsync")


def local_argv(b: Bench, tool: str, src: Path, dst: Path) -> list[str] | str:
    """The command that makes `dst` a copy of `src` with `tool` (`.fsync/` left out)."""
    if tool == FSYNC:
        return [b.fsync, "push", str(src), str(dst), "-q"]
    if tool == WALK:
        return [sys.executable, "-c", _WALK, str(src), str(dst)]
    if tool == "cp -a":
        cp = b.anchors.get("cp")
        dst.mkdir(parents=True, exist_ok=True)
        return [cp, "-a", *_entries(src), f"{dst}/"] if cp else b.anchors.missing_note("cp")
    if tool.startswith("rsync"):
        rsync = b.anchors.get("rsync")
        if rsync is None:
            return b.anchors.missing_note("rsync")
        extra = [flag for flag in ("--delete", "--fsync") if flag in tool.split()]
        return [rsync, "-a", *extra, "--exclude=/.fsync/", f"{src}/", f"{dst}/"]
    rclone = b.anchors.get("rclone")
    if rclone is None:
        return b.anchors.missing_note("rclone")
    return [rclone, "sync", str(src), str(dst), "-q", "--exclude", "/.fsync/**"]


def _listing(root: Path) -> dict[str, int]:
    out = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != ".fsync"]
        for name in files:
            full = os.path.join(folder, name)
            out[os.path.relpath(full, root)] = os.lstat(full).st_size
    return out


def _check_copy(b: Bench, scen: str, tool: str, src: Path, dst: Path) -> None:
    want, got = _listing(src), _listing(dst)
    if want != got:
        missing = len(want.keys() - got.keys())
        extra = len(got.keys() - want.keys())
        differ = sum(1 for k in want.keys() & got.keys() if want[k] != got[k])
        b.record(
            scen,
            tool,
            f"CHECK: copy differs ({missing} missing, {extra} extra, {differ} of other size)",
        )


def _slug(tool: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in tool).strip("-")


def _timed_steps(
    b: Bench,
    scen: str,
    tools: list[str],
    src: Path,
    dsts: Mapping[str, Path],
    *,
    step: Callable[[int], object] | None = None,
) -> None:
    for rep in range(b.reps):
        if step is not None:
            step(rep)
        workloads.warm(src)
        for tool in rotate(tools, rep):
            argv = local_argv(b, tool, src, dsts[tool])
            b.record(scen, tool, argv if isinstance(argv, str) else b.measure(argv))


def _initial(b: Bench, scen: str, tools: list[str], src: Path, reps: int) -> dict[str, Path]:
    dsts = {tool: b.work / f"local-dst-{_slug(tool)}" for tool in tools}
    for rep in range(reps):
        workloads.warm(src)
        for tool in rotate(tools, rep):
            workloads.set_aside(dsts[tool])
            if tool == FSYNC:
                shutil.rmtree(src / ".fsync", ignore_errors=True)
            argv = local_argv(b, tool, src, dsts[tool])
            b.record(scen, tool, argv if isinstance(argv, str) else b.measure(argv))
    return dsts


DELETE_SHADOW = 365.0
"""Seconds after a `sync` during which files created on this machine's root filesystem pay
for the inodes deleted before it (see `workloads.set_aside`: ext4 without a journal skips,
one by one, inodes freed less than 60 s ago, 360 s while their table block is dirty; and
creating files dirties the blocks again, so 65 s was not enough: a `--only local` run
started 100 s after a full run measured `cp -a` of `small` at 5.7 s instead of 0.74 s)."""


def _remove(work: Path, root: Path) -> None:
    """Delete `work`, sync, and note when, for the next run's `_wait_out_deletes`."""
    if work.exists():
        shutil.rmtree(work, ignore_errors=True)
        os.sync()
        (root / ".deleted-at").write_text(str(time.time()))


def _wait_out_deletes(root: Path) -> None:
    """Sleep until the trees the last run deleted no longer slow file creation down: a run
    started right after another measured `cp -a` of `small` at 5.5 s instead of 0.8 s.
    Only back-to-back runs wait; deleting many files just before a run (a test suite's
    temporary folders) has the same effect, which this cannot see."""
    try:
        since = time.time() - float((root / ".deleted-at").read_text())
    except (OSError, ValueError):
        return
    if 0 <= since < DELETE_SHADOW:
        wait = DELETE_SHADOW - since
        print(f"  waiting {wait:.0f} s for the last run's deleted files to age", flush=True)
        time.sleep(wait)


def local_suite(b: Bench) -> tuple[str, str, str]:
    """`small` (initial, noop, mutate), `large` (initial) and `huge` (initial once, noop)."""
    small = workloads.spec_for("small", quick=b.quick)
    tree = workloads.generate(small, b.trees)
    src = workloads.clone(tree, b.work / "local-src")
    scen = f"local {small.name}"
    # fsync makes each file durable before it is renamed into place and recorded; of the
    # anchors only `rsync --fsync` does the same, so it is timed too: the fair comparison.
    tools = [FSYNC, "cp -a", "rsync -a", DURABLE_RSYNC, "rclone sync"]
    dsts = _initial(b, f"{scen} initial", tools, src, b.reps)
    for tool in tools:
        _check_copy(b, f"{scen} initial", tool, src, dsts[tool])
    incremental = [FSYNC, "rsync -a", "rclone sync"]
    dsts[WALK] = dsts[FSYNC]
    _timed_steps(b, f"{scen} noop", [*incremental, WALK], src, dsts)
    with_delete = [FSYNC, "rsync -a --delete", "rclone sync"]
    dsts["rsync -a --delete"] = dsts["rsync -a"]
    _timed_steps(
        b, f"{scen} mutate", with_delete, src, dsts, step=lambda rep: workloads.mutate(src, rep)
    )
    for tool in with_delete:
        _check_copy(b, f"{scen} mutate", tool, src, dsts[tool])
    for path in [*dsts.values(), src]:
        workloads.set_aside(path)

    large = workloads.spec_for("large", quick=b.quick)
    tree = workloads.generate(large, b.trees)
    shutil.rmtree(tree / ".fsync", ignore_errors=True)
    scen = f"local {large.name} initial"
    dsts = _initial(b, scen, tools, tree, b.reps)
    mb = sum(p.stat().st_size for p in (tree / "big").iterdir()) / 1e6
    for tool in tools:
        b.results.row(scen, tool).megabytes = mb
        _check_copy(b, scen, tool, tree, dsts[tool])
        workloads.set_aside(dsts[tool])
    shutil.rmtree(tree / ".fsync", ignore_errors=True)

    huge = workloads.spec_for("huge", quick=b.quick)
    tree = workloads.generate(huge, b.trees)
    shutil.rmtree(tree / ".fsync", ignore_errors=True)
    scen = f"local {huge.name}"
    tools = [FSYNC, "rsync -a"]
    dsts = _initial(b, f"{scen} initial", tools, tree, 1)
    dsts[WALK] = dsts[FSYNC]
    _timed_steps(b, f"{scen} noop", [*tools, WALK], tree, dsts)
    for tool in tools:
        workloads.set_aside(dsts[tool])
    shutil.rmtree(tree / ".fsync", ignore_errors=True)
    return small.name, large.name, huge.name


# --- S3 --------------------------------------------------------------------------------------


def s3_suites(b: Bench, servers: list[str]) -> list[tuple[str, int]]:
    """Every S3 scenario on each server in `servers` that can run here."""
    judged = []
    for name in servers:
        # Ceph's memstore OSD holds 4 GiB and frees deleted data only after hours (RGW's
        # garbage collection), so it gets the quick tree whatever the mode.
        spec = workloads.spec_for("mixed", quick=b.quick or name == "ceph")
        print(f"- S3 on {name} ({spec.name})", flush=True)
        try:
            server = s3suite.start_moto(b.work / "moto") if name == "moto" else s3suite.start_ceph()
        except Exception as exc:  # the launchers' errors carry their logs' tails
            server = f"{name} did not start: {str(exc).splitlines()[0]}"
        if isinstance(server, str):
            b.results.note(f"S3 {name} {spec.name} initial", FSYNC, server)
            print(f"  {server}", flush=True)
            continue
        bench = s3suite.S3Bench(server, b.work, b.fsync, b.anchors)
        try:
            s3suite.run_suite(
                bench,
                spec,
                b.trees,
                reps=b.s3_reps,
                measure=b.measure,
                record=b.record,
                rotate=rotate,
            )
        finally:
            bench.close()
            server.stop()
        judged.append((f"S3 {name} {spec.name}", spec.small_files))
    return judged


# --- watch -----------------------------------------------------------------------------------


_WATCH_LATENCY = re.compile(r"median (\d+) ms, p99 (\d+) ms")
_WATCH_GROWTH = re.compile(r"growth ([+-]?[\d.]+) MiB")


def watch_suite(b: Bench) -> list[Verdict]:
    """Run bench_watch.py (the watch benchmark) where it exists and judge what it prints.

    It exits 1 when a target is missed, so its output is read whatever the status.
    """
    script = HERE / "bench_watch.py"
    lat_target = "watch: median latency < 300 ms, p99 < 1 s"
    rss_target = "watch: RSS growth < 10 MiB over 20,000 events"
    if not script.exists():
        b.record("watch", FSYNC, "not yet: tests/bench/bench_watch.py does not exist")
        return [Verdict(lat_target, "–", None), Verdict(rss_target, "–", None)]
    small = ["--edits", "50", "--events", "2000"] if b.quick else []
    sample = b.measure([sys.executable, str(script), *small])
    b.record("watch", FSYNC, "latency and RSS growth: see the watch section below")
    body = sample.stdout.strip() or sample.error
    b.results.sections.append(("watch (tests/bench/bench_watch.py)", f"```\n{body}\n```"))
    verdicts = []
    if m := _WATCH_LATENCY.search(sample.stdout):
        median, p99 = int(m.group(1)), int(m.group(2))
        measured = f"median {median} ms, p99 {p99} ms"
        verdicts.append(Verdict(lat_target, measured, median < 300 and p99 < 1000))
    else:
        verdicts.append(Verdict(lat_target, f"no figure: {sample.error or 'see below'}", None))
    if m := _WATCH_GROWTH.search(sample.stdout):
        growth = float(m.group(1))
        events = "2,000" if b.quick else "20,000"
        verdicts.append(Verdict(rss_target, f"{growth:+.1f} MiB over {events}", growth < 10))
    else:
        verdicts.append(Verdict(rss_target, "no figure", None))
    return verdicts


# --- the report ------------------------------------------------------------------------------


def _machine(b: Bench, began: float, load_before: tuple[float, ...]) -> str:
    load_after = os.getloadavg()
    versions = "; ".join(f"{k}: {v}" for k, v in sorted(b.anchors.versions.items()))
    fsync_version = subprocess.run(
        [sys.executable, "-c", "import fsync; print(fsync.__version__)"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    same_disk = os.stat(b.root).st_dev == os.stat(HERE).st_dev
    return (
        f"- command: `python tests/bench/run.py {' '.join(sys.argv[1:])}` "
        f"({b.reps} repetitions, {b.s3_reps} for S3; tools alternating), "
        f"{time.strftime('%Y-%m-%d %H:%M')}, {(time.monotonic() - began) / 60:.1f} min\n"
        f"- machine: {os.cpu_count()} cores, {platform.platform()}, Python "
        f"{platform.python_version()}, fsync {fsync_version}; load average "
        f"{load_before[0]:.1f} before, {load_after[0]:.1f} after (other work shares this "
        "machine: compare ratios, not absolute times)\n"
        f"- trees under {b.trees} ({'same disk as' if same_disk else 'NOT the same disk as'} "
        "the checkout), page cache warm (every source tree read before each repetition); "
        "`sync` before every timed run, untimed; fsync's "
        "modules byte-compiled first, as an installed copy is\n"
        f"- anchors: {versions}\n"
        + (
            ""
            if per_tool_rss()
            else "- peak RSS: no GNU time, so the figures include the bench's own (upper bounds)\n"
        )
        + "".join(f"- missing: {note}\n" for note in b.anchors.notes)
    )


def render(b: Bench, verdicts: list[Verdict], began: float, load: tuple[float, ...]) -> str:
    """The whole report as markdown."""
    parts = [
        "### Benchmark results\n",
        _machine(b, began, load),
        "fsync ÷ tool: fsync's median time over the tool's in the same scenario "
        "(below 1: fsync is faster). CPU s: user + system, median. Peak RSS: the largest "
        "over the repetitions.\n",
        render_table(b.results),
        "\n### Targets (issue 7)\n",
        render_targets(verdicts),
    ]
    for title, body in b.results.sections:
        parts.extend([f"\n### {title}\n", body])
    return "\n".join(parts) + "\n"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller trees (a tenth or less)")
    parser.add_argument("--only", default=",".join(SUITES), help=f"subset of {','.join(SUITES)}")
    parser.add_argument("--reps", type=int, default=3, help="repetitions per tool (default 3)")
    parser.add_argument(
        "--s3-reps", type=int, default=2, help="repetitions of the S3 scenarios (default 2)"
    )
    parser.add_argument("--servers", default="moto,ceph", help="S3 servers (moto,ceph)")
    parser.add_argument("--no-install", action="store_true", help="never install anchors")
    parser.add_argument("--out", type=Path, default=HERE / "results.md", help="report file")
    args = parser.parse_args(argv)
    args.only = [s for s in args.only.split(",") if s]
    unknown = set(args.only) - set(SUITES)
    if unknown:
        parser.error(f"unknown suite(s) {', '.join(sorted(unknown))}")
    args.fsync = Path(sys.executable).parent / "fsync"
    if not args.fsync.exists():
        parser.error(f"no fsync next to {sys.executable}: pip install -e . first")
    return args


def _wanted(only: list[str]) -> set[str]:
    """The anchors the chosen suites use (GNU time always: it measures peak RSS)."""
    want = {"time"}
    if "local" in only:
        want |= {"cp", "rsync", "rclone"}
    if "hash" in only:
        want.add("b3sum")
    if "s3" in only:
        want |= {"rclone", "aws", "s3cmd"}
    return want


def byte_compile_fsync() -> None:
    """Compile fsync's modules to bytecode, as pip does when it installs a package.

    An editable install (`pip install -e .`) leaves none, and with PYTHONDONTWRITEBYTECODE
    set (as on this machine) Python compiles every fsync module again in every run: 20-60 ms
    of each fsync start that no installed copy pays. Python reads the files whatever that
    variable says.
    """
    compileall.compile_dir(os.path.dirname(fsync.__file__), quiet=1)


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run the suites asked for, print and save the report."""
    args = _parse(argv)
    only = args.only
    root = Path(os.environ.get("FSYNC_BENCH_DIR", "/tmp/fsync-bench"))
    began, load = time.monotonic(), os.getloadavg()
    print(f"fsync bench: {', '.join(only)}{' (quick)' if args.quick else ''} in {root}")
    b = Bench(
        root=root,
        trees=root / "trees",
        work=root / "work",
        quick=args.quick,
        reps=max(1, args.reps),
        s3_reps=max(1, args.s3_reps),
        fsync=str(args.fsync),
        anchors=anchors_mod.find(root, install=not args.no_install, want=_wanted(only)),
        results=Results(),
    )
    _remove(b.work, root)  # left by a run that crashed
    _wait_out_deletes(root)
    b.work.mkdir(parents=True)
    byte_compile_fsync()
    names = tuple(workloads.spec_for(n, quick=args.quick).name for n in ("small", "large", "huge"))
    s3_judged: list[tuple[str, int]] = []
    watch_verdicts: list[Verdict] = []
    try:
        if "hash" in only:
            print("- hashing", flush=True)
            hash_suite(b)
        if "local" in only:
            print("- local -> local", flush=True)
            names = local_suite(b)
        if "s3" in only:
            s3_judged = s3_suites(b, [s for s in args.servers.split(",") if s])
        if "watch" in only:
            print("- watch", flush=True)
            watch_verdicts = watch_suite(b)
    finally:
        _remove(b.work, root)
    verdicts = targets.judge(
        b.results,
        small=names[0],
        large=names[1],
        huge=names[2],
        s3_scenarios=s3_judged,
        watch_verdicts=watch_verdicts,
    )
    text = render(b, verdicts, began, load)
    print()
    print(text)
    args.out.write_text(text)
    print(f"(written to {args.out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
