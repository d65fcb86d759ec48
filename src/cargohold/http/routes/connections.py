"""Connections (admin only): list, create or change, delete, test, browse; and the providers they may name.
Secrets are write-only."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from ...services import connections as svc
from ...services.context import Context
from ...storage.connections import NAME_PATTERN, NamedConnection
from ...storage.providers import PROVIDERS, ConnectionProviderName, FieldKind, ProviderSpec
from ..auth import context, require_admin

router = APIRouter(tags=["connections"], dependencies=[Depends(require_admin)])
Ctx = Annotated[Context, Depends(context)]
Name = Annotated[str, Path(pattern=f"^{NAME_PATTERN}$", description="1-128 letters, digits, '.', '_', '-'")]


class ConnectionIn(BaseModel):
    """The fields a provider takes (docs/LINKS.md). Leaving out `secret_key` or `credentials_json` when
    changing a connection keeps the stored one; `null` removes it. A server folder (`fs`) takes `path` and
    `storage_id` instead of buckets, and only under one of the folders the server's `LINKS_FS_ROOTS` lists."""

    model_config = ConfigDict(extra="forbid")
    provider: ConnectionProviderName
    endpoint: str | None = None
    access_key: str | None = None
    secret_key: str | None = Field(default=None, description="write-only")
    iam_role: str | None = None
    region: str | None = None
    credentials_json: str | dict[str, Any] | None = Field(
        default=None, description="google: the service-account key file's content (write-only)")
    buckets: list[str] | None = Field(default=None, min_length=1, description="minio, azure, google")
    path: str | None = Field(default=None, description="fs: the folder on the server, under LINKS_FS_ROOTS")
    storage_id: str | None = Field(default=None, description="fs: the host of its links, fs://<storage_id>/...")


class ConnectionOut(BaseModel):
    name: str
    provider: str
    origin: Literal["file", "catalog"]
    read_only: bool
    endpoint: str | None
    region: str | None
    access_key: str | None
    iam_role: str | None
    buckets: list[str]
    storage_id: str | None
    path: str | None
    credentials_path: str | None
    has_secret: bool
    line: int | None
    updated_at: datetime | None
    problem: str | None

    @classmethod
    def of(cls, n: NamedConnection) -> ConnectionOut:
        c = n.connection
        fs = n.provider == "fs"
        return cls(
            name=n.name, provider=n.provider, origin=n.origin, read_only=n.read_only, endpoint=c.endpoint or None,
            region=c.region or None, access_key=c.access_key or None, iam_role=c.iam_role or None,
            buckets=list(n.buckets), storage_id=n.buckets[0] if fs else None, path=str(c.root) if fs else None,
            credentials_path=str(c.credentials_path) if c.credentials_path else None, has_secret=n.has_secret,
            line=n.line, updated_at=n.updated_at, problem=n.problem,
        )


class ConnectionsFile(BaseModel):
    path: str
    error: str | None
    """Why the file as it is now cannot be used; the connections read before it stay in force."""


class ConnectionList(BaseModel):
    connections: list[ConnectionOut]
    file: ConnectionsFile
    fs_roots: list[str]
    """The folders under which a server folder (`fs`) may be connected here (`LINKS_FS_ROOTS`); empty: none."""


class BucketCheckOut(BaseModel):
    bucket: str
    list: bool
    read: bool | None
    error: str | None


class ConnectionCheck(BaseModel):
    name: str
    buckets: list[BucketCheckOut]


class FolderOut(BaseModel):
    name: str
    prefix: str


class ObjectOut(BaseModel):
    name: str
    key: str
    size: int
    modified: datetime | None


class FolderPageOut(BaseModel):
    bucket: str
    prefix: str
    folders: list[FolderOut]
    objects: list[ObjectOut]
    next_cursor: str | None


