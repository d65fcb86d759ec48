"""Connections: credentials for buckets cargohold reads but does not own, and the stores they open.

Two sources. ``remote_links.yml`` (``REMOTE_LINKS_PATH``) is each replica's own file, read-only
through the API; connections made at run time live in the catalog, shared by replicas, and reach
this layer through a loader the caller passes in (``storage/`` knows no database). A link's
provider and bucket pick the one connection that lists that bucket.

Both sources are looked at again at most every ``check_every`` seconds, when a lookup happens: the
file when its modification time, size or inode changed. A file that turns bad is reported (logged,
and kept in ``file_error``) while the connections read before stay in force.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ..errors import ConfigError, ConnectionsFileError, FieldProblem, Forbidden, NotFound
from . import providers
from .base import Store
from .connection import Connection
from .connections_file import FieldValue, read_entries
from .providers import CONNECTION_PROVIDERS, ConnectionProviderName, Origin
from .registry import open_store

log = logging.getLogger("cargohold.connections")

PROVIDERS = CONNECTION_PROVIDERS
"""The providers a connection may name (``storage/providers.py``)."""
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
CHECK_EVERY = 2.0
"""Seconds between two looks at the file and the catalog."""
DEFAULT_METADATA_ENDPOINT = "http://169.254.169.254"


def fields_of(provider: str, origin: Origin) -> tuple[str, ...]:
    """The fields a connection of ``provider`` takes besides ``provider``. The catalog holds a Google
    service account's JSON itself (``credentials_json``), a file names it (``credentials_path``)."""
    return providers.PROVIDERS[provider].field_names(origin)


@dataclass(frozen=True)
class NamedConnection:
    name: str
    connection: Connection
    buckets: tuple[str, ...]
    """The buckets (containers) it serves; for ``fs``, its one ``storage_id``."""
    origin: Origin
    line: int | None = None
    """Where ``remote_links.yml`` defines it."""
    updated_at: datetime | None = None
    problem: str | None = None
    """Why it serves fewer buckets than it lists, or none (``usable`` false)."""
    usable: bool = True

    @property
    def provider(self) -> str:
        return self.connection.provider

    @property
    def read_only(self) -> bool:
        """File connections change only by editing the file."""
        return self.origin == "file"

    @property
    def has_secret(self) -> bool:
        c = self.connection
        return bool(c.secret_key or c.credentials_json or c.credentials_path)

    def secrets(self) -> list[str]:
        """The secret values, for scrubbing them out of any text a provider sends back."""
        return [s for s in (self.connection.secret_key, self.connection.credentials_json) if s]


def make_connection(
    name: str, values: Mapping[str, FieldValue], origin: Origin, *,
    metadata_endpoint: str = DEFAULT_METADATA_ENDPOINT, base_dir: Path | None = None,
    fs_roots: tuple[Path, ...] = (), fs_protected: tuple[Path, ...] = (),
) -> NamedConnection:
    """A connection from its fields as written (in the file or in an API request), every field checked.
    Raises FieldProblem. Messages never hold a secret's value.

    A server folder made through the API (origin ``catalog``) must lie under one of ``fs_roots`` (the
    operator's ``LINKS_FS_ROOTS``) and neither hold nor sit inside a ``fs_protected`` folder (the instance
    home, ``DATA_PATH``): which folders of the server may be read is the operator's decision."""
    if not re.fullmatch(NAME_PATTERN, name):
        raise FieldProblem(None, "a name is 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit",
                           "rename it, e.g. my-car-datasets")
    provider = values.get("provider")
    if not provider:
        raise FieldProblem(None, "it names no provider",
                           f"add `provider: {PROVIDERS[0]}` (or {', '.join(PROVIDERS[1:])})")
    if not isinstance(provider, str) or provider not in PROVIDERS:
        raise FieldProblem("provider", f"unknown provider {provider!r}", f"write one of {', '.join(PROVIDERS)}")
    spec = providers.PROVIDERS[provider]
    allowed = spec.field_names(origin)
    for field, value in values.items():
        if field != "provider" and field not in allowed:
            raise FieldProblem(field, f"{field!r} is not a field of {provider} connections",
                               f"remove it; {provider} connections take {', '.join(allowed)}")
        if field != "buckets" and not isinstance(value, str):
            raise FieldProblem(field, f"{field!r} must be text, not a list", f"write `{field}: value`")
    text = {k: v.strip() for k, v in values.items() if isinstance(v, str)}
    prefix = f"connection {name!r} field "
    if spec.server_folder:
        folder = _folder(provider, text, prefix)
        if origin == "catalog":
            assert folder.root is not None
            _check_mountable(folder.root, fs_roots, fs_protected)
        return NamedConnection(name, folder, (_storage_id(text),), origin)
    conn = Connection(
        provider,
        endpoint=text.get("endpoint", ""), access_key=text.get("access_key", ""),
        secret_key=text.get("secret_key", ""), region=text.get("region", ""), iam_role=text.get("iam_role", ""),
        credentials_path=_path(text.get("credentials_path", ""), base_dir),
        credentials_json=text.get("credentials_json", ""), metadata_endpoint=metadata_endpoint, setting_prefix=prefix,
    )
    _check_credentials(conn, origin)
    try:
        conn.endpoint_url()
    except ConfigError as exc:
        raise FieldProblem("endpoint", exc.problem, exc.fix) from None
    except ValueError:
        raise FieldProblem("endpoint", "its port is not a number from 1 to 65535",
                           "write the endpoint as host, host:port or http://host:port") from None
    return NamedConnection(name, conn, _buckets(values.get("buckets")), origin)


