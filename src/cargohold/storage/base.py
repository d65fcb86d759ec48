"""The one storage protocol every provider implements, the optional capabilities, and the values they pass.

``Store`` is what product code calls on any bucket. What only some providers can do is a small
protocol of its own (``SigningStore``, ``FolderListing``, ``UnfinishedUploads``), and each store's
``features`` record says which of them it offers, derived from its class by ``Features.of``, so
callers ask the record (``store.features.folders``) instead of testing types or catching
``Unsupported`` (as rclone's ``Features``). Each method says which cargohold error it raises;
providers translate their library's errors into these where they enter.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol, runtime_checkable

from ..errors import InvalidKey, RangeNotSatisfiable

CHUNK_SIZE = 1024 * 1024
"""Bytes per chunk when streaming a download through Python."""

PART_SIZE = 8 * 1024 * 1024
"""Bytes per part of a multipart upload; also the largest object uploaded in one request."""

META_TIMEOUT = 6.0
"""Seconds one metadata request (HEAD, a page of a listing, DELETE) may take, and seconds after the
first try past which no retry starts. A store that does not answer such a call (a dead endpoint, a
host that swallows packets) fails it within about twice this, with ``StoreTimeout``: a browse, a link's
HEAD or a health check answers in seconds, where the libraries' defaults retried for 60 to 300 s.
Data requests (downloads, uploads, copies) keep their long limits: their time grows with their size."""

Data = bytes | AsyncIterable[bytes]
Unfinished = list[tuple[str, int]]
"""(description, bytes held) per interrupted upload; an alias because ``Store.list`` shadows ``list``."""


@dataclass(frozen=True)
class ObjectMeta:
    key: str
    size: int
    etag: str | None = None
    last_modified: datetime | None = None


FolderPage = tuple[list[str], list[ObjectMeta], str | None]
"""One page of a folder: its sub-folders (full prefixes ending in ``/``), its objects, the next page's cursor."""
FolderEntries = list[tuple[str, ObjectMeta | None]]
"""A whole folder level: (key, metadata) per object, (prefix ending in ``/``, None) per sub-folder."""


@dataclass(frozen=True)
class ByteRange:
    """Which bytes to read: ``[start, end)``, or from ``start`` to the end, or the last ``suffix``.

    As in HTTP: an ``end`` past the object is clipped, a ``suffix`` longer than the object means
    the whole object, a ``start`` at or past the end cannot be satisfied.
    """

    start: int = 0
    end: int | None = None
    suffix: int | None = None

    def __post_init__(self) -> None:
        if self.start < 0 or (self.end is not None and self.end <= self.start):
            raise RangeNotSatisfiable(f"empty or negative byte range {self.start}..{self.end}")
        if self.suffix is not None and self.suffix <= 0:
            raise RangeNotSatisfiable("a suffix range needs at least one byte")

    @classmethod
    def last(cls, n: int) -> ByteRange:
        return cls(suffix=n)

    def resolve(self, size: int) -> tuple[int, int]:
        """The half-open ``(start, end)`` this range means for an object of ``size`` bytes."""
        if self.suffix is not None:
            return max(0, size - self.suffix), size
        if self.start >= size:
            raise RangeNotSatisfiable(f"range starts at byte {self.start} of a {size}-byte object")
        return self.start, size if self.end is None else min(self.end, size)


@dataclass
class Download:
    """An open read: the object's metadata, the span being sent, and the bytes as a stream."""

    meta: ObjectMeta
    start: int
    end: int
    chunks: AsyncIterator[bytes]
    content_type: str | None = None

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self.chunks

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.chunks])


class Store(Protocol):
    """One bucket (container, folder) of one provider: what product code calls on every store."""

    name: str
    """The bucket, container or folder this store reads and writes."""
    provider: str
    features: Features
    """What this store can do beyond these methods (``Features.of``)."""

    async def ensure_bucket(self, create: bool = True) -> None:
        """Check the bucket can be listed; create it when missing and ``create`` is set.
        Raises NotFound (missing, create off), Forbidden, BackendUnavailable."""

    async def head(self, key: str) -> ObjectMeta:
        """Raises NotFound."""

    async def get(self, key: str, byte_range: ByteRange | None = None) -> Download:
        """Streams the object or a range of it. Raises NotFound, RangeNotSatisfiable."""

    async def put(self, key: str, data: Data, content_type: str | None = None) -> ObjectMeta:
        """Writes the whole object or nothing: a failed or interrupted put leaves no object visible,
        and the previous one, if any, in place. Streams: memory does not grow with the size.
        Raises InvalidKey, Forbidden (a read-only store)."""

    async def delete(self, key: str) -> None:
        """Deleting a missing key is not an error. Raises Forbidden (a read-only store)."""

    def list(self, prefix: str = "", page_size: int = 1000) -> AsyncIterator[list[ObjectMeta]]:
        """Pages of the objects under ``prefix`` taken as a folder: ``a/b`` lists ``a/b/...``,
        never ``a/bc``. Order within and across pages is the provider's."""

    async def rename(self, src: str, dst: str) -> None:
        """Move within the bucket, replacing ``dst``: atomic on local disk, copy then delete elsewhere.
        Raises NotFound, Forbidden (a read-only store)."""

    def local_path(self, key: str) -> Path | None:
        """The file holding ``key`` on this machine; None when missing, or where the provider keeps no
        files (every store whose ``features.local_paths`` is off)."""

    async def close(self) -> None: ...


