"""The web UI: static files (HTML, CSS, ES modules) served by the same server at ``/``; no build step.

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

    app.add_api_route("/", index, methods=["GET", "HEAD"], include_in_schema=False)
    app.mount("/static", _StaticFiles(directory=STATIC, check_dir=False), name="static")
