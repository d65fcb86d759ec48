"""Request bodies bounded before a route reads them: size (413) and JSON nesting (400), never a 500.

Every request under ``/api/v1/`` passes ``BodyLimits`` after authentication: its body is read whole,
up to ``JSON_MAX_BYTES``, refused at once when ``Content-Length`` says it is larger, and, when it is
JSON (or untyped, which FastAPI parses as JSON), checked for nesting deeper than ``JSON_MAX_DEPTH``
before FastAPI parses it. The routes that stream their body (uploads, team files, links files) are
named in ``STREAMED`` and bound their bodies themselves; a JSON links body is bounded here by
``LINKS_JSON_MAX_BYTES`` and parsed by ``links_json``, entry by entry in a thread.

Why this shape (docs/SECURITY.md, "Bounded work: filters and bodies"): ``json.loads`` holds the GIL
for the whole parse, so a thread alone does not keep the event loop answering; a bound on the bytes
does: 128 KiB of the worst JSON (``[],`` repeated) parses in 10 to 20 ms. A links body, larger, is
parsed by Python code in a thread, which lets the event loop have the GIL between entries.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from itertools import accumulate

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import BadInput, CargoholdError, ClientTimeout, TooLarge
from .responses import error_response

JSON_MAX_BYTES = 128 * 1024
"""Every body but the streamed ones; the API's largest (a thousand ids to sign) is about 10 KB."""
JSON_MAX_DEPTH = 32
"""Arrays and objects inside each other; the API's deepest body (a service account's JSON) has 3."""
LINKS_JSON_MAX_BYTES = 16 * 2**20
"""A JSON links body (some 300,000 links); more is sent as a links file (text/plain), streamed."""

DRAIN_MAX_BYTES = 128 * 2**20
"""Of a body refused for its size, what is read and dropped before the answer: uvicorn closes the
connection after it, and a close with unread bytes is a reset that loses the answer on the way."""

_LINKS = re.compile(r"/api/v1/datasets/[^/]+/links")
STREAMED: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("POST", re.compile(r"/api/v1/datasets/[^/]+/items")),  # multipart, UPLOAD_MAX_SIZE a file
    ("PUT", re.compile(r"/api/v1/files/.+")),  # a team file, UPLOAD_MAX_SIZE
    ("POST", _LINKS),  # a links file, line by line (storage/links_file.py); JSON is bounded here
)
"""The routes whose body is streamed by the route itself, not read whole here."""

_STRING = re.compile(rb'"[^"]*"')
_BRACKETS = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[]{}"))
_STEP = {ord("["): 1, ord("]"): -1}


def _content_type(headers: Headers) -> str:
    return headers.get("content-type", "").split(";")[0].strip().lower()


def _parsed_as_json(kind: str) -> bool:
    """What FastAPI parses as JSON: no type, ``application/json``, ``application/*+json``."""
    return kind in ("", "application/json") or (kind.startswith("application/") and kind.endswith("+json"))


def nesting(body: bytes, limit: int = JSON_MAX_DEPTH) -> int:
    """How deep arrays and objects nest in a JSON text, when deeper than ``limit`` (0 when not).

    Linear in the body, in C: escaped backslashes and quotes dropped, then strings, then everything
    but brackets; innermost pairs peeled ``limit`` times. Only when some are left (too deep, or not
    JSON) are they counted, bracket by bracket, still in C: 128 KiB in about 3 ms."""
    text = _STRING.sub(b"", body.replace(b"\\\\", b"").replace(b'\\"', b""))
    brackets = peeled = text.translate(_BRACKETS, _NOT_BRACKETS)
    for _ in range(limit):
        shorter = peeled.replace(b"[]", b"")
        if len(shorter) == len(peeled):
            break
        peeled = shorter
    if not peeled:
        return 0
    depth = max(accumulate(map(_STEP.__getitem__, brackets)))
    return depth if depth > limit else 0


def check_json(body: bytes) -> None:
    depth = nesting(body)
    if depth:
        raise BadInput(f"the JSON body nests arrays and objects {depth} deep; at most {JSON_MAX_DEPTH} are read")


