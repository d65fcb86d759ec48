"""Who is asking: a bearer token, or (for content) a signature in the URL."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ..errors import Forbidden, Unauthenticated
from ..services import signing
from ..services.context import Context
from ..services.tokens import Principal, authenticate

SIGNED = Principal("signed-url", "signed")


def context(request: Request) -> Context:
    ctx: Context = request.app.state.ctx
    return ctx


async def _bearer(request: Request, ctx: Context) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("send Authorization: Bearer <token> (cargohold token create makes one)")
    return await authenticate(ctx, token.strip())


async def require_user(request: Request, ctx: Annotated[Context, Depends(context)]) -> Principal:
    return await _bearer(request, ctx)


async def require_admin(principal: Annotated[Principal, Depends(require_user)]) -> Principal:
    if not principal.is_admin:
        raise Forbidden("this route needs an admin token")
    return principal


async def require_user_or_signature(request: Request, ctx: Annotated[Context, Depends(context)]) -> Principal:
    """Content routes also take ``?expires=&signature=`` from ``POST /items/{id}/sign``."""
    signature = request.query_params.get("signature")
    if signature is not None and "authorization" not in request.headers:
        signing.verify(ctx.secret, request.url.path, request.query_params.get("expires", ""), signature)
        return SIGNED
    return await _bearer(request, ctx)
