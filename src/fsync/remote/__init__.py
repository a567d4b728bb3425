"""Open a `Remote` from a URL: the one place that maps URL schemes to adapters.

A plain path or `file://` gets the direct `LocalRemote`; every other scheme goes through fsspec,
imported only here and only when such a URL is opened (`import fsspec` alone costs 0.14 s, s3fs
0.36 s, and a local push should pay neither). Filesystems are always built fresh
(`skip_instance_cache=True`) with the listings cache off: fsync's snapshots must come from the
backend, not from a cache fsspec shares between callers.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fsync.errors import (
    ConfigError,
    RemoteUnavailable,
    SettingError,
    StorageOptionError,
    one_line,
    unusable_root,
)
from fsync.redact import redact_url
from fsync.remote.base import Remote, UploadJournal
from fsync.remote.fsspec_remote import FsspecRemote, HttpRemote, MemoryRemote
from fsync.remote.local import LocalRemote

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

    from fsync.remote.retry import RetryPolicy

__all__ = ["open_remote"]

RemoteFactory = Callable[[str, dict[str, Any], str | None, "TransferSettings"], Remote]
"""Builds a remote from (url, storage options, endpoint URL, transfer settings)."""


@dataclass(frozen=True, slots=True)
class TransferSettings:
    """The transfer knobs of `open_remote`; backends that have no use for one ignore it."""

    chunk_size: int | None = None
    transfers: int | None = None
    retry: RetryPolicy | None = None
    timeout: float | None = None
    tps_limit: float = 0
    bw_limit: float = 0
    journal: UploadJournal | None = None


_OBJECT_STORES = frozenset({"gs", "gcs", "az", "abfs", "abfss", "adl", "oci", "oss"})
"""Schemes without real folders: nothing to create or prune, and the root always exists."""


def open_remote(
    url: str,
    *,
    storage_options: Mapping[str, object] | None = None,
    endpoint_url: str | None = None,
    chunk_size: int | None = None,
    transfers: int | None = None,
    retry: RetryPolicy | None = None,
    timeout: float | None = None,
    tps_limit: float = 0,
    bw_limit: float = 0,
    journal: UploadJournal | None = None,
) -> Remote:
    """The `Remote` for `url`: a plain path, `file://`, `memory://`, `s3://` or any fsspec URL.

    `storage_options` are handed to the fsspec filesystem (the `-o KEY=VALUE` options);
    `endpoint_url` applies to `s3://` only, and so do the rate limits (`--tps-limit`,
    `--bw-limit`: `SettingError` for another remote). The other transfer knobs
    (`--chunk-size`, `--transfers`, `--retries`, `--timeout`) and the upload `journal` are
    used by the backends that can (s3://) and ignored by the others; None keeps a backend's
    default. Raises `ConfigError` for an unknown scheme, a scheme whose package is not
    installed, or options the target cannot take. No I/O is done beyond constructing
    the filesystem.
    """
    options = dict(storage_options or {})
    settings = TransferSettings(chunk_size, transfers, retry, timeout, tps_limit, bw_limit, journal)
    scheme, _ = _split(url)
    factory = _FACTORIES.get(scheme.lower(), _open_fsspec) if scheme else _open_local
    if factory is not _open_s3:
        # Ignored, they let a backup saturate the link it was meant to spare.
        for name, limit in (("tps_limit", tps_limit), ("bw_limit", bw_limit)):
            if limit:
                raise SettingError(name, f"applies to s3:// remotes only, not {redact_url(url)}")
    if not scheme:
        return _open_local(url, options, endpoint_url, settings)
    remote = factory(url, options, endpoint_url, settings)
    shown = redact_url(remote.url)
    if shown != remote.url:
        # The URL names the remote in messages and in the state database: no password there.
        remote.url = shown
    return remote


def _open_local(
    url: str, options: dict[str, Any], endpoint_url: str | None, settings: TransferSettings
) -> Remote:
    """A plain path (relative to the cwd) or `file://PATH`."""
    _no_endpoint(url, endpoint_url)
    if options:
        raise StorageOptionError(next(iter(options)), f"a local path takes none: {url}")
    path = local_path(url)
    assert path is not None
    return LocalRemote(path)


def local_path(url: str) -> str | None:
    """The absolute folder that a plain path (relative to the cwd), a `file://` or a
    `local://` URL names; None for any other scheme.

    `file:///p`, `file://localhost/p` and `file:/p` all name `/p` (RFC 8089). Raises
    `ConfigError` for a `file:` URL with no path or naming another host: `file://backup/x`
    would otherwise write to `./backup/x` under whatever folder fsync was started in.
    """
    scheme, rest = _split(url)
    if not scheme:
        return os.path.abspath(url)
    if scheme.lower() not in ("file", "local"):  # (fsspec's `local://` is this disk too)
        return None
    host, slash, path = rest.partition("/")
    if not slash or host.lower() not in ("", "localhost"):
        raise ConfigError(
            f"{url} names no local folder (write file:///ABSOLUTE/PATH, or a plain path)"
        )
    return os.path.abspath("/" + path)


def _split(url: str) -> tuple[str, str]:
    """(scheme, what follows `://`) of `url`; the scheme is "" for a plain path.

    RFC 8089's short form `file:/p` (no authority, as some tools write it) is `file:///p`:
    read as a plain path it was a folder named `file:` in the current one. `file:` followed
    by no slash at all is split the same way, so it is refused as naming no folder rather
    than taken for `./file:...`.
    """
    scheme, sep, rest = url.partition("://")
    if sep:
        return scheme, rest
    if url[:5].lower() == "file:":
        return url[:4], url[5:]
    meant = url_meant(url)
    if meant is not None:
        # `s3:bucket/x` (rclone's `remote:path` habit, or a lost `//`) was a new local
        # folder `./s3:bucket/x`: the push "succeeded" and nothing reached the store.
        raise ConfigError(
            f"{url} is neither a URL nor an existing path: did you mean {meant}? "
            f"(for a new local folder of that name, write ./{url})"
        )
    return "", url


def url_meant(text: str) -> str | None:
    """The URL `text` probably meant when it is one without its `//` (`s3:bucket/x`: an
    fsspec scheme, a colon, and no existing path of that name); None for anything else, a
    folder named like `snap-2026-11-27T12:00` or `notes:draft` included."""
    typo = _SCHEME_WITHOUT_SLASHES.match(text)
    if typo is None or "://" in text or os.path.lexists(text):
        return None
    from fsspec.registry import known_implementations  # noqa: PLC0415 - this case only

    name = typo.group(1)
    if name.lower() not in known_implementations:
        return None
    return f"{name}://{text[typo.end() :].lstrip('/')}"


_SCHEME_WITHOUT_SLASHES = re.compile(r"([A-Za-z][A-Za-z0-9+.-]+):")
"""A URL scheme (RFC 3986; two characters at least, so a drive letter is not one) and its
colon."""


def missing_root(url: str) -> str:
    """What to say of a remote root that is not there (or, for a local path, is a file)."""
    path = local_path(url)
    if path is not None and os.path.lexists(path):
        return f"remote {url} is not a folder (give a folder)"
    return f"remote {url} does not exist (check the path)"


def _open_memory(
    url: str, options: dict[str, Any], endpoint_url: str | None, settings: TransferSettings
) -> Remote:
    _no_endpoint(url, endpoint_url)
    fs, root = _make_fs(url, options)
    return MemoryRemote(fs, root, url)


def _open_s3(
    url: str, options: dict[str, Any], endpoint_url: str | None, settings: TransferSettings
) -> Remote:
    """s3:// and s3a:// through fsync's own S3 adapter (on s3fs's client)."""
    # Deferred: s3fs and botocore cost 0.4 s to import, which only S3 runs should pay.
    from fsync.remote.s3 import S3Remote, S3Settings  # noqa: PLC0415

    given = {
        "chunk_size": settings.chunk_size,
        "transfers": settings.transfers,
        "retry": settings.retry,
        "timeout": settings.timeout,
    }
    s3_settings = S3Settings(
        **{name: value for name, value in given.items() if value is not None},
        tps_limit=settings.tps_limit,
        bw_limit=settings.bw_limit,
    )
    return S3Remote(
        url,
        storage_options=options,
        endpoint_url=endpoint_url,
        settings=s3_settings,
        journal=settings.journal,
    )


def _open_fsspec(
    url: str, options: dict[str, Any], endpoint_url: str | None, settings: TransferSettings
) -> Remote:
    """Any other scheme fsspec knows, with the generic adapter."""
    _no_endpoint(url, endpoint_url)
    fs, root = _make_fs(url, options)
    scheme = url.partition("://")[0].rpartition("::")[2].lower()
    return FsspecRemote(fs, root, url, object_store=scheme in _OBJECT_STORES, walks=_walks(fs))


def _open_http(
    url: str, options: dict[str, Any], endpoint_url: str | None, settings: TransferSettings
) -> Remote:
    """http:// and https://: read-only, index pages listed (see `HttpRemote`)."""
    _no_endpoint(url, endpoint_url)
    fs, root = _make_fs(url, options)
    return HttpRemote(fs, root, url, walks=_walks(fs), retry=settings.retry)


def _walks(fs: AbstractFileSystem) -> bool:
    """Whether `fs.find` is fsspec's generic walk, one `ls` per folder, which skips the
    folders it cannot list (see `FsspecRemote`); a backend's own `find` (one recursive
    request on an object store) reports its failures itself."""
    from fsspec.asyn import AsyncFileSystem  # noqa: PLC0415 - deferred, as in `_make_fs`
    from fsspec.spec import AbstractFileSystem  # noqa: PLC0415

    kind = type(fs)
    if isinstance(fs, AsyncFileSystem):
        return kind._find is AsyncFileSystem._find
    return kind.find is AbstractFileSystem.find


_FACTORIES: dict[str, RemoteFactory] = {
    "file": _open_local,
    "memory": _open_memory,
    "http": _open_http,
    "https": _open_http,
    "s3": _open_s3,
    "s3a": _open_s3,
}
"""Scheme → adapter factory; anything absent here goes to `_open_fsspec`."""


def _no_endpoint(url: str, endpoint_url: str | None) -> None:
    if endpoint_url:
        raise SettingError("endpoint_url", f"applies to s3:// remotes only, not {url}")


def _make_fs(url: str, options: dict[str, Any]) -> tuple[AbstractFileSystem, str]:
    """A fresh fsspec filesystem for `url` and the root path inside it.

    Raises `ConfigError` for an unknown scheme, a missing backend package or options the
    backend rejects.
    """
    # Deferred: importing fsspec costs 0.14 s that a local-only run should not pay.
    import fsspec  # noqa: PLC0415
    from fsspec.core import url_to_fs  # noqa: PLC0415

    scheme = url.partition("://")[0]
    try:
        fsspec.get_filesystem_class(scheme.rpartition("::")[2])
    except ValueError:
        raise ConfigError(
            f"unknown URL scheme {scheme!r} in {url} "
            "(expected a path, file://, memory://, s3://, ...)"
        ) from None
    except ImportError as err:
        raise ConfigError(
            f"cannot open {url}: {err} (install that package, e.g. with pip)"
        ) from None
    try:
        fs, root = url_to_fs(url, skip_instance_cache=True, **options)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"cannot open {url}: {err}") from None
    except ImportError as err:
        raise ConfigError(
            f"cannot open {url}: {err} (install that package, e.g. with pip)"
        ) from None
    except OSError as err:  # some backends connect or open an archive right away (ftp, zip)
        raise unusable_root(url, err, "open") from err
    except Exception as err:  # a backend's own types (BadZipFile) stop here
        raise RemoteUnavailable(f"cannot open remote {url} ({one_line(err)})") from err
    return fs, root
