"""Small test-only servers, each run by a background thread on 127.0.0.1 by the tests that need it.

- ``FakeImds``: the EC2 instance metadata service, IMDSv2 only, serving one role's temporary keys
  (new keys on every fetch, with a lifetime the test chooses)
- ``RecordingProxy``: a reverse proxy that forwards every request to another server and records
  which access key id signed it and which session token it carried (moto checks neither)
- ``FaultProxy``: an HTTP/1.1 proxy, byte for byte, that injects faults switched at run time (down,
  slow, answers or requests cut after N bytes, resets, error statuses), for tests/system/test_faults.py

The first two are stdlib ``ThreadingHTTPServer``s: ``http.server`` parses the requests, httpx forwards
them. ``FaultProxy`` works on sockets, so that it can cut a message anywhere.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import socket
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

import httpx

TOKEN_PATH = "/latest/api/token"
TOKEN_TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
TOKEN_HEADER = "X-aws-ec2-metadata-token"
CREDENTIALS_PATH = "/latest/meta-data/iam/security-credentials/"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the clients under test expect

    server: _Server

    @property
    def owner(self) -> Any:
        return self.server.owner

    def reply(self, status: int, body: bytes = b"", content_type: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the tests assert on what the servers record


class _Server(ThreadingHTTPServer):
    """One thread per connection; ``close`` ends open keep-alive connections too and waits for their threads."""

    daemon_threads = False
    block_on_close = True

    def __init__(self, owner: Any, handler: type[_Handler]) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.owner = owner
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close(self) -> None:
        self.shutdown()  # stop accepting
        with self._open_lock:
            still_open = list(self._open)
        for sock in still_open:  # a client's idle keep-alive connection: its handler sees EOF and ends
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self.server_close()  # joins the handler threads


class _Background:
    """A server on a free 127.0.0.1 port, run by a thread of its own; a context manager."""

    def __init__(self, handler: type[_Handler]) -> None:
        self._handler = handler
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> Self:
        self._server = _Server(self, self._handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=type(self).__name__, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        if self._thread is not None:
            self._thread.join(5)
        self._server = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


# ---------------------------------------------------------------------------------------------- IMDS


@dataclass(frozen=True)
class IssuedKeys:
    access_key_id: str
    secret_access_key: str
    token: str
    expiration: datetime
    """As served: whole seconds, like the real service."""


class FakeImds(_Background):
    """IMDSv2 for one IAM role. Every credentials fetch hands out new keys valid for ``lifetime``."""

    def __init__(self, role: str, lifetime: timedelta = timedelta(hours=6)) -> None:
        super().__init__(_ImdsHandler)
        self.role = role
        self.lifetime = lifetime
        self.session_tokens: set[str] = set()
        self.token_requests = 0
        self.role_listings = 0
        self.issued: list[IssuedKeys] = []
        self.refused: list[tuple[str, str, int]] = []
        """(method, path, status) of every request turned away."""

    def issue(self) -> IssuedKeys:
        with self.lock:
            number = len(self.issued) + 1
            expiration = (datetime.now(UTC) + self.lifetime).replace(microsecond=0)
            keys = IssuedKeys(f"ASIATEST{number:04d}", secrets.token_urlsafe(30),
                              f"session-token-{number:04d}-{secrets.token_urlsafe(24)}", expiration)
            self.issued.append(keys)
            return keys


class _ImdsHandler(_Handler):
    def refuse(self, status: HTTPStatus) -> None:
        imds: FakeImds = self.owner
        with imds.lock:
            imds.refused.append((self.command, self.path, int(status)))
        self.reply(status, status.phrase.encode())

    def do_PUT(self) -> None:
        imds: FakeImds = self.owner
        self.body()
        if self.path != TOKEN_PATH:
            return self.refuse(HTTPStatus.NOT_FOUND)
        ttl = self.headers.get(TOKEN_TTL_HEADER, "")
        if not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
            return self.refuse(HTTPStatus.BAD_REQUEST)
        token = secrets.token_urlsafe(32)
        with imds.lock:
            imds.session_tokens.add(token)
            imds.token_requests += 1
        self.reply(HTTPStatus.OK, token.encode())

    def do_GET(self) -> None:
        imds: FakeImds = self.owner
        with imds.lock:
            known = self.headers.get(TOKEN_HEADER) in imds.session_tokens
        if not known:  # IMDSv2 only: no session token, no answer
            return self.refuse(HTTPStatus.UNAUTHORIZED)
        if self.path == CREDENTIALS_PATH:
            with imds.lock:
                imds.role_listings += 1
            return self.reply(HTTPStatus.OK, imds.role.encode())
        if self.path != CREDENTIALS_PATH + imds.role:
            return self.refuse(HTTPStatus.NOT_FOUND)
        keys = imds.issue()
        body = {
            "Code": "Success",
            "LastUpdated": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "Type": "AWS-HMAC",
            "AccessKeyId": keys.access_key_id,
            "SecretAccessKey": keys.secret_access_key,
            "Token": keys.token,
            "Expiration": keys.expiration.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        self.reply(HTTPStatus.OK, json.dumps(body).encode(), "application/json")


# --------------------------------------------------------------------------------------------- proxy

_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")
# A proxy does not forward these (RFC 9110 §7.6.1); Host and Content-Length are set anew for the next hop.
_NOT_FORWARDED = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
                            "transfer-encoding", "upgrade", "host", "content-length"})


@dataclass(frozen=True)
class Seen:
    """One request that passed through the proxy."""

    method: str
    path: str
    access_key_id: str | None
    """From ``Authorization: AWS4-HMAC-SHA256 Credential=<this>/<date>/<region>/s3/aws4_request, ...``."""
    session_token: str | None
    """The ``x-amz-security-token`` header."""
    status: int


class RecordingProxy(_Background):
    """Forwards method, path, query, headers and body to ``upstream``; records who signed each request."""

    def __init__(self, upstream: str) -> None:
        super().__init__(_ProxyHandler)
        self.client = httpx.Client(base_url=upstream.rstrip("/"), timeout=30)
        self._seen: list[Seen] = []

    @property
    def requests(self) -> list[Seen]:
        with self.lock:
            return list(self._seen)

    def record(self, seen: Seen) -> None:
        with self.lock:
            self._seen.append(seen)

    def stop(self) -> None:
        super().stop()
        self.client.close()


class _ProxyHandler(_Handler):
    def forward(self) -> None:
        proxy: RecordingProxy = self.owner
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self.reply(HTTPStatus.NOT_IMPLEMENTED, b"the recording proxy takes no chunked bodies")
        headers = [(k, v) for k, v in self.headers.items() if k.lower() not in _NOT_FORWARDED]
        request = proxy.client.build_request(self.command, self.path, headers=headers, content=self.body())
        try:
            response = proxy.client.send(request, stream=True)
            try:
                raw = b"".join(response.iter_raw())  # as sent: not decoded, so Content-Encoding stays true
            finally:
                response.close()
        except httpx.HTTPError as exc:
            return self.reply(HTTPStatus.BAD_GATEWAY, str(exc).encode())
        match = _CREDENTIAL.search(self.headers.get("Authorization", ""))
        proxy.record(Seen(self.command, self.path, match.group(1) if match else None,
                          self.headers.get("x-amz-security-token"), response.status_code))
        self.send_response_only(response.status_code)  # upstream's Date and Server go along below
        for key, value in response.headers.multi_items():
            if key.lower() not in _NOT_FORWARDED:
                self.send_header(key, value)
        # A HEAD answer tells the object's length and carries no body.
        length = response.headers.get("Content-Length", "0") if self.command == "HEAD" else str(len(raw))
        self.send_header("Content-Length", length)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(raw)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = forward


# ----------------------------------------------------------------------------------------- faults


@dataclass(frozen=True)
class Fault:
    """What the ``FaultProxy`` does to a request. Make one with the class methods."""

    kind: str  # "pass" | "delay" | "cut" | "cut_request" | "reset" | "status"
    seconds: float = 0.0
    after: int = 0
    status: int = 503

    @classmethod
    def passing(cls) -> Fault:
        return cls("pass")

    @classmethod
    def delay(cls, seconds: float) -> Fault:
        """Forward the request, then hold the answer back ``seconds`` (a slow server)."""
        return cls("delay", seconds=seconds)

    @classmethod
    def cut(cls, after: int = 0) -> Fault:
        """Forward the answer's head and ``after`` bytes of its body, then reset the connection."""
        return cls("cut", after=after)

    @classmethod
    def cut_request(cls, after: int = 0) -> Fault:
        """Forward the request's head and ``after`` bytes of its body upstream, then reset both connections."""
        return cls("cut_request", after=after)

    @classmethod
    def reset(cls) -> Fault:
        """Read the request's head and reset the connection: no answer at all."""
        return cls("reset")

    @classmethod
    def answer(cls, status: int = 503) -> Fault:
        """Answer ``status`` with an S3-style XML error body; the request never reaches upstream."""
        return cls("status", status=status)


