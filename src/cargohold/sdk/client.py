"""The Python SDK: ``cargohold.Client(url, token)``, a synchronous client of the HTTP API (docs/API.md).

File bytes are streamed both ways, never held whole in memory. Uploads and downloads are checked
end to end against the SHA-256 the server computed, and a download interrupted midway resumes from
its ``.part`` file with a ``Range`` request.
"""

from __future__ import annotations

import hashlib
import io
import mimetypes
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Literal
from urllib.parse import quote

import httpx

from .. import __version__
from ..errors import (
    AlreadyExists,
    BackendUnavailable,
    BadGateway,
    BadInput,
    CargoholdError,
    ChecksumMismatch,
    Forbidden,
    GatewayTimeout,
    InvalidKey,
    NotFound,
    RangeNotSatisfiable,
    TooLarge,
    Unauthenticated,
    Unprocessable,
    Unsupported,
)
from ..ranged import RangedFile

Json = dict[str, Any]
Progress = Callable[[int], None]
Conflict = Literal["rename", "skip", "replace"]
# A file to upload: a path (the item is named after the file) or (item name, path).
UploadSource = str | os.PathLike[str] | tuple[str, str | os.PathLike[str]]
DatasetRef = int | str | Mapping[str, Any]
ItemRef = int | Mapping[str, Any]

API_PREFIX = "/api/v1"
CHUNK_SIZE = 1024 * 1024
CONFLICTS: tuple[Conflict, ...] = ("rename", "skip", "replace")
# The server answers an upload once the object is in place, which off local disk is a copy of the whole
# object made after its last byte arrived: for a large file, minutes of silence that are not a hang.
UPLOAD_ANSWER_TIMEOUT = 1800.0

_BY_CODE: dict[str, type[CargoholdError]] = {
    cls.code: cls
    for cls in (BadInput, InvalidKey, RangeNotSatisfiable, TooLarge, Unprocessable, Unauthenticated, NotFound,
                AlreadyExists, Forbidden, BackendUnavailable, BadGateway, GatewayTimeout, Unsupported)
}
_BY_STATUS: dict[int, type[CargoholdError]] = {
    400: BadInput, 401: Unauthenticated, 403: Forbidden, 404: NotFound, 409: AlreadyExists, 413: TooLarge,
    416: RangeNotSatisfiable, 422: Unprocessable, 501: Unsupported, 502: BadGateway, 503: BackendUnavailable,
}
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


def error_from(response: httpx.Response) -> CargoholdError:
    """The exception for an error answer: by the body's ``error.code``, else by the status."""
    code, message = None, None
    try:
        body = response.json()["error"]
        code, message = str(body["code"]), str(body["message"])
    except (ValueError, KeyError, TypeError):
        pass  # not cargohold's JSON: a proxy's page, or a crash
    cls = _BY_CODE.get(code or "") or _BY_STATUS.get(response.status_code, CargoholdError)
    if message is None:
        text = response.text.strip()[:200]
        message = f"{response.request.method} {response.request.url} answered {response.status_code} " \
                  f"{response.reason_phrase}" + (f": {text}" if text else "")
    error = cls(message)
    error.http_status = response.status_code
    return error


def _raise_for(response: httpx.Response) -> None:
    if response.status_code >= 400:
        response.read()  # a streamed answer's body holds the error message
        raise error_from(response)


class _MeteredFile(io.FileIO):
    """A file httpx streams from that hashes and counts what it reads: the upload is checked without a
    second pass over the file."""

    def __init__(self, path: Path, progress: Progress | None) -> None:
        super().__init__(path, "rb")
        self.sha = hashlib.sha256()
        self.progress = progress

    def read(self, size: int | None = -1, /) -> bytes:
        data = super().read(size) or b""
        self.sha.update(data)
        if self.progress and data:
            self.progress(len(data))
        return data

    def seek(self, offset: int, whence: int = os.SEEK_SET, /) -> int:
        position = super().seek(offset, whence)
        if position == 0:  # httpx rewinds before sending: start the hash over with it
            self.sha = hashlib.sha256()
        return position


