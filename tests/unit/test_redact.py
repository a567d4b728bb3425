"""Secrets never leave fsync: URL passwords, signatures, secret options and env values."""

from __future__ import annotations

import pytest

from fsync.redact import MASK, NO_SECRETS, Redactor, is_secret_name, redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("sftp://alice:pw-1234@host/data", f"sftp://alice:{MASK}@host/data"),
        ("s3://AKIAEXAMPLE:verysecret@bucket/p", f"s3://{MASK}@bucket/p"),
        ("sftp://alice@host/data", "sftp://alice@host/data"),
        ("s3://bucket/prefix", "s3://bucket/prefix"),
        ("/plain/path", "/plain/path"),
        (
            "https://b.s3.amazonaws.com/k?X-Amz-Credential=AKIA%2F1&X-Amz-Signature=abcdef",
            f"https://b.s3.amazonaws.com/k?X-Amz-Credential={MASK}&X-Amz-Signature={MASK}",
        ),
        (
            "https://acct.blob.core.windows.net/c/b?sv=2024&se=2030&sig=Zm9vYmFy",
            f"https://acct.blob.core.windows.net/c/b?sv=2024&se={MASK}&sig={MASK}",
        ),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize(
    "name",
    ["secret", "key", "password", "token", "aws_secret_access_key", "session_token", "sas_token"],
)
def test_secret_names(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize("name", ["anon", "use_ssl", "endpoint_url", "region_name", "profile"])
def test_ordinary_names(name: str) -> None:
    assert not is_secret_name(name)


def test_known_values_are_masked_anywhere() -> None:
    red = Redactor.build(
        urls=["sftp://bob:hunter2-pw@host/x"],
        storage_options={"key": "AKIAKEYID", "secret": "s3cr3t-value", "anon": "false"},
        env={"AWS_SECRET_ACCESS_KEY": "env-secret-123", "HOME": "/root", "FLAG_TOKEN": "true"},
    )
    text = (
        "cannot open sftp://bob:hunter2-pw@host/x with AKIAKEYID/s3cr3t-value "
        "(env-secret-123) at /root: dry_run true"
    )
    out = red.text(text)
    for secret in ("hunter2-pw", "AKIAKEYID", "s3cr3t-value", "env-secret-123"):
        assert secret not in out
    # Not secrets: ordinary paths and a short env value that would garble everything.
    assert "/root" in out
    assert "dry_run true" in out


def test_assignments_in_free_text_are_masked() -> None:
    out = NO_SECRETS.text("bad options: secret=abc123 region=eu-west-1 password='pw pw'")
    assert "abc123" not in out
    assert "region=eu-west-1" in out
    assert "password=" in out
    assert "'pw" not in out


def test_own_messages_are_not_garbled() -> None:
    message = "refused remote key: '../evil': has an empty, '.' or '..' segment"
    assert NO_SECRETS.text(message) == message


def test_json_values_are_scrubbed_recursively() -> None:
    red = Redactor.build(storage_options={"secret": "top-secret-1"})
    summary = {
        "errors": [{"path": "a", "error": "denied for top-secret-1"}],
        "options": {"secret": "other", "anon": True},
        "count": 3,
    }
    clean = red.value(summary)
    assert clean == {
        "errors": [{"path": "a", "error": f"denied for {MASK}"}],
        "options": {"secret": MASK, "anon": True},
        "count": 3,
    }


def test_nested_option_tables_are_searched() -> None:
    red = Redactor.build(
        storage_options={"client_kwargs": {"aws_secret_access_key": "nested-secret-9"}}
    )
    assert red.text("x nested-secret-9 y") == f"x {MASK} y"