@dataclass
class _Rule:
    fault: Fault
    method: str | None
    path: str | None
    skip: int
    times: int | None
    matched: int = 0
    applied: int = 0

    def take(self, method: str, target: str) -> bool:
        if self.method is not None and method != self.method:
            return False
        if self.path is not None and not re.search(self.path, target):
            return False
        self.matched += 1
        if self.matched <= self.skip or (self.times is not None and self.applied >= self.times):
            return False
        self.applied += 1
        return True


@dataclass(frozen=True)
class Passed:
    """One request through the ``FaultProxy``: what it was and what was done to it."""

    method: str
    target: str
    fault: str
    status: int | None
    """The status sent back, None when the connection was cut before a status line."""


_STATUS_CODES = {500: "InternalError", 502: "BadGateway", 503: "SlowDown", 504: "GatewayTimeout"}


class _Cut(Exception):
    """The fault ended the connection."""


class FaultProxy:
    """An HTTP/1.1 proxy, byte for byte, between a client under test and a real server (moto, Azurite,
    fake-gcs-server), that injects faults switched at run time: a slow answer, an answer or a request
    cut after some bytes, a reset, an error status; ``down()`` stops listening (connection refused)
    and ``up()`` listens again on the same port.

    Rules (``fail``) pick requests by method and a regular expression on the request target; ``skip``
    lets that many matching requests through first, ``times`` stops the rule after that many faults.
    A request matching no rule passes. Each connection to the proxy gets its own upstream connection,
    kept alive as long as the client keeps its own.
    """

    def __init__(self, upstream: str) -> None:
        parts = upstream.removeprefix("http://").rstrip("/").split(":")
        self.upstream = (parts[0], int(parts[1]))
        self.lock = threading.Lock()
        self._rules: list[_Rule] = []
        self._log: list[Passed] = []
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self._open: set[socket.socket] = set()
        self._workers: list[threading.Thread] = []
        self._healed = threading.Event()  # ends held-back answers at once when the proxy heals or stops
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- switching ----------------------------------------------------------------------------------

    def fail(self, fault: Fault, *, method: str | None = None, path: str | None = None, skip: int = 0,
             times: int | None = None) -> None:
        with self.lock:
            self._healed.clear()
            self._rules.append(_Rule(fault, method, path, skip, times))

    def heal(self) -> None:
        """Every request passes again (and ``up()`` if it was down)."""
        with self.lock:
            self._rules.clear()
            self._healed.set()
        if self._listener is None:
            self.up()

    @property
    def requests(self) -> list[Passed]:
        with self.lock:
            return list(self._log)

    def forget(self) -> None:
        """Empties the record of requests (``requests``, ``faults``)."""
        with self.lock:
            self._log.clear()

    def faults(self, kind: str | None = None) -> int:
        """How many requests a fault (of ``kind``) was applied to."""
        return sum(1 for p in self.requests if p.fault != "pass" and (kind is None or p.fault == kind))

    def _pick(self, method: str, target: str) -> Fault:
        with self.lock:
            for rule in self._rules:
                if rule.take(method, target):
                    return rule.fault
        return Fault.passing()

    def _record(self, passed: Passed) -> None:
        with self.lock:
            self._log.append(passed)

    # -- life cycle ---------------------------------------------------------------------------------

    def start(self) -> Self:
        self.up()
        return self

    def up(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._acceptor = threading.Thread(target=self._accept, args=(listener,), name="FaultProxy", daemon=True)
        self._acceptor.start()

    def down(self) -> None:
        """The server goes away: new connections are refused, open ones are reset."""
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        if self._acceptor is not None:
            self._acceptor.join(5)
            self._acceptor = None
        with self.lock:
            still_open = list(self._open)
        for sock in still_open:
            _reset(sock)
        self._healed.set()
        for worker in self._workers:
            worker.join(5)
        self._workers = [w for w in self._workers if w.is_alive()]
        self._healed.clear()

    def stop(self) -> None:
        self.down()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            worker = threading.Thread(target=self._serve, args=(client,), name="FaultProxy-conn", daemon=True)
            self._workers = [w for w in self._workers if w.is_alive()] + [worker]
            worker.start()

    def _track(self, sock: socket.socket) -> None:
        with self.lock:
            self._open.add(sock)

    # -- one connection -----------------------------------------------------------------------------

    def _serve(self, client: socket.socket) -> None:
        self._track(client)
        upstream: socket.socket | None = None
        upstream_reader: Any = None
        reader = client.makefile("rb")
        cut = False
        try:
            while True:
                head = _read_head(reader)
                if head is None:
                    return
                method, target, headers = _parse_head(head)
                fault = self._pick(method, target)
                if fault.kind == "reset":
                    self._record(Passed(method, target, fault.kind, None))
                    return
                if fault.kind == "status":
                    _drain_body(reader, headers)
                    self._answer_error(client, method, fault.status)
                    self._record(Passed(method, target, fault.kind, fault.status))
                    continue
                if upstream is None:
                    upstream = socket.create_connection(self.upstream, timeout=60)
                    self._track(upstream)
                    upstream_reader = upstream.makefile("rb")
                if headers.get("expect", "").lower() == "100-continue":
                    head = re.sub(rb"(?im)^expect:[^\r\n]*\r\n", b"", head)
                    client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                upstream.sendall(head)
                if fault.kind == "cut_request":
                    self._record(Passed(method, target, fault.kind, None))
                    _copy_body(reader, upstream, headers, fault.after)  # raises _Cut
                _copy_body(reader, upstream, headers, None)
                if fault.kind == "delay":
                    self._healed.wait(fault.seconds)  # cut short when the proxy heals or stops
                reply = _read_head(upstream_reader)
                if reply is None:
                    self._record(Passed(method, target, "upstream closed", None))
                    return
                status, reply_headers = _parse_status(reply)
                self._record(Passed(method, target, fault.kind, status))
                client.sendall(reply)
                body_headers = {} if method == "HEAD" or status in (204, 304) else reply_headers
                _copy_body(upstream_reader, client, body_headers, fault.after if fault.kind == "cut" else None,
                           until_close="content-length" not in body_headers and body_headers is reply_headers)
                if reply_headers.get("connection", "").lower() == "close":
                    return
        except (_Cut, OSError, ValueError):
            cut = True
        finally:
            for sock in (client, upstream):
                if sock is not None:
                    if cut:
                        _reset(sock)
                    else:  # what was sent still arrives: a reset would throw away the unsent end of an answer
                        with contextlib.suppress(OSError):
                            sock.shutdown(socket.SHUT_WR)
                        sock.close()
                    with self.lock:
                        self._open.discard(sock)

    def _answer_error(self, client: socket.socket, method: str, status: int) -> None:
        code = _STATUS_CODES.get(status, "ServiceUnavailable")
        body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
                f"<Message>injected by the tests' FaultProxy</Message></Error>").encode()
        head = (f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nContent-Type: application/xml\r\n"
                f"Content-Length: {len(body)}\r\nRetry-After: 0\r\n\r\n").encode()
        client.sendall(head if method == "HEAD" else head + body)


