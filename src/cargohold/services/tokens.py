"""API tokens: made here, shown once, stored only as a SHA-256 hash.

Tokens carry 256 random bits, so a plain hash is enough to store them (no password stretching
needed) and lets a request be checked with one indexed lookup.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from ..catalog.models import ApiToken, Dataset, utcnow
from ..errors import AlreadyExists, BadInput, NotFound, Unauthenticated
from ..instance import ADMIN_TOKEN_FILE, write_private_file
from ..storage.base import hidden_character
from ..storage.connections import NAME_PATTERN
from . import s3_keys
from .access import ROLES, Role, Scope, file_folders
from .context import Context
from .items import find_dataset

log = logging.getLogger("cargohold")

PREFIX = "chd_"


@dataclass(frozen=True)
class Principal:
    name: str
    token_id: int
    """The token's row id, never given to another token: signed URLs carry it (services/signing.py)."""
    scope: Scope

    @property
    def is_admin(self) -> bool:
        return self.scope.role == "admin"


@dataclass(frozen=True)
class TokenInfo:
    """A token as it is listed: never the token itself."""

    name: str
    role: str
    datasets: list[str] | None
    """The names of the datasets it is limited to (a deleted one: ``#id``); None: not limited by dataset."""
    files: list[str] | None
    connections: list[str]
    created_at: datetime
    last_used_at: datetime | None
    s3_access_key: str | None = None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class NewToken:
    """What is shown once: the token, and its S3 key pair when one was asked for."""

    token: str
    s3_access_key: str | None = None
    s3_secret: str | None = None


async def create_token(ctx: Context, name: str, role: str, *, datasets: Sequence[str] | None = None,
                       files: Sequence[str] | None = None, connections: Sequence[str] | None = None,
                       s3: bool = False) -> NewToken:
    """A new token, shown once. ``datasets`` by name (or id), ``files`` as folders; either makes the token
    limited (services/access.py): the other, when not given, then reaches nothing. ``s3``: also an S3 key
    pair (the S3 endpoint, docs/S3.md), which may do what the token may and dies with it."""
    if role not in ROLES:
        raise BadInput(f"role must be one of {', '.join(ROLES)}")
    if not name or len(name) > 255 or hidden_character(name) or any(ord(c) < 32 or c == "/" for c in name):
        raise BadInput("a token needs a name of 1 to 255 characters, without '/' or control, bidi or "
                       "line-separator characters")
    limited = datasets is not None or files is not None
    if role == "admin" and (limited or connections):
        raise BadInput("an admin token reaches everything: limits (datasets, files, connections) are for read "
                       "and write tokens")
    dataset_ids = sorted({await _dataset_id(ctx, d.strip()) for d in datasets or ()}) if limited else None
    folders = list(file_folders(files or ())) if limited else None
    names = sorted({c.strip() for c in connections or ()}) or None
    for connection in names or ():
        if not re.fullmatch(NAME_PATTERN, connection):
            raise BadInput(f"connection {connection!r}: a connection name is 1-128 letters, digits, '.', '_' or '-'")
    token = PREFIX + secrets.token_urlsafe(32)
    access_key, secret = s3_keys.new_pair() if s3 else (None, None)
    async with ctx.catalog.session() as session:
        session.add(ApiToken(name=name, role=role, token_hash=hash_token(token), datasets=dataset_ids,
                             files=folders, connections=names, s3_access_key=access_key,
                             s3_secret=s3_keys.seal(ctx, secret) if secret else None))
        try:
            await session.commit()
        except IntegrityError:
            raise AlreadyExists(f"a token named {name!r} exists; revoke it first or pick another name") from None
    return NewToken(token, access_key, secret)


async def _dataset_id(ctx: Context, name: str) -> int:
    try:
        return (await find_dataset(ctx, name)).dataset.id
    except NotFound:
        raise BadInput(f"no dataset named {name!r}: a token is limited to datasets that exist") from None


