"""Bucket operations: ListBuckets, HeadBucket, GetBucketLocation, GetBucketVersioning, CreateBucket,
DeleteBucket, ListObjects (v1) and ListObjectsV2. A bucket is a dataset (services/buckets.py)."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ..catalog.models import Dataset
from ..errors import AlreadyExists, BadInput, NoSuchBucket
from ..services import access, listing
from ..services import buckets as svc
from ..services import items as items_svc
from .etags import s3_etag
from .xml import document, parse, text

if TYPE_CHECKING:
    from .app import S3Request

REGION = "us-east-1"
"""The region HeadBucket names, and what GetBucketLocation answers (the empty LocationConstraint) for a bucket
created without one: clients sign with any region, and one cargohold is one place."""
MAX_KEYS = 1000


def timestamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def owner(request: S3Request) -> dict[str, str]:
    return {"ID": request.principal.name, "DisplayName": request.principal.name}


async def dataset(request: S3Request, need: access.Role) -> Dataset:
    """The request's bucket as a dataset the token may ``need`` (404 before 403: the bucket name is public)."""
    found = await svc.dataset_of_bucket(request.ctx, request.bucket)
    access.require(request.principal.scope, need, dataset=found.id)
    return found


async def list_buckets(request: S3Request) -> None:
    """Every bucket the key's token reaches, by name; paged when asked (``max-buckets``, ``continuation-token``),
    filtered by ``prefix``."""
    scope = request.principal.scope
    query = request.query
    prefix = query.get("prefix", "")
    found = sorted((d.dataset for d in await items_svc.list_datasets(request.ctx)
                    if scope.reaches_dataset(d.dataset.id) and (d.dataset.bucket or "").startswith(prefix)),
                   key=lambda d: d.bucket or "")
    if "continuation-token" in query:
        after = _untoken(query["continuation-token"])
        found = [d for d in found if (d.bucket or "") > after]
    limit = _int(query, "max-buckets", 10_000) or 10_000
    page, more = found[:limit], len(found) > limit
    fields: dict[str, Any] = {
        "Owner": owner(request),
        "Buckets": {"Bucket": [{"Name": d.bucket, "CreationDate": timestamp(d.created_at)} for d in page]},
    }
    if more and page:
        fields["ContinuationToken"] = _token(page[-1].bucket or "")
    if "prefix" in query:
        fields["Prefix"] = prefix
    await request.answer(200, document("ListAllMyBucketsResult", fields, namespace=True))


async def head_bucket(request: S3Request) -> None:
    await dataset(request, "read")
    await request.answer(200, headers=[(b"x-amz-bucket-region", REGION.encode())])


async def location(request: S3Request) -> None:
    found = await dataset(request, "read")
    await request.answer(200, document("LocationConstraint", {}, namespace=True, inner=found.s3_location or ""))


async def versioning(request: S3Request) -> None:
    await dataset(request, "read")
    await request.answer(200, document("VersioningConfiguration", {}, namespace=True))


async def create_bucket(request: S3Request) -> None:
    scope = request.principal.scope
    access.require(scope, "write")
    access.require_unlimited(scope, "create a bucket")
    # A CreateBucketConfiguration, if any: its LocationConstraint is kept for GetBucketLocation to answer; one
    # cargohold is one place, so nothing else follows from it.
    body = await request.body().read(64 * 1024)
    location = None
    if body.strip():
        location = text(parse(body, "CreateBucketConfiguration"), "LocationConstraint") or None
        if location is not None and (len(location) > 64 or not location.isprintable()):
            raise BadInput("a LocationConstraint is at most 64 printable characters")
    try:
        await svc.create_bucket(request.ctx, request.bucket, location)
    except AlreadyExists:
        # Asked again for a bucket one has: 200, as S3 answers in us-east-1 (this endpoint's region). Another
        # dataset's name, or a bucket this token does not reach: the 409.
        try:
            existing = await svc.dataset_of_bucket(request.ctx, request.bucket)
        except NoSuchBucket:
            existing = None
        if existing is None or not scope.reaches_dataset(existing.id):
            raise
    await request.answer(200, headers=[(b"location", f"/{request.bucket}".encode())])


async def delete_bucket(request: S3Request) -> None:
    found = await dataset(request, "write")
    await svc.delete_bucket(request.ctx, found)
    await request.answer(204)


