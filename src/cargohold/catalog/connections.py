"""Connections made at run time, kept in the catalog so every replica sees them.

The fields that are not secret are a JSON object in ``settings``; the secret ones (``secret_key``,
a Google service account's JSON) are a JSON object encrypted with Fernet (AES-128-CBC + HMAC-SHA256)
under a key derived by HKDF-SHA256 from the instance secret (``SECRET_KEY`` or ``secret.key``). A
replica with another secret cannot read them: its connection is shown as unusable, never guessed.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from ..errors import AlreadyExists, FieldProblem
from ..settings import Settings
from ..storage.connection import Connection, ProviderName
from ..storage.connections import DEFAULT_METADATA_ENDPOINT, NamedConnection, make_connection
from .db import Catalog
from .models import ConnectionRecord, utcnow

SECRET_FIELDS = ("secret_key", "credentials_json")
_HKDF_INFO = b"cargohold connection secrets v1"


class SecretBox:
    """Encrypts and decrypts the secret fields with a key derived from the instance secret."""

    def __init__(self, instance_secret: bytes, info: bytes = _HKDF_INFO) -> None:
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"cargohold", info=info).derive(instance_secret)
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def seal(self, values: dict[str, str]) -> str | None:
        return self._fernet.encrypt(json.dumps(values).encode()).decode() if values else None

    def open(self, token: str | None) -> dict[str, str]:
        """Raises cryptography's InvalidToken when the secret is not the one that sealed it."""
        if not token:
            return {}
        values = json.loads(self._fernet.decrypt(token.encode()))
        return {str(k): str(v) for k, v in values.items()}


@dataclass(frozen=True)
class StoredFields:
    """A catalog connection's fields: the plain ones and the decrypted secrets (None if undecryptable)."""

    name: str
    provider: str
    settings: dict[str, Any]
    secrets: dict[str, str] | None


class CatalogConnections:
    def __init__(self, catalog: Catalog, secret: bytes, metadata_endpoint: str = DEFAULT_METADATA_ENDPOINT, *,
                 fs_roots: tuple[Path, ...] = (), fs_protected: tuple[Path, ...] = ()) -> None:
        self.catalog = catalog
        self.box = SecretBox(secret)
        self.metadata_endpoint = metadata_endpoint
        self.fs_roots = fs_roots
        self.fs_protected = fs_protected

    @classmethod
    def of(cls, catalog: Catalog, secret: bytes, settings: Settings) -> CatalogConnections:
        return cls(catalog, secret, settings.aws_ec2_metadata_service_endpoint, fs_roots=settings.links_fs_roots,
                   fs_protected=(settings.home, settings.data_path))

    def make(self, name: str, values: dict[str, Any]) -> NamedConnection:
        """``make_connection`` under this server's rules for connections made through the API. A server
        folder is checked against ``LINKS_FS_ROOTS`` again each time it is read, so one taken off that
        list stops working."""
        return make_connection(name, values, "catalog", metadata_endpoint=self.metadata_endpoint,
                               fs_roots=self.fs_roots, fs_protected=self.fs_protected)

    async def load(self) -> list[NamedConnection]:
        """Every stored connection, as the registry uses them (the loader ``ConnectionRegistry`` calls)."""
        async with self.catalog.session() as session:
            rows = (await session.scalars(select(ConnectionRecord).order_by(ConnectionRecord.name))).all()
        return [self._named(row) for row in rows]

    async def fields(self, name: str) -> StoredFields | None:
        async with self.catalog.session() as session:
            row = await session.scalar(select(ConnectionRecord).where(ConnectionRecord.name == name))
        if row is None:
            return None
        try:
            secrets = self.box.open(row.secrets)
        except InvalidToken:
            secrets = None
        return StoredFields(row.name, row.provider, json.loads(row.settings), secrets)

    async def save(self, named: NamedConnection, settings: dict[str, Any], secrets: dict[str, str]) -> bool:
        """Create or replace the connection; True when it is new."""
        sealed = self.box.seal({k: v for k, v in secrets.items() if v})
        text = json.dumps(settings, sort_keys=True)
        try:
            async with self.catalog.session() as session, session.begin():
                row = await session.scalar(select(ConnectionRecord).where(ConnectionRecord.name == named.name))
                created = row is None
                if row is None:
                    row = ConnectionRecord(name=named.name, provider=named.provider, settings=text, secrets=sealed)
                    session.add(row)
                else:
                    row.provider, row.settings, row.secrets, row.updated_at = named.provider, text, sealed, utcnow()
        except IntegrityError as exc:
            raise AlreadyExists(f"connection {named.name!r} was created meanwhile by another request; "
                                "send the request again to change it") from exc
        return created

    async def delete(self, name: str) -> bool:
        async with self.catalog.session() as session, session.begin():
            result = await session.execute(delete(ConnectionRecord).where(ConnectionRecord.name == name))
        return bool(getattr(result, "rowcount", 0))

    def _named(self, row: ConnectionRecord) -> NamedConnection:
        settings: dict[str, Any] = json.loads(row.settings)
        try:
            secrets = self.box.open(row.secrets)
        except InvalidToken:
            return self._unusable(row, settings, "its secrets cannot be decrypted with this server's SECRET_KEY; "
                                  "give every replica the same SECRET_KEY, or enter the secrets again")
        try:
            named = self.make(row.name, {"provider": row.provider, **settings, **secrets})
        except FieldProblem as exc:
            return self._unusable(row, settings, f"{exc.field or 'connection'}: {exc.problem}")
        return replace(named, updated_at=row.updated_at)

    def _unusable(self, row: ConnectionRecord, settings: dict[str, Any], problem: str) -> NamedConnection:
        def text(key: str) -> str:
            return str(settings.get(key, ""))

        conn = Connection(cast(ProviderName, row.provider), endpoint=text("endpoint"), access_key=text("access_key"),
                          region=text("region"), iam_role=text("iam_role"),
                          root=Path(text("path")) if row.provider == "fs" and text("path") else None)
        buckets = (text("storage_id"),) if row.provider == "fs" else tuple(str(b) for b in settings.get("buckets", []))
        return NamedConnection(row.name, conn, buckets, "catalog", updated_at=row.updated_at, problem=problem,
                               usable=False)
