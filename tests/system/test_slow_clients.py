"""Issue 18, finding 6: slow clients against a real server, over raw sockets. Headers must arrive within
SERVER_HEADER_TIMEOUT, each piece of a body within SERVER_BODY_TIMEOUT of the one before (both 1 s here);
an upload that keeps sending, however slowly, is never cut (src/cargohold/http/timeouts.py)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import selectors
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ..support.api import cli, create_dataset, unfinished_uploads
from ..support.api_server import RunningServer

TIMEOUT = 1.0
"""SERVER_HEADER_TIMEOUT and SERVER_BODY_TIMEOUT of the server here, in seconds."""
SLACK = 1.5
"""How much later than its timeout a connection may be closed: the two cores here are shared."""
EARLY = 0.25
"""How much sooner than its timeout a connection may seem closed: the server's clock starts when it accepts the
connection, a little before the test notes the time."""
SLOW_CONNECTIONS = 200
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    env = {"SERVER_HEADER_TIMEOUT": str(int(TIMEOUT)), "SERVER_BODY_TIMEOUT": str(int(TIMEOUT))}
    running = RunningServer(tmp_path_factory.mktemp("slow") / "home", env).start()
    try:
        yield running
    finally:
        running.stop()


# -- raw HTTP over sockets ---------------------------------------------------------------------------------


def connect(server: RunningServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def head(method: str, path: str, headers: dict[str, str] | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in (headers or {}).items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One answer with a Content-Length, the connection left open."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before an answer: {data!r}"
        data += chunk
    top, body = data.split(b"\r\n\r\n", 1)
    status, headers = parse_head(top)
    while len(body) < int(headers["content-length"]):
        chunk = sock.recv(65536)
        assert chunk, "closed in the middle of an answer"
        body += chunk
    return status, headers, body


def parse_head(top: bytes) -> tuple[int, dict[str, str]]:
    status_line, *lines = top.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, value in (line.split(":", 1) for line in lines)}
    return int(status_line.split()[1]), headers


def until_closed(socks: list[socket.socket], since: list[float], limit: float) -> list[tuple[float | None, bytes]]:
    """For each socket: seconds from its ``since`` until the server closed it (None: still open after
    ``limit``), and every byte it sent before."""
    selector = selectors.DefaultSelector()
    received = {sock: bytearray() for sock in socks}
    closed: dict[socket.socket, float] = {}
    for sock in socks:
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
    deadline = time.monotonic() + limit
    while len(closed) < len(socks) and (left := deadline - time.monotonic()) > 0:
        for key, _ in selector.select(left):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                data = b""
            if data:
                received[sock] += data
            else:
                closed[sock] = time.monotonic()
                selector.unregister(sock)
    selector.close()
    return [(closed[s] - t if s in closed else None, bytes(received[s])) for s, t in zip(socks, since, strict=True)]


def timed_out(answer: bytes, setting: str) -> dict[str, str]:
    """The 408 in the error envelope, naming ``setting``, with ``Connection: close``."""
    top, body = answer.split(b"\r\n\r\n", 1)
    status, headers = parse_head(top)
    assert status == 408, answer[:300]
    assert headers.get("connection") == "close", headers
    error: dict[str, str] = json.loads(body)["error"]
    assert error["code"] == "request_timeout" and setting in error["message"], error
    return error


class Health:
    """/healthz asked every 0.1 s while something runs: every answer a 200, the slowest kept."""

    def __init__(self, server: RunningServer) -> None:
        self.url = server.url + "/healthz"
        self.times: list[float] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._probe)

    def __enter__(self) -> Health:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join()

    def _probe(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self.stop.wait(0.1):
                started = time.monotonic()
                assert client.get(self.url).status_code == 200
                self.times.append(time.monotonic() - started)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


# -- headers ---------------------------------------------------------------------------------------------------


@pytest.mark.reliability(kind="attack", what="slow request headers (slowloris): the issue's 200 connections that "
                         "send half a header line and stall, held for 60 s before", cases=SLOW_CONNECTIONS)
def test_200_connections_stalling_mid_header_are_closed_after_the_header_timeout(
        server: RunningServer, request: pytest.FixtureRequest) -> None:
    with Health(server) as health:
        socks, since = [], []
        for n in range(SLOW_CONNECTIONS):
            sock = connect(server)
            sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow-{n}: aaa".encode())
            socks.append(sock)
            since.append(time.monotonic())
        results = until_closed(socks, since, TIMEOUT + SLACK + 2)
    for sock in socks:
        sock.close()
    held = [n for n, (after, _) in enumerate(results) if after is None]
    assert not held, f"{len(held)} of {SLOW_CONNECTIONS} connections still open after {TIMEOUT + SLACK + 2:g} s"
    times = [after for after, _ in results if after is not None]
    assert min(times) >= TIMEOUT - EARLY, "closed before SERVER_HEADER_TIMEOUT"
    assert max(times) <= TIMEOUT + SLACK, max(times)
    for _, answer in results:
        timed_out(answer, "SERVER_HEADER_TIMEOUT")
    assert health.times and max(health.times) < 1.0, sorted(health.times)[-5:]
    request.node.user_properties.append(("reliability_result", (
        f"all {SLOW_CONNECTIONS} closed {min(times):.2f}-{max(times):.2f} s after their first bytes "
        f"(SERVER_HEADER_TIMEOUT=1s), each after a 408 in the error envelope; /healthz answered all "
        f"{len(health.times)} probes meanwhile, the slowest in {ms(max(health.times))}")))


@pytest.mark.reliability(kind="attack", what="slow request headers on a kept-alive connection (the second request "
                         "stalls mid-header), a connection that sends nothing, blank lines and then nothing", cases=3)
def test_a_kept_alive_request_stalling_mid_header_and_silent_connections_are_closed(
        server: RunningServer, request: pytest.FixtureRequest) -> None:
    kept = connect(server)
    kept.sendall(head("GET", "/healthz"))
    status, headers, _ = read_answer(kept)
    assert status == 200 and headers.get("connection") != "close"
    time.sleep(0.5 * TIMEOUT)  # quiet between two requests is uvicorn's keep-alive time (5 s), not the header clock
    kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Second: req")
    second = time.monotonic()
    silent = connect(server)
    silent_since = time.monotonic()
    blank = connect(server)
    blank.sendall(b"\r\n\r\n")
    blank_since = time.monotonic()
    results = until_closed([kept, silent, blank], [second, silent_since, blank_since], TIMEOUT + SLACK + 2)
    for sock in (kept, silent, blank):
        sock.close()
    (kept_after, kept_answer), (silent_after, silent_answer), (blank_after, blank_answer) = results
    for what, after in (("kept-alive", kept_after), ("silent", silent_after), ("blank lines", blank_after)):
        assert after is not None, f"the {what} connection is still open"
        assert TIMEOUT - EARLY <= after <= TIMEOUT + SLACK, (what, after)
    timed_out(kept_answer, "SERVER_HEADER_TIMEOUT")
    assert silent_answer == b"", "a connection that asked nothing is closed without an answer"
    assert blank_answer == b"", blank_answer[:200]
    assert kept_after is not None and silent_after is not None and blank_after is not None
    request.node.user_properties.append(("reliability_result", (
        f"kept-alive: the second request closed {kept_after:.2f} s after its first bytes, after a 408; silent: "
        f"closed after {silent_after:.2f} s; blank lines: after {blank_after:.2f} s, both without an answer")))


# -- bodies ----------------------------------------------------------------------------------------------------


def pending_writes(server: RunningServer) -> int:
    path = server.home / "data" / "catalog.sqlite3"
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        return int(db.execute("SELECT count(*) FROM team_file_writes").fetchone()[0])


def staged(server: RunningServer) -> list[str]:
    root = server.home / "data" / "storage"
    return sorted(p.relative_to(root).as_posix() for p in root.glob("*/.staging/*"))


def multipart(name: str, data: bytes, boundary: str = "slow-boundary") -> tuple[bytes, str]:
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def stall(server: RunningServer, method: str, path: str, headers: dict[str, str], first: bytes) -> tuple[float, bytes]:
    """Send the head and the first bytes of a body, then nothing: seconds until the server closed, and its answer."""
    sock = connect(server)
    sock.sendall(head(method, path, headers) + first)
    since = time.monotonic()
    [(after, answer)] = until_closed([sock], [since], TIMEOUT + SLACK + 5)
    sock.close()
    assert after is not None, f"{method} {path}: still open"
    return after, answer


@pytest.mark.reliability(kind="attack", what="a request body that stops: a team-file PUT, a multipart upload and a "
                         "JSON body stalled midway, and a body still coming after its 401", cases=4)
def test_a_stalled_body_is_a_408_and_leaves_nothing(server: RunningServer, request: pytest.FixtureRequest) -> None:
    token = {"Authorization": f"Bearer {server.token}"}
    with server.client() as client:
        dataset = create_dataset(client, "slow")["id"]
    found = []

    # A team file: 100 KiB of a declared 1 MiB, then nothing.
    after, answer = stall(server, "PUT", "/api/v1/files/slow/stalled.bin",
                          {**token, "Content-Length": str(MIB)}, b"t" * 100 * 1024)
    timed_out(answer, "SERVER_BODY_TIMEOUT")
    found.append(f"team-file PUT 408 after {after:.2f} s")

    # A multipart upload: the head of the part and 300 KiB of its 1 MiB file.
    body, kind = multipart("stalled.bin", b"m" * MIB)
    after, answer = stall(server, "POST", f"/api/v1/datasets/{dataset}/items",
                          {**token, "Content-Type": kind, "Content-Length": str(len(body))}, body[:300 * 1024])
    timed_out(answer, "SERVER_BODY_TIMEOUT")
    found.append(f"multipart upload 408 after {after:.2f} s")

    # A JSON body (read whole by http/bodies.py before the route).
    after, answer = stall(server, "POST", "/api/v1/datasets",
                          {**token, "Content-Type": "application/json", "Content-Length": "60"}, b'{"name": "sl')
    timed_out(answer, "SERVER_BODY_TIMEOUT")
    found.append(f"JSON body 408 after {after:.2f} s")

    # Answered before its body was read (no token: 401); the rest of the body must still keep coming.
    sock = connect(server)
    sock.sendall(head("PUT", "/api/v1/files/slow/no-token.bin", {"Content-Length": str(MIB)}) + b"n" * 64 * 1024)
    status, headers, _ = read_answer(sock)
    assert status == 401, (status, headers)
    sock.sendall(b"n" * 1024)
    since = time.monotonic()
    [(dropped_after, rest)] = until_closed([sock], [since], TIMEOUT + SLACK + 5)
    sock.close()
    assert dropped_after is not None, "a body nobody reads holds the connection"
    assert TIMEOUT - EARLY <= dropped_after <= TIMEOUT + SLACK and rest == b"", (dropped_after, rest[:200])
    found.append(f"after the 401, closed {dropped_after:.2f} s after the last piece")

    with server.client() as client:
        assert client.get("/files/slow/stalled.bin").status_code == 404
        assert client.get(f"/datasets/{dataset}/items").json()["items"] == []
        assert [d["name"] for d in client.get("/datasets").json()["datasets"]] == ["slow"]
    assert pending_writes(server) == 0, "no team-file write announced"
    assert staged(server) == [] and unfinished_uploads(server) == [], "nothing staged or half-written"
    gc = cli(server, "gc", "--older-than", "0").stdout.splitlines()
    assert gc == ["found 0 unreferenced objects, 0 bytes"], gc
    request.node.user_properties.append(("reliability_result", (
        "; ".join(found) + " (SERVER_BODY_TIMEOUT=1s), each in the error envelope with `Connection: close`; "
        "no item, no team file, no write record, nothing staged, `cargohold gc` finds nothing")))


def send_slowly(server: RunningServer, method: str, path: str, headers: dict[str, str], body: bytes,
                pieces: int, pause: float) -> tuple[float, int, dict[str, Any]]:
    """``body`` in ``pieces`` pieces, ``pause`` seconds apart: seconds taken, the answer's status and JSON."""
    sock = connect(server)
    started = time.monotonic()
    sock.sendall(head(method, path, {**headers, "Content-Length": str(len(body))}))
    step = -(-len(body) // pieces)
    for at in range(0, len(body), step):
        time.sleep(pause)
        sock.sendall(body[at:at + step])
    sock.settimeout(30)
    status, _, answer = read_answer(sock)
    sock.close()
    return time.monotonic() - started, status, json.loads(answer)


@pytest.mark.reliability(kind="attack", what="a slow but progressing upload (2 MiB in 8 pieces 0.5 s apart, over 3 "
                         "times SERVER_BODY_TIMEOUT in all) is not cut: a team file and a multipart upload", cases=2)
def test_a_slow_upload_that_keeps_sending_is_never_cut(server: RunningServer, request: pytest.FixtureRequest) -> None:
    token = {"Authorization": f"Bearer {server.token}"}
    with server.client() as client:
        dataset = create_dataset(client, "progressing")["id"]
    team_file = hashlib.sha256(b"progress").digest() * (2 * MIB // 32)
    item = team_file[::-1]
    body, kind = multipart("slow.bin", item)
    results: dict[str, tuple[float, int, dict[str, Any]]] = {}

    def run(name: str, *args: Any) -> None:
        results[name] = send_slowly(server, *args, pieces=8, pause=0.5)

    threads = [
        threading.Thread(target=run, args=("file", "PUT", "/api/v1/files/slow/progressing.bin", token, team_file)),
        threading.Thread(target=run, args=("item", "POST", f"/api/v1/datasets/{dataset}/items",
                                           {**token, "Content-Type": kind}, body)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    took, status, answer = results["file"]
    assert status == 201, answer
    assert answer["sha256"] == hashlib.sha256(team_file).hexdigest() and took > 3 * TIMEOUT
    item_took, status, answer = results["item"]
    assert status == 201, answer
    assert answer["results"][0]["item"]["sha256"] == hashlib.sha256(item).hexdigest() and item_took > 3 * TIMEOUT
    with server.client() as client:
        assert hashlib.sha256(client.get("/files/slow/progressing.bin").content).digest() == \
            hashlib.sha256(team_file).digest()
    request.node.user_properties.append(("reliability_result", (
        f"team file 201 after {took:.1f} s, multipart upload 201 after {item_took:.1f} s, both bytes verified by "
        "SHA-256 (SERVER_BODY_TIMEOUT=1s)")))

