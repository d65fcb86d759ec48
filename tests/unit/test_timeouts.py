"""http/timeouts.py's ``BodyTimeout`` without a server, with http/bodies.py inside it as in the app. The
protocol's header deadline runs against a real server: tests/system/test_slow_clients.py."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable

import pytest
from starlette.types import Message, Receive, Scope, Send

from cargohold.errors import ClientTimeout
from cargohold.http.bodies import BodyLimits
from cargohold.http.timeouts import BodyTimeout

TIMEOUT = 0.2


def scope(path: str, headers: dict[str, str]) -> Scope:
    return {"type": "http", "method": "POST", "path": path,
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}


def client(pieces: Iterable[tuple[float, bytes, bool]]) -> Receive:
    """A client sending each ``(pause, bytes, more)`` piece after its pause, then nothing, ever."""
    queue = list(pieces)

    async def receive() -> Message:
        if not queue:
            await asyncio.Event().wait()
        pause, body, more = queue.pop(0)
        await asyncio.sleep(pause)
        return {"type": "http.request", "body": body, "more_body": more}

    return receive


class Answer:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def __call__(self, message: Message) -> None:
        self.messages.append(message)

    @property
    def status(self) -> int:
        return int(self.messages[0]["status"])

    @property
    def headers(self) -> dict[str, str]:
        return {k.decode(): v.decode() for k, v in self.messages[0]["headers"]}

    @property
    def error(self) -> dict[str, str]:
        return dict(json.loads(b"".join(m.get("body", b"") for m in self.messages[1:]))["error"])


async def reader(scope: Scope, receive: Receive, send: Send) -> None:
    """An app that reads the whole body, then waits for the client to go, as a streaming answer does."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    scope["body"] = body
    assert (await receive())["type"] == "http.disconnect"


async def test_a_body_that_keeps_coming_is_read_whole_however_long_it_takes() -> None:
    pieces = [(TIMEOUT * 0.6, b"x" * 10, True)] * 5 + [(TIMEOUT * 0.6, b"end", False)]
    received: Scope = scope("/upload", {})
    receive = client(pieces)

    async def then_gone() -> Message:
        if received.get("body") is None:
            return await receive()
        await asyncio.sleep(TIMEOUT * 3)  # longer than the timeout: the body is whole, no clock runs
        return {"type": "http.disconnect"}

    await BodyTimeout(reader, TIMEOUT)(received, then_gone, Answer())
    assert received["body"] == b"x" * 50 + b"end"


async def test_a_body_that_stops_is_a_client_timeout_and_then_a_disconnect() -> None:
    seen: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(await receive())
        with pytest.raises(ClientTimeout) as caught:
            await receive()
        assert caught.value.http_status == 408 and caught.value.headers == {"Connection": "close"}
        assert "SERVER_BODY_TIMEOUT" in caught.value.message
        seen.append(await receive())  # at once: the client is taken for gone

    await asyncio.wait_for(BodyTimeout(app, TIMEOUT)(scope("/upload", {}), client([(0, b"a", True)]), Answer()), 2)
    assert [m["type"] for m in seen] == ["http.request", "http.disconnect"]


async def test_a_json_body_that_stops_is_a_408_in_the_envelope() -> None:
    answer = Answer()
    app = BodyTimeout(BodyLimits(reader), TIMEOUT)
    await asyncio.wait_for(app(scope("/api/v1/datasets", {"content-type": "application/json"}),
                               client([(0, b'{"na', True)]), answer), 2)
    assert answer.status == 408 and answer.headers["connection"] == "close"
    assert answer.error["code"] == "request_timeout"


async def test_a_body_too_large_that_stops_while_dropped_still_gets_its_413() -> None:
    answer = Answer()
    app = BodyTimeout(BodyLimits(reader), TIMEOUT)
    headers = {"content-type": "application/json", "content-length": str(10 * 2**20)}
    await asyncio.wait_for(app(scope("/api/v1/datasets", headers), client([(0, b"[" * 1000, True)]), answer), 2)
    assert answer.status == 413 and answer.error["code"] == "too_large"