def _reset(sock: socket.socket) -> None:
    """Close with a TCP reset, as a crashed server or a cut cable looks to the other side."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


def _read_head(reader: Any) -> bytes | None:
    lines: list[bytes] = []
    while True:
        line = reader.readline(65536)
        if not line:
            return None if not lines else b"".join(lines)
        if not lines and line in (b"\r\n", b"\n"):
            continue  # a stray line ending between requests
        lines.append(line)
        if line in (b"\r\n", b"\n"):
            return b"".join(lines)


def _parse_head(head: bytes) -> tuple[str, str, dict[str, str]]:
    first, *rest = head.decode("latin-1").split("\r\n")
    method, target, _ = first.split(" ", 2)
    return method, target, _headers_of(rest)


def _parse_status(head: bytes) -> tuple[int, dict[str, str]]:
    first, *rest = head.decode("latin-1").split("\r\n")
    return int(first.split(" ", 2)[1]), _headers_of(rest)


def _headers_of(lines: list[str]) -> dict[str, str]:
    out = {}
    for line in lines:
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip().lower()] = value.strip()
    return out


def _copy_body(reader: Any, out: socket.socket, headers: dict[str, str], limit: int | None,
               until_close: bool = False) -> None:
    """Copies a message body (by Content-Length, chunked, or to the end of the connection); with
    ``limit``, copies that many bytes and raises ``_Cut``."""
    sent = 0

    def copy(data: bytes) -> None:
        nonlocal sent
        if limit is not None and sent + len(data) >= limit:
            out.sendall(data[: limit - sent])
            raise _Cut
        out.sendall(data)
        sent += len(data)

    if "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            size_line = reader.readline(65536)
            copy(size_line)
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while True:  # trailers, up to the empty line
                    line = reader.readline(65536)
                    copy(line)
                    if line in (b"\r\n", b"\n", b""):
                        break
                break
            copy(reader.read(size + 2))
    elif "content-length" in headers:
        left = int(headers["content-length"])
        while left > 0:
            data = reader.read1(min(left, 65536))
            if not data:
                raise _Cut
            left -= len(data)
            copy(data)
    elif until_close:
        while data := reader.read1(65536):
            copy(data)
    if limit is not None:
        raise _Cut


def _drain_body(reader: Any, headers: dict[str, str]) -> None:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            size = int(reader.readline(65536).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while reader.readline(65536) not in (b"\r\n", b"\n", b""):
                    pass
                return
            reader.read(size + 2)
    left = int(headers.get("content-length") or 0)
    while left > 0:
        data = reader.read1(min(left, 65536))
        if not data:
            return
        left -= len(data)
