"""An S3 request body as its bytes, checked on the way: ``x-amz-content-sha256``, ``Content-MD5``,
``x-amz-checksum-*`` (as a header or an ``aws-chunked`` trailer), and each chunk's signature of a
``STREAMING-AWS4-HMAC-SHA256-PAYLOAD`` body. A body that fails a check raises before its end is
reached, so the store's all-or-nothing ``put`` keeps nothing of it.

``aws-chunked`` framing (``<hex size>[;chunk-signature=<sig>]\\r\\n<bytes>\\r\\n ... 0...\\r\\n<trailers>\\r\\n``)
is read here; the signatures themselves are botocore's (s3/auth.py).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import AsyncIterator
from typing import Any

from ..errors import BadDigest, BadInput, ContentSha256Mismatch, InvalidDigest, SignatureMismatch, Unsupported
from ..services.blobs import Digests, gathered
from ..services.checksums import CHECKSUMS
from .auth import UNSIGNED, Verified

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
SIGNED_CHUNKS = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
SIGNED_CHUNKS_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
MAX_LINE = 4096
MAX_CHUNK = 64 * 1024 * 1024
BLOCK = 1024 * 1024
"""A body is checked in blocks of this size, hashed in a thread one block behind (``blobs.Digests``): one thread
hop per MiB, and 10 parts in flight hold about 30 MiB."""


def content_md5(headers: dict[str, str]) -> bytes | None:
    """The ``Content-MD5`` a request declares, as its 16 bytes; None when it declares none."""
    value = headers.get("content-md5")
    if value is None:
        return None
    try:
        digest = base64.b64decode(value.strip(), validate=True)
    except ValueError:
        digest = b""
    if len(digest) != 16:
        raise InvalidDigest("The Content-MD5 you specified is not valid: it must be the base64 of the body's "
                            "16-byte MD5.")
    return digest


def checksum_header(headers: dict[str, str], of_body: bool = True) -> tuple[str, str | None] | None:
    """``(algorithm, expected base64 or None when it comes in the trailer)`` the client asked for. ``of_body``
    False: an ``x-amz-checksum-*`` header is not the body's (CompleteMultipartUpload's is the object's)."""
    trailer = headers.get("x-amz-trailer", "").strip().lower()
    if trailer.startswith("x-amz-checksum-"):
        return trailer.removeprefix("x-amz-checksum-"), None
    if not of_body:
        return None
    for name in CHECKSUMS:
        value = headers.get(f"x-amz-checksum-{name}")
        if value is not None:
            return name, value
    return None


