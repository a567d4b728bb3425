"""The transfer journal: unfinished uploads in the state database, shared across threads."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from fsync.manifest import Manifest
from fsync.manifest.journal import TransferJournal
from fsync.model import PartialDownload, PendingUpload, RelPath

if TYPE_CHECKING:
    from pathlib import Path


def upload(n: int, target: str = "s3://b/k", created: float = 0.0) -> PendingUpload:
    metadata = f'{{"mode":"010064{n % 8}"}}'  # kept as given, to continue only its like
    return PendingUpload(
        target, f"id-{n}", "ab" * 32, 100 + n, 5 << 20, created or float(n), metadata
    )


def test_start_find_finish(tmp_path: Path) -> None:
    with TransferJournal.open(str(tmp_path)) as journal:
        assert journal.all() == []
        journal.start(upload(2))
        journal.start(upload(1))
        journal.start(upload(3, target="s3://b/other"))
        assert journal.for_target("s3://b/k") == [upload(1), upload(2)]  # oldest first
        assert journal.for_target("s3://b/none") == []
        journal.finish("id-1")
        journal.finish("id-unknown")
        assert journal.all() == [upload(2), upload(3, target="s3://b/other")]


def test_rows_survive_reopening(tmp_path: Path) -> None:
    with TransferJournal.open(str(tmp_path)) as journal:
        journal.start(upload(1))
    with TransferJournal.open(str(tmp_path)) as journal:
        assert journal.all() == [upload(1)]
        journal.start(upload(1))  # the same id again replaces the row
        assert journal.all() == [upload(1)]


def test_shares_the_database_with_the_manifest(tmp_path: Path) -> None:
    """The journal's own connection works beside an open manifest (WAL): a journal write
    from a transfer thread waits for the engine's batch transaction, then goes through."""
    with Manifest.open(str(tmp_path)) as manifest, TransferJournal.open(str(tmp_path)) as journal:
        journal.start(upload(1))
        in_batch = threading.Event()
        done = threading.Event()

        def transfer_thread() -> None:
            in_batch.wait(10)
            journal.start(upload(2))
            done.set()

        thread = threading.Thread(target=transfer_thread)
        thread.start()
        with manifest.transaction():
            manifest.start_run("push", "s3://b")
            in_batch.set()
            assert not done.wait(0.2)  # blocked by the open write transaction
        thread.join(10)
        assert done.is_set()
        assert journal.all() == [upload(1), upload(2)]
        assert manifest.last_runs()[0].remote_url == "s3://b"


def test_is_usable_from_many_threads(tmp_path: Path) -> None:
    with TransferJournal.open(str(tmp_path)) as journal:

        def work(worker: int) -> None:
            for i in range(25):
                n = worker * 100 + i
                journal.start(upload(n, target=f"s3://b/{worker}"))
                if i % 2:
                    journal.finish(f"id-{n}")

        threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        rows = journal.all()
        assert len(rows) == 8 * 13
        assert all(int(row.upload_id[3:]) % 100 % 2 == 0 for row in rows)


def partial(path: str) -> PartialDownload:
    return PartialDownload(
        RelPath(path), "s3://b", '"etag"', 10 << 20, ".fsync-tmp-x", 1 << 20, b"", 1.0
    )


def test_partial_downloads_survive_reopening(tmp_path: Path) -> None:
    with TransferJournal.open(str(tmp_path)) as journal:
        journal.begin_download(partial("a"))
    with TransferJournal.open(str(tmp_path)) as journal:
        assert journal.partial(RelPath("a")) == partial("a")
        assert journal.partial(RelPath("b")) is None
        journal.begin_download(partial("b"))
        assert journal.partial(RelPath("b")) == partial("b")
        journal.end_download(RelPath("a"))
        journal.end_download(RelPath("never"))
        assert journal.partial(RelPath("a")) is None
    with TransferJournal.open(str(tmp_path)) as journal:
        assert journal.partials() == [partial("b")]


def test_forgetting_a_download_never_journaled_does_not_wait(tmp_path: Path) -> None:
    """Every download asks for a partial to continue and forgets it once in place. For a
    path that has none (nearly every one) neither is a statement: a DELETE would wait for
    the engine's manifest transaction, as forgetting a real partial still does."""
    with TransferJournal.open(str(tmp_path)) as journal:
        journal.begin_download(partial("kept"))
    with Manifest.open(str(tmp_path)) as manifest, TransferJournal.open(str(tmp_path)) as journal:
        assert journal.partial(RelPath("kept")) == partial("kept")  # the rows are read now
        forgot_kept = threading.Event()
        with manifest.transaction():
            manifest.start_run("pull", "s3://b")
            journal.end_download(RelPath("small.txt"))  # returns at once, or the test hangs
            assert journal.partial(RelPath("small.txt")) is None
            thread = threading.Thread(
                target=lambda: (journal.end_download(RelPath("kept")), forgot_kept.set())
            )
            thread.start()
            assert not forgot_kept.wait(0.2)  # a real row: the DELETE waits its turn
        thread.join(10)
        assert forgot_kept.is_set()
        assert journal.partials() == []


def test_a_conflict_copy_is_found_for_its_version_until_its_outcome_is_recorded(
    tmp_path: Path,
) -> None:
    path, copy = RelPath("doc.txt"), RelPath("doc.conflict-20260101-000000-host.txt")
    with Manifest.open(str(tmp_path)) as manifest, TransferJournal.open(str(tmp_path)) as journal:
        journal.copying("s3://b/p", path, "etag-1", copy)
        assert journal.copy_made("s3://b/p", path, "etag-1") == copy
        assert journal.copy_made("s3://b/p", path, "etag-2") is None  # another version
        assert journal.copy_made("s3://b/other", path, "etag-1") is None
        with manifest.transaction():
            manifest.forget_copies("s3://b/p", [path])
        assert journal.copy_made("s3://b/p", path, "etag-1") is None


def test_conflict_copies_no_plan_keeps_are_dropped(tmp_path: Path) -> None:
    a, b = RelPath("a.txt"), RelPath("b.txt")
    with TransferJournal.open(str(tmp_path)) as journal:
        for path in (a, b):
            journal.copying("s3://b/p", path, "e", RelPath(f"{path}.copy"))
        journal.copying("s3://b/other", a, "e", RelPath("a.copy"))
        assert journal.drop_copies("s3://b/p", keep={b}) == 1
        assert journal.copy_made("s3://b/p", a, "e") is None
        assert journal.copy_made("s3://b/p", b, "e") == "b.txt.copy"
        assert journal.copy_made("s3://b/other", a, "e") == "a.copy"
