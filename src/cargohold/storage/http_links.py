"""Public ``http(s)://`` links, read with the same ``head`` / ``get`` shape as a store.

Every URL, and every redirect target (at most five), must resolve only to public addresses:
loopback, private, link-local (cloud metadata lives there), multicast and reserved ranges are
refused unless ``LINKS_ALLOW_PRIVATE_NETWORKS`` is set. Every fetch has time limits.

Known gap: the name is resolved for the check and again by the HTTP client, so a DNS server that
answers differently the second time (rebinding) is not caught.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import AsyncIterator
from email.utils import parsedate_to_datetime
from urllib.parse import urljoin, urlsplit

import httpx

from ..errors import BackendUnavailable, BadGateway, BadInput, Forbidden, NotFound, RangeNotSatisfiable
from .base import CHUNK_SIZE, ByteRange, Download, ObjectMeta

MAX_REDIRECTS = 5
TIMEOUT = httpx.Timeout(30.0, connect=5.0)


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    found: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        # An IPv4 address inside an IPv6 one (::ffff:a.b.c.d, 6to4, Teredo) is checked as itself too.
        found += [v4 for v4 in (ip.ipv4_mapped, ip.sixtofour, ip.teredo and ip.teredo[1]) if v4]
        if ip.is_site_local:
            return False
    # is_global: not private, and not the shared 100.64.0.0/10 either (a cloud's metadata can live there).
    return all(a.is_global and not (a.is_private or a.is_loopback or a.is_link_local or a.is_multicast
                                    or a.is_reserved or a.is_unspecified) for a in found)


class HttpLinks:
    def __init__(self, allow_private: bool = False) -> None:
        self.allow_private = allow_private
        self._client = httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False)

    async def check_address(self, url: str) -> None:
        try:
            parts = urlsplit(url)
            port = parts.port  # a redirect may name anything: '[' without ']', a port of 99999
        except ValueError as exc:
            raise BadInput(f"not a usable URL: {url!r}: {exc}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise BadInput(f"not an http(s) URL: {url!r}")
        if self.allow_private:
            return
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(parts.hostname, port or 443,
                                                                  type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise NotFound(f"host {parts.hostname!r} does not resolve: {exc.strerror}") from None
        for info in infos:
            address = str(info[4][0])
            if not _public(address):
                raise Forbidden(
                    f"{parts.hostname!r} resolves to {address}, a loopback, private, link-local or reserved "
                    "address; links may reach only public addresses (LINKS_ALLOW_PRIVATE_NETWORKS=true lifts this)"
                )

    async def _send(self, method: str, url: str, headers: dict[str, str]) -> httpx.Response:
        for _ in range(MAX_REDIRECTS + 1):
            await self.check_address(url)
            request = self._client.build_request(method, url, headers=headers)
            try:
                response = await self._client.send(request, stream=True)
            except httpx.TimeoutException as exc:
                raise BackendUnavailable(f"{url}: no answer in time ({type(exc).__name__})") from exc
            except httpx.HTTPError as exc:
                raise BackendUnavailable(f"{url}: {exc}") from exc
            if response.is_redirect and "location" in response.headers:
                await response.aclose()
                url = urljoin(url, response.headers["location"])
                continue
            return response
        raise BadGateway(f"more than {MAX_REDIRECTS} redirects")

    async def head(self, url: str) -> ObjectMeta:
        download = await self.get(url, ByteRange(0, 1))
        await download.chunks.aclose()  # type: ignore[attr-defined]
        return download.meta

    async def get(self, url: str, byte_range: ByteRange | None = None) -> Download:
        headers = {"Accept-Encoding": "identity"}
        if byte_range is not None:
            if byte_range.suffix is not None:
                headers["Range"] = f"bytes=-{byte_range.suffix}"
            else:
                end = "" if byte_range.end is None else str(byte_range.end - 1)
                headers["Range"] = f"bytes={byte_range.start}-{end}"
        response = await self._send("GET", url, headers)
        if response.status_code == 404:
            await response.aclose()
            raise NotFound(f"{url}: 404 Not Found")
        if response.status_code == 416:
            await response.aclose()
            raise RangeNotSatisfiable(f"{url}: the range is outside the file")
        if response.status_code in (401, 403):
            await response.aclose()
            raise Forbidden(f"{url}: {response.status_code}: the link is not public")
        if response.status_code not in (200, 206):
            await response.aclose()
            raise BadGateway(f"{url}: the server answered {response.status_code}")
        return _download(url, response, byte_range)

    async def close(self) -> None:
        await self._client.aclose()


def _download(url: str, response: httpx.Response, byte_range: ByteRange | None) -> Download:
    length = int(response.headers.get("content-length", "-1"))
    if response.status_code == 206:
        spec = response.headers.get("content-range", "").removeprefix("bytes ")
        span, _, total = spec.partition("/")
        first, _, last = span.partition("-")
        if not (first.isdigit() and last.isdigit() and total.isdigit()):
            raise BadGateway(f"{url}: a 206 answer without a usable Content-Range")
        start, end, size = int(first), int(last) + 1, int(total)
    else:
        if byte_range is not None and byte_range != ByteRange(0):
            # The server ignored Range: serve the range from the whole body ourselves.
            size = length
            start, end = byte_range.resolve(size) if size >= 0 else (0, -1)
        else:
            size = length
            start, end = 0, length
    last_modified = None
    if "last-modified" in response.headers:
        try:
            last_modified = parsedate_to_datetime(response.headers["last-modified"])
        except (TypeError, ValueError):
            last_modified = None
    meta = ObjectMeta(key=url, size=size, etag=response.headers.get("etag"), last_modified=last_modified)
    skip = start if response.status_code == 200 else 0
    want = end - start if end >= 0 else None
    return Download(meta, start, end, _body(response, skip, want), content_type=response.headers.get("content-type"))


async def _body(response: httpx.Response, skip: int, want: int | None) -> AsyncIterator[bytes]:
    try:
        async for chunk in response.aiter_raw(CHUNK_SIZE):
            if skip:
                cut = min(skip, len(chunk))
                chunk, skip = chunk[cut:], skip - cut
            if want is not None:
                chunk = chunk[:want]
                want -= len(chunk)
            if chunk:
                yield chunk
            if want == 0:
                return
    finally:
        await response.aclose()
