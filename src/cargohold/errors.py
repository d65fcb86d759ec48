"""cargohold's one exception family, and the one error envelope every door answers with.

    CargoholdError
    ├── ConfigError            a setting is missing or wrong (names the key and the fix)
    │   └── ConnectionsFileError   remote_links.yml: names the file, the line and the connection
    ├── BadInput               a request or argument cannot be used as given (400)
    │   ├── InvalidKey         an object key no provider could store unchanged
    │   ├── FieldProblem       one field of a connection (or the connection as a whole)
    │   ├── RangeNotSatisfiable    no byte of the object is in the asked range (416)
    │   ├── TooLarge           an upload over UPLOAD_MAX_SIZE (413)
    │   ├── Unprocessable      well-formed but refused: an image over the pixel limit (422)
    │   ├── MalformedXml       an S3 request body that is not the XML it must be
    │   ├── BadDigest          a body whose Content-MD5 or checksum is not its own
    │   │   └── ContentSha256Mismatch   ... or whose x-amz-content-sha256
    │   ├── InvalidDigest      a Content-MD5 that is no MD5 at all
    │   ├── InvalidRequest     an S3 request that cannot be done as asked (a copy onto itself changing nothing)
    │   ├── CorsPreflight      an S3 OPTIONS without an Origin
    │   ├── InvalidPart        an S3 multipart completion naming parts that are not there
    │   │   └── InvalidPartOrder        ... or out of order
    │   ├── EntityTooSmall     an S3 multipart part under 5 MiB that is not the last
    │   └── InvalidBucketName  a bucket name S3 would not take
    ├── ClientTimeout          a client sent too slowly: headers, or a body's next piece (408, Connection: close)
    ├── Unauthenticated        no token, an unknown one, a bad or expired signature (401)
    ├── Forbidden              credentials missing, wrong, or not allowed to do this (403)
    │   ├── UnknownAccessKey   an S3 access key id no token has
    │   ├── SignatureMismatch  an S3 request signed with another secret, or altered on the way
    │   ├── CorsRefused        an S3 CORS preflight: no origin is let in
    │   └── RequestTimeSkewed  an S3 request dated more than 15 minutes from the server's clock
    ├── NotFound               (404)
    │   └── NoSuchBucket, NoSuchUpload   what the S3 endpoint names: a bucket, a multipart upload
    ├── AlreadyExists          (409)
    │   └── NotEmpty           a dataset with items asked to go away as an S3 bucket
    ├── PreconditionFailed     If-Match or If-Unmodified-Since not met (412)
    ├── Locked                 gc or migrate already runs on this catalog (409)
    ├── ChecksumMismatch       the bytes that arrived are not those sent: size or SHA-256 differ (502)
    ├── ChangedWhileSent       a local file changed while it was uploaded; the next push sends it
    ├── BackendUnavailable     the storage service did not answer usefully (503)
    │   └── StoreTimeout       ... or not at all, within the time a request may take (504)
    ├── Overloaded             image work waited too long for IMAGE_MEMORY_BUDGET (503, Retry-After)
    ├── Preparing              a video's playable copy is being made: not an error, progress (202, Retry-After)
    ├── ImageWorkFailed        the process making an image ended without finishing it (500)
    ├── BadGateway             a remote store answered with an error, or could not be reached (502)
    ├── GatewayTimeout         a remote store sent nothing for CACHE_FETCH_TIMEOUT (504)
    └── Unsupported            the provider has no such capability (501)

Errors from libraries are translated where they enter (``raise X(...) from exc``), so callers
above ``storage/`` never see a boto, azure, google or obstore exception. ``error_body`` is the JSON
every HTTP answer of an error carries: ``{"error": {"code": ..., "message": ...}}``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class CargoholdError(Exception):
    code = "error"
    http_status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.headers: dict[str, str] = {}
        """HTTP headers every answer of this error carries (``Retry-After``...), whichever door sends it."""
        self.fields: dict[str, Any] = {}
        """More of the envelope beside ``code`` and ``message`` (a conversion's ``progress``)."""


class ConfigError(CargoholdError):
    code = "bad_setting"
    http_status = 500

    def __init__(self, key: str, problem: str, fix: str) -> None:
        super().__init__(f"{key}: {problem}. Fix: {fix}")
        self.key = key
        self.problem = problem
        self.fix = fix


class ConnectionsFileError(ConfigError):
    """``remote_links.yml`` cannot be used: names the file, the line (from 1) and the connection."""

    def __init__(self, path: Path, line: int | None, connection: str | None, problem: str, fix: str) -> None:
        where = str(path) + (f", line {line}" if line else "") + (f", connection {connection!r}" if connection else "")
        super().__init__(where, problem, fix)
        self.path = path
        self.line = line
        self.connection = connection


class BadInput(CargoholdError):
    code = "bad_input"
    http_status = 400


class InvalidKey(BadInput):
    code = "invalid_key"


class FieldProblem(BadInput):
    """A connection's field cannot be used; ``field`` is None when the connection as a whole is wrong."""

    def __init__(self, field: str | None, problem: str, fix: str) -> None:
        super().__init__(f"{field or 'connection'}: {problem}. Fix: {fix}")
        self.field = field
        self.problem = problem
        self.fix = fix


class RangeNotSatisfiable(BadInput):
    code = "range_not_satisfiable"
    http_status = 416


class TooLarge(BadInput):
    code = "too_large"
    http_status = 413


class Unprocessable(BadInput):
    code = "unprocessable"
    http_status = 422


class MalformedXml(BadInput):
    code = "malformed_xml"


class BadDigest(BadInput):
    code = "bad_digest"


class ContentSha256Mismatch(BadDigest):
    code = "content_sha256_mismatch"


class InvalidRequest(BadInput):
    """An S3 request that is well-formed but cannot be done as asked (a copy onto itself that changes nothing)."""

    code = "invalid_request"


class InvalidDigest(BadInput):
    """A ``Content-MD5`` that is no MD5 at all (not base64, or not 16 bytes), where one that is an MD5 but not
    the body's is a BadDigest."""

    code = "invalid_digest"


class CorsPreflight(BadInput):
    """``OPTIONS``, a browser's CORS preflight, without an ``Origin`` (S3 answers 400 BadRequest)."""

    code = "cors_preflight"


class InvalidPart(BadInput):
    code = "invalid_part"


class InvalidPartOrder(InvalidPart):
    code = "invalid_part_order"


class EntityTooSmall(BadInput):
    code = "entity_too_small"


class InvalidBucketName(BadInput):
    code = "invalid_bucket_name"


class ClientTimeout(CargoholdError):
    """The client did not send a request's headers within SERVER_HEADER_TIMEOUT, or the next piece of its body
    within SERVER_BODY_TIMEOUT; the connection is closed after the answer (``http/timeouts.py``)."""

    code = "request_timeout"
    http_status = 408

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.headers = {"Connection": "close"}


class Unauthenticated(CargoholdError):
    code = "unauthenticated"
    http_status = 401


class NotFound(CargoholdError):
    code = "not_found"
    http_status = 404


class AlreadyExists(CargoholdError):
    code = "already_exists"
    http_status = 409


class Forbidden(CargoholdError):
    code = "forbidden"
    http_status = 403


class UnknownAccessKey(Forbidden):
    code = "invalid_access_key"


class SignatureMismatch(Forbidden):
    code = "signature_mismatch"


class CorsRefused(Forbidden):
    """A CORS preflight with an ``Origin``: the S3 endpoint lets no origin in (S3 without a CORS configuration)."""

    code = "cors_refused"


class RequestTimeSkewed(Forbidden):
    code = "request_time_skewed"


class NoSuchBucket(NotFound):
    pass


class NoSuchUpload(NotFound):
    pass


class NotEmpty(AlreadyExists):
    code = "not_empty"


class PreconditionFailed(CargoholdError):
    code = "precondition_failed"
    http_status = 412

    def __init__(self, message: str, condition: str | None = None) -> None:
        super().__init__(message)
        self.condition = condition
        """The header whose condition did not hold (S3's error names it: ``<Condition>``)."""


class Locked(CargoholdError):
    code = "locked"
    http_status = 409


class ChecksumMismatch(CargoholdError):
    """The bytes that arrived are not the bytes that were sent (size or SHA-256 differ)."""

    code = "checksum_mismatch"
    http_status = 502


class ChangedWhileSent(CargoholdError):
    """A local file changed while it was being uploaded (a log being written): the next push sends it."""

    code = "changed_while_sent"


class BackendUnavailable(CargoholdError):
    code = "backend_unavailable"
    http_status = 503


class StoreTimeout(BackendUnavailable):
    """A store sent no answer within the time one request may take, its retries included
    (``storage/base.py``: ``META_TIMEOUT`` for listings, HEAD and DELETE)."""

    code = "gateway_timeout"
    http_status = 504


class Overloaded(CargoholdError):
    """The server is busy with this kind of work: ask again in ``retry_after`` seconds."""

    code = "overloaded"
    http_status = 503

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.headers = {"Retry-After": str(retry_after)}


class Preparing(CargoholdError):
    """A video's playable copy (``?format=mp4``) is being made: ask again in ``retry_after`` seconds. Sent in the
    error envelope, with ``progress`` (0 to 1) beside the message, and status 202."""

    code = "preparing"
    http_status = 202

    def __init__(self, progress: float, retry_after: int = 2) -> None:
        super().__init__(f"preparing this video for playback: {progress:.0%} done; ask again in {retry_after} s")
        self.progress = progress
        self.headers = {"Retry-After": str(retry_after)}
        self.fields = {"progress": round(progress, 3)}


class ImageWorkFailed(CargoholdError):
    """The process of its own that made an image (``media/isolated.py``) ended without an
    outcome: killed (the kernel's OOM killer, an operator) or crashed. Nothing was made or kept."""

    code = "image_work_failed"
    http_status = 500


class BadGateway(CargoholdError):
    code = "bad_gateway"
    http_status = 502


class Unsupported(CargoholdError):
    code = "unsupported"
    http_status = 501


class GatewayTimeout(CargoholdError):
    code = "gateway_timeout"
    http_status = 504


def error_body(code: str, message: str) -> dict[str, Any]:
    """The one error envelope of every HTTP answer (docs/API.md, "Errors")."""
    return {"error": {"code": code, "message": message}}


def error_json(exc: CargoholdError) -> bytes:
    body = error_body(exc.code, exc.message)
    body["error"].update(exc.fields)
    return json.dumps(body).encode()