def _int(query: dict[str, str], name: str, default: int) -> int:
    value = query.get(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise BadInput(f"{name} must be a whole number") from None
    if number < 0:
        raise BadInput(f"{name} must not be negative")
    return number


def _token(after: str) -> str:
    return base64.urlsafe_b64encode(after.encode()).decode()


def _untoken(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadInput("The continuation token provided is incorrect") from None


async def list_objects(request: S3Request) -> None:
    found = await dataset(request, "read")
    query = request.query
    v2 = query.get("list-type") == "2"
    prefix = query.get("prefix", "")
    delimiter = query.get("delimiter", "")
    encoding = query.get("encoding-type")
    if encoding not in (None, "url"):
        raise BadInput("Invalid Encoding Method specified in Request")
    max_keys = min(_int(query, "max-keys", MAX_KEYS), MAX_KEYS)
    if v2:
        token = query.get("continuation-token")
        after = _untoken(token) if token is not None else query.get("start-after", "")
    else:
        after = query.get("marker", "")
    page = await listing.list_names(request.ctx, found.id, prefix=prefix, delimiter=delimiter, after=after,
                                    limit=max_keys)

    def enc(text: str) -> str:
        return quote(text, safe="/") if encoding == "url" else text

    contents = [{"Key": enc(item.name), "LastModified": timestamp(item.created_at), "ETag": s3_etag(item),
                 "Size": item.size or 0, "StorageClass": "STANDARD",
                 "Owner": owner(request) if not v2 or query.get("fetch-owner") == "true" else None}
                for item in page.items]
    # v1 answers its Prefix as given, encoded or not (botocore decodes v1's Delimiter, Marker, NextMarker and Key
    # only); v2 encodes it with the rest.
    fields: dict[str, Any] = {"Name": request.bucket, "Prefix": enc(prefix) if v2 else prefix}
    if v2:
        fields |= {"KeyCount": len(page.items) + len(page.prefixes), "MaxKeys": max_keys}
        if "continuation-token" in query:
            fields["ContinuationToken"] = query["continuation-token"]
        if "start-after" in query:
            fields["StartAfter"] = enc(query["start-after"])
    else:
        fields |= {"Marker": enc(after), "MaxKeys": max_keys}
    if delimiter:
        fields["Delimiter"] = enc(delimiter)
    fields["IsTruncated"] = page.truncated
    if page.truncated and page.next_after is not None:
        if v2:
            fields["NextContinuationToken"] = _token(page.next_after)
        elif delimiter:
            fields["NextMarker"] = enc(page.next_after)
    if encoding:
        fields["EncodingType"] = encoding
    fields["Contents"] = contents
    fields["CommonPrefixes"] = [{"Prefix": enc(p)} for p in page.prefixes]
    await request.answer(200, document("ListBucketResult", fields, namespace=True))


async def list_versions(request: S3Request) -> None:
    """ListObjectVersions of a bucket that never had versioning: each object once, its version ``null``
    (what S3 answers for such a bucket; tools and Ceph's suite clean buckets up this way)."""
    found = await dataset(request, "read")
    query = request.query
    prefix = query.get("prefix", "")
    max_keys = min(_int(query, "max-keys", MAX_KEYS), MAX_KEYS)
    page = await listing.list_names(request.ctx, found.id, prefix=prefix, delimiter=query.get("delimiter", ""),
                                    after=query.get("key-marker", ""), limit=max_keys)
    fields: dict[str, Any] = {"Name": request.bucket, "Prefix": prefix, "KeyMarker": query.get("key-marker", ""),
                              "VersionIdMarker": query.get("version-id-marker", ""), "MaxKeys": max_keys,
                              "IsTruncated": page.truncated}
    if query.get("delimiter"):
        fields["Delimiter"] = query["delimiter"]
    if page.truncated and page.next_after is not None:
        fields |= {"NextKeyMarker": page.next_after, "NextVersionIdMarker": "null"}
    fields["Version"] = [{"Key": i.name, "VersionId": "null", "IsLatest": True,
                          "LastModified": timestamp(i.created_at), "ETag": s3_etag(i), "Size": i.size or 0,
                          "StorageClass": "STANDARD", "Owner": owner(request)} for i in page.items]
    fields["CommonPrefixes"] = [{"Prefix": p} for p in page.prefixes]
    await request.answer(200, document("ListVersionsResult", fields, namespace=True))