@runtime_checkable
class SigningStore(Protocol):
    """Stores whose provider honours a URL signed with the store's credentials (S3 SigV4, Azure SAS,
    GCS V4). cargohold's own links do not use these: browsers get URLs cargohold signs itself (HMAC,
    ``services/signing.py``), which work on every provider."""

    async def sign_url(self, key: str, expires_in: timedelta) -> str:
        """A GET URL that needs no credentials until it expires."""


@runtime_checkable
class FolderListing(Protocol):
    """Stores that list one folder level at a time (a delimiter listing), for browsing a bucket."""

    async def list_folder(self, prefix: str, cursor: str | None = None, page_size: int = 1000) -> FolderPage:
        """The sub-folders and objects directly under ``prefix`` (taken as a folder), one page of them,
        and a cursor for the next page (None on the last). Raises NotFound, Forbidden, BadInput (cursor)."""


@runtime_checkable
class UnfinishedUploads(Protocol):
    """Stores where an interrupted upload keeps taking space until someone aborts it (local ``.partial``
    files, S3 multipart uploads), for ``cargohold gc``. Providers that expire them by themselves (Azure
    uncommitted blocks, GCS resumable sessions: 7 days) do not offer this."""

    async def unfinished_uploads(self, before: datetime, abort: bool) -> Unfinished:
        """Uploads begun before ``before`` and never completed (invisible, but holding bytes), as
        (description, bytes); aborted when ``abort``."""


@dataclass(frozen=True)
class Features:
    """What one store can do beyond ``Store``. Each capability is the store itself, seen as that
    protocol, or None when it has not the capability: ``if (folders := store.features.folders) is not
    None: await folders.list_folder(...)``. Made by ``Features.of``, never written by hand."""

    local_paths: bool = False
    """``local_path`` gives the file that holds an object, for serving it straight from disk."""
    signing: SigningStore | None = None
    """``sign_url``: URLs the provider itself honours without credentials until they expire."""
    folders: FolderListing | None = None
    """``list_folder``: one folder level at a time, for browsing a bucket."""
    unfinished: UnfinishedUploads | None = None
    """``unfinished_uploads``: interrupted uploads that hold bytes until aborted, for ``cargohold gc``."""
    in_place: InPlaceWrites | None = None
    """``write_at`` and ``link``: an S3 multipart upload's parts written into one file, which then becomes the
    object without a copy (services/multipart.py)."""

    @classmethod
    def of(cls, store: object, *, local_paths: bool = False) -> Features:
        """The capabilities ``store``'s class implements. A store that cannot use one of them in some
        configuration takes it away with ``dataclasses.replace`` (a read-only folder aborts no uploads)."""
        return cls(
            local_paths=local_paths,
            signing=store if isinstance(store, SigningStore) else None,
            folders=store if isinstance(store, FolderListing) else None,
            unfinished=store if isinstance(store, UnfinishedUploads) else None,
            in_place=store if isinstance(store, InPlaceWrites) else None,
        )


class SharedFile(Exception):
    """``write_at`` refused: the file is also an object now (``link`` made it one), so it is never written again."""


@runtime_checkable
class InPlaceWrites(Protocol):
    """Stores that write into the middle of an object and make a second name for it without copying a byte
    (local disk: ``pwrite`` and a hard link). The multipart parts of an S3 upload go into one file at their
    offsets; completing it links that file as the object instead of writing every byte a second time."""

    async def write_at(self, key: str, offset: int, data: AsyncIterator[bytes], limit: int) -> int:
        """Writes ``data`` at ``offset`` of the object ``key`` (made if missing), durably, and returns its size;
        raises BadInput before writing past ``limit`` bytes and ``SharedFile`` when the object has another name."""

    async def link(self, src: str, dst: str, size: int) -> None:
        """``dst`` becomes a second name of ``src``, first cut to ``size`` bytes: from then on ``write_at`` of
        either refuses. ``SharedFile`` when ``src`` has another name already and is not ``size`` bytes (it is
        never cut then: that name may be an object a row uses)."""


def page_after(entries: FolderEntries, cursor: str | None, page_size: int) -> FolderPage:
    """A page of a whole folder listing, ``(key, meta or None for a folder)``, after the key ``cursor``.

    For providers whose delimiter listing comes back whole: the cursor is the last key sent."""
    entries = sorted((e for e in entries if cursor is None or e[0] > cursor), key=lambda e: e[0])
    page = entries[:page_size]
    folders = [key for key, meta in page if meta is None]
    objects = [meta for _, meta in page if meta is not None]
    return folders, objects, page[-1][0] if len(entries) > page_size else None


