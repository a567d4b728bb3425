"""A real http server on 127.0.0.1 serving a folder as index pages, for pulls from http://.

It is Python's own `http.server` (no sizes in its index pages, no ranges, `Last-Modified`
to the second), run in a thread of the test, so a test can count the requests an `fsync`
process made and change a file on the server at a chosen moment: `before_get` runs just
before a file's GET is answered, after fsync listed it (a fault injected at the server).
`quirks` make it answer files as some servers do, `cut` drops a file's connection
halfway through its bytes, and `failing` answers a file with an error status instead.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import io
import os
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass
class Site:
    """The running server: its URL, the requests it answered and the hooks it runs."""

    url: str
    requests: list[tuple[str, str]] = field(default_factory=list)
    """(method, path) of each request, in the order they came."""
    before_get: dict[str, Callable[[], None]] = field(default_factory=dict)
    """URL path → what to do once, just before that path's next GET is answered."""
    quirks: set[str] = field(default_factory=set)
    """How files are answered: `chunked` (no `Content-Length`, as many servers stream),
    `gzip` (compressed though fsync asks for `identity`, `Content-Length` the compressed
    size)."""
    cut: dict[str, int] = field(default_factory=dict)
    """URL path → how many of its next GETs end halfway, the connection shut (a server that
    died mid-file)."""
    failing: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    """(method, URL path) → the statuses its next requests are answered with, one each, in
    place of the file (a server failing for a while, or for good with a long list)."""

    def gets(self, path: str) -> int:
        """How many GETs asked for `path` (`/a.txt`)."""
        return self.requests.count(("GET", path))


class _Handler(SimpleHTTPRequestHandler):
    site: Site

    def do_GET(self) -> None:
        self.site.requests.append(("GET", self.path))
        if self._failed("GET"):
            return
        hook = self.site.before_get.pop(self.path, None)
        if hook is not None:
            hook()
        super().do_GET()

    def do_HEAD(self) -> None:
        self.site.requests.append(("HEAD", self.path))
        if not self._failed("HEAD"):
            super().do_HEAD()

    def _failed(self, method: str) -> bool:
        """Whether this request was answered with the next of its `failing` statuses."""
        statuses = self.site.failing.get((method, self.path))
        if not statuses:
            return False
        self.send_error(statuses.pop(0))
        return True

    def send_head(self) -> io.BufferedIOBase | None:
        """A file as `quirks` say (the bytes framed in chunks, or gzipped); else as usual."""
        path = self.translate_path(self.path)
        if not self.site.quirks or not os.path.isfile(path):
            return super().send_head()
        data = Path(path).read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Last-Modified", self.date_time_string(int(os.stat(path).st_mtime)))
        if "gzip" in self.site.quirks:
            data = gzip.compress(data, mtime=0)
            self.send_header("Content-Encoding", "gzip")
        if "chunked" in self.site.quirks:
            self.protocol_version = "HTTP/1.1"  # (the status line; the connection still closes)
            self.send_header("Transfer-Encoding", "chunked")
            data = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in _pieces(data)) + b"0\r\n\r\n"
        else:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        return io.BytesIO(data)

    def copyfile(self, source: object, outputfile: object) -> None:
        left = self.site.cut.get(self.path, 0)
        if left <= 0:
            super().copyfile(source, outputfile)  # type: ignore[arg-type]
            return
        self.site.cut[self.path] = left - 1
        data = source.read()  # type: ignore[attr-defined]
        self.wfile.write(data[: len(data) // 2])
        self.wfile.flush()
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the requests are in `Site.requests`."""


def _pieces(data: bytes, size: int = 1000) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


class QuietHTTPServer(ThreadingHTTPServer):
    """A threading http server that takes a client closing its connection for what it is:
    fsync closes a stream it has seen enough of (a file changed since it was listed), and
    aiohttp its idle keep-alive connections. `socketserver` printed each as a traceback
    amid the test run's output; any other error is still printed."""

    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@contextlib.contextmanager
def serving(folder: Path) -> Iterator[Site]:
    """Serve `folder` at http://127.0.0.1:PORT/ until the block ends."""
    site = Site("")
    handler = type("Handler", (_Handler,), {"site": site})
    server = QuietHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=folder))
    site.url = f"http://127.0.0.1:{server.server_address[1]}/"
    thread = threading.Thread(target=server.serve_forever, name="http-site", daemon=True)
    thread.start()
    try:
        yield site
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
