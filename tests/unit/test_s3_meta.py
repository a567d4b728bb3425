"""S3 metadata formats shared with rclone, and ETag normalisation (pure, no server)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from botocore.utils import parse_timestamp
from hypothesis import given
from hypothesis import strategies as st

from fsync.etags import is_plain_md5
from fsync.model import Digest, RemoteEntry
from fsync.remote import s3_meta as sm
from fsync.remote.base import ObjectMeta
from fsync.remote.s3_meta import (
    digest_from_metadata,
    entry_from_head,
    entry_from_listing,
    format_mode,
    format_mtime,
    is_same_write,
    md5_base64,
    md5_hex_from_base64,
    normalise_etag,
    object_metadata,
    parse_mode,
    parse_mtime,
    parse_time,
    write_condition,
)

DIGEST = Digest("ab" * 32)


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (1_600_000_000_123_456_789, "1600000000.123456789"),
        (1_600_000_000_500_000_000, "1600000000.5"),
        (1_600_000_000_000_000_000, "1600000000"),
        (1_600_000_000_000_000_001, "1600000000.000000001"),
        (1_354_040_105_123_456_789, "1354040105.123456789"),  # rclone's own example
        (0, "0"),
        (5, "0.000000005"),
        (-1_500_000_000, "-1.5"),
        (-500_000_000, "-0.5"),
    ],
)
def test_mtime_is_written_as_rclone_writes_it(ns: int, text: str) -> None:
    assert format_mtime(ns) == text
    assert parse_mtime(text) == ns


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("1600000000.1234567891234", 1_600_000_000_123_456_789),  # beyond ns: cut, as rclone
        ("1600000000.", 1_600_000_000_000_000_000),
        (" 12.25 ", 12_250_000_000),
    ],
)
def test_mtime_parse_accepts_other_writers(text: str, ns: int) -> None:
    assert parse_mtime(text) == ns


@pytest.mark.parametrize("text", [None, "", "abc", "1e9", "2020-01-01T00:00:00Z", "1.2.3", "+5"])
def test_mtime_parse_refuses_other_formats(text: str | None) -> None:
    assert parse_mtime(text) is None


@pytest.mark.parametrize("text", ["9223372036854775808", "-9223372036854775808.5", "1" + "0" * 20])
def test_mtime_parse_refuses_times_no_file_can_have(text: str) -> None:
    # Past a 64-bit time_t: setting it on a pulled file raised OverflowError and ended the run.
    assert parse_mtime(text) is None


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("9223372036.854775808", 1 << 63),  # 2262: a file can have it, and a folder keeps it
        ("99999999999", 99_999_999_999 * 10**9),
        ("-99999999999.5", -99_999_999_999_500_000_000),
        ("9223372036854775807.999999999", (1 << 63) * 10**9 - 1),
    ],
)
def test_mtime_parse_takes_every_time_a_file_can_have(text: str, ns: int) -> None:
    assert parse_mtime(text) == ns


@pytest.mark.parametrize("text", ["9" * 4400, "-" + "1" * 4400, "1" * 4400 + ".5"])
def test_mtime_parse_refuses_thousands_of_digits(text: str) -> None:
    # int() refuses more than 4300 decimal digits: its ValueError ended the whole pull.
    assert parse_mtime(text) is None


def test_mtime_parse_takes_leading_zeros() -> None:
    assert parse_mtime("0" * 4400 + "1600000000.5") == 1_600_000_000_500_000_000


@given(st.integers(min_value=-(2**63) * 10**9 + 1, max_value=2**63 * 10**9 - 1))
def test_mtime_round_trips_every_nanosecond(ns: int) -> None:
    text = format_mtime(ns)
    assert parse_mtime(text) == ns
    whole, _, fraction = text.lstrip("-").partition(".")
    assert whole.isdigit()
    assert len(fraction) <= 9
    assert not fraction.endswith("0")


def test_mode_is_octal_unix_style() -> None:
    assert format_mode(0o100644) == "0100644"
    assert format_mode(0o100755) == "0100755"
    assert parse_mode("0100644") == 0o100644
    assert parse_mode("100664") == 0o100664
    assert parse_mode("rwx") is None
    assert parse_mode(None) is None
    assert parse_mode("0177777") == 0o177777


@pytest.mark.parametrize("text", ["-1", "-0100644", "7" * 22, "0200000", "37777777777"])
def test_mode_parse_refuses_what_no_file_can_have(text: str) -> None:
    # stat.S_IMODE raised OverflowError for these (negative, or past 32 bits) and ended the
    # whole pull; they say no more than "rwx" does.
    assert parse_mode(text) is None
    head = {"ContentLength": 1, "ETag": '"x"', "Metadata": {"mode": text, "mtime": "9" * 4400}}
    assert entry_from_head(head) == RemoteEntry(1, "x")


def test_etags_are_normalised() -> None:
    assert (
        normalise_etag('"5eb63bbbe01eeed093cb22bb8f5acdc3"') == "5eb63bbbe01eeed093cb22bb8f5acdc3"
    )
    assert normalise_etag("5eb63bbbe01eeed093cb22bb8f5acdc3") == "5eb63bbbe01eeed093cb22bb8f5acdc3"
    assert normalise_etag(' "abc-3" ') == "abc-3"
    assert normalise_etag("") == ""
    assert normalise_etag(None) == ""
    assert is_plain_md5("5eb63bbbe01eeed093cb22bb8f5acdc3")
    assert not is_plain_md5("5eb63bbbe01eeed093cb22bb8f5acdc3-2")
    assert not is_plain_md5("")


def test_md5_base64_round_trip() -> None:
    hexed = "5eb63bbbe01eeed093cb22bb8f5acdc3"
    assert md5_base64(hexed) == "XrY7u+Ae7tCTyyK7j1rNww=="
    assert md5_hex_from_base64(md5_base64(hexed)) == hexed
    assert md5_hex_from_base64("not base64!") is None
    assert md5_hex_from_base64("Zm9v") is None  # valid base64, but not 16 bytes
    assert md5_hex_from_base64(None) is None


def test_object_metadata_has_exactly_the_designed_keys() -> None:
    meta = ObjectMeta(size=3, digest=DIGEST, mtime_ns=1_600_000_000_5 * 10**8, mode=0o100600)
    assert object_metadata(meta) == {
        "blake3": DIGEST,
        "mtime": "1600000000.5",
        "mode": "0100600",
    }
    with_md5 = object_metadata(meta, "5eb63bbbe01eeed093cb22bb8f5acdc3")
    assert with_md5["md5chksum"] == "XrY7u+Ae7tCTyyK7j1rNww=="
    unknown = ObjectMeta(size=3, digest=Digest(""), mtime_ns=0)
    assert "blake3" not in object_metadata(unknown)


def test_entries_from_answers() -> None:
    head = {
        "ContentLength": 11,
        "ETag": '"5eb63bbbe01eeed093cb22bb8f5acdc3"',
        "Metadata": {"blake3": DIGEST, "mtime": "1600000000.25", "mode": "0100640"},
        "LastModified": "ignored",
    }
    assert entry_from_head(head) == RemoteEntry(
        11, "5eb63bbbe01eeed093cb22bb8f5acdc3", DIGEST, 1_600_000_000_250_000_000, 0o640
    )
    foreign = {"ContentLength": 4, "ETag": '"abc-2"', "Metadata": {"mtime": "yesterday"}}
    assert entry_from_head(foreign) == RemoteEntry(4, "abc-2")
    item = {"Key": "k", "Size": 7, "ETag": '"x"', "LastModified": "not an mtime"}
    assert entry_from_listing(item) == RemoteEntry(7, "x")
    assert digest_from_metadata({"blake3": "XYZ"}) is None
    assert digest_from_metadata({"blake3": DIGEST.upper()}) == DIGEST


def test_write_condition() -> None:
    assert write_condition(None) == {"IfNoneMatch": "*"}
    assert write_condition(RemoteEntry(1, "abc")) == {"IfMatch": "abc"}
    assert write_condition(RemoteEntry(1, "")) == {}


def test_is_same_write() -> None:
    meta = ObjectMeta(size=3, digest=DIGEST, mtime_ns=7, mode=0o100644)
    mine = RemoteEntry(3, "md5", DIGEST, 7, 0o644)
    assert is_same_write(mine, meta, "md5")
    assert is_same_write(mine, meta, None)
    assert not is_same_write(mine, meta, "other")
    assert not is_same_write(RemoteEntry(3, "md5", Digest("cd" * 32), 7), meta, None)
    assert not is_same_write(RemoteEntry(3, "md5", DIGEST, 8), meta, None)


# -- timestamps in S3 answers ------------------------------------------------------------------

_UTC_TIMES = st.datetimes(
    min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)
).map(lambda t: t.replace(tzinfo=UTC))


@given(when=_UTC_TIMES, digits=st.integers(0, 9))
def test_iso_times_name_the_instant_botocore_reads(when: datetime, digits: int) -> None:
    fraction = f".{when.microsecond:06d}{when.microsecond % 1000:03d}"[: digits + 1]
    text = f"{when.year:04d}-{when:%m-%dT%H:%M:%S}" + (fraction if digits else "") + "Z"
    parsed = parse_time(text)
    assert parsed == parse_timestamp(text)
    assert parsed is not None
    assert parsed.tzinfo is UTC


@given(when=_UTC_TIMES.map(lambda t: t.replace(microsecond=0)))
def test_http_dates_name_the_instant_botocore_reads(when: datetime) -> None:
    days = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
    months = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
    text = (
        f"{days[when.weekday()]}, {when.day:02d} {months[when.month - 1]} {when.year:04d}"
        f" {when:%H:%M:%S} GMT"
    )
    assert parse_time(text) in (parse_timestamp(text), None)
    if when.year >= 100:
        assert parse_time(text) == when


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-26T17:33:59+00:00",  # an offset: botocore's parser reads it
        "2026-11-26 17:33:59Z",
        "1700000000",
        "Thu, 26 Nov 2026 17:33:59 UTC",
        "Thu, 26 nov 2026 17:33:59 GMT",
        "Thu, 26 Nox 2026 17:33:59 GMT",
        "Xyz, 26 Nov 2026 17:33:59 GMT",  # botocore refuses these
        "Dec, 26 Nov 2026 17:33:59 GMT",
        "Mon, 15 Mar 0010 10:00:00 GMT",  # dateutil reads 2010
        "2026-02-30T00:00:00Z",  # impossible dates and leap seconds too
        "2016-12-31T23:59:60Z",
        "Thu, 31 Apr 2026 00:00:00 GMT",
        "2026-11-26T17:33:59.Z",
        "",
    ],
)
def test_other_time_forms_are_left_to_botocore(text: str) -> None:
    assert parse_time(text) is None


def test_an_etag_under_kms_or_customer_keys_is_no_md5() -> None:
    """DSSE-KMS too: checked as an MD5, every read of such an object failed."""
    assert sm.etag_is_md5({})
    assert sm.etag_is_md5({"ServerSideEncryption": "AES256"})
    for answer in (
        {"ServerSideEncryption": "aws:kms"},
        {"ServerSideEncryption": "aws:kms:dsse"},
        {"SSECustomerAlgorithm": "AES256"},
    ):
        assert not sm.etag_is_md5(answer)


def test_metadata_whose_md5chksum_is_not_the_etag_is_not_believed() -> None:
    """Unless the ETag is no MD5 (KMS): then the two cannot be compared."""
    digest = "ab" * 32
    answer = {
        "ContentLength": 3,
        "ETag": '"' + "0" * 32 + '"',
        "Metadata": {"blake3": digest, "md5chksum": sm.md5_base64("1" * 32), "mode": "0100644"},
    }
    assert sm.entry_from_head(answer).digest is None
    assert sm.entry_from_head(answer).mode is None
    encrypted = {**answer, "ServerSideEncryption": "aws:kms:dsse"}
    assert sm.entry_from_head(encrypted).digest == digest