class BodyLimits:
    """Reads and bounds the body of every API request but the streamed ones (see the module's text)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith("/api/v1/"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        kind = _content_type(headers)
        method = scope["method"]
        if any(method == m and route.fullmatch(path) for m, route in STREAMED):
            if not (method == "POST" and kind == "application/json" and _LINKS.fullmatch(path)):
                await self.app(scope, receive, send)
                return
            limit, what = LINKS_JSON_MAX_BYTES, "a JSON links body"  # parsed by the route: links_json
        else:
            limit, what = JSON_MAX_BYTES, "a request body"
        try:
            body = await self._read(headers, receive, limit, what)
            if limit == JSON_MAX_BYTES and _parsed_as_json(kind):
                check_json(body)  # C-speed, about 1 ms for the largest body
        except CargoholdError as exc:
            if isinstance(exc, TooLarge):
                with contextlib.suppress(ClientTimeout):  # a client that stops meanwhile gets the 413 all the same
                    await _drain(receive)
            await error_response(exc.http_status, exc.code, exc.message, exc.headers)(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)

    @staticmethod
    async def _read(headers: Headers, receive: Receive, limit: int, what: str) -> bytes:
        fix = "; send a links file as text/plain instead, it is streamed" if limit == LINKS_JSON_MAX_BYTES else ""
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise TooLarge(f"{what} is limited to {limit:,} bytes; this one declares {int(declared):,}{fix}")
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise BadInput("the client went away before the body was sent")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise TooLarge(f"{what} is limited to {limit:,} bytes{fix}")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


async def _drain(receive: Receive) -> None:
    dropped = 0
    while dropped <= DRAIN_MAX_BYTES:
        message = await receive()
        dropped += len(message.get("body", b""))
        if message["type"] == "http.disconnect" or not message.get("more_body", False):
            return


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body read here, as the app's first message; then the client's (a disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


# --- a JSON links body ---------------------------------------------------------------------------------------------

LINKS_SHAPE = 'send {"links": ["s3://bucket/key", {"url": "...", "name": "..."}]}'
_SPACE = re.compile(r"[ \t\n\r]*")
_PLAIN_URL = re.compile(r'[ \t\n\r]*"([^"\\\x00-\x1f]*)"[ \t\n\r]*([,\]])')
"""An entry that is a string without escapes, and what follows it: most entries, read in one step."""


async def links_json(body: bytes) -> list[str | tuple[str, str | None]]:
    """The entries of ``{"links": [...]}``: a URL, or ``{"url": ..., "name": ...}`` as ``(url, name)``
    (tuples of text, which the garbage collector does not track). Parsed in a thread, entry by entry (the
    event loop gets the GIL between entries); any other shape is a 400 naming where."""
    return await asyncio.to_thread(_links_json, body)


def _links_json(body: bytes) -> list[str | tuple[str, str | None]]:
    try:
        text = body.decode()
    except UnicodeDecodeError:
        raise BadInput("the JSON links body is not UTF-8 text") from None
    decode = json.JSONDecoder().raw_decode

    def skip(at: int) -> int:
        """Past the white space at ``at``."""
        return _SPACE.match(text, at).end()  # type: ignore[union-attr]

    links: list[str | tuple[str, str | None]] | None = None

    def expect(char: str, at: int, where: str) -> int:
        at = skip(at)
        if not text.startswith(char, at):
            raise BadInput(f"{where}: expected {char!r} at character {at}; {LINKS_SHAPE}")
        return at + 1

    def string(at: int, where: str) -> tuple[str, int]:
        at = skip(at)
        if not text.startswith('"', at):
            raise BadInput(f"{where} must be text (character {at}); {LINKS_SHAPE}")
        try:
            value, end = decode(text, at)
        except ValueError as exc:
            raise BadInput(f"{where}: not JSON text: {exc}") from None
        return value, end

    def entry(at: int, number: int) -> tuple[str | tuple[str, str | None], int]:
        where = f"links[{number}]"
        at = skip(at)
        if not text.startswith("{", at):
            if not text.startswith('"', at):
                raise BadInput(f'{where} must be a URL or {{"url": "...", "name": "..."}}, in text')
            return string(at, where)
        fields: dict[str, str] = {}
        at = skip(at + 1)
        if text.startswith("}", at):
            raise BadInput(f'{where} has no "url"')
        while True:
            key, at = string(at, f"{where}: a key")
            if key not in ("url", "name"):
                raise BadInput(f'{where}: unknown key {key[:100]!r}; an entry has "url" and "name"')
            at = expect(":", at, where)
            at = skip(at)
            if key == "name" and text.startswith("null", at):
                at += 4
            else:
                fields[key], at = string(at, f"{where}.{key}")
            at = skip(at)
            if text.startswith("}", at):
                break
            at = expect(",", at, where)
        if "url" not in fields:
            raise BadInput(f'{where} has no "url"')
        return (fields["url"], fields.get("name")), at + 1

    at = expect("{", 0, "the body")
    while True:
        key, at = string(at, "a key of the body")
        if key != "links" or links is not None:
            raise BadInput(f"the body has {key[:100]!r} {'twice' if key == 'links' else 'as a key'}; {LINKS_SHAPE}")
        at = expect("[", expect(":", at, '"links"'), '"links"')
        links = []
        at = skip(at)
        if text.startswith("]", at):
            at += 1
        else:
            while True:
                plain = _PLAIN_URL.match(text, at)
                if plain is not None:
                    links.append(plain[1])
                    at = plain.end()
                    if plain[2] == "]":
                        break
                    continue
                value, at = entry(at, len(links))
                links.append(value)
                at = skip(at)
                if text.startswith("]", at):
                    at += 1
                    break
                at = expect(",", at, f"after links[{len(links) - 1}]")
        at = skip(at)
        if text.startswith("}", at):
            break
        at = expect(",", at, "the body")
    if skip(at + 1) != len(text):
        raise BadInput(f"text after the JSON body, at character {at + 1}")
    return links