_BAD_SEGMENTS = frozenset(("", ".", ".."))
_BAD_CHARS = re.compile(r"[\x00-\x1f\x7f\\]")
MAX_KEY_BYTES = 1024
"""The longest key, in UTF-8 bytes: S3's limit for an object key (GCS and Azure allow as much or more), and
the size of the catalog columns that hold keys and names."""
MAX_SEGMENT_BYTES = 255
"""The longest segment (between two ``/``) of a key cargohold writes from a name it was given: a file
name's limit on the file systems local disk uses (``NAME_MAX`` of ext4, XFS, btrfs, APFS)."""
_HIDDEN_CHARS = re.compile("[\x80-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")
"""C1 controls, the bidi controls (Unicode's ``Bidi_Control``: they reorder what is shown, so that
``invoice\u202efdp.exe`` reads as "invoiceexe.pdf"), and the line and paragraph separators (they break a
log line or a listing where nothing shows)."""


def _char(c: str) -> str:
    return f"U+{ord(c):04X} ({unicodedata.name(c, 'a control character')})"


def hidden_character(text: str) -> str | None:
    """The first C1 control, bidi control or line separator in ``text``, named (``U+202E (RIGHT-TO-LEFT
    OVERRIDE)``), or None: for names that are no keys (a dataset's)."""
    found = _HIDDEN_CHARS.search(text)
    return _char(found.group()) if found else None


def check_key(key: str) -> str:
    """Refuse keys that some provider could not store unchanged, or that could escape a folder."""
    try:
        size = len(key.encode())
    except UnicodeEncodeError:  # a file name of bytes that are no UTF-8, as os.scandir gives it
        raise InvalidKey(f"object key {key!r} is not UTF-8 text") from None
    if not key or size > MAX_KEY_BYTES:
        raise InvalidKey(f"object key must be 1 to {MAX_KEY_BYTES} bytes (S3's limit)"
                         + (f", not {size:,}" if key else ""))
    if key.startswith("/") or key.endswith("/"):
        raise InvalidKey(f"object key {key!r} must not start or end with '/'")
    if not _BAD_SEGMENTS.isdisjoint(key.split("/")):
        raise InvalidKey(f"object key {key!r} has an empty, '.' or '..' path segment")
    if found := _BAD_CHARS.search(key):
        what = "a backslash" if found.group() == "\\" else f"a control character (U+{ord(found.group()):04X})"
        raise InvalidKey(f"object key {key!r} has {what}")
    return key


def check_new_key(key: str, segments: bool = True) -> str:
    """``check_key``, and what a name given to cargohold (a team-file path, an item name) must also be: no
    C1 control, bidi control or line separator (``_HIDDEN_CHARS``), and, when ``segments``, no segment over
    ``MAX_SEGMENT_BYTES``. Keys read from a bucket cargohold does not own are checked by ``check_key``
    alone: they are what they are there."""
    check_key(key)
    if hidden := hidden_character(key):
        raise InvalidKey(f"object key {key!r} has {hidden}: control, bidi and line-separator characters "
                         "change how a name is shown without showing themselves")
    if segments:
        for n, segment in enumerate(key.split("/"), 1):
            if (size := len(segment.encode())) > MAX_SEGMENT_BYTES:
                shown = segment if len(segment) <= 40 else segment[:40] + "..."
                raise InvalidKey(f"object key segment {n} ({shown!r}) is {size:,} bytes; a segment is at most "
                                 f"{MAX_SEGMENT_BYTES} (the file-name limit of local disks)")
    return key


def folder_prefix(prefix: str) -> str:
    """``a/b`` and ``a/b/`` both mean the folder ``a/b/``; the empty prefix means everything."""
    prefix = prefix.strip("/")
    if prefix:
        check_key(prefix)
        return prefix + "/"
    return ""


async def peek(data: Data, limit: int) -> tuple[bytes, AsyncIterator[bytes] | None]:
    """Up to ``limit`` bytes of ``data`` (or a little more), and the rest as a stream if there is more.

    Small objects then go up in one request; only large ones pay for a multipart upload.
    """
    if isinstance(data, bytes | bytearray | memoryview):
        if len(data) <= limit:
            return bytes(data), None
        data = _chunks_of(bytes(data), limit)
    it = aiter(data)
    buffer = bytearray()
    async for chunk in it:
        buffer += chunk
        if len(buffer) > limit:
            return bytes(buffer), it
    return bytes(buffer), None


async def chain(head: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield head
    async for chunk in rest:
        yield chunk


async def _chunks_of(data: bytes, size: int) -> AsyncIterator[bytes]:
    view = memoryview(data)
    for pos in range(0, len(view), size):
        yield bytes(view[pos : pos + size])
