"""The error answers in the OpenAPI document: every operation lists the statuses it can answer with
``{"error": {"code", "message"}}`` (docs/API.md, "Errors"), instead of FastAPI's default 422
validation error, which this API never sends (a request that does not match is 400 ``bad_input``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

WHY = {
    400: "bad input: a malformed request, a bad name, key or cursor",
    401: "no token, an unknown one, or a bad or expired signature",
    403: "a user token on an admin route, or storage refused the credentials",
    404: "no such dataset, item, file or connection",
    408: "no piece of the body arrived for SERVER_BODY_TIMEOUT; the connection is closed",
    409: "the name is taken, or defined in remote_links.yml, or a bucket another connection lists",
    413: "a file over UPLOAD_MAX_SIZE",
    416: "the Range is outside the object",
    422: "not an image, or more pixels than IMAGE_MAX_PIXELS",
    502: "a remote store answered with an error or could not be reached",
    503: "storage or the database did not answer",
    504: "a remote store sent nothing in time",
}
# What some operations answer besides the errors every protected operation may give.
EXTRA: dict[tuple[str, str], tuple[int, ...]] = {
    ("post", "/api/v1/datasets"): (409,),
    ("post", "/api/v1/datasets/{dataset_id}/items"): (408, 409, 413, 422),
    ("post", "/api/v1/datasets/{dataset_id}/links"): (408, 409),
    ("post", "/api/v1/datasets/{dataset_id}/sync"): (409, 502, 504),
    ("put", "/api/v1/files/{path}"): (408, 413),
    ("get", "/api/v1/files/{path}"): (416,),
    ("get", "/api/v1/items/{item_id}/content"): (416, 422, 502, 504),
    ("get", "/api/v1/items/{item_id}/preview"): (416, 422, 502, 504),
    ("put", "/api/v1/connections/{name}"): (409,),
    ("delete", "/api/v1/connections/{name}"): (409,),
    ("get", "/api/v1/connections/{name}/browse"): (502, 504),
    ("post", "/api/v1/tokens"): (409,),
    ("patch", "/api/v1/items/{item_id}"): (409,),
    ("post", "/api/v1/items/bulk"): (404,),  # the folder's dataset, or the one a move goes to
}
_ERROR_SCHEMAS = {
    "ErrorBody": {"type": "object", "required": ["code", "message"], "properties": {
        "code": {"type": "string"}, "message": {"type": "string"}}},
    "ErrorOut": {"type": "object", "required": ["error"],
                 "properties": {"error": {"$ref": "#/components/schemas/ErrorBody"}}},
}
_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}


def _statuses(method: str, path: str, operation: dict[str, Any]) -> set[int]:
    if not path.startswith(("/api/v1/", "/metrics")):
        return set()  # /healthz and the API's own description need no token
    found = {401, 403, 503} | set(EXTRA.get((method, path), ()))
    if operation.get("parameters") or operation.get("requestBody"):
        found.add(400)
    if "{" in path and method != "put":  # a PUT makes what its path names
        found.add(404)
    return found


def describe_errors(app: FastAPI) -> None:
    """Replaces ``app.openapi`` with one that documents the error answers of each operation."""
    make: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = make()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        components.update(_ERROR_SCHEMAS)
        for path, operations in schema["paths"].items():
            for method, operation in operations.items():
                responses = operation.setdefault("responses", {})
                if "HTTPValidationError" in str(responses.get("422", "")):
                    del responses["422"]
                for status in sorted(_statuses(method, path, operation)):
                    entry = responses.setdefault(str(status), {"description": WHY[status]})
                    entry.setdefault("content", _ERROR)
        health = schema["paths"].get("/healthz", {}).get("get")
        if health is not None:  # unhealthy: the same body, with 503
            unhealthy = {**health["responses"]["200"], "description": "a bucket is unhealthy"}
            health["responses"].setdefault("503", unhealthy)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