def _hash_file(path: Path, update: Callable[[bytes], None]) -> None:
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK_SIZE):
            update(chunk)


def _exactly(fh: io.RawIOBase, size: int, name: object) -> Iterator[bytes]:
    """The first ``size`` bytes of ``fh``, the Content-Length announced: a file that grows while it is
    sent (a log being written) goes as it was when opened; one that shrinks is an error."""
    left = size
    while left:
        chunk = fh.read(min(CHUNK_SIZE, left)) or b""
        if not chunk:
            raise BadInput(f"{name}: the file got shorter while it was being sent ({size - left:,} of {size:,} bytes)")
        left -= len(chunk)
        yield chunk


def _part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def _range_start(response: httpx.Response) -> int | None:
    match = _CONTENT_RANGE.match(response.headers.get("content-range", ""))
    return int(match.group(1)) if match else None


class Client:
    """A cargohold server at ``url`` (``http://host:8080``), as the holder of ``token``."""

    def __init__(
        self, url: str, token: str, *, timeout: float = 60.0, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.url = url.rstrip("/").removesuffix(API_PREFIX)
        connect = min(timeout, 10.0)
        self._upload_timeout = httpx.Timeout(timeout, connect=connect, read=max(timeout, UPLOAD_ANSWER_TIMEOUT))
        self._http = httpx.Client(
            base_url=self.url + API_PREFIX, timeout=httpx.Timeout(timeout, connect=connect),
            headers={"Authorization": f"Bearer {token}", "User-Agent": f"cargohold-python/{__version__}"},
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"cargohold.Client({self.url!r})"  # never the token

    def __enter__(self) -> Client:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- plumbing ---------------------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.RequestError as exc:
            raise self._unreachable(exc) from exc
        _raise_for(response)
        return response

    @contextmanager
    def _stream(self, method: str, path: str, headers: Mapping[str, str]) -> Iterator[httpx.Response]:
        """A response whose body is read as it arrives; errors in the body's transfer are translated too."""
        try:
            with self._http.stream(method, path, headers=headers) as response:
                yield response
        except httpx.RequestError as exc:
            raise self._unreachable(exc) from exc

    def _unreachable(self, exc: httpx.RequestError) -> BackendUnavailable:
        return BackendUnavailable(f"no answer from cargohold at {self.url}: {type(exc).__name__}: {exc}")

    def _pages(self, path: str, key: str, params: Mapping[str, str | int]) -> Iterator[Json]:
        cursor: str | None = None
        while True:
            query = {**params, **({"cursor": cursor} if cursor else {})}
            page = self._request("GET", path, params=query).json()
            yield from page[key]
            cursor = page.get("next_cursor")
            if not cursor:
                return

    # -- datasets ---------------------------------------------------------------------------------

    def create_dataset(self, name: str) -> Json:
        result: Json = self._request("POST", "/datasets", json={"name": name}).json()
        return result

    def datasets(self) -> list[Json]:
        result: list[Json] = self._request("GET", "/datasets").json()["datasets"]
        return result

    def dataset(self, id_or_name: int | str) -> Json:
        """A dataset by id (an int), or by name (a str; a name of digits that no dataset has is an id)."""
        if isinstance(id_or_name, int):
            result: Json = self._request("GET", f"/datasets/{id_or_name}").json()
            return result
        # The API has no lookup by name; the list is one request and datasets are few.
        for found in self.datasets():
            if found["name"] == id_or_name:
                return found
        if id_or_name.isdigit():
            return self.dataset(int(id_or_name))
        raise NotFound(f"no dataset named {id_or_name!r}")

    def _dataset_id(self, dataset: DatasetRef) -> int:
        if isinstance(dataset, Mapping):
            return int(dataset["id"])
        return dataset if isinstance(dataset, int) else int(self.dataset(dataset)["id"])

    def delete_dataset(self, dataset: DatasetRef) -> None:
        self._request("DELETE", f"/datasets/{self._dataset_id(dataset)}")

    # -- links ------------------------------------------------------------------------------------

    def add_links(
        self, dataset: DatasetRef, links: str | os.PathLike[str] | list[str | dict[str, str]], *,
        verify: bool = True, conflict: Conflict = "rename", progress: Callable[[int], None] | None = None,
    ) -> Json:
        """Register links: a links file (path; streamed as text/plain) or a list of URLs / {url, name}.
        Returns the report: counts, and every refused line with its number, URL and reason."""
        params = {"verify": "true" if verify else "false", "conflict": conflict}
        path = f"/datasets/{self._dataset_id(dataset)}/links"
        # Verification of many links takes a while: the answer comes when every link is checked.
        timeout = httpx.Timeout(60.0, read=3600.0)
        if isinstance(links, list):
            result: Json = self._request("POST", path, params=params, json={"links": links}, timeout=timeout).json()
            return result

        def chunks(file: Path) -> Iterator[bytes]:
            with file.open("rb") as fh:
                while chunk := fh.read(1024 * 1024):
                    if progress:
                        progress(len(chunk))
                    yield chunk

        result = self._request("POST", path, params=params, content=chunks(Path(links)),
                               headers={"Content-Type": "text/plain; charset=utf-8"}, timeout=timeout).json()
        return result

    def sync_links(self, dataset: DatasetRef, source: str, filter: str | None = None, verify: bool = False) -> Json:
        """Register every object under ``source`` (``s3://bucket/prefix/``) as a link; new keys only."""
        body = {"source": source, "filter": filter, "verify": verify}
        timeout = httpx.Timeout(60.0, read=3600.0)
        result: Json = self._request("POST", f"/datasets/{self._dataset_id(dataset)}/sync", json=body,
                                     timeout=timeout).json()
        return result

    def connections(self) -> list[Json]:
        """Every connection (admin token): names, providers, buckets; never a secret."""
        result: list[Json] = self._request("GET", "/connections").json()["connections"]
        return result

    def browse(self, connection: str, bucket: str, prefix: str = "", cursor: str | None = None) -> Json:
        """One page of one folder level of a connected bucket: ``folders``, ``objects``, ``next_cursor``."""
        params = {"bucket": bucket, "prefix": prefix, **({"cursor": cursor} if cursor else {})}
        result: Json = self._request("GET", f"/connections/{quote(connection, safe='')}/browse", params=params).json()
        return result

    # -- items ------------------------------------------------------------------------------------

    def upload(
        self, dataset: DatasetRef, paths: Iterable[UploadSource], conflict: Conflict = "rename",
        progress: Progress | None = None,
    ) -> list[Json]:
        """Upload files into ``dataset``, one request each; the server's result per file, in order.

        A plain path is named after its file; give ``(name, path)`` for another name (``"sub/a.jpg"``).
        ``progress`` gets the bytes sent as they go."""
        if conflict not in CONFLICTS:
            raise BadInput(f"conflict must be one of {', '.join(CONFLICTS)}, not {conflict!r}")
        if isinstance(paths, str | os.PathLike):
            paths = [paths]  # one file given bare, not a string to iterate character by character
        dataset_id = self._dataset_id(dataset)
        results = []
        for source in paths:
            name, local = source if isinstance(source, tuple) else (Path(source).name, source)
            results.append(self._upload_one(dataset_id, name, Path(local), conflict, progress))
        return results

    def _upload_one(self, dataset_id: int, name: str, local: Path, conflict: Conflict,
                    progress: Progress | None) -> Json:
        # One file per request: the server answers a refused file with the error alone, so a batch
        # would not say which of its files were stored.
        with _MeteredFile(local, progress) as fh:
            response = self._request("POST", f"/datasets/{dataset_id}/items", params={"conflict": conflict},
                                     files=[("files", (name, fh))], timeout=self._upload_timeout)
        result: Json = response.json()["results"][0]
        stored = result["item"].get("sha256")
        if result["status"] != "skipped" and stored != fh.sha.hexdigest():
            raise ChecksumMismatch(f"{local}: the server stored SHA-256 {stored}, the file has {fh.sha.hexdigest()}")
        return result

    def list_items(self, dataset: DatasetRef, page_size: int = 100) -> Iterator[Json]:
        """Every item of ``dataset``, oldest first, fetched ``page_size`` (1 to 1000) at a time."""
        return self._pages(f"/datasets/{self._dataset_id(dataset)}/items", "items", {"limit": page_size})

    def item(self, item_id: int) -> Json:
        result: Json = self._request("GET", f"/items/{item_id}").json()
        return result

    def delete_item(self, item: ItemRef) -> None:
        self._request("DELETE", f"/items/{_item_id(item)}")

    def sign(self, item: ItemRef, expires_in: int = 3600, preview: Mapping[str, Any] | None = None,
             format: str | None = None) -> str:
        """A URL that works without a token for ``expires_in`` seconds: of the item's bytes, of their
        conversion to ``format`` (jpeg, png, webp), or of a preview (``preview={"w": 256, "h": 256, ...}``)."""
        body: Json = {"expires_in": expires_in}
        if preview is not None:
            body["preview"] = dict(preview)
        if format is not None:
            body["format"] = format
        answer = self._request("POST", f"/items/{_item_id(item)}/sign", json=body)
        return str(answer.json()["url"])

    def preview(self, item: ItemRef, w: int = 256, h: int = 256, fit: str = "contain", format: str = "jpeg",
                q: int = 80) -> bytes:
        """A preview of an image item (a video's: its poster), as encoded bytes (made once by the server, then
        cached)."""
        params: dict[str, str | int] = {"w": w, "h": h, "fit": fit, "format": format, "q": q}
        return self._request("GET", f"/items/{_item_id(item)}/preview", params=params).content

    def frame(self, item: ItemRef, n: int | None = None, *, t: float | None = None, w: int = 2048, h: int = 2048,
              fit: str = "contain", format: str = "png", q: int = 90) -> bytes:
        """Frame ``n`` of a video (0-based, in presentation order), or with ``t`` the frame shown at ``t`` seconds,
        as encoded bytes: exact, made once by the server, then cached (docs/VIDEO.md). PNG at full size (up to the
        largest preview box, 2048 x 2048) by default."""
        if (n is None) == (t is None):
            raise ValueError("give the frame's number n or a time t, one of them")
        params: dict[str, str | int | float] = {"w": w, "h": h, "fit": fit, "format": format, "q": q}
        if t is not None:
            params["t"] = t
            return self._request("GET", f"/items/{_item_id(item)}/frames", params=params).content
        return self._request("GET", f"/items/{_item_id(item)}/frames/{n}", params=params).content

    def iter_frames(self, item: ItemRef, start: int = 0, stop: int | None = None, step: int = 1) -> Iterator[Any]:
        """Frames ``start``, ``start + step``, ... (before ``stop``) of a video, in presentation order, as PyAV
        ``VideoFrame`` objects (``.to_image()``, ``.to_ndarray()``), decoded here from ranged reads of its
        content: the file is never downloaded whole, and one GOP is in memory at a time. Frames are counted as
        ``frame()`` counts them: in an MP4, MOV or AVI (an index listing every frame) reading starts at the GOP
        that holds ``start``; in other containers the frames before ``start`` are decoded to count them."""
        try:
            import av  # the SDK's one optional dependency (the server's too): loaded only here
        except ImportError:
            raise RuntimeError("iter_frames decodes with PyAV: `pip install av`") from None
        from ..media.video import numbered_frames  # how the server finds a frame's GOP; PyAV's, loaded here too

        if start < 0 or step < 1 or (stop is not None and stop < start):
            raise ValueError("start >= 0, step >= 1 and stop >= start (or None)")
        item_id = _item_id(item)
        size = self.item(item_id)["size"]
        if not size:
            raise ValueError(f"item {item_id} has no known size: it cannot be read by ranges")
        path = f"/items/{item_id}/content"

        def fetch(start: int, end: int) -> bytes:
            return self._request("GET", path, headers={"Range": f"bytes={start}-{end - 1}"}).content

        reader = RangedFile(fetch, int(size), 1024 * 1024)
        with av.open(reader, "r") as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for n, frame in numbered_frames(container, stream, start):
                if stop is not None and n >= stop:
                    return
                if n >= start and (n - start) % step == 0:
                    yield frame
        if reader.failure is not None:  # FFmpeg may take a failed read for the end of the file
            raise reader.failure

    def cache_stats(self) -> list[Json]:
        """Per cache tier: entries, bytes, limit, hits, misses, evictions..."""
        tiers: list[Json] = self._request("GET", "/cache").json()["tiers"]
        return tiers

    def clear_cache(self, tier: str) -> int:
        """Empties one tier (``storage``, ``previews``, ``image-converter``); needs an admin token."""
        return int(self._request("DELETE", f"/cache/{tier}").json()["removed"])

    def download(self, item: ItemRef, path: str | os.PathLike[str], progress: Progress | None = None) -> Path:
        """Write the item's bytes to ``path``, by way of ``path.part``, which a later call resumes.

        The result is checked against the item's size and SHA-256; a ``.part`` that does not lead to
        them (changed or corrupted) is thrown away and the download made again from the start.
        ``progress`` gets the bytes received, so a resumed download reports only the rest."""
        meta = self.item(item) if isinstance(item, int) else dict(item)
        dest = Path(path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = _part_path(dest)
        for attempt in range(2):  # the second one starts from nothing
            if attempt:
                meta = self.item(int(meta["id"]))  # the item may have been replaced since ``meta`` was read
            if self._fetch(meta, part, progress):
                os.replace(part, dest)
                return dest
            part.unlink(missing_ok=True)
        raise ChecksumMismatch(f"item {meta['id']} ({meta['name']}): the bytes received do not match its size "
                               f"({meta['size']:,}) and SHA-256, twice")

    def _fetch(self, meta: Json, part: Path, progress: Progress | None) -> bool:
        """Complete ``part``; True if it then has the item's size and SHA-256, False to start over."""
        size, expected = int(meta["size"]), meta.get("sha256")
        have = part.stat().st_size if part.is_file() else 0
        if have > size:
            return False
        sha = hashlib.sha256()
        if have:
            _hash_file(part, sha.update)  # the resumed bytes are checked along with the new ones
        if part.is_file() and have == size:
            return expected is None or sha.hexdigest() == expected
        # identity: a Range over a compressed representation would not be a range of the file.
        headers = {"Accept-Encoding": "identity"}
        if have:
            headers["Range"] = f"bytes={have}-"
            if expected:
                headers["If-Range"] = f'"{expected}"'
        with self._stream("GET", f"/items/{meta['id']}/content", headers) as response:
            if response.status_code == 416:
                return False
            _raise_for(response)
            if response.status_code == 200:
                have, sha = 0, hashlib.sha256()  # the whole object came (Range ignored or If-Range failed)
            elif _range_start(response) != have:
                return False
            with part.open("ab" if have else "wb") as fh:
                for chunk in response.iter_bytes(CHUNK_SIZE):
                    fh.write(chunk)
                    sha.update(chunk)
                    have += len(chunk)
                    if progress:
                        progress(len(chunk))
        return have == size and (expected is None or sha.hexdigest() == expected)

    # -- team files -------------------------------------------------------------------------------

    def put_file(self, path: str, source: str | os.PathLike[str] | bytes, content_type: str | None = None,
                 progress: Progress | None = None) -> Json:
        """Store ``source`` (a local file, streamed, or bytes) as the team file ``path``, replacing it."""
        ctype = content_type or mimetypes.guess_type(path)[0] or "application/octet-stream"
        url = f"/files/{quote(path, safe='/')}"
        if isinstance(source, bytes):
            sha = hashlib.sha256(source).hexdigest()
            answer = self._request("PUT", url, content=source, headers={"Content-Type": ctype},
                                   timeout=self._upload_timeout)
            if progress:
                progress(len(source))
        else:
            with _MeteredFile(Path(source), progress) as fh:
                size = os.fstat(fh.fileno()).st_size
                headers = {"Content-Type": ctype, "Content-Length": str(size)}
                answer = self._request("PUT", url, content=_exactly(fh, size, source), headers=headers,
                                       timeout=self._upload_timeout)
                sha = fh.sha.hexdigest()
        result: Json = answer.json()
        if result.get("sha256") != sha:
            raise ChecksumMismatch(f"team file {path!r}: the server stored SHA-256 {result.get('sha256')}, sent {sha}")
        return result

    def get_file(self, path: str, local_path: str | os.PathLike[str], progress: Progress | None = None,
                 sha256: str | None = None) -> Path:
        """Write the team file ``path`` to ``local_path``, whole or not at all: by way of a ``.part``.

        A ``.part`` left by an interrupted call is resumed with a ``Range`` request, and the result is
        checked against the server's SHA-256 (the ETag); a ``.part`` that does not lead to it is
        thrown away and the file fetched again from its first byte. ``sha256``, the checksum a listing
        gave, is the version wanted: it guards the resume (``If-Range``), a ``.part`` already complete
        with it is used without a request, and a file replaced on the server since the listing raises
        ``ChecksumMismatch`` (its new bytes are kept in the ``.part`` for the next call)."""
        dest = Path(local_path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = _part_path(dest)
        for attempt in range(2):  # the second one starts from nothing
            if attempt:
                part.unlink(missing_ok=True)
            if self._fetch_file(path, part, sha256, progress):
                os.replace(part, dest)
                return dest
        part.unlink(missing_ok=True)
        raise ChecksumMismatch(f"team file {path!r}: the bytes received do not match the server's SHA-256, twice")

    def _fetch_file(self, path: str, part: Path, expected: str | None, progress: Progress | None) -> bool:
        """Complete ``part``; True if it then has the server's SHA-256, False to start over."""
        have = part.stat().st_size if part.is_file() else 0
        sha = hashlib.sha256()
        if have:
            _hash_file(part, sha.update)  # the resumed bytes are checked along with the new ones
            if expected and sha.hexdigest() == expected:
                return True  # complete already: an interrupted call got every byte but did not rename
        headers = {"Accept-Encoding": "identity"}
        if have:
            headers["Range"] = f"bytes={have}-"
            if expected:
                headers["If-Range"] = f'"{expected}"'
        with self._stream("GET", f"/files/{quote(path, safe='/')}", headers) as response:
            if response.status_code == 416:
                return False  # the .part is as long as the file, or longer: not these bytes
            _raise_for(response)
            if response.status_code == 200:
                have, sha = 0, hashlib.sha256()  # the whole file came (no Range, or If-Range failed)
            elif _range_start(response) != have:
                return False
            with part.open("ab" if have else "wb") as fh:
                for chunk in response.iter_bytes(CHUNK_SIZE):
                    fh.write(chunk)
                    sha.update(chunk)
                    if progress:
                        progress(len(chunk))
            etag = response.headers.get("etag", "").strip('"')  # the ETag of a team file is its SHA-256
        if etag and etag != sha.hexdigest():
            return False
        if expected and sha.hexdigest() != expected:
            raise ChecksumMismatch(f"team file {path!r} changed on the server since it was listed (SHA-256 "
                                   f"{sha.hexdigest()}, listed {expected}); fetch it again")
        return True

    def files(self, prefix: str = "", page_size: int = 100) -> Iterator[Json]:
        """Every team file whose path starts with ``prefix``."""
        return self._pages("/files", "files", {"prefix": prefix, "limit": page_size})

    def delete_file(self, path: str) -> None:
        self._request("DELETE", f"/files/{quote(path, safe='/')}")


def _item_id(item: ItemRef) -> int:
    return item if isinstance(item, int) else int(item["id"])
