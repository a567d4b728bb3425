"""A loopback HTTP/1.1 proxy in front of an S3 test server that counts and injects faults.

fsync's S3 tests must see failures the way a user's run does: at the network, through s3fs,
aiobotocore and aiohttp, never by patching fsync's functions. This proxy sits between the
client and the moto or Ceph server (tests/conftest.py) and:

- counts every request by S3 operation (`classify`), so a test can assert that a run made
  only listing requests, or sent only the missing UploadParts after a resume;
- applies fault rules (`Proxy.add_rule`): answer 503 SlowDown / 500 / 429 / 403 itself,
  drop the connection after reading the request, reset it (TCP RST) in the middle of the
  response, or delay the request before forwarding it.

It is a reverse proxy, not a CONNECT proxy: the client's endpoint URL is the proxy's, and
each request is forwarded byte for byte, Host header included, so SigV4 signatures (which
cover the Host the client used) stay valid upstream. Bodies stream through in blocks (a
multi-GiB upload costs no memory), framed by Content-Length or chunked transfer coding
(aws-chunked is a content coding inside either, so it passes untouched). One thing is
rewritten: `Expect: 100-continue` is answered by the proxy itself and removed upstream, so a
fault can be decided after the whole request has been read, as "drop" promises.

Addressing is path-style (``/bucket/key``), which botocore uses for an IP endpoint.
Standard library only; one thread per client connection, each with its own upstream
connection that is reused while both sides keep it alive. When the upstream ends a connection
(moto answers every request with ``Connection: close``) the client's connection is closed
with it, so clients see the server's own connection behaviour.
"""

from __future__ import annotations

import http
import io
import select
import socket
import socketserver
import struct
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, get_args
from urllib.parse import parse_qs, unquote, urlsplit
from xml.sax.saxutils import escape

__all__ = [
    "ACTIONS",
    "Exchange",
    "Proxy",
    "Rule",
    "classify",
    "start_proxy",
]

Action = Literal[
    "503",
    "500",
    "429",
    "403",
    "not-s3",
    "drop",
    "silent",
    "delay",
    "reset",
    "no-range",
    "no-if-match",
    "empty-body",
]
ACTIONS: frozenset[str] = frozenset(get_args(Action))

_BLOCK = 1 << 20
"""Bytes moved per read while streaming a body: bounded memory per connection."""
_MAX_LINE = 65536
_UPSTREAM_TIMEOUT = 300.0
"""Seconds an upstream read may stall before the proxy gives up on that exchange."""

_ERROR_CODES: dict[int, tuple[str, str]] = {
    503: ("SlowDown", "Please reduce your request rate."),
    500: ("InternalError", "We encountered an internal error. Please try again."),
    429: ("SlowDown", "Please reduce your request rate."),
    403: ("AccessDenied", "Access Denied"),
}
"""S3's error code and message for each status the proxy answers itself."""


class Exchange(NamedTuple):
    """One request the proxy received: its S3 operation and the status it was answered with.

    `status` is the server's (or the injected fault's) status, logged before the answer's last
    byte is relayed, so a client holding its answer always finds the request in the log; None
    when the client got no answer (dropped, reset, or the upstream closed without answering).
    `path` is the percent-decoded path, e.g. ``/bucket/dir/a.txt``.
    """

    op: str
    method: str
    path: str
    status: int | None
    range: str | None = None
    """The request's `Range` header (a resumed download asks for `bytes=N-`)."""
    payload: str | None = None
    """Its `x-amz-content-sha256` header: the body's SHA-256, or `UNSIGNED-PAYLOAD`."""
    agent: str | None = None
    """Its `User-Agent` header."""


@dataclass
class Rule:
    """A fault applied to matching requests: skip `after` of them, then act `times` times.

    A request matches when `op` is None or equals its operation, and `path` is None or a
    substring of its decoded path. `seen` and `fired` count matches and faults so far (read
    them under no lock: ints are updated atomically enough for a test's assertions).
    `released` ends the waits of a "delay" rule at once: a test that holds a request to act
    in between (another client's write) lets it go when done, however long that took.
    """

    op: str | None
    action: Action
    times: int | None = 1
    after: int = 0
    delay: float = 0.0
    retry_after: float | None = None
    code: str | None = None
    path: str | None = None
    seen: int = 0
    fired: int = 0
    released: threading.Event = field(default_factory=threading.Event)

    def _matches(self, op: str, path: str) -> bool:
        return (self.op is None or self.op == op) and (self.path is None or self.path in path)

    def _window_open(self) -> bool:
        """True when the match just counted falls within [after, after + times)."""
        index = self.seen - 1
        return index >= self.after and (self.times is None or index < self.after + self.times)


