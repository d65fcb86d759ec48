"""Slow clients: a request's header block bounded by SERVER_HEADER_TIMEOUT, each wait for the next piece of
its body by SERVER_BODY_TIMEOUT (docs/SECURITY.md, "Bounded work: slow clients").

uvicorn bounds only the quiet time between two requests (``timeout_keep_alive``, 5 s): a connection that
sends half a header line, or stops in the middle of a body, is held until the client goes. Two parts close
that, one on each side of the ASGI line:

- ``TimedHttpTools`` is uvicorn's httptools protocol with a deadline on the header block. It is armed when
  the connection is made and when the first byte of the next request arrives, and disarmed when httptools
  has parsed the headers; on expiry the connection is closed, after a 408 when the client had begun a
  request and no answer is on its way. It also bounds a body no one reads any more: once the answer is
  sent, uvicorn drops the rest of the body as it comes, with no timer of its own, so from then on the rest
  must keep coming, a piece at least every SERVER_BODY_TIMEOUT.
- ``BodyTimeout`` is an ASGI middleware: while a request's body is being read, each ``receive`` waits at
  most SERVER_BODY_TIMEOUT, and the wait starts again with every piece, so a slow upload that keeps sending
  is never cut. On expiry it raises ``ClientTimeout``: a 408 in the error envelope with ``Connection: close``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ..errors import ClientTimeout, error_json


def _seconds(value: float) -> str:
    return f"{value:g} s"


class TimedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol, with the header deadline and the deadline on a body dropped after the
    answer. ``configured`` gives the class ``uvicorn.run(http=...)`` takes."""

    header_timeout = 10.0
    body_timeout = 60.0

    @classmethod
    def configured(cls, header_timeout: float, body_timeout: float) -> type[TimedHttpTools]:
        attributes = {"header_timeout": header_timeout, "body_timeout": body_timeout}
        return cast(type[TimedHttpTools], type(cls.__name__, (cls,), attributes))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._in_message = False
        """From the first byte httptools takes as a request's to the end of its body."""
        self._in_headers = False

    def _arm(self, seconds: float, expired: Callable[[], None]) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = self.loop.call_later(seconds, expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.header_timeout, self._headers_late)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._deadline is None and not self._in_message:
            # The next request's first bytes (or the blank lines before it): its header clock starts.
            self._arm(self.header_timeout, self._headers_late)
        super().data_received(data)
        if self._in_message and not self._in_headers and self.cycle is not None and self.cycle.response_complete:
            # Answered already; uvicorn drops the rest of the body as it comes, and it must keep coming.
            self._arm(self.body_timeout, self._dropped_body_late)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_message = self._in_headers = True
        if self._deadline is None:  # a pipelined request, in the same bytes as the one before
            self._arm(self.header_timeout, self._headers_late)

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._disarm()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_message = False
        self._disarm()

    def _headers_late(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self.flow.read_paused:  # uvicorn stopped reading (pipelined requests wait their turn): not the client
            self._arm(self.header_timeout, self._headers_late)
            return
        if self._in_message and (self.cycle is None or self.cycle.response_complete):
            self.transport.write(self._request_timeout())
        self.transport.close()

    def _dropped_body_late(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def _request_timeout(self) -> bytes:
        """The 408 answer to a request whose headers came too slowly, in the error envelope."""
        body = error_json(ClientTimeout(f"the request's headers did not all arrive within "
                                        f"{_seconds(self.header_timeout)} (SERVER_HEADER_TIMEOUT)"))
        lines = [b"HTTP/1.1 408 Request Timeout\r\n"]
        lines += [name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers]
        lines += [b"content-type: application/json\r\n", b"content-length: %d\r\n" % len(body),
                  b"connection: close\r\n", b"\r\n", body]
        return b"".join(lines)


class BodyTimeout:
    """Bounds each wait for the next piece of a request's body (see the module's text)."""

    def __init__(self, app: ASGIApp, timeout: float) -> None:
        self.app = app
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.app(scope, _bounded(receive, self.timeout), send)


def _bounded(receive: Receive, timeout: float) -> Receive:
    """``receive``, each call bounded by ``timeout`` until the body is whole; then as it is (a wait for the
    client's disconnect while an answer streams is no slow body)."""
    whole = expired = False

    async def bounded() -> Message:
        nonlocal whole, expired
        if whole:
            return await receive()
        if expired:  # the client is taken for gone: the connection closes after the 408
            return {"type": "http.disconnect"}
        try:
            async with asyncio.timeout(timeout):
                message = await receive()
        except TimeoutError:
            expired = True
            raise ClientTimeout(f"no part of the request's body arrived for {_seconds(timeout)} "
                                "(SERVER_BODY_TIMEOUT); the request is refused and the connection closed") from None
        whole = message["type"] != "http.request" or not message.get("more_body", False)
        return message

    return bounded


class CloseUnreadBody:
    """Closes the connection after an answer given before a body the client held back was asked for.

    A client that sends ``Expect: 100-continue`` waits for ``100 Continue`` before its body; answered at once
    (a 401, a 403, a 404 before the body is read), it may send the body or not. uvicorn keeps the connection
    and takes whatever comes next as the rest of that body: the next request's first bytes, which then fails
    to parse (boto3 does this on every PUT). ``Connection: close`` ends the doubt."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not any(
                name == b"expect" and value.lower() == b"100-continue" for name, value in scope["headers"]):
            await self.app(scope, receive, send)
            return
        asked = False

        async def receiving() -> Message:
            nonlocal asked
            asked = True
            return await receive()

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start" and not asked:
                message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        await self.app(scope, receiving, sending)
