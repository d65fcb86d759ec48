"""The web UI: static files (HTML, CSS, ES modules) served by the same server at ``/``; no build step. The
API's docs page (``/api/docs``) is one of them, with Swagger UI's files from the fastapi-offline package.

The pages hold no data and no secret: everything comes from the API, with the token the user types
in (kept in the tab's sessionStorage, sent as ``Authorization: Bearer``) and, for images, short-lived
signed URLs. So ``/`` and ``/static/`` are the only paths besides ``/healthz`` that open without a
token.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.responses import FileResponse, Response
from starlette.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"
SWAGGER_UI = ("fastapi_offline", "static")
"""Swagger UI's bundle and stylesheet, served under /static/ as the UI's own files are."""
# The UI loads nothing from elsewhere (no CDN); images come from this server, as signed URLs or blobs.
CSP = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
       "connect-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
           "Cache-Control": "no-cache"}


class _StaticFiles(StaticFiles):
    def file_response(self, *args: object, **kwargs: object) -> Response:
        response = super().file_response(*args, **kwargs)  # type: ignore[arg-type]
        response.headers.update(HEADERS)
        return response


def mount(app: FastAPI) -> None:
    async def index() -> Response:
        return FileResponse(STATIC / "index.html", headers=HEADERS)

    async def api_docs() -> Response:
        return FileResponse(STATIC / "api-docs.html", headers=HEADERS)

    app.add_api_route("/", index, methods=["GET", "HEAD"], include_in_schema=False)
    app.add_api_route("/api/docs", api_docs, methods=["GET", "HEAD"], include_in_schema=False)
    app.mount("/static", _StaticFiles(directory=STATIC, packages=[SWAGGER_UI], check_dir=False), name="static")
