"""The ASGI application: the API under /api/v1, OpenAPI at /api/docs, /healthz without a token."""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import Receive, Scope, Send

from .. import __version__, web
from ..errors import CargoholdError
from ..instance import ADMIN_TOKEN_FILE
from ..services.context import Context
from ..services.health import Health
from ..services.team_files import finish_writes
from ..services.tokens import bootstrap_admin_token
from ..settings import Settings
from ..storage import OwnStorage
from .auth import AuthMiddleware
from .bodies import BodyLimits
from .hot import hot_route, serve
from .openapi import describe_errors
from .responses import error_response
from .routes import cache, connections, datasets, files, items, links, system, tokens
from .timeouts import BodyTimeout, CloseUnreadBody

log = logging.getLogger("cargohold")
API_PREFIX = "/api/v1"
MAX_HEADER_BYTES = 64 * 1024
"""All of a request's header names and values together; nginx's default is 32 KiB."""


async def _cargohold_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CargoholdError)
    if exc.http_status >= 500:
        log.warning("%s %r: %s: %s", request.method, request.url.path, type(exc).__name__, exc.message)
    return error_response(exc.http_status, exc.code, exc.message, exc.headers, exc.fields)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body') or 'body'}: {e.get('msg')}" for e in exc.errors()
    )
    return error_response(400, "bad_input", problems or "the request does not match the API")


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    # A URL that names no route is told apart from a missing dataset or item (both 404).
    code = {404: "no_such_route", 405: "method_not_allowed"}.get(exc.status_code, "error")
    return error_response(exc.status_code, code, str(exc.detail), getattr(exc, "headers", None))


class CargoholdApp(FastAPI):
    """The FastAPI app, but content and preview requests go straight to http/hot.py, before the
    middleware stack: those are the requests a page of thumbnails makes by the hundred (see
    docs/ARCHITECTURE.md, "The hot routes")."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and sum(len(k) + len(v) for k, v in scope["headers"]) > MAX_HEADER_BYTES:
            # uvicorn's httptools parser has no limit of its own (h11's is 16 KiB): refused here.
            response = error_response(431, "headers_too_large",
                                      f"the request's headers are over {MAX_HEADER_BYTES:,} bytes")
            await response(scope, receive, send)
            return
        hot = hot_route(scope)
        if hot is not None:
            await serve(self.state.ctx, scope, send, *hot)
            return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings, storage: OwnStorage | None = None, ensure_buckets: bool = True) -> FastAPI:
    storage = storage or OwnStorage.from_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ctx = await Context.open(settings, storage, ensure_buckets=ensure_buckets, serve=True)
        app.state.ctx = ctx
        token = await bootstrap_admin_token(ctx)
        if token:
            # Printed this once; the file keeps it for the CLI and for the operator.
            print(f"cargohold: first start, admin token created: {token}\n"
                  f"           (kept in {settings.home / ADMIN_TOKEN_FILE}, mode 0600)", file=sys.stderr, flush=True)
        try:
            done = await finish_writes(ctx)  # team-file writes a crash cut between announcing and publishing
            if done.finished:
                log.warning("finished %d team-file writes the last stop interrupted (or dropped those whose "
                            "bytes were lost)", done.finished)
            for problem in done.problems():  # each reported and skipped: one bad record never stops a start
                log.warning("%s", problem)
        except CargoholdError as exc:
            log.warning("team-file writes interrupted by the last stop are left for the next start or `cargohold "
                        "gc`: %s", exc.message)
        try:
            yield
        finally:
            await ctx.close()

    app = CargoholdApp(
        title="cargohold", version=__version__, lifespan=lifespan,
        docs_url=None, openapi_url="/api/openapi.json", redoc_url=None,  # /api/docs: web/, without a CDN
        swagger_ui_oauth2_redirect_url=None,  # no OAuth2 here: FastAPI's /docs/oauth2-redirect would be a public page
        description="Own storage on disk, S3, Azure or GCS; datasets of images, videos and files. "
        "Every route but /healthz needs `Authorization: Bearer <token>`.",
    )
    app.state.health = Health(settings.storage_provider, storage)
    app.add_middleware(BodyLimits)  # inside AuthMiddleware (added after it): no body is read before the token
    app.add_middleware(AuthMiddleware)
    app.add_middleware(BodyTimeout, timeout=settings.server_body_timeout)  # every read of a body bounded
    app.add_middleware(CloseUnreadBody)
    app.add_exception_handler(CargoholdError, _cargohold_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.include_router(system.public)
    app.include_router(cache.metrics_router)
    for router in (system.admin, datasets.router, items.router, files.router, links.router, connections.router,
                   cache.router, tokens.router, tokens.me_router):
        app.include_router(router, prefix=API_PREFIX)
    web.mount(app)
    describe_errors(app)
    return app
