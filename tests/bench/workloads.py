"""Seeded benchmark trees: the same bytes on every run, generated once and reused.

A tree's files are named and sized by a seeded `random.Random`; their bytes come from blake3's
extendable output keyed by the seed, the file's name and its generation, which is random
enough that no store can compress or deduplicate it and about 1 GB/s fast to produce. A tree
is built under a temporary name and renamed into place with a `.complete` marker that records
its spec, so an interrupted generation is never reused and a changed spec is rebuilt.

The trees (issue 7):

- `small`: 20,000 files of 1-16 KiB in nested folders (20 x 10 folders of 100 files);
- `large`: 4 files of 256 MiB;
- `mixed`: 2,000 small files plus 10 files of 8-64 MiB (the largest exactly 64 MiB: `touch`);
- `huge`: 100,000 small files (for scale);

and two steps applied in place to a tree: `mutate` (modify 10 files, add 5, delete 5) and
`touch` (a new mtime, same content, on the 64 MiB file of `mixed`).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from blake3 import blake3

KiB = 1 << 10
MiB = 1 << 20

SEED = 7
"""The default seed; a different one gives different names, sizes and bytes."""

MARKER = ".complete"
"""File beside a finished tree (`NAME.complete`) holding its spec as JSON."""

_BLOCK = 8 * MiB


@dataclass(frozen=True)
class Spec:
    """What a tree holds: `small_files` of 1-16 KiB, `big_files` of `big_min`-`big_max` bytes.

    Small files go into `top` x `mid` folders (`dNN/eNN/`); big files into `big/`.
    `big_exact`, when set, is the size of the first big file (the one `touch` uses).
    """

    name: str
    small_files: int = 0
    big_files: int = 0
    big_min: int = 0
    big_max: int = 0
    big_exact: int = 0
    top: int = 20
    mid: int = 10
    small_min: int = 1 * KiB
    small_max: int = 16 * KiB

    def total_files(self) -> int:
        """How many files the tree holds before any step."""
        return self.small_files + self.big_files


SPECS: dict[str, Spec] = {
    "small": Spec("small", small_files=20_000),
    "large": Spec("large", big_files=4, big_min=256 * MiB, big_max=256 * MiB),
    "mixed": Spec(
        "mixed",
        small_files=2_000,
        big_files=10,
        big_min=8 * MiB,
        big_max=64 * MiB,
        big_exact=64 * MiB,
        top=10,
        mid=10,
    ),
    "huge": Spec("huge", small_files=100_000, top=50, mid=20),
}
"""The full-size trees of issue 7."""

QUICK_SPECS: dict[str, Spec] = {
    "small": replace(SPECS["small"], name="small-quick", small_files=2_000, top=10, mid=10),
    "large": replace(
        SPECS["large"], name="large-quick", big_files=2, big_min=64 * MiB, big_max=64 * MiB
    ),
    "mixed": replace(
        SPECS["mixed"], name="mixed-quick", small_files=500, big_files=3, top=5, mid=5
    ),
    "huge": replace(SPECS["huge"], name="huge-quick", small_files=10_000, top=20, mid=10),
}
"""Smaller stand-ins for `--quick`: the same shapes, a tenth of the work or less."""


def spec_for(name: str, *, quick: bool = False) -> Spec:
    """The spec of tree `name` ("small", "large", "mixed", "huge"), full or quick size."""
    table = QUICK_SPECS if quick else SPECS
    if name not in table:
        raise KeyError(f"unknown workload {name!r}; choose from {', '.join(table)}")
    return table[name]


def content(seed: int, name: str, size: int, generation: int = 0) -> bytes:
    """The bytes of file `name` at `generation` (0 when created, then one more per edit)."""
    return blake3(f"{seed}:{generation}:{name}".encode()).digest(length=size)


def _write(path: Path, data: bytes, stamp_ns: int) -> None:
    """Write `data` to `path`, then set its access and modification times to `stamp_ns`."""
    path.write_bytes(data)
    os.utime(path, ns=(stamp_ns, stamp_ns))


def _write_big(path: Path, seed: int, name: str, size: int) -> None:
    """Write `size` pseudo-random bytes to `path` in blocks (never all in memory)."""
    xof = blake3(f"{seed}:0:{name}".encode())
    with path.open("wb") as out:
        done = 0
        while done < size:
            n = min(_BLOCK, size - done)
            out.write(xof.digest(length=n, seek=done))
            done += n


def _small_paths(spec: Spec, rng: random.Random) -> list[tuple[str, int]]:
    """(relative path, size) of every small file, spread evenly over the folders."""
    folders = [f"d{t:02d}/e{m:02d}" for t in range(spec.top) for m in range(spec.mid)]
    out = []
    for i in range(spec.small_files):
        folder = folders[i % len(folders)]
        size = rng.randint(spec.small_min, spec.small_max)
        out.append((f"{folder}/f{i:06d}.bin", size))
    return out


def _big_paths(spec: Spec, rng: random.Random) -> list[tuple[str, int]]:
    out = []
    for i in range(spec.big_files):
        size = (
            spec.big_exact
            if (i == 0 and spec.big_exact)
            else rng.randint(spec.big_min, spec.big_max)
        )
        out.append((f"big/b{i:02d}.bin", size))
    return out


def _marker(path: Path) -> Path:
    """The marker beside the finished tree or file `path`."""
    return path.with_name(path.name + MARKER)


def _is_complete(tree: Path, record: dict[str, object]) -> bool:
    """`tree` is finished and its marker holds `record` (its spec and seed)."""
    try:
        recorded = json.loads(_marker(tree).read_text())
    except (OSError, ValueError):
        return False
    return recorded == record and tree.is_dir()


def generate(spec: Spec, parent: Path, *, seed: int = SEED, log: bool = True) -> Path:
    """The tree of `spec` under `parent` (`parent/NAME-sSEED`), built now if not already.

    All mtimes are set to one fixed moment well in the past, so no tool sees a racily
    clean file and every run starts from the same times.
    """
    tree = parent / f"{spec.name}-s{seed}"
    record = {"spec": asdict(spec), "seed": seed}
    if _is_complete(tree, record):
        return tree
    parent.mkdir(parents=True, exist_ok=True)
    building = parent / f".{tree.name}.building"
    shutil.rmtree(building, ignore_errors=True)
    shutil.rmtree(tree, ignore_errors=True)
    began = time.monotonic()
    rng = random.Random(f"{seed}:{spec.name}")
    stamp = 1_600_000_000_000_000_000
    made_dirs: set[str] = set()
    for rel, size in _small_paths(spec, rng):
        folder = rel.rpartition("/")[0]
        if folder not in made_dirs:
            (building / folder).mkdir(parents=True, exist_ok=True)
            made_dirs.add(folder)
        _write(building / rel, content(seed, rel, size), stamp)
    if spec.big_files:
        (building / "big").mkdir(parents=True, exist_ok=True)
    for rel, size in _big_paths(spec, rng):
        path = building / rel
        _write_big(path, seed, rel, size)
        os.utime(path, ns=(stamp, stamp))
    building.rename(tree)
    _marker(tree).write_text(json.dumps(record))
    if log:
        print(
            f"  generated {tree} ({spec.total_files():,} files) in "
            f"{time.monotonic() - began:.1f} s",
            flush=True,
        )
    return tree


def set_aside(path: Path) -> None:
    """Move the tree at `path`, if any, into a `trash` folder beside it, deleted after the run.

    Deleting a tree just before a tool writes the next one skews that tool's time: on ext4
    without a journal (this machine's root filesystem), each new file skips, one by one, the
    inodes freed in the last minute (`recently_deleted`: 80% of a 20,000-file `rsync -a` in
    `perf`), so the same copy took 1.1 s or 13 s depending on what was deleted just before.
    """
    if not path.exists():
        return
    trash = path.parent / "trash"
    trash.mkdir(exist_ok=True)
    path.rename(trash / f"{path.name}-{time.monotonic_ns()}")


def warm(tree: Path) -> None:
    """Read every file under `tree`, so the timed tools all read it from the page cache.

    This machine's kernel reclaims page cache it finds cold (`kdamond`): a tree written or
    read half an hour before is read from the disk again, by whichever tool comes first
    (measured: a 20,000-file push took 23.6 s instead of 7 s).
    """
    for folder, _, names in os.walk(tree):
        for name in names:
            with open(os.path.join(folder, name), "rb") as f:
                while f.read(1 << 20):
                    pass


def clone(tree: Path, dest: Path) -> Path:
    """A private copy of `tree` at `dest` (times kept), for steps that change a tree in place."""
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(tree, dest, copy_function=shutil.copy2)
    return dest


@dataclass(frozen=True)
class StepResult:
    """What a step changed, relative to the tree's root."""

    modified: tuple[str, ...]
    added: tuple[str, ...]
    deleted: tuple[str, ...]


def _small_files_in(tree: Path) -> list[str]:
    """The tree's small files (everything outside `big/` and `.fsync/`), sorted."""
    found = []
    for folder, dirs, files in os.walk(tree):
        rel_folder = os.path.relpath(folder, tree)
        dirs[:] = sorted(d for d in dirs if not (rel_folder == "." and d in {"big", ".fsync"}))
        for name in files:
            rel = name if rel_folder == "." else f"{rel_folder}/{name}"
            found.append(rel)
    return sorted(found)


def mutate(
    tree: Path, step: int, *, seed: int = SEED, modify: int = 10, add: int = 5, delete: int = 5
) -> StepResult:
    """Modify `modify` small files, add `add` new ones and delete `delete`, chosen by `step`.

    Each call with a new `step` makes a new set of changes, so repetitions of a benchmark
    each see fresh work. Modified files get new bytes and a new size (one more KiB or less),
    and an mtime one second past the previous one; so even a size-and-mtime tool notices.
    """
    rng = random.Random(f"{seed}:mutate:{step}")
    files = _small_files_in(tree)
    chosen = rng.sample(files, modify + delete)
    to_modify, to_delete = chosen[:modify], chosen[modify:]
    now = time.time_ns() - 5_000_000_000
    for rel in to_modify:
        path = tree / rel
        size = max(1, path.stat().st_size + rng.choice([-1024, 1024]))
        _write(path, content(seed, rel, size, generation=step + 1), now)
    added = []
    for i in range(add):
        rel = f"d00/e00/new-{step:03d}-{i}.bin"
        path = tree / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        size = rng.randint(1 * KiB, 16 * KiB)
        _write(path, content(seed, rel, size, generation=step + 1), now)
        added.append(rel)
    for rel in to_delete:
        (tree / rel).unlink()
    return StepResult(tuple(to_modify), tuple(added), tuple(to_delete))


def touch(tree: Path, step: int) -> StepResult:
    """Give the tree's first big file (64 MiB in `mixed`) a new mtime; its bytes stay.

    The new mtime is now (plus `step` ns, so repetitions never repeat one): later than the
    object's upload, as after a real `touch`, so a size-and-mtime tool sees a newer file.
    """
    rel = "big/b00.bin"
    path = tree / rel
    stamp = time.time_ns() + step
    os.utime(path, ns=(stamp, stamp))
    return StepResult((rel,), (), ())


def one_gib_file(parent: Path, *, seed: int = SEED, size: int = 1 << 30) -> Path:
    """A single file of `size` pseudo-random bytes (default 1 GiB), for hashing speed."""
    name = f"hash-{size >> 20}MiB-s{seed}.bin"
    path = parent / name
    marker = _marker(path)
    if path.is_file() and path.stat().st_size == size and marker.exists():
        return path
    parent.mkdir(parents=True, exist_ok=True)
    _write_big(path, seed, name, size)
    marker.write_text(json.dumps({"size": size, "seed": seed}))
    return path


def main() -> None:
    """`python tests/bench/workloads.py [--quick] DIR [NAME ...]`: generate trees now."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("dir", type=Path)
    parser.add_argument("names", nargs="*", default=list(SPECS))
    args = parser.parse_args()
    for name in args.names:
        print(generate(spec_for(name, quick=args.quick), args.dir))


if __name__ == "__main__":
    main()
