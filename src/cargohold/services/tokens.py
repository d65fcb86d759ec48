"""API tokens: made here, shown once, stored only as a SHA-256 hash.

Tokens carry 256 random bits, so a plain hash is enough to store them (no password stretching
needed) and lets a request be checked with one indexed lookup.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from ..catalog.models import ApiToken, utcnow
from ..errors import AlreadyExists, BadInput, NotFound, Unauthenticated
from ..instance import ADMIN_TOKEN_FILE, write_private_file
from .context import Context

log = logging.getLogger("cargohold")

PREFIX = "chd_"
ROLES = ("admin", "user")


@dataclass(frozen=True)
class Principal:
    name: str
    role: str
    token_id: int
    """The token's row id, never given to another token: signed URLs carry it (services/signing.py)."""

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_token(ctx: Context, name: str, role: str) -> str:
    if role not in ROLES:
        raise BadInput(f"role must be one of {', '.join(ROLES)}")
    if not name or len(name) > 255:
        raise BadInput("a token needs a name of 1 to 255 characters")
    token = PREFIX + secrets.token_urlsafe(32)
    async with ctx.catalog.session() as session:
        session.add(ApiToken(name=name, role=role, token_hash=hash_token(token)))
        try:
            await session.commit()
        except IntegrityError:
            raise AlreadyExists(f"a token named {name!r} exists; revoke it first or pick another name") from None
    return token


async def list_tokens(ctx: Context) -> list[tuple[str, str, datetime, datetime | None]]:
    async with ctx.catalog.session() as session:
        rows = (await session.scalars(select(ApiToken).order_by(ApiToken.name))).all()
        return [(t.name, t.role, t.created_at, t.last_used_at) for t in rows]


async def revoke_token(ctx: Context, name: str) -> None:
    async with ctx.catalog.session() as session:
        token = await session.scalar(select(ApiToken).where(ApiToken.name == name))
        if token is None:
            raise NotFound(f"no token named {name!r}")
        await session.delete(token)
        await session.commit()
    ctx.memo.principals.clear()
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
        columns = (ApiToken.id, ApiToken.name, ApiToken.role, ApiToken.last_used_at)
        row = (await session.execute(select(*columns).where(ApiToken.token_hash == digest))).first()
        if row is None:
            raise Unauthenticated("unknown or revoked token")
        now = utcnow()
        # Written at most once a minute: a busy client must not turn every read into a write.
        if row.last_used_at is None or (now - row.last_used_at).total_seconds() > 60:
            await session.execute(update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=now))
            await session.commit()
        return Principal(row.name, row.role, row.id)


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
            token = await create_token(ctx, "admin", "admin")
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