class ProviderFieldOut(BaseModel):
    name: str
    label: str
    help: str
    example: str
    required: bool
    """Within its `choice`, when it has one."""
    secret: bool
    kind: FieldKind
    choice: str | None
    """Fields of one choice are given together, instead of another choice's."""


class ProviderOut(BaseModel):
    name: str
    label: str
    title: str
    bucket: str
    """What its buckets are called: bucket, container, folder."""
    schemes: list[str]
    """The schemes of its links, the one cargohold writes first."""
    own_storage: bool
    connection: bool
    server_folder: bool
    fields: list[ProviderFieldOut]
    """The fields of a PUT /connections/{name} body for it, besides `provider`."""

    @classmethod
    def of(cls, p: ProviderSpec) -> ProviderOut:
        return cls(
            name=p.name, label=p.label, title=p.title, bucket=p.bucket, schemes=list(p.schemes),
            own_storage=p.own_storage, connection=p.connection, server_folder=p.server_folder,
            fields=[ProviderFieldOut(name=f.name, label=f.label, help=f.help, example=f.example, required=f.required,
                                     secret=f.secret, kind=f.kind, choice=f.choice or None)
                    for f in p.fields_of("catalog")],
        )


class ProviderList(BaseModel):
    providers: list[ProviderOut]


@router.get("/providers")
async def list_providers() -> ProviderList:
    """Every provider: own storage (`STORAGE_PROVIDER`), connections, or both; what the web UI calls it, its
    link schemes and the fields its connections take here."""
    return ProviderList(providers=[ProviderOut.of(p) for p in PROVIDERS.values()])


@router.get("/connections")
async def list_connections(ctx: Ctx) -> ConnectionList:
    """Every connection, from remote_links.yml (read-only) and made here. No secret is ever sent."""
    found = await ctx.connections.all()
    registry = ctx.connections
    return ConnectionList(connections=[ConnectionOut.of(n) for n in found],
                          file=ConnectionsFile(path=str(registry.file_path), error=registry.file_error),
                          fs_roots=[str(root) for root in ctx.settings.links_fs_roots])


@router.put("/connections/{name}", responses={201: {"model": ConnectionOut}, 409: {}})
async def put_connection(name: Name, body: ConnectionIn, ctx: Ctx, response: Response) -> ConnectionOut:
    """Create (201) or replace (200) a connection. 409 for a remote_links.yml connection or a bucket that
    another connection lists."""
    named, created = await svc.put_connection(ctx, name, body.model_dump(exclude_unset=True))
    response.status_code = 201 if created else 200
    return ConnectionOut.of(named)


@router.delete("/connections/{name}", status_code=204)
async def delete_connection(name: Name, ctx: Ctx) -> Response:
    await svc.delete_connection(ctx, name)
    return Response(status_code=204)


@router.post("/connections/{name}/test")
async def test_connection(name: Name, ctx: Ctx) -> ConnectionCheck:
    """Per bucket: `list` (one page), `read` (the first object found; null when the bucket is empty), and the
    provider's error when either fails."""
    checks = await svc.check_connection(ctx, name)
    return ConnectionCheck(name=name, buckets=[BucketCheckOut(bucket=c.bucket, list=c.list, read=c.read,
                                                              error=c.error) for c in checks])


@router.get("/connections/{name}/browse")
async def browse(
    name: Name, ctx: Ctx, bucket: str | None = None, prefix: str = "", cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> FolderPageOut:
    """One folder level of a bucket: sub-folders and objects, one page at a time."""
    bucket, (folders, objects, next_cursor) = await svc.browse(ctx, name, bucket, prefix, cursor, limit)
    return FolderPageOut(
        bucket=bucket, prefix=prefix,
        folders=[FolderOut(name=f.rstrip("/").rsplit("/", 1)[-1], prefix=f) for f in folders],
        objects=[ObjectOut(name=o.key.rsplit("/", 1)[-1], key=o.key, size=o.size, modified=o.last_modified)
                 for o in objects],
        next_cursor=next_cursor,
    )
