"""A folder on this machine as a bucket: own storage for ``STORAGE_PROVIDER=http``, and ``fs://`` mounts.

Objects are plain files laid out exactly as the keys read (``a/b.jpg`` is ``<root>/a/b.jpg``), so a
bucket folder copied to the cloud is the same bucket. Writes go to a temporary file beside the
bucket folders and are renamed into place, so a reader never sees a partial object.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from ..errors import BadInput, Forbidden, NotFound
from .base import (
    ByteRange,
    Data,
    Download,
    Features,
    FolderEntries,
    FolderPage,
    ObjectMeta,
    SharedFile,
    Unfinished,
    check_key,
    folder_prefix,
    page_after,
)
from .page_cache import read_range

KEPT_FOLDERS = (".staging", ".multipart")
PUBLISH_ATTEMPTS = 5
"""Tries of a rename into place whose folder a concurrent delete emptied and removed in between."""


class LocalStore:
    """``read_only``: a folder cargohold links to (``fs://``) and never writes, not even beside it."""

    provider = "http"

    def __init__(self, root: Path, *, read_only: bool = False) -> None:
        self.root = root
        self.name = root.name
        self.read_only = read_only
        features = Features.of(self, local_paths=True)
        # A linked folder's parent is not cargohold's: its ``.partial`` holds no uploads of ours to abort.
        self.features = replace(features, unfinished=None, in_place=None) if read_only else features
        # Same file system as the bucket folders, so the final rename is atomic.
        self._partial = root.parent / ".partial"
        self._real_root: Path | None = None

    async def ensure_bucket(self, create: bool = True) -> None:
        try:
            if create and not self.read_only:
                await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)
            if not self.root.is_dir():
                raise NotFound(f"folder {self.root} does not exist")
            if not os.access(self.root, os.R_OK | os.X_OK):
                raise Forbidden(f"folder {self.root} is not readable by this user")
            if not self.read_only and not os.access(self.root, os.W_OK):
                raise Forbidden(f"folder {self.root} is not writable by this user")
        except PermissionError as exc:
            raise Forbidden(f"cannot create {self.root}: {exc.strerror}") from exc

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _existing(self, key: str) -> Path:
        """The file for ``key``, refusing links that lead outside the folder."""
        path = self._path(key)
        real = Path(os.path.realpath(path))
        if self._real_root is None:
            self._real_root = Path(os.path.realpath(self.root))
        if not real.is_relative_to(self._real_root):
            raise NotFound(f"{key!r} leads outside {self.name}")
        if not real.is_file():
            raise NotFound(f"no object {key!r} in {self.name}")
        return real

    def _meta(self, key: str, st: os.stat_result) -> ObjectMeta:
        return ObjectMeta(
            key=key,
            size=st.st_size,
            etag=f'"{st.st_mtime_ns:x}-{st.st_size:x}"',
            last_modified=datetime.fromtimestamp(st.st_mtime, UTC),
        )

    async def head(self, key: str) -> ObjectMeta:
        path = self._existing(key)
        return self._meta(key, await asyncio.to_thread(path.stat))

    async def get(self, key: str, byte_range: ByteRange | None = None) -> Download:
        path = self._existing(key)
        fh = await asyncio.to_thread(io.FileIO, path, "rb")
        try:
            meta = self._meta(key, os.fstat(fh.fileno()))
            start, end = byte_range.resolve(meta.size) if byte_range else (0, meta.size)
        except BaseException:
            fh.close()
            raise
        return Download(meta, start, end, _read_file(fh, start, end))

    async def put(self, key: str, data: Data, content_type: str | None = None) -> ObjectMeta:
        self._writable()
        path = self._path(key)
        tmp = await self._write_temp(data)
        try:
            await asyncio.to_thread(self._publish, tmp, path, key)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return await self.head(key)

    async def _write_temp(self, data: Data) -> Path:
        await asyncio.to_thread(self._partial.mkdir, parents=True, exist_ok=True)
        tmp = self._partial / f"{uuid.uuid4().hex}.part"
        fh = await asyncio.to_thread(open, tmp, "wb")
        writing: asyncio.Future[int] | None = None
        try:
            if isinstance(data, bytes | bytearray | memoryview):
                await asyncio.to_thread(fh.write, data)
            else:
                async for chunk in data:
                    # Small chunks are cheaper written on the loop than handed to a thread.
                    if len(chunk) < 65536:
                        if writing is not None:
                            await writing
                            writing = None
                        fh.write(chunk)
                        continue
                    # One write in flight while the next chunk arrives (and is hashed, by the caller).
                    if writing is not None:
                        await writing
                    writing = asyncio.ensure_future(asyncio.to_thread(fh.write, chunk))
                if writing is not None:
                    await writing
                    writing = None
            await asyncio.to_thread(_flush_and_sync, fh)
        except BaseException:
            if writing is not None:
                with contextlib.suppress(BaseException):
                    await writing
            fh.close()
            tmp.unlink(missing_ok=True)
            raise
        fh.close()
        return tmp

    async def write_at(self, key: str, offset: int, data: AsyncIterator[bytes], limit: int) -> int:
        self._writable()
        path = self._path(key)
        fd = await asyncio.to_thread(_open_unshared, path)
        written = 0
        writing: asyncio.Future[int] | None = None
        try:
            async for chunk in data:
                if written + len(chunk) > limit:
                    raise BadInput(f"more than the {limit:,} bytes announced for {key!r}")
                if writing is not None:  # one write in flight while the next chunk arrives
                    await writing
                writing = asyncio.ensure_future(asyncio.to_thread(os.pwrite, fd, chunk, offset + written))
                written += len(chunk)
            if writing is not None:
                await writing
                writing = None
            await asyncio.to_thread(os.fdatasync, fd)
        finally:
            if writing is not None:
                with contextlib.suppress(BaseException):
                    await writing
            os.close(fd)
        return written

    async def link(self, src: str, dst: str, size: int) -> None:
        self._writable()
        await asyncio.to_thread(self._link, self._existing(src), self._path(dst), dst, size)

    def _link(self, source: Path, target: Path, key: str, size: int) -> None:
        st = os.stat(source)
        if st.st_nlink > 1 and st.st_size != size:
            # An object already (a completion cut short after its link): never cut, another row may name it.
            raise SharedFile(f"{source.name} is an object of {st.st_size:,} bytes already")
        if st.st_size != size:
            os.truncate(source, size)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, target)
        except FileExistsError as exc:
            raise BadInput(f"object key {key!r} exists already") from exc

    def _publish(self, tmp: Path, path: Path, key: str) -> None:
        for attempt in range(PUBLISH_ATTEMPTS):
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, path)
                return
            except FileNotFoundError:
                if attempt == PUBLISH_ATTEMPTS - 1:  # a concurrent delete kept removing the emptied parent folder
                    raise
            except (NotADirectoryError, FileExistsError, IsADirectoryError) as exc:
                # mkdir(exist_ok=True) raises FileExistsError also when the folder it found is removed before it
                # looks again (a concurrent delete or rename emptied it, e.g. `.staging/` between two uploads):
                # only a file where a folder must be, or a folder where the file must be, is a clash.
                if attempt < PUBLISH_ATTEMPTS - 1 and not self._clashes(path):
                    continue
                raise BadInput(
                    f"object key {key!r} clashes with another key on disk (one names a file, the other a "
                    "folder); local disk cannot hold both"
                ) from exc
            except PermissionError as exc:
                raise Forbidden(f"cannot write {path}: {exc.strerror}") from exc

    def _clashes(self, path: Path) -> bool:
        if path.is_dir():
            return True
        parent = path.parent
        while parent != self.root and parent.is_relative_to(self.root):
            if parent.exists() and not parent.is_dir():
                return True
            parent = parent.parent
        return False

    async def delete(self, key: str) -> None:
        self._writable()
        path = self._path(key)
        await asyncio.to_thread(self._remove, path)

    def _remove(self, path: Path) -> None:
        try:
            path.unlink()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return
        self._remove_empty_parents(path)

    def _remove_empty_parents(self, path: Path) -> None:
        # No empty folders left behind: the layout stays that of a cloud bucket. The uploads' own top folders
        # (`.staging/`, `.multipart/`) stay: every upload passes through them, and removing one between another
        # upload's mkdir and its rename failed that upload (100 concurrent uploads, tests/system/test_crash.py).
        parent = path.parent
        while parent != self.root and parent.is_relative_to(self.root):
            if parent.parent == self.root and parent.name in KEPT_FOLDERS:
                break
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent

    def _inside(self, path: Path) -> bool:
        """Whether ``path`` is in the folder once symbolic links are resolved (a prefix through a link is not)."""
        return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(self.root))

    async def list(self, prefix: str = "", page_size: int = 1000) -> AsyncIterator[list[ObjectMeta]]:
        folder = folder_prefix(prefix)
        top = self.root / folder if folder else self.root
        walker = self._walk(top, folder) if self._inside(top) else iter(())
        while True:
            page = await asyncio.to_thread(_take, walker, page_size)
            if not page:
                return
            yield page

    def _walk(self, top: Path, key_prefix: str) -> Iterator[ObjectMeta]:
        try:
            entries = sorted(os.scandir(top), key=lambda e: e.name)
        except (FileNotFoundError, NotADirectoryError):
            return
        for entry in entries:
            key = key_prefix + entry.name
            if entry.is_dir(follow_symlinks=False):
                yield from self._walk(Path(entry.path), key + "/")
            elif entry.is_file(follow_symlinks=False):
                yield self._meta(key, entry.stat(follow_symlinks=False))

    async def list_folder(self, prefix: str, cursor: str | None = None, page_size: int = 1000) -> FolderPage:
        folder = folder_prefix(prefix)
        return page_after(await asyncio.to_thread(self._folder, folder), cursor, page_size)

    def _folder(self, folder: str) -> FolderEntries:
        # Symbolic links are neither listed nor followed (as in _walk): a listing stays inside the folder.
        top = self.root / folder if folder else self.root
        if not self._inside(top):
            return []
        try:
            scan = list(os.scandir(top))
        except (FileNotFoundError, NotADirectoryError):
            return []
        except PermissionError as exc:
            raise Forbidden(f"cannot list {self.name}/{folder}: {exc.strerror}") from exc
        entries: FolderEntries = []
        for entry in scan:
            key = folder + entry.name
            try:
                if entry.is_dir(follow_symlinks=False):
                    entries.append((key + "/", None))
                elif entry.is_file(follow_symlinks=False):
                    entries.append((key, self._meta(key, entry.stat(follow_symlinks=False))))
            except FileNotFoundError:
                continue  # removed while listing
        return entries

    async def rename(self, src: str, dst: str) -> None:
        self._writable()
        source = self._existing(src)
        await asyncio.to_thread(self._publish, source, self._path(dst), dst)
        await asyncio.to_thread(self._remove_empty_parents, self._path(src))

    def local_path(self, key: str) -> Path | None:
        if not self.read_only:
            # Own storage: cargohold made every name in this folder (keys are checked, content keys are
            # hex), so one stat will do. This is the hot path of serving a local item; resolving links
            # component by component cost 16 lstat calls and most of a request's time.
            path = os.path.join(self.root, check_key(key))
            return Path(path) if os.path.isfile(path) else None
        try:
            return self._existing(key)
        except NotFound:
            return None

    async def unfinished_uploads(self, before: datetime, abort: bool) -> Unfinished:
        if self.read_only or not self._partial.is_dir():
            return []
        found = []
        for path in await asyncio.to_thread(lambda: list(self._partial.iterdir())):
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            if datetime.fromtimestamp(st.st_mtime, UTC) < before:
                found.append((str(path), st.st_size))
                if abort:
                    path.unlink(missing_ok=True)
        return found

    async def close(self) -> None:
        return None

    def _writable(self) -> None:
        if self.read_only:
            raise Forbidden(f"{self.name} is read-only: cargohold never writes to linked folders")


def _open_unshared(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    if os.fstat(fd).st_nlink > 1:  # linked as an object (``link``): its bytes are that object's now
        os.close(fd)
        raise SharedFile(f"{path.name} is an object now")
    return fd


def _flush_and_sync(fh: io.BufferedWriter) -> None:
    fh.flush()
    os.fsync(fh.fileno())


def _take(it: Iterator[ObjectMeta], n: int) -> list[ObjectMeta]:
    page = []
    for meta in it:
        page.append(meta)
        if len(page) >= n:
            break
    return page


async def _read_file(fh: io.FileIO, start: int, end: int) -> AsyncIterator[bytes]:
    try:
        async for chunk in read_range(fh.fileno(), start, end):
            yield chunk
    finally:
        fh.close()