@dataclass
class _Head:
    """A parsed request or response head, with its header lines kept in order."""

    start: str  # request line or status line
    headers: list[tuple[str, str]]

    def get(self, name: str) -> str | None:
        wanted = name.lower()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value
        return None

    def has_token(self, name: str, token: str) -> bool:
        """True when a comma-separated header (Connection, Transfer-Encoding) holds token."""
        wanted = name.lower()
        return any(
            token in (part.strip().lower() for part in value.split(","))
            for key, value in self.headers
            if key.lower() == wanted
        )

    def encode(self, *, drop: frozenset[str] = frozenset()) -> bytes:
        lines = [self.start]
        lines += [f"{key}: {value}" for key, value in self.headers if key.lower() not in drop]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def classify(method: str, path: str, query: str, *, copy_source: bool = False) -> str:
    """The S3 operation name of a path-style request (``"Other"`` when not recognised).

    `path` is the URL path (``/bucket`` or ``/bucket/key``), `query` the raw query string;
    `copy_source` (an ``x-amz-copy-source`` header was sent) tells CopyObject from PutObject.
    """
    keys = set(parse_qs(query, keep_blank_values=True))
    bucket, _, key = path.lstrip("/").partition("/")
    if not bucket:
        return "ListBuckets" if method == "GET" else "Other"
    if not key:
        return _classify_bucket(method, keys)
    return _classify_object(method, keys, copy_source)


_BUCKET_OPS: dict[tuple[str, str | None], str] = {
    ("GET", "uploads"): "ListMultipartUploads",
    ("GET", "list-type"): "ListObjectsV2",
    ("GET", "versions"): "ListObjectVersions",
    ("GET", "location"): "GetBucketLocation",
    ("GET", "versioning"): "GetBucketVersioning",
    ("GET", None): "ListObjects",
    ("HEAD", None): "HeadBucket",
    ("PUT", None): "CreateBucket",
    ("DELETE", None): "DeleteBucket",
    ("POST", "delete"): "DeleteObjects",
}


def _classify_bucket(method: str, keys: set[str]) -> str:
    for (verb, marker), name in _BUCKET_OPS.items():
        if verb == method and marker in keys:
            return name
    known = {marker for _, marker in _BUCKET_OPS if marker}
    # a subresource we do not name (?acl, ?policy, ...) is "Other", not the plain operation
    if keys & known or not keys - {"prefix", "delimiter", "marker", "max-keys", "encoding-type"}:
        return _BUCKET_OPS.get((method, None), "Other")
    return "Other"


def _classify_object(method: str, keys: set[str], copy: bool) -> str:
    multipart = "uploadId" in keys
    if method == "PUT" and multipart and "partNumber" in keys:
        return "UploadPartCopy" if copy else "UploadPart"
    if method == "POST" and "uploads" in keys:
        return "CreateMultipartUpload"
    if multipart:
        return {
            "GET": "ListParts",
            "POST": "CompleteMultipartUpload",
            "DELETE": "AbortMultipartUpload",
        }.get(method, "Other")
    if keys - {"versionId", "partNumber", "response-content-type", "x-id"}:
        return "Other"  # ?tagging, ?acl, ?retention, ...
    if method == "PUT":
        return "CopyObject" if copy else "PutObject"
    return {"GET": "GetObject", "HEAD": "HeadObject", "DELETE": "DeleteObject"}.get(method, "Other")


def _read_head(rfile: io.BufferedReader) -> _Head | None:
    """Read one HTTP head; None on a clean EOF before its first byte."""
    line = rfile.readline(_MAX_LINE)
    while line in (b"\r\n", b"\n"):  # RFC 9112: ignore empty lines before a request
        line = rfile.readline(_MAX_LINE)
    if not line:
        return None
    if not line.endswith(b"\n"):
        raise _ProtocolError(f"start line too long or truncated: {line[:80]!r}")
    headers: list[tuple[str, str]] = []
    while True:
        raw = rfile.readline(_MAX_LINE)
        if not raw.endswith(b"\n"):
            raise _ProtocolError("connection closed inside a header block")
        if raw in (b"\r\n", b"\n"):
            break
        name, colon, value = raw.decode("latin-1").partition(":")
        if not colon:
            raise _ProtocolError(f"malformed header line {raw[:80]!r}")
        headers.append((name.strip(), value.strip()))
    return _Head(line.decode("latin-1").rstrip("\r\n"), headers)


