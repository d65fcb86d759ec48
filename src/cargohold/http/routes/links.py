"""Adding links to a dataset: a links file (text/plain) or JSON."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from ...errors import BadInput
from ...services import items as items_svc
from ...services import links as svc
from ...services.context import Context
from ...storage.links_file import parse_stream
from ..auth import User, context, require_user, write_dataset
from ..bodies import links_json

router = APIRouter(tags=["links"], dependencies=[Depends(require_user)])
Ctx = Annotated[Context, Depends(context)]

LINKS_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "text/plain": {"schema": {"type": "string"}, "example": "# one link a line\ns3://cars/2020/a.jpg\n"},
            "application/json": {"schema": {
                "type": "object",
                "properties": {"links": {"type": "array", "items": {"oneOf": [
                    {"type": "string"},
                    {"type": "object", "properties": {"url": {"type": "string"}, "name": {"type": "string"}}},
                ]}}},
            }},
        },
    }
}


@router.post("/datasets/{dataset_id}/links", openapi_extra=LINKS_BODY, dependencies=[Depends(write_dataset)])
async def add_links(
    dataset_id: int, request: Request, ctx: Ctx, conflict: items_svc.Conflict = "rename", verify: bool = True
) -> dict[str, Any]:
    """Register files that stay where they are. Good lines are added even when others are refused;
    every refused line is reported with its number, URL and reason. Nothing is copied."""
    await items_svc.require_dataset(ctx, dataset_id)
    kind = request.headers.get("content-type", "text/plain").split(";")[0].strip().lower()
    if kind == "application/json":  # bounded by http/bodies.BodyLimits, LINKS_JSON_MAX_BYTES
        entries = svc.json_entries(await links_json(b"".join([chunk async for chunk in request.stream()])))
    elif kind in ("text/plain", "application/octet-stream", ""):
        entries = parse_stream(request.stream())
    else:
        raise BadInput("send a links file as text/plain, or JSON {\"links\": [...]}")
    report = await svc.add_links(ctx, dataset_id, entries, verify=verify, conflict=conflict)
    return report.as_dict()


class SyncIn(BaseModel):
    source: str = Field(description="s3://bucket/prefix/ (or azure://, google://, gs://, fs://)")
    filter: str | None = Field(default=None, max_length=svc.FILTER_MAX_LENGTH,
                               description="an RE2 regular expression a key must contain a match of (docs/LINKS.md)")
    verify: bool = Field(default=False, description="read each image's header for its size (sizes and ETags "
                         "come from the listing either way)")


@router.post("/datasets/{dataset_id}/sync", dependencies=[Depends(write_dataset)])
async def sync(
    dataset_id: int, body: SyncIn, ctx: Ctx, principal: User, conflict: items_svc.Conflict = "rename"
) -> dict[str, Any]:
    """Register every object under a bucket prefix as a link; again later, only the new keys are added,
    and links whose objects are gone are reported (never deleted, in the bucket or here). Listing a
    connected bucket needs an admin token or one made with `--connections` naming its connection."""
    await items_svc.require_dataset(ctx, dataset_id)
    report = await svc.sync_prefix(ctx, dataset_id, body.source, body.filter, verify=body.verify, conflict=conflict,
                                   scope=principal.scope)
    return report.as_dict()