def _path(text: str, base_dir: Path | None) -> Path | None:
    if not text:
        return None
    path = Path(text).expanduser()
    return base_dir / path if base_dir is not None and not path.is_absolute() else path


def _check_credentials(conn: Connection, origin: Origin) -> None:
    from ..settings import parse_service_account, read_service_account

    if conn.provider == "minio":
        if conn.iam_role and (conn.access_key or conn.secret_key):
            raise FieldProblem("iam_role", "both keys and an IAM role are given",
                               "keep one: remove iam_role, or access_key and secret_key")
        if not conn.iam_role:
            for field, value in (("access_key", conn.access_key), ("secret_key", conn.secret_key)):
                if not value:
                    raise FieldProblem(field, f"{field} is missing", "give access_key and secret_key, or an iam_role")
    elif conn.provider == "azure":
        for field, value in (("access_key", conn.access_key), ("secret_key", conn.secret_key)):
            if not value:
                raise FieldProblem(field, f"{field} is missing",
                                   "give access_key (the storage account name) and secret_key (its key)")
        try:
            base64.b64decode(conn.secret_key, validate=True)
        except ValueError:
            raise FieldProblem("secret_key", "an Azure account key is base64 text, and this is not",
                               "copy key1 or key2 from the storage account's Access keys page") from None
    elif conn.provider == "google":
        try:
            if conn.credentials_json:
                parse_service_account(conn.credentials_json, "the service-account JSON", "credentials_json")
            elif conn.credentials_path is not None:
                read_service_account(conn.credentials_path, "credentials_path")
            else:
                field = "credentials_path" if origin == "file" else "credentials_json"
                raise FieldProblem(field, f"{field} is missing: a google connection needs a service-account key",
                                   "give credentials_path (a file) in remote_links.yml, or credentials_json (the "
                                   "key file's content) through the API")
        except ConfigError as exc:
            raise FieldProblem(exc.key, exc.problem, exc.fix) from None


def _buckets(value: FieldValue | None) -> tuple[str, ...]:
    if value is None or value == "" or value == []:
        raise FieldProblem("buckets", "it lists no buckets", "list the buckets it serves: buckets: [first, second]")
    if isinstance(value, str):
        raise FieldProblem("buckets", "buckets must be a list", f"write buckets: [{value}]")
    seen: list[str] = []
    for bucket in (b.strip() for b in value):
        if not bucket or len(bucket) > 255 or any(c in bucket for c in "/\\") or any(c.isspace() for c in bucket):
            raise FieldProblem("buckets", f"{bucket!r} is not a bucket name",
                               "write bucket names without '/', '\\' or spaces")
        if bucket in seen:
            raise FieldProblem("buckets", f"{bucket!r} is listed twice", "list it once")
        seen.append(bucket)
    return tuple(seen)


def _folder(provider: ConnectionProviderName, text: Mapping[str, str], prefix: str) -> Connection:
    raw = text.get("path", "")
    if not raw:
        raise FieldProblem("path", "path is missing", "give the folder on the server: path: /data/datasets")
    path = Path(raw)
    if not path.is_absolute():
        raise FieldProblem("path", f"{raw!r} is not an absolute path", "write the whole path: /data/datasets")
    if not path.is_dir():
        raise FieldProblem("path", f"{raw} is not an existing folder on this server",
                           "create it, mount it, or correct the path")
    return Connection(provider, root=path, setting_prefix=prefix)


