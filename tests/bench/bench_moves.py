"""Benchmark renames on a local folder remote: a push of local moves, a pull of remote ones.

Run it directly (pytest does not collect tests/bench):

    .venv/bin/python tests/bench/bench_moves.py [--files 20000] [--moves 4500] [--repeat 3]

It builds a tree of `--files` small files in 100 folders, pushes it to a folder with the
installed `fsync` command, then, `--repeat` times: renames `--moves` of the files locally
(each into another folder) and times `fsync push`, renames as many on the remote and times
`fsync pull`, and for scale times a push of `--moves` new files of the same sizes. Each
timed run must report exactly its moves (or uploads), else it stops. It prints each run's
seconds and the medians.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench_watch import fsync_command

FOLDERS = 100


def timed(*args: object, expect: dict[str, int]) -> float:
    """Run `fsync ARGS --json`; its wall time, once its counts are checked against `expect`."""
    started = time.monotonic()
    res = subprocess.run(
        [fsync_command(), *map(str, args), "--json"], capture_output=True, text=True, check=False
    )
    seconds = time.monotonic() - started
    if res.returncode != 0:
        raise SystemExit(f"fsync {args[0]} failed ({res.returncode}): {res.stderr}")
    summary = json.loads(res.stdout)
    got = {k: summary[k] for k in expect}
    if got != expect:
        raise SystemExit(f"fsync {args[0]}: expected {expect}, got {got}")
    return seconds


def rename_some(root: Path, rng: random.Random, count: int, step: int) -> None:
    """Move `count` files of `root` each into another of its folders, under a new name."""
    files = sorted(p for p in root.rglob("*.txt") if ".fsync" not in p.parts)
    for i, path in enumerate(rng.sample(files, count)):
        folder = root / f"d{rng.randrange(FOLDERS):03d}"
        folder.mkdir(exist_ok=True)  # a folder a run emptied is gone
        path.rename(folder / f"moved-{step}-{i}.txt")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=20000)
    parser.add_argument("--moves", type=int, default=4500)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="where to build (default: tmp)")
    args = parser.parse_args()
    rng = random.Random(7)
    with tempfile.TemporaryDirectory(prefix="fsync-bench-moves-", dir=args.dir) as tmp:
        local, remote = Path(tmp, "local"), Path(tmp, "remote")
        for i in range(args.files):
            path = local / f"d{i % FOLDERS:03d}" / f"f{i:06d}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(rng.randbytes(rng.randrange(100, 4000)))
        timed("push", local, remote, expect={"uploaded": args.files})
        pushes, pulls, uploads = [], [], []
        for step in range(args.repeat):
            rename_some(local, rng, args.moves, step)
            pushes.append(timed("push", local, remote, expect={"moved": args.moves}))
            rename_some(remote, rng, args.moves, step + args.repeat)
            pulls.append(timed("pull", remote, local, expect={"moved": args.moves}))
            new = local / f"new{step}"
            new.mkdir()
            for i in range(args.moves):
                (new / f"n{i:05d}.txt").write_bytes(rng.randbytes(rng.randrange(100, 4000)))
            uploads.append(timed("push", local, remote, expect={"uploaded": args.moves}))
    tree = f"{args.moves} in a {args.files}-file tree"
    for what, runs in (
        (f"push of {tree} local moves", pushes),
        (f"pull of {tree} remote moves", pulls),
        (f"push of {args.moves} new files (for scale)", uploads),
    ):
        shown = ", ".join(f"{s:.2f}" for s in runs)
        print(f"{what}: median {statistics.median(runs):.2f} s ({shown})")


if __name__ == "__main__":
    main()
