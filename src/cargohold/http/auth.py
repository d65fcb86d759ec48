"""Who is asking: a bearer token, or (for content) a signature in the URL.

Checked in an ASGI middleware, before any route reads the body: a request without valid
credentials gets 401 whatever it sends, and an upload without a token is refused before a byte of
it is stored. Content and previews, which a signed URL may open, are checked in http/hot.py.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import CargoholdError, Unauthenticated
from ..services import access
from ..services.context import Context
from ..services.tokens import Principal, authenticate
from .responses import error_response

PROTECTED = ("/api/v1/", "/metrics")


def context(request: Request) -> Context:
    ctx: Context = request.app.state.ctx
    return ctx


async def identify(request: Request, ctx: Context) -> Principal:
    if "signature" in request.query_params and "authorization" not in request.headers:
        # Signed URLs open content and previews only, and those are answered by http/hot.py.
        raise Unauthenticated("a signed URL opens only the content or preview it was signed for")
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("send Authorization: Bearer <token> (cargohold token create makes one)")
    return await authenticate(ctx, token.strip())


class AuthMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PROTECTED):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        try:
            principal = await identify(request, scope["app"].state.ctx)
        except CargoholdError as exc:
            response = error_response(exc.http_status, exc.code, exc.message)
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)


async def require_user(request: Request) -> Principal:
    """Any token: what a ``read`` token may do. The routes that need more depend on what follows; every
    one of them ends in ``services/access.require``."""
    principal = getattr(request.state, "principal", None)
    if not isinstance(principal, Principal):
        raise Unauthenticated("this route needs a token")
    return principal


User = Annotated[Principal, Depends(require_user)]


async def require_write(principal: User) -> Principal:
    access.require(principal.scope, "write")
    return principal


async def require_admin(principal: User) -> Principal:
    access.require(principal.scope, "admin")
    return principal


# What a route names, checked before its body is read (an upload a token may not make stores nothing). Path
# parameters of the same names reach these from the route's path.

async def read_dataset(dataset_id: int, principal: User) -> Principal:
    access.require(principal.scope, "read", dataset=dataset_id)
    return principal


async def write_dataset(dataset_id: int, principal: User) -> Principal:
    access.require(principal.scope, "write", dataset=dataset_id)
    return principal


async def read_item(item_id: int, request: Request, principal: User) -> Principal:
    await access.require_item(context(request), principal.scope, "read", item_id)
    return principal


async def write_item(item_id: int, request: Request, principal: User) -> Principal:
    await access.require_item(context(request), principal.scope, "write", item_id)
    return principal


async def read_file(path: str, principal: User) -> Principal:
    access.require(principal.scope, "read", file=path)
    return principal


async def write_file(path: str, principal: User) -> Principal:
    access.require(principal.scope, "write", file=path)
    return principal
