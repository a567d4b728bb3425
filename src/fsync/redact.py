"""Keep credentials out of everything fsync prints, logs or stores.

fsync never needs to show a secret, yet secrets reach it in several ways: `-o secret=...`
storage options, a password in a URL's userinfo (`sftp://user:pw@host`), a signed URL's
query string, and the backend's environment variables (`AWS_SECRET_ACCESS_KEY`), any of
which a foreign library may echo back in an error message. A `Redactor` knows the secret
values of one run and scrubs them, plus anything shaped like a credential, from any text
before it leaves the process: console lines, the JSON summary, log lines, the state
database's run history and the `--on-error` input.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

MASK = "***"
"""What a secret is replaced with."""

MIN_SECRET = 4
"""Shorter values are not scrubbed as free text: masking every "ab" would garble paths."""

MIN_ENV_SECRET = 8
"""Environment values must be longer still: a `*_TOKEN=true` must not mask every `true`."""

_SECRET_KEY = re.compile(
    r"secret|passw|passphrase|pwd|token|credential|signature|sas|auth|private|"
    r"(^|[_-])key($|[_-])|(access|account|api|client|storage|session)[_-]?key",
    re.IGNORECASE,
)
"""Option and variable names whose values are secrets (`key`, `secret`, `aws_secret_access_key`,
`password`, `token`, `sas_token`, `account_key`...)."""

_SECRET_ENV = re.compile(
    r"(SECRET|SECRET_KEY|ACCESS_KEY|ACCESS_KEY_ID|TOKEN|PASSWORD|PASSWD|PASSPHRASE|API_KEY|"
    r"ACCOUNT_KEY|STORAGE_KEY|PRIVATE_KEY|CONNECTION_STRING|CREDENTIALS?)$",
    re.IGNORECASE,
)
"""Environment variables whose values are scrubbed wherever they appear in output."""

_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<info>[^/@\s?#]*)@")
"""A URL's `scheme://userinfo@` prefix."""

_SIGNED_PARAM = re.compile(
    r"(?P<name>[?&](?:X-Amz-Signature|X-Amz-Credential|X-Amz-Security-Token|Signature|"
    r"AWSAccessKeyId|sig|se|token|access_token|code|X-Goog-Signature|X-Goog-Credential)=)"
    r"(?P<value>[^&\s\"'#]+)",
    re.IGNORECASE,
)
"""Query parameters of signed URLs (S3 presigned, Azure SAS, GCS signed) that grant access."""

_ASSIGNMENT = re.compile(
    r"(?P<name>\b[A-Za-z][A-Za-z0-9_.\-]*)(?P<sep>\s*=\s*)(?P<quote>['\"]?)"
    r"(?P<value>[^\s'\",;&)}\]]+)"
)
"""`name=value` pairs in free text (an error echoing `secret=...`); `name: value` is left
alone, as fsync's own messages use that form for paths (`remote key: '../x': ...`)."""

_OBJECT_STORE_SCHEMES = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl"})
"""Schemes where the user part of userinfo is itself a credential (an access key id)."""


def is_secret_name(name: str) -> bool:
    """True for an option or setting name whose value must never be shown (`secret`, `key`)."""
    return bool(_SECRET_KEY.search(name))


def redact_url(url: str) -> str:
    """`url` with its password (and, on object stores, its user) and signatures masked.

    `sftp://user:pw@host/p` → `sftp://user:***@host/p`; `s3://AKIA:secret@bucket/p` →
    `s3://***@bucket/p`; a presigned `?X-Amz-Signature=...` keeps its name, not its value.
    """

    def userinfo(m: re.Match[str]) -> str:
        scheme, info = m.group("scheme"), m.group("info")
        if scheme[:-3].lower() in _OBJECT_STORE_SCHEMES:
            return f"{scheme}{MASK}@"
        user, sep, _ = info.partition(":")
        return f"{scheme}{user}:{MASK}@" if sep else m.group(0)

    masked = _USERINFO.sub(userinfo, url)
    return _SIGNED_PARAM.sub(lambda m: m.group("name") + MASK, masked)


def _url_secrets(url: str) -> list[str]:
    """The secret parts of `url`'s userinfo (the password; the user too on object stores)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    out = [parts.password] if parts.password else []
    if parts.username and parts.scheme.lower() in _OBJECT_STORE_SCHEMES:
        out.append(parts.username)
    return out


def _option_secrets(options: Mapping[str, object]) -> Iterable[str]:
    """String values of secret-named options, searching nested tables (`client_kwargs`)."""
    for name, value in options.items():
        if isinstance(value, Mapping):
            yield from _option_secrets(value)
        elif isinstance(value, str) and is_secret_name(str(name)):
            yield value


@dataclass(frozen=True, slots=True)
class Redactor:
    """Scrubs the known secret values of one run, and credential-shaped text, from strings."""

    secrets: tuple[str, ...] = ()

    @classmethod
    def build(
        cls,
        *,
        urls: Iterable[str] = (),
        storage_options: Mapping[str, object] | None = None,
        env: Mapping[str, str] | None = None,
        extra: Iterable[str] = (),
    ) -> Redactor:
        """A redactor for a run's remote `urls`, `-o` options and environment.

        Secret values are those of secret-named options (`secret`, `key`, `password`,
        `token`...), the passwords in the URLs' userinfo, and the values of secret-named
        environment variables (`AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`...).
        """
        found: set[str] = set(extra)
        for url in urls:
            found.update(_url_secrets(url))
        found.update(_option_secrets(storage_options or {}))
        for name, value in (env or {}).items():
            if _SECRET_ENV.search(name) and len(value) >= MIN_ENV_SECRET:
                found.add(value)
        kept = sorted((s for s in found if len(s) >= MIN_SECRET), key=len, reverse=True)
        return cls(tuple(kept))

    def text(self, text: str) -> str:
        """`text` with every known secret, URL password, signature and `secret=...` masked."""
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        text = redact_url(text) if ("@" in text or "=" in text) else text
        if "=" in text:
            text = _ASSIGNMENT.sub(_mask_assignment, text)
        return text

    def value(self, value: object) -> object:
        """A JSON-like value (dicts, lists, strings) with every string scrubbed by `text`."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {
                k: MASK if is_secret_name(str(k)) and isinstance(v, str) else self.value(v)
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value

    def options(self, options: Mapping[str, object]) -> dict[str, object]:
        """Storage options fit to show: secret-named values replaced by the mask."""
        return {k: MASK if is_secret_name(k) else self.value(v) for k, v in options.items()}


_PLACEHOLDERS = frozenset({MASK, "VALUE"})
"""Values of `name=value` text that are no secret: the mask itself, and the `VALUE` of the
`-o KEY=VALUE` that fsync's own messages spell out (`KEY` looks like a secret's name)."""


def _mask_assignment(m: re.Match[str]) -> str:
    if not is_secret_name(m.group("name")) or m.group("value") in _PLACEHOLDERS:
        return m.group(0)
    return f"{m.group('name')}{m.group('sep')}{m.group('quote')}{MASK}"


NO_SECRETS = Redactor()
"""A redactor that knows no values but still masks URL passwords, signatures, `secret=...`."""
