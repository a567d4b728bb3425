"""`fsync cleanup REMOTE`: discard the unfinished writes that killed runs left behind.

On S3 these are multipart uploads (which the store bills for until they are aborted); on
filesystem remotes, fsync's temporary files. Each adapter knows its own kind through
`Remote.abort_stale_uploads`; this module only parses the age and opens the remote.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from fsync.errors import ConfigError
from fsync.remote import open_remote

_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """Seconds from `90`, `30s`, `15m`, `2h`, `7d`, `1w`; raises `ConfigError` otherwise."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text.lower())
    if m is None:
        raise ConfigError(f"invalid duration {text!r} (expected e.g. 90, 30s, 15m, 2h, 7d)")
    return float(m.group(1)) * _UNITS[m.group(2)]


def cleanup(
    url: str,
    *,
    older_than: float | None = None,
    storage_options: Mapping[str, object] | None = None,
    endpoint_url: str | None = None,
) -> int:
    """Abort unfinished writes under `url` at least `older_than` seconds old (all with None).

    Returns how many were discarded. Finished files are never touched.
    """
    remote = open_remote(url, storage_options=storage_options, endpoint_url=endpoint_url)
    try:
        return remote.abort_stale_uploads(older_than)
    finally:
        remote.close()
