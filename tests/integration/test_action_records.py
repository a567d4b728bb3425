"""The engine's per-action records (`on_action`): bytes, attempts and outcomes as they were."""

from __future__ import annotations

from pathlib import Path

from fsync import app
from fsync.config import SyncOptions
from fsync.model import ActionRecord, Direction
from fsync.progress import NullReporter
from fsynctest.trees import age_tree, write


class EditOnce(NullReporter):
    """Rewrites the file being sent after its first chunk, as a user editing it would."""

    def __init__(self, target: Path) -> None:
        super().__init__()
        self.target, self.fired = target, False

    def advance(self, path: str, nbytes: int) -> None:
        if not self.fired and path == self.target.name:
            self.fired = True
            self.target.write_bytes(b"n" * (2 << 20))


def run(src: Path, out: Path, reporter: NullReporter, **kw: object) -> list[ActionRecord]:
    records: list[ActionRecord] = []
    opts = SyncOptions(local_root=str(src), remote_url=str(out), direction=Direction.PUSH, **kw)  # type: ignore[arg-type]
    app.run(opts, reporter, on_action=records.append)
    return records


def test_a_restarted_upload_counts_its_attempts(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write(src, {"big.bin": b"o" * (5 << 20), "small.txt": "s"})
    age_tree(src)
    reporter = EditOnce(src / "big.bin")
    records = {r.path: r for r in run(src, tmp_path / "out", reporter)}
    assert reporter.fired
    assert records["big.bin"].attempts == 2
    assert records["big.bin"].bytes == 2 << 20
    assert records["big.bin"].outcome == "done"
    assert records["small.txt"].attempts == 1
    assert records["small.txt"].seconds >= 0


def test_dry_run_records_what_would_happen(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write(src, {"a.txt": "abc"})
    records = run(src, tmp_path / "out", NullReporter(), dry_run=True)
    assert records == [ActionRecord("a.txt", "upload", "planned", bytes=3, attempts=0)]
    assert not (tmp_path / "out").exists()