class _ProtocolError(Exception):
    """The peer sent something that is not HTTP/1.1 as this proxy understands it."""


Sink = Callable[[bytes], None] | None
"""Where body bytes go: a socket's sendall, or None to discard them."""


def _copy_exact(rfile: io.BufferedReader, sink: Sink, size: int) -> None:
    """Move exactly `size` bytes from rfile to sink, a block at a time."""
    while size > 0:
        block = rfile.read1(min(size, _BLOCK))
        if not block:
            raise ConnectionError(f"peer closed with {size} body bytes still to come")
        if sink is not None:
            sink(block)
        size -= len(block)


def _copy_chunked(rfile: io.BufferedReader, sink: Sink) -> None:
    """Move one chunked-coded body (chunks, last chunk, trailers) verbatim."""
    while True:
        line = rfile.readline(_MAX_LINE)
        if not line.endswith(b"\n"):
            raise ConnectionError("peer closed inside a chunk header")
        if sink is not None:
            sink(line)
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise _ProtocolError(f"bad chunk size line {line[:80]!r}") from None
        if size == 0:
            break
        _copy_exact(rfile, sink, size + 2)  # data and its CRLF
    while True:  # trailer section, ended by an empty line
        line = rfile.readline(_MAX_LINE)
        if not line.endswith(b"\n"):
            raise ConnectionError("peer closed inside the chunked trailer")
        if sink is not None:
            sink(line)
        if line in (b"\r\n", b"\n"):
            return


def _copy_until_eof(rfile: io.BufferedReader, sink: Sink) -> None:
    while block := rfile.read1(_BLOCK):
        if sink is not None:
            sink(block)


def _body_length(head: _Head) -> int | Literal["chunked"]:
    if head.has_token("Transfer-Encoding", "chunked"):
        return "chunked"
    length = head.get("Content-Length")
    return int(length) if length else 0


