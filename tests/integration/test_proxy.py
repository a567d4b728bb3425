"""The fault-injecting S3 proxy (tests/fsynctest/proxy.py): framing, counting and faults.

Two layers. First the proxy's HTTP mechanics against a tiny echo server of our own, where
every byte can be checked: keep-alive, chunked bodies both ways, Expect: 100-continue,
streaming a large body in bounded memory, and a clean close. Then the S3 behaviour through
the real clients (s3fs, and boto3 where a test needs botocore's retries off) on moto and Ceph
RGW: operations are counted right and each fault reaches the client as the network would
deliver it. Ceph checks SigV4 signatures, so every Ceph test also proves that forwarding the
client's Host header unchanged keeps signed requests valid.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.client
import http.server
import io
import json
import socket
import threading
import time
import tracemalloc
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
import s3fs
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError, ResponseStreamingError

from fsynctest.httpsite import QuietHTTPServer
from fsynctest.proxy import Proxy, classify, start_proxy

if TYPE_CHECKING:
    from conftest import ProxiedBucket, S3Server

MIB = 1024 * 1024


# --- classify -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "query", "copy", "expected"),
    [
        ("GET", "/", "", False, "ListBuckets"),
        ("GET", "/b", "list-type=2&prefix=d%2F", False, "ListObjectsV2"),
        ("GET", "/b/", "list-type=2", False, "ListObjectsV2"),
        ("GET", "/b", "prefix=x&delimiter=%2F", False, "ListObjects"),
        ("GET", "/b", "uploads", False, "ListMultipartUploads"),
        ("GET", "/b", "uploads=&prefix=k", False, "ListMultipartUploads"),
        ("GET", "/b", "versions", False, "ListObjectVersions"),
        ("GET", "/b", "acl", False, "Other"),
        ("HEAD", "/b", "", False, "HeadBucket"),
        ("PUT", "/b", "", False, "CreateBucket"),
        ("DELETE", "/b", "", False, "DeleteBucket"),
        ("POST", "/b", "delete", False, "DeleteObjects"),
        ("HEAD", "/b/k", "", False, "HeadObject"),
        ("GET", "/b/dir/k", "", False, "GetObject"),
        ("GET", "/b/k", "versionId=3", False, "GetObject"),
        ("PUT", "/b/k", "", False, "PutObject"),
        ("PUT", "/b/k", "", True, "CopyObject"),
        ("DELETE", "/b/k", "", False, "DeleteObject"),
        ("POST", "/b/k", "uploads", False, "CreateMultipartUpload"),
        ("PUT", "/b/k", "partNumber=2&uploadId=u", False, "UploadPart"),
        ("PUT", "/b/k", "uploadId=u&partNumber=2", True, "UploadPartCopy"),
        ("GET", "/b/k", "uploadId=u", False, "ListParts"),
        ("GET", "/b/k", "uploadId=u&max-parts=1000", False, "ListParts"),
        ("POST", "/b/k", "uploadId=u", False, "CompleteMultipartUpload"),
        ("DELETE", "/b/k", "uploadId=u", False, "AbortMultipartUpload"),
        ("GET", "/b/k", "tagging", False, "Other"),
        ("PUT", "/b/k", "acl", False, "Other"),
        ("PATCH", "/b/k", "", False, "Other"),
    ],
)
def test_classify(method: str, path: str, query: str, copy: bool, expected: str) -> None:
    assert classify(method, path, query, copy_source=copy) == expected


# --- HTTP mechanics against an echo server --------------------------------------------------


class _Echo(http.server.BaseHTTPRequestHandler):
    """Answers every request with JSON about what arrived: body length and MD5, headers, and
    the client's port (one port per upstream connection, so keep-alive is visible)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep the test output clean

    def _body_digest(self) -> tuple[int, str]:
        digest = hashlib.md5()
        size = 0
        if "chunked" in self.headers.get("Transfer-Encoding", ""):
            while True:
                chunk_size = int(self.rfile.readline().split(b";")[0], 16)
                if chunk_size == 0:
                    while self.rfile.readline() not in (b"\r\n", b""):
                        pass
                    break
                data = self.rfile.read(chunk_size)
                self.rfile.readline()
                digest.update(data)
                size += len(data)
        else:
            remaining = int(self.headers.get("Content-Length", 0))
            while remaining:
                block = self.rfile.read(min(remaining, MIB))
                digest.update(block)
                size += len(block)
                remaining -= len(block)
        return size, digest.hexdigest()

    def _answer(self) -> None:
        size, md5 = self._body_digest()
        if self.path.startswith("/chunked"):
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for piece in (b"hello ", b"chunked ", b"world"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\nX-Trailer: yes\r\n\r\n")
            return
        if "/bytes/" in self.path:
            count = int(self.path.rsplit("/", 1)[1])
            self.send_response(200)
            self.send_header("Content-Length", str(count))
            self.end_headers()
            block = bytes(range(256)) * 4096
            while count:
                piece = block[: min(count, len(block))]
                self.wfile.write(piece)
                count -= len(piece)
            return
        body = json.dumps(
            {
                "method": self.command,
                "path": self.path,
                "size": size,
                "md5": md5,
                "host": self.headers.get("Host"),
                "expect": self.headers.get("Expect"),
                "port": self.client_address[1],
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _answer


@pytest.fixture
def echo_proxy() -> Iterator[Proxy]:
    """A proxy in front of a fresh echo server; both stopped (threads joined) afterwards."""
    server = QuietHTTPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = False
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    proxy = start_proxy(f"http://127.0.0.1:{server.server_address[1]}")
    try:
        yield proxy
    finally:
        proxy.close()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
    assert not proxy.errors


def _connect(proxy: Proxy) -> http.client.HTTPConnection:
    host, port = proxy.endpoint_url.removeprefix("http://").split(":")
    return http.client.HTTPConnection(host, int(port), timeout=30)


def _json(conn: http.client.HTTPConnection, method: str, path: str, **kw: Any) -> Any:
    conn.request(method, path, **kw)
    response = conn.getresponse()
    assert response.status == 200
    return json.loads(response.read())


def test_keep_alive_reuses_one_upstream_connection(echo_proxy: Proxy) -> None:
    conn = _connect(echo_proxy)
    try:
        first = _json(conn, "GET", "/b/one")
        second = _json(conn, "PUT", "/b/two", body=b"x" * 1000)
        third = _json(conn, "GET", "/b/three")
    finally:
        conn.close()
    assert first["port"] == second["port"] == third["port"]
    assert second["size"] == 1000
    assert first["host"] == echo_proxy.endpoint_url.removeprefix("http://")  # Host unchanged
    assert echo_proxy.ops() == ["GetObject", "PutObject", "GetObject"]
    assert [entry.status for entry in echo_proxy.log] == [200, 200, 200]


def test_client_connections_send_without_nagle_delay(echo_proxy: Proxy) -> None:
    """An answer's head and body go out in separate writes: with Nagle's algorithm on, a
    small body would wait for the client's delayed ACK of the head (40 ms on Linux)."""
    conn = _connect(echo_proxy)
    try:
        _json(conn, "GET", "/b/one")
        live = list(echo_proxy._live)
        assert live
        for sock in live:
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    finally:
        conn.close()


def test_chunked_request_body_arrives_intact(echo_proxy: Proxy) -> None:
    pieces = [b"a" * 10, b"", b"b" * 70_000, bytes(range(256)) * 3]
    conn = _connect(echo_proxy)
    try:
        got = _json(conn, "PUT", "/b/k", body=iter(pieces), encode_chunked=True)
        again = _json(conn, "GET", "/b/k")  # the connection is still in step after it
    finally:
        conn.close()
    data = b"".join(pieces)
    assert (got["size"], got["md5"]) == (len(data), hashlib.md5(data).hexdigest())
    assert again["port"] == got["port"]


def test_chunked_response_is_relayed_with_trailers(echo_proxy: Proxy) -> None:
    conn = _connect(echo_proxy)
    try:
        conn.request("GET", "/chunked")
        response = conn.getresponse()
        assert response.read() == b"hello chunked world"
        after = _json(conn, "GET", "/b/next")
    finally:
        conn.close()
    assert after["method"] == "GET"
    assert echo_proxy.ops() == ["ListObjects", "GetObject"]  # "/chunked": a bucket GET


def test_expect_100_continue_is_answered_by_the_proxy(echo_proxy: Proxy) -> None:
    host, port = echo_proxy.endpoint_url.removeprefix("http://").split(":")
    body = b"z" * 5000
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"PUT /b/k HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)
        )
        interim = sock.recv(100)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        reader = sock.makefile("rb")
        response = http.client.HTTPResponse(sock)
        response.fp = reader
        response.begin()
        answer = json.loads(response.read())
    assert answer["size"] == 5000
    assert answer["expect"] is None  # not forwarded: the upstream never waits for a 100


def test_large_body_streams_in_bounded_memory(echo_proxy: Proxy) -> None:
    """256 MiB up and 64 MiB down through the proxy while tracemalloc watches every thread:
    the peak stays a few blocks, never the body."""
    size = 256 * MIB
    block = bytes(range(256)) * 4096  # 1 MiB
    expected = hashlib.md5()
    for _ in range(size // MIB):
        expected.update(block)

    def body() -> Iterator[bytes]:
        for _ in range(size // MIB):
            yield block

    conn = _connect(echo_proxy)
    tracemalloc.start()
    try:
        got = _json(conn, "PUT", "/b/big", body=body(), headers={"Content-Length": str(size)})
        conn.request("GET", f"/bytes/{64 * MIB}")
        response = conn.getresponse()
        received = 0
        while piece := response.read(MIB):
            received += len(piece)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        conn.close()
    assert (got["size"], got["md5"]) == (size, expected.hexdigest())
    assert received == 64 * MIB
    assert peak < 32 * MIB, f"peak traced memory {peak / MIB:.1f} MiB"


def test_error_rule_answers_head_without_body_and_keeps_the_connection(
    echo_proxy: Proxy,
) -> None:
    echo_proxy.add_rule("HeadObject", action="503", retry_after=3)
    conn = _connect(echo_proxy)
    try:
        conn.request("HEAD", "/b/k")
        response = conn.getresponse()
        assert response.status == 503
        assert response.getheader("Retry-After") == "3"
        assert response.read() == b""
        after = _json(conn, "GET", "/b/k")
    finally:
        conn.close()
    assert after["method"] == "GET"
    assert echo_proxy.log[0].status == 503
    assert echo_proxy.forwarded_counts() == Counter({"GetObject": 1})


def test_rule_window_after_times_and_path(echo_proxy: Proxy) -> None:
    rule = echo_proxy.add_rule("GetObject", action="500", after=2, times=2, path="/hot/")
    anything = echo_proxy.add_rule(None, action="429", after=5, times=None)
    conn = _connect(echo_proxy)
    statuses = []
    try:
        for path in ["/b/hot/1", "/b/cold", "/b/hot/2", "/b/hot/3", "/b/hot/4", "/b/hot/5"]:
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            statuses.append(response.status)
        for _ in range(2):
            conn.request("DELETE", "/b/x")
            response = conn.getresponse()
            response.read()
            statuses.append(response.status)
    finally:
        conn.close()
    # the path rule skips hot/1 and hot/2 and fails hot/3 and hot/4; the catch-all rule counts
    # every request (its own window) and fails from the 6th on
    assert statuses == [200, 200, 200, 500, 500, 429, 429, 429]
    assert (rule.seen, rule.fired) == (5, 2)
    assert anything.fired == 3
    with pytest.raises(ValueError, match="unknown action"):
        echo_proxy.add_rule(None, action="explode")  # type: ignore[arg-type]


def test_drop_and_reset_reach_the_client_as_network_failures(echo_proxy: Proxy) -> None:
    echo_proxy.add_rule("PutObject", action="drop")
    echo_proxy.add_rule("GetObject", action="reset", path="/bytes/")
    conn = _connect(echo_proxy)
    try:
        conn.request("PUT", "/b/k", body=b"payload")
        with pytest.raises(http.client.RemoteDisconnected):
            conn.getresponse()
    finally:
        conn.close()
    conn = _connect(echo_proxy)
    try:
        conn.request("GET", f"/b/bytes/{MIB}")
        response = conn.getresponse()
        assert response.status == 200  # the head came through, then the connection broke
        with pytest.raises((ConnectionResetError, http.client.IncompleteRead)):
            response.read()
    finally:
        conn.close()
    assert [(e.op, e.status) for e in echo_proxy.log] == [("PutObject", None), ("GetObject", None)]
    assert echo_proxy.forwarded_counts() == Counter({"GetObject": 1})


def test_empty_body_relays_the_head_with_no_bytes_and_keeps_the_connection(
    echo_proxy: Proxy,
) -> None:
    echo_proxy.add_rule("GetObject", action="empty-body", path="/bytes/")
    conn = _connect(echo_proxy)
    try:
        conn.request("GET", f"/b/bytes/{MIB}")
        response = conn.getresponse()
        assert (response.status, response.getheader("Content-Length")) == (200, "0")
        assert response.read() == b""
        again = _json(conn, "GET", "/b/after")  # the upstream body was read, not left behind
    finally:
        conn.close()
    assert again["method"] == "GET"
    assert [(e.op, e.status) for e in echo_proxy.log] == [("GetObject", 200)] * 2


def test_delay_holds_the_request_back(echo_proxy: Proxy) -> None:
    echo_proxy.add_rule("GetObject", action="delay", delay=0.4)
    conn = _connect(echo_proxy)
    try:
        began = time.monotonic()
        _json(conn, "GET", "/b/slow")
        slow = time.monotonic() - began
        began = time.monotonic()
        _json(conn, "GET", "/b/fast")
        fast = time.monotonic() - began
    finally:
        conn.close()
    assert slow >= 0.4
    assert fast < 0.3


def test_close_ends_idle_keep_alive_connections() -> None:
    """An idle client connection does not keep close() (and its thread join) waiting."""
    server = QuietHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        proxy = start_proxy(f"http://127.0.0.1:{server.server_address[1]}")
        conn = _connect(proxy)
        _json(conn, "GET", "/b/k")  # leaves the connection open and idle
        began = time.monotonic()
        proxy.close()
        assert time.monotonic() - began < 2.0
        proxy.close()  # idempotent
        conn.close()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


# --- S3 through the real clients, on moto and Ceph RGW ----------------------------------------


def _fs(server: S3Server) -> s3fs.S3FileSystem:
    return s3fs.S3FileSystem(
        skip_instance_cache=True, use_listings_cache=False, **server.storage_options()
    )


def _raw_client(server: S3Server) -> Any:
    """A boto3 client through the proxy with botocore's retries off: every fault shows."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=server.endpoint_url,
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
        region_name="us-east-1",
        config=Config(
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            s3={"addressing_style": "path"},
            retries={"total_max_attempts": 1, "mode": "standard"},
            read_timeout=30,
        ),
    )


def test_s3fs_sequence_is_counted_by_operation(s3_proxy: ProxiedBucket) -> None:
    server, bucket, proxy = s3_proxy.server, s3_proxy.bucket, s3_proxy.proxy
    fs = _fs(server)
    steps: dict[str, Counter[str]] = {}

    def step(name: str) -> None:
        steps[name] = proxy.counts()
        proxy.reset_counts()
        fs.invalidate_cache()

    fs.pipe(f"{bucket}/d/a.txt", b"hello")
    step("put")
    assert fs.ls(f"{bucket}/d", detail=False) == [f"{bucket}/d/a.txt"]
    step("list")
    assert fs.info(f"{bucket}/d/a.txt")["size"] == 5
    step("head")
    assert fs.cat_file(f"{bucket}/d/a.txt") == b"hello"
    step("get")
    fs.rm_file(f"{bucket}/d/a.txt")
    step("delete")

    assert steps == {
        "put": Counter({"PutObject": 1}),
        "list": Counter({"ListObjectsV2": 1}),
        "head": Counter({"HeadObject": 1}),
        "get": Counter({"HeadObject": 1, "GetObject": 1}),  # s3fs learns the size first
        "delete": Counter({"DeleteObject": 1}),
    }
    assert proxy.forwarded_counts() == Counter()  # reset above; nothing since


def test_boto3_operations_are_counted_exactly(s3_proxy: ProxiedBucket) -> None:
    """Every operation the S3 adapter drives, one by one, with forwarded == received."""
    server, bucket, proxy = s3_proxy.server, s3_proxy.bucket, s3_proxy.proxy
    client = _raw_client(server)
    try:
        client.head_bucket(Bucket=bucket)
        client.put_object(Bucket=bucket, Key="a", Body=b"alpha")
        client.copy_object(Bucket=bucket, Key="b", CopySource={"Bucket": bucket, "Key": "a"})
        client.list_objects_v2(Bucket=bucket)
        upload = client.create_multipart_upload(Bucket=bucket, Key="big")["UploadId"]
        parts = []
        for number, body in enumerate([b"1" * (5 * MIB), b"2" * (16 * MIB), b"3"], start=1):
            etag = client.upload_part(
                Bucket=bucket, Key="big", UploadId=upload, PartNumber=number, Body=body
            )["ETag"]
            parts.append({"PartNumber": number, "ETag": etag})
        client.list_multipart_uploads(Bucket=bucket)
        assert len(client.list_parts(Bucket=bucket, Key="big", UploadId=upload)["Parts"]) == 3
        client.complete_multipart_upload(
            Bucket=bucket, Key="big", UploadId=upload, MultipartUpload={"Parts": parts}
        )
        stale = client.create_multipart_upload(Bucket=bucket, Key="stale")["UploadId"]
        client.abort_multipart_upload(Bucket=bucket, Key="stale", UploadId=stale)
        assert client.head_object(Bucket=bucket, Key="big")["ContentLength"] == 21 * MIB + 1
        body = client.get_object(Bucket=bucket, Key="big")["Body"].read()
        assert (
            hashlib.md5(body).digest()
            == hashlib.md5(b"1" * (5 * MIB) + b"2" * (16 * MIB) + b"3").digest()
        )
        client.delete_object(Bucket=bucket, Key="a")
        client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "b"}]})
    finally:
        client.close()
    expected = Counter(
        {
            "HeadBucket": 1,
            "PutObject": 1,
            "CopyObject": 1,
            "ListObjectsV2": 1,
            "CreateMultipartUpload": 2,
            "UploadPart": 3,
            "ListMultipartUploads": 1,
            "ListParts": 1,
            "CompleteMultipartUpload": 1,
            "AbortMultipartUpload": 1,
            "HeadObject": 1,
            "GetObject": 1,
            "DeleteObject": 1,
            "DeleteObjects": 1,
        }
    )
    assert proxy.counts() == expected
    assert proxy.forwarded_counts() == expected
    assert all(entry.status in (200, 204) for entry in proxy.log)


def test_503_slowdown_shows_once_then_passes(s3_proxy: ProxiedBucket) -> None:
    server, bucket, proxy = s3_proxy.server, s3_proxy.bucket, s3_proxy.proxy
    rule = proxy.add_rule("PutObject", action="503")
    client = _raw_client(server)
    try:
        with pytest.raises(ClientError) as caught:
            client.put_object(Bucket=bucket, Key="k", Body=b"v1")
        error = caught.value.response
        assert error["Error"]["Code"] == "SlowDown"
        assert error["ResponseMetadata"]["HTTPStatusCode"] == 503
        client.put_object(Bucket=bucket, Key="k", Body=b"v2")
        assert client.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v2"
    finally:
        client.close()
    assert rule.fired == 1
    assert [(e.op, e.status) for e in proxy.log] == [
        ("PutObject", 503),
        ("PutObject", 200),
        ("GetObject", 200),
    ]
    assert proxy.forwarded_counts()["PutObject"] == 1


def test_s3fs_retries_through_a_slowdown_burst(s3_proxy: ProxiedBucket) -> None:
    server, bucket, proxy = s3_proxy.server, s3_proxy.bucket, s3_proxy.proxy
    proxy.add_rule("PutObject", action="503", times=2)
    fs = _fs(server)
    fs.pipe(f"{bucket}/k", b"payload")
    assert [e.status for e in proxy.log if e.op == "PutObject"] == [503, 503, 200]
    assert _fs(server).cat_file(f"{bucket}/k") == b"payload"


@pytest.mark.parametrize(("action", "code"), [("429", "SlowDown"), ("500", "InternalError")])
def test_429_and_500_carry_s3_error_bodies(s3_proxy: ProxiedBucket, action: str, code: str) -> None:
    server, bucket, proxy = s3_proxy.server, s3_proxy.bucket, s3_proxy.proxy
    proxy.add_rule("ListObjectsV2", action=action, retry_after=2)  # type: ignore[arg-type]
    client = _raw_client(server)
    try:
        with pytest.raises(ClientError) as caught:
            client.list_objects_v2(Bucket=bucket)
        assert client.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    finally:
        client.close()
    error = caught.value.response
    assert error["Error"]["Code"] == code
    assert error["ResponseMetadata"]["HTTPStatusCode"] == int(action)
    assert error["ResponseMetadata"]["HTTPHeaders"]["retry-after"] == "2"


def test_dropped_connection_is_a_connection_error_and_nothing_is_written(
    s3_proxy: ProxiedBucket,
) -> None:
    server, bucket, proxy = s3_proxy.server, s3_proxy.bucket, s3_proxy.proxy
    proxy.add_rule("PutObject", action="drop")
    client = _raw_client(server)
    try:
        with pytest.raises(ConnectionClosedError):
            client.put_object(Bucket=bucket, Key="k", Body=b"x" * (2 * MIB))
        assert client.list_objects_v2(Bucket=bucket)["KeyCount"] == 0  # never forwarded
    finally:
        client.close()
    assert [(e.op, e.status) for e in proxy.log] == [("PutObject", None), ("ListObjectsV2", 200)]
    assert proxy.forwarded_counts()["PutObject"] == 0


def test_s3fs_survives_a_dropped_connection(s3_proxy: ProxiedBucket) -> None:
    server, bucket, proxy = s3_proxy.server, s3_proxy.bucket, s3_proxy.proxy
    proxy.add_rule("PutObject", action="drop")
    _fs(server).pipe(f"{bucket}/k", b"after a drop")
    assert [e.status for e in proxy.log if e.op == "PutObject"] == [None, 200]
    assert _fs(server).cat_file(f"{bucket}/k") == b"after a drop"


def test_reset_mid_download_breaks_the_body(s3_proxy: ProxiedBucket) -> None:
    server, bucket, proxy = s3_proxy.server, s3_proxy.bucket, s3_proxy.proxy
    data = bytes(range(256)) * (4 * 4096)  # 4 MiB
    client = _raw_client(server)
    try:
        client.put_object(Bucket=bucket, Key="k", Body=data)
        proxy.add_rule("GetObject", action="reset")
        with pytest.raises((ResponseStreamingError, ConnectionClosedError)):
            client.get_object(Bucket=bucket, Key="k")["Body"].read()
        assert client.get_object(Bucket=bucket, Key="k")["Body"].read() == data
    finally:
        client.close()
    assert [(e.op, e.status) for e in proxy.log] == [
        ("PutObject", 200),
        ("GetObject", None),
        ("GetObject", 200),
    ]


def test_delay_slows_exactly_the_matching_request(s3_proxy: ProxiedBucket) -> None:
    server, bucket, proxy = s3_proxy.server, s3_proxy.bucket, s3_proxy.proxy
    fs = _fs(server)
    fs.pipe(f"{bucket}/k", b"v")
    proxy.add_rule("HeadObject", action="delay", delay=0.5)
    began = time.monotonic()
    assert fs.info(f"{bucket}/k")["size"] == 1
    slow = time.monotonic() - began
    fs.invalidate_cache()
    began = time.monotonic()
    assert fs.info(f"{bucket}/k")["size"] == 1
    fast = time.monotonic() - began
    assert slow >= 0.5
    assert fast < 0.5
    assert [e.status for e in proxy.log if e.op == "HeadObject"] == [200, 200]


def test_streamed_upload_body_reaches_the_server_intact(s3_proxy: ProxiedBucket) -> None:
    """A file-like body (botocore streams it, with Expect: 100-continue) of 24 MiB."""
    server, bucket, proxy = s3_proxy.server, s3_proxy.bucket, s3_proxy.proxy
    data = hashlib.sha256(b"seed").digest() * (24 * MIB // 32)
    client = _raw_client(server)
    try:
        answer = client.put_object(Bucket=bucket, Key="stream", Body=io.BytesIO(data))
        assert answer["ETag"].strip('"') == hashlib.md5(data).hexdigest()
        assert client.get_object(Bucket=bucket, Key="stream")["Body"].read() == data
    finally:
        client.close()
    assert proxy.counts() == Counter({"PutObject": 1, "GetObject": 1})


def test_403_is_access_denied(s3_proxy: ProxiedBucket) -> None:
    server, bucket, proxy = s3_proxy.server, s3_proxy.bucket, s3_proxy.proxy
    proxy.add_rule("PutObject", action="403", times=None)
    client = _raw_client(server)
    try:
        for _ in range(2):
            with pytest.raises(ClientError) as caught:
                client.put_object(Bucket=bucket, Key="k", Body=b"v")
            assert caught.value.response["Error"]["Code"] == "AccessDenied"
            assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    finally:
        client.close()
    assert proxy.forwarded_counts() == Counter()


def test_ceph_checks_signatures_through_the_proxy(s3_proxy: ProxiedBucket) -> None:
    """The Host header is forwarded unchanged, so Ceph checks the signature the client made
    for the proxy's address: a right key passes (every other test), a wrong one fails."""
    server, bucket = s3_proxy.server, s3_proxy.bucket
    if server.name != "ceph":
        pytest.skip("moto does not check SigV4 signatures")
    forged = dataclasses.replace(server, secret_key="not-the-secret")
    client = _raw_client(forged)
    try:
        with pytest.raises(ClientError) as caught:
            client.list_objects_v2(Bucket=bucket)
    finally:
        client.close()
    assert caught.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
