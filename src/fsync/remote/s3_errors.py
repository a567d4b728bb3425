"""Turn botocore and aiohttp failures into fsync's error contract, in one place.

Every S3 call of `fsync.remote.s3` goes through `classify`, so the retry layer sees only
`TransientError` (retry), and everything else fails at once as a builtin or fsync error:

- 412 PreconditionFailed -> `RemoteChanged` (a conditional write or read lost its race);
- NoSuchKey / NoSuchUpload / a bare 404 -> `FileNotFoundError`;
- NoSuchBucket -> `RemoteUnavailable` (the whole remote is unusable);
- 403 and bad-credential codes -> `PermanentError`, with a message built from the error code
  only: servers' messages for signature errors can echo request details, never print them;
- 5xx, 429, throttling codes, timeouts, resets and unreachable endpoints -> `TransientError`,
  carrying the server's Retry-After when it sent one.

Foreign exception types never leave the adapter; a non-S3 exception (a source file that
failed to read, say) is returned unchanged.
"""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Mapping
from typing import Any

import aiohttp
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    PartialCredentialsError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)
from botocore.parsers import ResponseParserError
from fsspec.exceptions import FSTimeoutError

from fsync.errors import PermanentError, RemoteChanged, RemoteUnavailable, TransientError
from fsync.remote.retry import retry_after


class Unsupported(PermanentError):
    """The store does not implement a request or one of its headers (501 NotImplemented)."""


_NOT_FOUND = frozenset({"NoSuchKey", "NoSuchUpload", "NotFound", "404"})
_DENIED = frozenset(
    {
        "AccessDenied",
        "AllAccessDisabled",
        "AccountProblem",
        "InvalidAccessKeyId",
        "InvalidToken",
        "ExpiredToken",
        "SignatureDoesNotMatch",
        "RequestTimeTooSkewed",
        "InvalidSecurity",
        "403",
    }
)
_TRANSIENT = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestThrottled",
        "TooManyRequests",
        "RequestTimeout",
        "RequestTimeoutException",
        "InternalError",
        "ServiceUnavailable",
        "BadDigest",  # the body arrived different from its Content-MD5: corrupted in transit
        "XAmzContentSHA256Mismatch",
        "IncompleteBody",
    }
)
_HINTS = {
    "InvalidAccessKeyId": "check the access key",
    "SignatureDoesNotMatch": "check the secret key",
    "ExpiredToken": "refresh the session credentials",
    "InvalidToken": "check the session token",
    "RequestTimeTooSkewed": "the local clock is off; fix it",
}


def classify(exc: BaseException, what: str, endpoint: str) -> BaseException:
    """The exception to raise instead of `exc`, raised while doing `what` against `endpoint`.

    `what` is a short description with the object's URL ("reading s3://b/k"); it starts the
    message of a permanent error. A transient error's message is only the reason: `retrying`
    prefixes `what` when it gives up. The caller chains the result (`raise ... from exc`).
    """
    if isinstance(exc, ClientError):
        return _from_response(exc.response, what)
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return PermanentError(
            f"{what}: no usable AWS credentials (set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, or a profile)"
        )
    if isinstance(exc, BotoConnectionError) and not isinstance(exc, HTTPClientError):
        if _reached(exc):
            return TransientError(f"connection to {endpoint} failed ({_cause(exc)})")
        return TransientError(f"cannot reach {endpoint} ({type(exc).__name__})")
    if isinstance(
        exc,
        HTTPClientError | IncompleteReadError | ResponseParserError | aiohttp.ClientError,
    ):
        return TransientError(f"connection to {endpoint} failed ({type(exc).__name__})")
    if isinstance(exc, asyncio.TimeoutError | TimeoutError | FSTimeoutError):
        return TransientError(f"{endpoint} timed out")
    if isinstance(exc, ConnectionError):
        return TransientError(f"connection to {endpoint} failed ({exc.strerror or exc})")
    if isinstance(exc, BotoCoreError):
        return PermanentError(f"{what}: {exc}")
    return exc


def _reached(exc: BotoConnectionError) -> bool:
    """True when the endpoint was reached and the connection broke later (a reset in the
    middle of an answer): aiobotocore wraps every aiohttp connection error, whenever it
    happened, in `EndpointConnectionError`, which would otherwise read "cannot reach"."""
    cause = exc.kwargs.get("error")
    return isinstance(cause, aiohttp.ClientConnectionError) and not isinstance(
        cause, aiohttp.ClientConnectorError
    )


def _cause(exc: BotoConnectionError) -> str:
    """The wrapped error's errno name (`ECONNRESET`), else its type's name."""
    cause = exc.kwargs.get("error")
    if isinstance(cause, OSError) and cause.errno is not None:
        return errno.errorcode.get(cause.errno, type(cause).__name__)
    return type(cause).__name__ if cause is not None else type(exc).__name__


def _from_response(response: Mapping[str, Any], what: str) -> BaseException:
    error = response.get("Error") or {}
    code = str(error.get("Code") or "")
    meta = response.get("ResponseMetadata") or {}
    status = int(meta.get("HTTPStatusCode") or 0)
    if code == "PreconditionFailed" or status == 412:
        return RemoteChanged(f"{what}: changed since it was listed")
    if code == "NoSuchBucket":
        bucket = error.get("BucketName") or ""
        named = f" {bucket}" if bucket else ""
        return RemoteUnavailable(f"{what}: no such bucket{named} (create it, or check the URL)")
    if code == "NotImplemented" or status == 501:
        return Unsupported(f"{what}: not supported by this store ({code or status})")
    if status == 404 and (not code or code.isdigit()) and what.startswith("listing"):
        # An S3 store answers a listing of a missing bucket with NoSuchBucket; a bare 404 to
        # a GET with a body to parse is some other web server at the endpoint.
        return RemoteUnavailable(
            f"{what}: the endpoint answered 404 without an S3 error (is it an S3 server? "
            "check --endpoint-url)"
        )
    if code in _NOT_FOUND or (status == 404 and not code):
        return FileNotFoundError(errno.ENOENT, "no such object", what)
    if code in _DENIED or status == 403:
        hint = _HINTS.get(code, "check the credentials and the bucket's policy")
        label = code if code and not code.isdigit() else "403"
        return PermanentError(f"{what}: access denied ({label}; {hint})")
    if status >= 500 or status == 429 or code in _TRANSIENT:
        headers = meta.get("HTTPHeaders") or {}
        label = code if code and not code.isdigit() else f"HTTP {status}"
        return TransientError(label, retry_after=retry_after(headers))
    message = str(error.get("Message") or "").strip()
    detail = f"{code or status}" + (f": {message}" if message else "")
    return PermanentError(f"{what}: {detail}")
