"""API tokens: made (shown once), listed and revoked by an admin; and what the asking token may reach."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response
from pydantic import BaseModel, ConfigDict, Field

from ...services import tokens as svc
from ...services.access import Role
from ...services.context import Context
from ..auth import User, context, require_admin

router = APIRouter(tags=["tokens"], dependencies=[Depends(require_admin)])
me_router = APIRouter(tags=["tokens"])
Ctx = Annotated[Context, Depends(context)]
Name = Annotated[str, Path(min_length=1, max_length=255)]


class TokenIn(BaseModel):
    """A new token. Giving `datasets` or `files` (even empty) limits it: it then reaches only what they name
    (docs/SECURITY.md, "Tokens")."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=255)
    role: Role = "write"
    datasets: list[str] | None = Field(default=None, max_length=1000, description="dataset names (or ids)")
    files: list[str] | None = Field(default=None, max_length=1000, description="team-file folders, e.g. models/")
    connections: list[str] | None = Field(default=None, max_length=1000,
                                          description="connections whose buckets it may sync")
    s3: bool = Field(default=False, description="also an S3 key pair for the S3 endpoint (docs/S3.md)")


class TokenOut(BaseModel):
    name: str
    role: str
    datasets: list[str] | None
    """The names of the datasets it is limited to; null: not limited by dataset."""
    files: list[str] | None
    """The team-file folders it is limited to; null: not limited by folder."""
    connections: list[str]
    s3_access_key_id: str | None
    created_at: datetime
    last_used_at: datetime | None

    @classmethod
    def of(cls, t: svc.TokenInfo) -> TokenOut:
        return cls(name=t.name, role=t.role, datasets=t.datasets, files=t.files, connections=t.connections,
                   s3_access_key_id=t.s3_access_key, created_at=t.created_at, last_used_at=t.last_used_at)


class TokenList(BaseModel):
    tokens: list[TokenOut]


class TokenMade(BaseModel):
    token: str
    """The token itself: shown this once, only its hash is kept."""
    s3_access_key_id: str | None
    s3_secret_access_key: str | None
    """Shown this once too."""
    info: TokenOut


class MeOut(BaseModel):
    name: str
    role: str
    datasets: list[int] | None
    """The ids of the datasets this token is limited to; null: every dataset (unless `files` is set)."""
    files: list[str] | None
    connections: list[str]


@router.get("/tokens")
async def list_tokens(ctx: Ctx) -> TokenList:
    """Every token's name, role, limits and last use (never the tokens themselves)."""
    return TokenList(tokens=[TokenOut.of(t) for t in await svc.list_tokens(ctx)])


@router.post("/tokens", status_code=201)
async def create_token(body: TokenIn, ctx: Ctx) -> TokenMade:
    """A new token, in the answer once: copy it now."""
    new = await svc.create_token(ctx, body.name, body.role, datasets=body.datasets, files=body.files,
                                 connections=body.connections, s3=body.s3)
    (made,) = [t for t in await svc.list_tokens(ctx) if t.name == body.name]
    return TokenMade(token=new.token, s3_access_key_id=new.s3_access_key, s3_secret_access_key=new.s3_secret,
                     info=TokenOut.of(made))


@router.delete("/tokens/{name}", status_code=204)
async def revoke_token(name: Name, ctx: Ctx) -> Response:
    """Requests with it get 401 from now on (within a second on every replica), and so do the URLs it signed."""
    await svc.revoke_token(ctx, name)
    return Response(status_code=204)


@me_router.get("/me")
async def me(principal: User) -> MeOut:
    """What the asking token may reach: the web UI shows only what it may use."""
    scope = principal.scope
    return MeOut(name=principal.name, role=scope.role,
                 datasets=None if scope.datasets is None else sorted(scope.datasets),
                 files=None if scope.files is None else list(scope.files), connections=sorted(scope.connections))