def _check_mountable(folder: Path, roots: tuple[Path, ...], protected: tuple[Path, ...]) -> None:
    if not roots:
        raise FieldProblem("path", "this server lets no server folder be connected through the API",
                           "the operator lists the folders that may be, e.g. LINKS_FS_ROOTS=/data/datasets in .env, "
                           "or connects it in remote_links.yml")
    real = folder.resolve()  # symlinks followed: a link inside a root that points elsewhere is not under it
    if not any(real.is_relative_to(root.resolve()) for root in roots):
        raise FieldProblem("path", f"{folder} is not under a folder this server allows ({real} once links are "
                           "followed)" if real != folder else f"{folder} is not under a folder this server allows",
                           f"choose a folder under {', '.join(str(r) for r in roots)} (LINKS_FS_ROOTS)")
    for own in (p.resolve() for p in protected):
        if real.is_relative_to(own) or own.is_relative_to(real):
            raise FieldProblem("path", f"{folder} holds or lies in cargohold's own files ({own})",
                               "choose a folder that holds only the data to link")


def _storage_id(text: Mapping[str, str]) -> str:
    storage_id = text.get("storage_id", "")
    if not storage_id:
        raise FieldProblem("storage_id", "storage_id is missing",
                           "name the folder for links: storage_id: local-datasets (fs://local-datasets/...)")
    if "/" in storage_id or any(c.isspace() for c in storage_id) or len(storage_id) > 255:
        raise FieldProblem("storage_id", f"{storage_id!r} cannot be the host of an fs:// link",
                           "use letters, digits, '.', '_' and '-'")
    return storage_id


def load_file(path: Path, metadata_endpoint: str = DEFAULT_METADATA_ENDPOINT) -> list[NamedConnection]:
    """Every connection ``remote_links.yml`` defines, checked one by one and together.
    Raises ConnectionsFileError (file, line, connection name)."""
    owners: dict[tuple[str, str], str] = {}
    found = []
    for entry in read_entries(path):
        try:
            named = make_connection(entry.name, entry.fields, "file", metadata_endpoint=metadata_endpoint,
                                    base_dir=path.parent)
        except FieldProblem as exc:
            raise ConnectionsFileError(path, entry.line_of(exc.field), entry.name, exc.problem, exc.fix) from None
        for i, bucket in enumerate(named.buckets):
            other = owners.setdefault((named.provider, bucket), entry.name)
            if other != entry.name:
                folder = providers.PROVIDERS[named.provider].server_folder
                what = "storage_id" if folder else "bucket"
                line = entry.line_of("storage_id") if folder else entry.bucket_lines[i]
                raise ConnectionsFileError(
                    path, line, entry.name, f"{what} {bucket!r} is listed by connection {other!r} too",
                    f"list each {what} in one connection only: a link's {what} picks its connection")
        found.append(dataclasses.replace(named, line=entry.line))
    return found


CatalogLoader = Callable[[], Awaitable[list[NamedConnection]]]