def _error_body(code: str, message: str, resource: str, request_id: str) -> bytes:
    """An S3 error document, as botocore parses it into ``ClientError.response["Error"]``."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
        f"<Resource>{escape(resource)}</Resource><RequestId>{request_id}</RequestId></Error>"
    ).encode()


class Proxy:
    """A running proxy: point a client at `endpoint_url`; read `log`/`counts()`; add rules.

    Build one with `start_proxy`; `close()` it (or use it as a context manager) to stop the
    listener and every connection thread.
    """

    def __init__(self, upstream_url: str) -> None:
        parts = urlsplit(upstream_url)
        if parts.scheme != "http" or not parts.hostname or not parts.port:
            raise ValueError(f"upstream must be http://HOST:PORT, not {upstream_url!r}")
        self.upstream: tuple[str, int] = (parts.hostname, parts.port)
        self.log: list[Exchange] = []
        self.errors: list[str] = []
        """Protocol errors and proxy bugs seen while serving (a test may assert it is empty)."""
        self._forwarded: Counter[str] = Counter()
        self._rules: list[Rule] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._live: set[socket.socket] = set()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.proxy = self
        host, port = self._server.server_address[:2]
        self.endpoint_url = f"http://{host}:{port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"s3-proxy-{port}",
            daemon=True,
        )
        self._thread.start()

    # --- what tests read and set ------------------------------------------------------------

    def counts(self) -> Counter[str]:
        """Requests received from clients, by operation (faulted ones included)."""
        with self._lock:
            return Counter(entry.op for entry in self.log)

    def forwarded_counts(self) -> Counter[str]:
        """Requests that reached the upstream server, by operation."""
        with self._lock:
            return Counter(self._forwarded)

    def ops(self) -> list[str]:
        """The operations of the requests received so far, in arrival order."""
        with self._lock:
            return [entry.op for entry in self.log]

    def reset_counts(self) -> None:
        """Forget the log and counts (rules and their counters stay)."""
        with self._lock:
            self.log.clear()
            self._forwarded.clear()

    def add_rule(
        self,
        op: str | None,
        *,
        action: Action,
        times: int | None = 1,
        after: int = 0,
        delay: float = 0.0,
        retry_after: float | None = None,
        code: str | None = None,
        path: str | None = None,
    ) -> Rule:
        """Inject `action` into requests of operation `op` (None: any request).

        The first `after` matching requests pass; the next `times` (None: all the rest) get
        the fault. Actions: "503"/"500"/"429"/"403" answer that status with an S3 XML error
        body (code SlowDown for 503 and 429, InternalError for 500, AccessDenied for 403, or
        `code`) and a Retry-After header when `retry_after` is given, without forwarding;
        "not-s3" answers 404 with an HTML page, as a web server that is not S3 would;
        "drop" reads the request and closes the connection unanswered; "silent" answers
        nothing, not even `100 Continue`, and keeps the connection open; "reset" forwards it,
        relays part of the answer, then resets the connection (RST); "delay" waits `delay`
        seconds (or until the rule is `released`), then forwards; "no-range" forwards it
        without its Range header (a store or proxy that ignores ranges answers with the whole
        object); "no-if-match" forwards it without its If-Match header (a store that ignores
        the condition); "empty-body" forwards it and relays the answer's head with
        `Content-Length: 0` and none of its body (a store that answers a read with nothing,
        though the object has bytes there).
        Rules are checked in the order added; the first whose window holds a request wins.
        Returns the rule, whose `seen`/`fired` counters a test can read.
        """
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}; expected one of {sorted(ACTIONS)}")
        if times is not None and times < 1:
            raise ValueError("times must be at least 1 (or None for every later match)")
        rule = Rule(op, action, times, after, delay, retry_after, code, path)
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear_rules(self) -> None:
        """Remove every fault rule."""
        with self._lock:
            self._rules.clear()

    def close(self) -> None:
        """Stop accepting, cut every open connection and join all threads; idempotent."""
        if self._closing.is_set():
            return
        self._closing.set()
        self._server.shutdown()
        with self._lock:
            live = list(self._live)
        for sock in live:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._server.server_close()  # joins the connection threads (block_on_close)
        self._thread.join(timeout=10)

    def __enter__(self) -> Proxy:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- used by connection threads -----------------------------------------------------------

    def _match(self, op: str, path: str) -> Rule | None:
        chosen: Rule | None = None
        with self._lock:
            for rule in self._rules:
                if not rule._matches(op, path):
                    continue
                rule.seen += 1
                if chosen is None and rule._window_open():
                    rule.fired += 1
                    chosen = rule
        return chosen

    def _record(self, exchange: Exchange, *, forwarded: bool) -> None:
        with self._lock:
            self.log.append(exchange)
            if forwarded:
                self._forwarded[exchange.op] += 1

    def _track(self, sock: socket.socket, live: bool) -> None:
        with self._lock:
            if live:
                self._live.add(sock)
            else:
                self._live.discard(sock)

    def _wait(self, seconds: float, released: threading.Event) -> None:
        """Sleep, but wake at once when the proxy closes or the rule is `released`."""
        deadline = time.monotonic() + seconds
        while not (self._closing.is_set() or released.is_set()):
            left = deadline - time.monotonic()
            if left <= 0:
                return
            released.wait(min(left, 0.05))


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = False  # server_close() joins them: no thread outlives the proxy
    block_on_close = True
    proxy: Proxy


class _Handler(socketserver.BaseRequestHandler):
    """Serves one client connection: a loop of exchanges until either side closes."""

    request: socket.socket
    server: _Server

    def handle(self) -> None:
        proxy = self.server.proxy
        connection = _Connection(proxy, self.request)
        proxy._track(self.request, True)
        try:
            if not proxy._closing.is_set():  # close() may have missed this new connection
                connection.serve()
        except OSError:
            pass  # a peer went away: normal for a proxy, nothing to report
        except Exception as exc:  # a protocol error or a bug: keep it for the test to see
            with proxy._lock:
                proxy.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            connection.close()
            proxy._track(self.request, False)


@dataclass
class _Upstream:
    sock: socket.socket
    rfile: io.BufferedReader


@dataclass
class _Connection:
    """One client connection and the upstream connection it reuses."""

    proxy: Proxy
    sock: socket.socket
    upstream: _Upstream | None = None
    rfile: io.BufferedReader = field(init=False)

    def __post_init__(self) -> None:
        # An answer goes out as a head, then body blocks: with Nagle on, a small body waits
        # for the client's delayed ACK of the head, 40 ms on Linux, as every small GET did.
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.rfile = self.sock.makefile("rb", buffering=_BLOCK)

    def serve(self) -> None:
        while not self.proxy._closing.is_set():
            head = _read_head(self.rfile)
            if head is None or not self._exchange(head):
                return

    def _hold(self) -> None:
        """Answer nothing, not even `100 Continue`: drop what the client sends until it
        hangs up or the proxy closes (a store that went silent mid-request)."""
        self.sock.settimeout(0.2)
        while not self.proxy._closing.is_set():
            try:
                if not self.sock.recv(_BLOCK):
                    return
            except TimeoutError:
                continue
            except OSError:
                return

    def _exchange(self, head: _Head) -> bool:
        """Handle one request; return whether the client connection stays open."""
        method, target, *_ = [*head.start.split(" ", 2), "", ""]
        split = urlsplit(target)
        path = unquote(split.path)
        copy_source = head.get("x-amz-copy-source") is not None
        op = classify(method, split.path, split.query, copy_source=copy_source)
        rule = self.proxy._match(op, path)
        if rule is not None and rule.action == "silent":
            exchange = Exchange(op, method, path, None, None, None, head.get("User-Agent"))
            self.proxy._record(exchange, forwarded=False)
            self._hold()
            return False
        if (head.get("Expect") or "").lower() == "100-continue":
            self.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        keep = self._client_keeps_alive(head)

        # Each exchange is logged before its last byte goes out, so a client that has its
        # answer (or its error) always finds the request in the log.
        def record(status: int | None, *, forwarded: bool) -> None:
            exchange = Exchange(
                op,
                method,
                path,
                status,
                head.get("Range"),
                head.get("x-amz-content-sha256"),
                head.get("User-Agent"),
            )
            self.proxy._record(exchange, forwarded=forwarded)

        if rule is not None and rule.action in _ERROR_CODES_BY_ACTION:
            self._drain_body(head)
            status = _ERROR_CODES_BY_ACTION[rule.action]
            record(status, forwarded=False)
            self.sock.sendall(self._error_response(status, rule, method, path, keep))
            return keep
        if rule is not None and rule.action == "not-s3":
            self._drain_body(head)
            record(404, forwarded=False)
            page = b"<html><body><h1>404 Not Found</h1></body></html>"
            self.sock.sendall(
                b"HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\n"
                + f"Content-Length: {len(page)}\r\n\r\n".encode()
                + page
            )
            return keep
        if rule is not None and rule.action == "drop":
            self._drain_body(head)
            record(None, forwarded=False)
            return False
        if rule is not None and rule.action == "delay":
            self.proxy._wait(rule.delay, rule.released)
        action = "" if rule is None else rule.action
        stripped = _STRIPPED_BY_ACTION.get(action)
        upstream_keeps = self._forward(
            head,
            method,
            reset=action == "reset",
            empty=action == "empty-body",
            record=record,
            drop=frozenset({"expect", stripped} if stripped else {"expect"}),
        )
        return keep and upstream_keeps

    @staticmethod
    def _client_keeps_alive(head: _Head) -> bool:
        if head.has_token("Connection", "close"):
            return False
        return not head.start.endswith("HTTP/1.0") or head.has_token("Connection", "keep-alive")

    def _drain_body(self, head: _Head) -> None:
        length = _body_length(head)
        if length == "chunked":
            _copy_chunked(self.rfile, None)
        else:
            _copy_exact(self.rfile, None, length)

    def _error_response(self, status: int, rule: Rule, method: str, path: str, keep: bool) -> bytes:
        code, message = _ERROR_CODES[status]
        request_id = uuid.uuid4().hex[:16].upper()
        body = (
            b"" if method == "HEAD" else _error_body(rule.code or code, message, path, request_id)
        )
        lines = [
            f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}",
            "Content-Type: application/xml",
            f"Content-Length: {len(body)}",
            f"x-amz-request-id: {request_id}",
            "Server: fsync-test-proxy",
        ]
        if rule.retry_after is not None:
            lines.append(f"Retry-After: {rule.retry_after:g}")
        if not keep:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body

    def _connect_upstream(self) -> _Upstream:
        """The upstream connection, reused unless the server closed it while idle."""
        if self.upstream is not None:
            readable, _, _ = select.select([self.upstream.sock], [], [], 0)
            if not readable:
                return self.upstream
            self.close_upstream()  # EOF (or stray bytes) on an idle connection: stale
        sock = socket.create_connection(self.proxy.upstream, timeout=_UPSTREAM_TIMEOUT)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.proxy._track(sock, True)
        self.upstream = _Upstream(sock, sock.makefile("rb", buffering=_BLOCK))
        return self.upstream

    def close(self) -> None:
        """Release both sides (the socket itself is closed by socketserver)."""
        self.close_upstream()
        with suppress(OSError):
            self.rfile.close()

    def close_upstream(self) -> None:
        if self.upstream is None:
            return
        self.proxy._track(self.upstream.sock, False)
        with suppress(OSError):
            self.upstream.rfile.close()
            self.upstream.sock.close()
        self.upstream = None

    def _forward(
        self,
        head: _Head,
        method: str,
        *,
        reset: bool,
        record: Callable[..., None],
        drop: frozenset[str] = frozenset({"expect"}),
        empty: bool = False,
    ) -> bool:
        """Send the request upstream, record and relay the answer; False: close the client.

        With `reset`, only part of the answer is relayed before the connection is reset; with
        `empty`, its head says `Content-Length: 0` and its body is read and not relayed.
        """
        upstream = self._connect_upstream()
        upstream.sock.sendall(head.encode(drop=drop))
        length = _body_length(head)
        if length == "chunked":
            _copy_chunked(self.rfile, upstream.sock.sendall)
        else:
            _copy_exact(self.rfile, upstream.sock.sendall, length)
        answer = _read_head(upstream.rfile)
        while answer is not None and answer.start.split(" ", 2)[1].startswith("1"):
            answer = _read_head(upstream.rfile)  # interim answers: the proxy sent its own 100
        if answer is None:
            record(None, forwarded=True)
            self.close_upstream()
            return False
        status = int(answer.start.split(" ", 2)[1])
        framing = self._response_framing(answer, method, status)
        if reset:
            record(None, forwarded=True)
            self._reset_midway(answer, framing, upstream)
            return False
        record(status, forwarded=True)
        relay: Sink = self.sock.sendall
        if empty:
            headers = [(k, v) for k, v in answer.headers if k.lower() != "transfer-encoding"]
            headers = [(k, "0" if k.lower() == "content-length" else v) for k, v in headers]
            if not any(k.lower() == "content-length" for k, _ in headers):
                headers.append(("Content-Length", "0"))
            self.sock.sendall(_Head(answer.start, headers).encode())
            relay = None
        else:
            self.sock.sendall(answer.encode())
        if framing == "chunked":
            _copy_chunked(upstream.rfile, relay)
        elif framing == "eof":
            _copy_until_eof(upstream.rfile, relay)
        else:
            _copy_exact(upstream.rfile, relay, framing)
        alive = framing != "eof" and not answer.has_token("Connection", "close")
        if not alive:
            self.close_upstream()
        return alive

    @staticmethod
    def _response_framing(answer: _Head, method: str, status: int) -> int | str:
        if method == "HEAD" or status in (204, 304):
            return 0
        if answer.has_token("Transfer-Encoding", "chunked"):
            return "chunked"
        length = answer.get("Content-Length")
        return int(length) if length is not None else "eof"

    def _reset_midway(self, answer: _Head, framing: int | str, upstream: _Upstream) -> None:
        """Relay the head and half the body (or half the head), then abort with a TCP RST."""
        encoded = answer.encode()
        if isinstance(framing, int) and framing > 1:
            self.sock.sendall(encoded)
            _copy_exact(upstream.rfile, self.sock.sendall, min(framing // 2, _BLOCK))
        else:
            self.sock.sendall(encoded[: len(encoded) // 2])
        self.close_upstream()  # the rest of the answer is unread: the connection is unusable
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.rfile.close()  # the descriptor closes only when its last file object does
        self.sock.close()


_ERROR_CODES_BY_ACTION: dict[str, int] = {"503": 503, "500": 500, "429": 429, "403": 403}
_STRIPPED_BY_ACTION: dict[str, str] = {"no-range": "range", "no-if-match": "if-match"}
"""The request header an action forwards the request without."""


def start_proxy(upstream_url: str) -> Proxy:
    """Start a proxy on 127.0.0.1 and a free port in front of ``upstream_url`` (http only)."""
    return Proxy(upstream_url)
