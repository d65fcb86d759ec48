"""cargohold's errors as S3 clients expect them: the one table from the error tree (errors.py) to S3's codes
and statuses, and the XML error document (``Code``, ``Message``, ``Resource``, ``RequestId``)."""

from __future__ import annotations

from .. import errors as e
from .xml import document

# Most specific first: the first class an error is an instance of gives its S3 code and status.
TABLE: list[tuple[type[e.CargoholdError], str, int]] = [
    (e.InvalidDigest, "InvalidDigest", 400),
    (e.InvalidRequest, "InvalidRequest", 400),
    (e.CorsPreflight, "BadRequest", 400),
    (e.CorsRefused, "AccessForbidden", 403),
    (e.NoSuchBucket, "NoSuchBucket", 404),
    (e.NoSuchUpload, "NoSuchUpload", 404),
    (e.NotFound, "NoSuchKey", 404),
    (e.UnknownAccessKey, "InvalidAccessKeyId", 403),
    (e.SignatureMismatch, "SignatureDoesNotMatch", 403),
    (e.RequestTimeSkewed, "RequestTimeTooSkewed", 403),
    (e.Forbidden, "AccessDenied", 403),
    (e.Unauthenticated, "AccessDenied", 403),
    (e.NotEmpty, "BucketNotEmpty", 409),
    (e.AlreadyExists, "BucketAlreadyOwnedByYou", 409),
    (e.PreconditionFailed, "PreconditionFailed", 412),
    (e.RangeNotSatisfiable, "InvalidRange", 416),
    (e.TooLarge, "EntityTooLarge", 400),
    (e.MalformedXml, "MalformedXML", 400),
    (e.ContentSha256Mismatch, "XAmzContentSHA256Mismatch", 400),
    (e.BadDigest, "BadDigest", 400),
    (e.InvalidPartOrder, "InvalidPartOrder", 400),
    (e.InvalidPart, "InvalidPart", 400),
    (e.EntityTooSmall, "EntityTooSmall", 400),
    (e.InvalidBucketName, "InvalidBucketName", 400),
    (e.InvalidKey, "KeyTooLongError", 400),
    (e.ClientTimeout, "RequestTimeout", 400),
    (e.BadInput, "InvalidArgument", 400),
    (e.Overloaded, "SlowDown", 503),
    (e.BackendUnavailable, "SlowDown", 503),
    (e.BadGateway, "SlowDown", 503),
    (e.GatewayTimeout, "SlowDown", 503),
    (e.Unsupported, "NotImplemented", 501),
]
RETRY_AFTER = "5"
"""Seconds a client told to slow down (a remote store is down) waits, unless the error says."""


def s3_error(exc: e.CargoholdError) -> tuple[str, int]:
    """S3's code and status for ``exc``; an error this table does not name is an InternalError."""
    for cls, name, status in TABLE:
        if isinstance(exc, cls):
            return name, status
    return "InternalError", 500


def error_document(code: str, message: str, resource: str, request_id: str, condition: str | None = None) -> bytes:
    return document("Error", {"Code": code, "Message": message, "Condition": condition, "Resource": resource,
                              "RequestId": request_id})


def error_headers(exc: e.CargoholdError, status: int) -> dict[str, str]:
    headers = dict(exc.headers)
    if status == 503:
        headers.setdefault("Retry-After", RETRY_AFTER)
    return headers
