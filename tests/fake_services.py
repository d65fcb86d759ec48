"""Small test-only servers, each run by a background thread on 127.0.0.1 by the tests that need it.

- ``FakeImds``: the EC2 instance metadata service, IMDSv2 only, serving one role's temporary keys
  (new keys on every fetch, with a lifetime the test chooses)
- ``RecordingProxy``: a reverse proxy that forwards every request to another server and records
  which access key id signed it and which session token it carried (moto checks neither)

Both are stdlib ``ThreadingHTTPServer``s: ``http.server`` parses the requests, httpx forwards them.
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