class ConnectionRegistry:
    """The connections in force, and a store per (connection, bucket) opened on first use."""

    def __init__(self, file_path: Path, *, metadata_endpoint: str = DEFAULT_METADATA_ENDPOINT,
                 catalog: CatalogLoader | None = None, check_every: float = CHECK_EVERY) -> None:
        self.file_path = file_path
        self.metadata_endpoint = metadata_endpoint
        self.check_every = check_every
        self._load_catalog = catalog
        self._file: list[NamedConnection] = []
        self._file_signature: tuple[int, int, int] | None = None
        self._file_error: str | None = None
        self._catalog: list[NamedConnection] = []
        self._in_force: list[NamedConnection] = []
        self._by_bucket: dict[tuple[str, str], NamedConnection] = {}
        self._checked = float("-inf")
        self._opened = False
        self._lock = asyncio.Lock()
        self._stores: dict[tuple[str, str, str], tuple[Connection, Store]] = {}
        self._retired: list[Store] = []

    async def open(self) -> ConnectionRegistry:
        """The first read: a bad file or an unreadable catalog raises here (start-up stops)."""
        await self._refresh()
        self._opened = True
        return self

    @property
    def file_error(self) -> str | None:
        """Why the file as it is now cannot be used (the connections read before it stay in force)."""
        return self._file_error

    def invalidate(self) -> None:
        """Read both sources again at the next lookup (after a change made through this process)."""
        self._checked = float("-inf")

    async def all(self) -> list[NamedConnection]:
        """Every connection: the file's in the order written, then the catalog's by name."""
        await self._refresh()
        return list(self._in_force)

    async def get(self, name: str) -> NamedConnection:
        """The connection called ``name`` (the file's when both have one). Raises NotFound."""
        await self._refresh()
        for named in self._in_force:
            if named.name == name:
                return named
        raise NotFound(f"no connection is called {name!r}")

    async def store_for(self, provider: str, bucket: str) -> tuple[NamedConnection, Store]:
        """The connection that lists ``bucket`` for ``provider`` (one of ``PROVIDERS``) and its store.
        Raises NotFound when none lists it."""
        await self._refresh()
        named = self._by_bucket.get((provider, bucket))
        if named is None:
            spec = providers.PROVIDERS.get(provider)
            scheme = spec.scheme if spec else provider
            what = "has storage_id" if spec and spec.server_folder else "lists bucket"
            raise NotFound(f"no connection {what} {bucket!r} for {scheme}:// links; add it to remote_links.yml "
                           "or Settings → Cloud connections")
        return named, await self.store(named, bucket)

    async def store(self, named: NamedConnection, bucket: str) -> Store:
        """The store for one of ``named``'s buckets, opened once and kept while the connection is unchanged."""
        if bucket not in named.buckets:
            raise NotFound(f"connection {named.name!r} does not list bucket {bucket!r}")
        if not named.usable:
            raise Forbidden(f"connection {named.name!r} cannot be used: {named.problem}")
        key = (named.origin, named.name, bucket)
        cached = self._stores.get(key)
        if cached is not None and cached[0] == named.connection:
            return cached[1]
        store = await asyncio.to_thread(open_store, named.connection, bucket)
        cached = self._stores.get(key)  # another request may have opened it meanwhile
        if cached is not None and cached[0] == named.connection:
            self._retired.append(store)
            return cached[1]
        if cached is not None:
            self._retired.append(cached[1])
        self._stores[key] = (named.connection, store)
        return store

    async def close(self) -> None:
        stores = [s for _, s in self._stores.values()] + self._retired
        self._stores.clear()
        self._retired.clear()
        for store in stores:
            with contextlib.suppress(Exception):
                await store.close()

    async def _refresh(self) -> None:
        if time.monotonic() - self._checked < self.check_every:
            return
        async with self._lock:
            if time.monotonic() - self._checked < self.check_every:
                return
            changed = await asyncio.to_thread(self._read_file)
            changed = await self._read_catalog() or changed
            if changed:
                self._rebuild()
            self._checked = time.monotonic()

    def _read_file(self) -> bool:
        try:
            st = self.file_path.stat()
        except FileNotFoundError:
            signature = None
        else:
            signature = (st.st_mtime_ns, st.st_size, st.st_ino)
        if signature == self._file_signature and self._opened:
            return False
        if signature is None and self._file:
            log.warning("%s is gone: its %d connections are no longer in force", self.file_path, len(self._file))
        self._file_signature = signature
        try:
            self._file = load_file(self.file_path, self.metadata_endpoint) if signature else []
        except ConnectionsFileError as exc:
            if not self._opened:
                raise
            self._file_error = str(exc)
            log.error("%s -- the connections read before stay in force until the file is fixed", exc)
            return False
        if self._file_error is not None:
            log.warning("%s is good again: %d connections", self.file_path, len(self._file))
        self._file_error = None
        return True

    async def _read_catalog(self) -> bool:
        if self._load_catalog is None:
            return False
        try:
            rows = await self._load_catalog()
        except Exception as exc:
            if not self._opened:
                raise
            log.warning("cannot read connections from the catalog (%s: %s); the ones read before stay in force",
                        type(exc).__name__, exc)
            return False
        changed = rows != self._catalog
        self._catalog = rows
        return changed

    def _rebuild(self) -> None:
        in_force = list(self._file)
        by_bucket = {(n.provider, b): n for n in self._file for b in n.buckets}
        file_names = {n.name for n in self._file}
        for named in sorted(self._catalog, key=lambda n: (n.updated_at is None, n.updated_at, n.name)):
            if named.name in file_names:
                named = dataclasses.replace(named, usable=False, problem="remote_links.yml has a connection of "
                                            "this name, which is the one in force; delete this one")
            else:
                taken = [(b, by_bucket[(named.provider, b)].name) for b in named.buckets
                         if (named.provider, b) in by_bucket]
                if taken:
                    notes = [named.problem] if named.problem else []
                    notes += [f"bucket {b!r} is served by connection {other!r}" for b, other in taken]
                    named = dataclasses.replace(named, problem="; ".join(notes))
                if named.usable:
                    for bucket in named.buckets:
                        by_bucket.setdefault((named.provider, bucket), named)
            in_force.append(named)
        in_force[len(self._file):] = sorted(in_force[len(self._file):], key=lambda n: n.name)
        self._in_force = in_force
        self._by_bucket = by_bucket
        live: dict[tuple[str, str, str], Connection] = {
            (n.origin, n.name, b): n.connection for n in in_force for b in n.buckets}
        for key in [k for k, (conn, _) in self._stores.items() if live.get(k) != conn]:
            self._retired.append(self._stores.pop(key)[1])