class BodyReader:
    """Reads one request's body from ASGI ``receive`` messages, checked as it goes."""

    def __init__(self, chunks: AsyncIterator[bytes], verified: Verified, headers: dict[str, str],
                 checksum_headers: bool = True, md5: bool = False) -> None:
        """``md5``: keep the body's MD5 (``md5.hexdigest()`` once read) also when no Content-MD5 asks for it."""
        self.raw = chunks
        self.verified = verified
        self.headers = headers
        self.size = 0
        self.expected_md5 = content_md5(headers)
        self.md5 = hashlib.md5(usedforsecurity=False) if md5 or self.expected_md5 is not None else None
        want = checksum_header(headers, checksum_headers)
        self.checksum_name = want[0] if want else None
        if self.checksum_name is not None and self.checksum_name not in CHECKSUMS:
            raise BadInput(f"x-amz-checksum-{self.checksum_name} is not a checksum S3 knows")
        self.checksum = CHECKSUMS[self.checksum_name]() if self.checksum_name else None
        self.expected_checksum = want[1] if want else None
        self.checksum_value: str | None = None
        self.payload_sha: Any = None
        """The SHA-256 of a body signed whole (``x-amz-content-sha256`` its hex digest)."""
        """The body's checksum, base64, once read: answered as x-amz-checksum-<name>."""

    async def chunks(self) -> AsyncIterator[bytes]:
        payload = self.verified.payload
        streaming = payload.startswith("STREAMING-")
        if not streaming and payload != UNSIGNED:
            self.payload_sha = hashlib.sha256()
        digests = Digests(self.payload_sha, self.md5, self.checksum)
        async for data in gathered(self._decoded() if streaming else self.raw, BLOCK):
            self.size += len(data)
            await digests.add(data)
            yield data
        await digests.done()
        self._finish()

    async def read(self, limit: int) -> bytes:
        """The whole body (an XML request), at most ``limit`` bytes."""
        parts: list[bytes] = []
        async for data in self.chunks():
            parts.append(data)
            if self.size > limit:
                raise BadInput(f"the request body is over {limit} bytes")
        return b"".join(parts)

    def _finish(self) -> None:
        if self.payload_sha is not None and not hmac.compare_digest(self.payload_sha.hexdigest(),
                                                                    self.verified.payload.lower()):
            raise ContentSha256Mismatch("The provided 'x-amz-content-sha256' header does not match what was "
                                        "computed.")
        declared = self.headers.get("x-amz-decoded-content-length")
        if declared is not None and self.verified.payload.startswith("STREAMING-") and int(declared) != self.size:
            raise BadInput(f"the body decoded to {self.size} bytes, x-amz-decoded-content-length says {declared}")
        if self.expected_md5 is not None and self.md5 is not None and \
                not hmac.compare_digest(self.md5.digest(), self.expected_md5):
            raise BadDigest("The Content-MD5 you specified did not match what we received.")
        if self.checksum is not None:
            self.checksum_value = base64.b64encode(self.checksum.digest()).decode()
            if self.expected_checksum is None:
                raise BadInput(f"the trailer x-amz-checksum-{self.checksum_name} was announced and not sent")
            if not hmac.compare_digest(self.checksum_value, self.expected_checksum.strip()):
                raise BadDigest(f"The {self.checksum_name.upper() if self.checksum_name else ''} you specified "
                                "did not match the calculated checksum.")

    async def _decoded(self) -> AsyncIterator[bytes]:
        payload = self.verified.payload
        if payload not in (SIGNED_CHUNKS, SIGNED_CHUNKS_TRAILER, UNSIGNED_TRAILER):
            raise Unsupported(f"x-amz-content-sha256: {payload} is not a body encoding cargohold reads")
        signed = payload != UNSIGNED_TRAILER
        previous = self.verified.signature
        stream = _Buffered(self.raw)
        while True:
            line = await stream.line()
            size_text, _, extension = line.partition(";")
            try:
                size = int(size_text.strip(), 16)
            except ValueError:
                raise BadInput(f"an aws-chunked chunk header is not a hex size: {line[:40]!r}") from None
            if not 0 <= size <= MAX_CHUNK:
                raise BadInput(f"an aws-chunked chunk of {size} bytes is over {MAX_CHUNK}")
            data = await stream.exactly(size)
            if signed:
                name, _, signature = extension.partition("=")
                if name.strip() != "chunk-signature":
                    raise SignatureMismatch("an aws-chunked chunk has no chunk-signature")
                expected = self.verified.chunk_signature(previous, hashlib.sha256(data).hexdigest(), EMPTY_SHA256)
                if not hmac.compare_digest(expected, signature.strip()):
                    raise SignatureMismatch("a chunk's signature does not match: the body was altered, or signed "
                                            "with another key")
                previous = expected
            if size == 0:
                break
            if await stream.line() != "":
                raise BadInput("an aws-chunked chunk does not end with CRLF")
            yield data
        await self._trailers(stream, previous, signed and payload == SIGNED_CHUNKS_TRAILER)

    async def _trailers(self, stream: _Buffered, previous: str, signed: bool) -> None:
        lines: list[str] = []
        signature = None
        while (line := await stream.line(eof_ok=True)) not in ("", None):
            name, _, value = line.partition(":")
            if name.strip().lower() == "x-amz-trailer-signature":
                signature = value.strip()
            else:
                lines.append(f"{name.strip().lower()}:{value.strip()}")
                if name.strip().lower() == f"x-amz-checksum-{self.checksum_name}":
                    self.expected_checksum = value.strip()
        if signed:
            text = "".join(f"{line}\n" for line in lines)
            expected = self.verified.trailer_signature(previous, hashlib.sha256(text.encode()).hexdigest())
            if signature is None or not hmac.compare_digest(expected, signature):
                raise SignatureMismatch("the trailer's signature does not match")


class _Buffered:
    def __init__(self, source: AsyncIterator[bytes]) -> None:
        self.source = source
        self.buffer = bytearray()
        self.ended = False

    async def _more(self) -> bool:
        if self.ended:
            return False
        try:
            self.buffer += await anext(self.source)
        except StopAsyncIteration:
            self.ended = True
            return False
        return True

    async def line(self, eof_ok: bool = False) -> str:
        while (at := self.buffer.find(b"\r\n")) < 0:
            if len(self.buffer) > MAX_LINE:
                raise BadInput("an aws-chunked line is over 4 KiB")
            if not await self._more():
                if eof_ok and not self.buffer:
                    return ""
                raise BadInput("the aws-chunked body ended in the middle of a line")
        line = bytes(self.buffer[:at])
        del self.buffer[: at + 2]
        return line.decode("latin-1")

    async def exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            if not await self._more():
                raise BadInput("the aws-chunked body ended in the middle of a chunk")
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data