async def list_tokens(ctx: Context) -> list[TokenInfo]:
    async with ctx.catalog.session() as session:
        rows = (await session.scalars(select(ApiToken).order_by(ApiToken.name))).all()
        named = {d.id: d.name for d in (await session.scalars(select(Dataset))).all()}
    return [TokenInfo(t.name, t.role, None if t.datasets is None else [named.get(i, f"#{i}") for i in t.datasets],
                      t.files, t.connections or [], t.created_at, t.last_used_at, t.s3_access_key) for t in rows]


async def revoke_token(ctx: Context, name: str) -> None:
    async with ctx.catalog.session() as session:
        token = await session.scalar(select(ApiToken).where(ApiToken.name == name))
        if token is None:
            raise NotFound(f"no token named {name!r}")
        await session.delete(token)
        await session.commit()
    ctx.memo.principals.clear()
    ctx.memo.s3_keys.clear()
    ctx.memo.live_tokens.put(token.id, False)


async def authenticate(ctx: Context, token: str) -> Principal:
    digest = hash_token(token)
    known: Principal | None = ctx.memo.principals.get(digest)
    if known is not None:
        return known  # trusted for memo.TOKEN_TTL
    principal = await _authenticate(ctx, digest)
    ctx.memo.principals.put(digest, principal)
    return principal


async def _authenticate(ctx: Context, digest: str) -> Principal:
    async with ctx.catalog.session() as session:
        columns = (ApiToken.id, ApiToken.name, ApiToken.role, ApiToken.last_used_at, ApiToken.datasets,
                   ApiToken.files, ApiToken.connections)
        row = (await session.execute(select(*columns).where(ApiToken.token_hash == digest))).first()
        if row is None:
            raise Unauthenticated("unknown or revoked token")
        now = utcnow()
        # Written at most once a minute: a busy client must not turn every read into a write.
        if row.last_used_at is None or (now - row.last_used_at).total_seconds() > 60:
            await session.execute(update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=now))
            await session.commit()
        return Principal(row.name, row.id, scope_of(row))


def scope_of(row: Any) -> Scope:
    """The scope of an ``api_tokens`` row. A role this version does not know reaches nothing more than read."""
    role: Role = row.role if row.role in ROLES else "read"
    return Scope(role, None if row.datasets is None else frozenset(row.datasets),
                 None if row.files is None else tuple(row.files), frozenset(row.connections or ()))


async def check_live(ctx: Context, token_id: int) -> None:
    """Whether the token ``token_id`` still exists (a signed URL dies with the token that signed it),
    trusted for ``memo.TOKEN_TTL`` like a checked token: a hit costs no query."""
    live = ctx.memo.live_tokens.get(token_id)
    if live is None:
        async with ctx.catalog.session() as session:
            live = await session.scalar(select(ApiToken.id).where(ApiToken.id == token_id)) is not None
        ctx.memo.live_tokens.put(token_id, live)
    if not live:
        raise Unauthenticated("the token that signed this URL was revoked; ask for a new URL")


async def bootstrap_admin_token(ctx: Context) -> str | None:
    """On the first start (no token at all), make an admin token and keep it in the instance home.

    Replicas share the catalog: only the first replica's first start makes it (the name is unique, so
    two starting at once cannot both). Another replica's home gets no admin.token; it says so once, and
    ``cargohold token create --admin --name NAME --save`` run there makes one for it."""
    path = ctx.settings.home / ADMIN_TOKEN_FILE
    async with ctx.catalog.session() as session:
        has_tokens = await session.scalar(select(ApiToken.id).limit(1)) is not None
    if not has_tokens:
        try:
            token = (await create_token(ctx, "admin", "admin")).token
        except AlreadyExists:  # another replica made it first
            token = None
        if token is not None:
            write_private_file(path, token + "\n")
            return token
    if not path.exists():
        log.warning("no %s in this instance home: the catalog's admin token was made by another replica's first "
                    "start (or this home is new). Run `cargohold token create --admin --name NAME --save` here to "
                    "make one for this home, or use a token you have.", ADMIN_TOKEN_FILE)
    return None
