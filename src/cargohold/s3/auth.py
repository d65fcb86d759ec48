"""AWS Signature Version 4, checked with botocore's own signer classes (as moto and LocalStack do): in the
``Authorization`` header or in a presigned URL's query. What is checked here: the key belongs to a live
token, the request is dated within 15 minutes (by X-Amz-Date, or by Date when a client signed with that; a
presigned URL: not before its date, not after its expiry, at most 7 days), and the signature is the one
botocore computes for the request as it arrived (header values as the UTF-8 text the client signed). An
``OPTIONS`` request, a browser's CORS preflight, is never signed: it is answered as S3 answers one for a bucket
without CORS.

A presigned URL is handed out to be fetched again and again (a data loader's epochs, a labelling tool's page), so
the signature of one is computed once and remembered (``_presigned_signature``, keyed by everything it signs and
the key's secret); its dates and its key's token are checked on every request. A header-signed request is
checked in full each time.

The body's own hash (``x-amz-content-sha256``), the signatures of an ``aws-chunked`` body's chunks and its
trailing checksums are checked as the body is read (s3/body.py), from what this module returns.
"""

from __future__ import annotations

import calendar
import functools
import hmac
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, unquote

from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials

from ..errors import BadInput, CorsPreflight, CorsRefused, Forbidden, RequestTimeSkewed, SignatureMismatch
from ..services import s3_keys
from ..services.context import Context
from ..services.tokens import Principal

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW = 15 * 60
MAX_EXPIRES = 7 * 24 * 3600
UNSIGNED = "UNSIGNED-PAYLOAD"


class _SignedHeaders:
    """The headers a client signed, lowercase names in the order they came, offering what botocore's signer reads
    of ``request.headers`` (``in``, ``[]``, ``get_all``, iteration): botocore's own ``HTTPHeaders`` is an
    ``email.message.Message``, whose parsing was a sixth of a header-signed GetObject's time."""

    def __init__(self, pairs: Sequence[tuple[str, str]]) -> None:
        self._values: dict[str, list[str]] = {}
        for name, value in pairs:
            self._values.setdefault(name, []).append(value)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._values

    def __getitem__(self, name: str) -> str:
        return self._values[name.lower()][0]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def get_all(self, name: str, failobj: list[str] | None = None) -> list[str] | None:
        return self._values.get(name.lower(), failobj)


class _OnlySigned:
    """botocore's signer, told which headers the client signed: its own choice (every header but a few it
    never signs) would differ from a client that signed, say, ``user-agent``. The request's headers are only
    those (``_requests``)."""

    def headers_to_sign(self, request: AWSRequest) -> Any:
        return request.headers


class _HeaderSigner(_OnlySigned, S3SigV4Auth):
    pass


class _QuerySigner(_OnlySigned, S3SigV4QueryAuth):
    pass


class _Signed:
    def __init__(self, presigned: bool, secret: str, region: str) -> None:
        credentials = BotoCredentials("-", secret)
        self.signer = _QuerySigner(credentials, "s3", region, expires=1) if presigned else \
            _HeaderSigner(credentials, "s3", region)

    def signature(self, request: AWSRequest) -> str:
        canonical = self.signer.canonical_request(request)
        return str(self.signer.signature(self.signer.string_to_sign(request, canonical), request))

    def sign_string(self, string_to_sign: str, request: AWSRequest) -> str:
        """The signature of a string of botocore's shape (a chunk's, the trailer's), with the same key."""
        return str(self.signer.signature(string_to_sign, request))

    def scope(self, request: AWSRequest) -> str:
        return str(self.signer.credential_scope(request))


@dataclass
class Verified:
    principal: Principal
    payload: str
    """``x-amz-content-sha256`` as signed: a hex digest, UNSIGNED-PAYLOAD, or a STREAMING-... mode."""
    signature: str
    """The request's signature: the seed of an aws-chunked body's chunk signatures."""
    signer: _Signed | None = None
    request: AWSRequest | None = None

    def chunk_signature(self, previous: str, chunk_sha256: str, empty_sha256: str) -> str:
        assert self.signer is not None and self.request is not None
        timestamp = self.request.context["timestamp"]
        text = "\n".join(("AWS4-HMAC-SHA256-PAYLOAD", timestamp, self.signer.scope(self.request), previous,
                          empty_sha256, chunk_sha256))
        return self.signer.sign_string(text, self.request)

    def trailer_signature(self, previous: str, trailer_sha256: str) -> str:
        assert self.signer is not None and self.request is not None
        timestamp = self.request.context["timestamp"]
        text = "\n".join(("AWS4-HMAC-SHA256-TRAILER", timestamp, self.signer.scope(self.request), previous,
                          trailer_sha256))
        return self.signer.sign_string(text, self.request)


def _canonical_path(raw_path: str) -> str:
    """The path as S3 canonicalises it: each byte but unreserved ones and ``/`` percent-encoded."""
    return quote(unquote(raw_path), safe="/~")


def header_text(value: bytes) -> str:
    """A header's value as its signer saw it: clients sign the text whose UTF-8 is on the wire (botocore sends
    ``x-amz-meta-*`` values so), and a value that is no UTF-8 came as Latin-1 (``http.client``'s own encoding),
    which is then signed as that text's UTF-8."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


def _headers(pairs: list[tuple[bytes, bytes]]) -> dict[str, list[str]]:
    """Each header's values, by lowercase name, in the order they came."""
    headers: dict[str, list[str]] = {}
    for name, value in pairs:
        headers.setdefault(name.decode("latin-1").lower(), []).append(header_text(value))
    return headers


def _one(headers: dict[str, list[str]], name: str) -> str | None:
    values = headers.get(name)
    return values[0] if values else None


def _parse_authorization(value: str) -> tuple[str, list[str], str]:
    """``(credential, signed headers, signature)`` of an ``AWS4-HMAC-SHA256 Credential=..., ...`` header."""
    algorithm, _, rest = value.partition(" ")
    if algorithm != ALGORITHM:
        raise BadInput(f"only {ALGORITHM} (Signature Version 4) is supported, not {algorithm or 'nothing'}")
    fields: dict[str, str] = {}
    for part in rest.split(","):
        key, _, val = part.strip().partition("=")
        fields[key] = val
    try:
        return fields["Credential"], [h for h in fields["SignedHeaders"].split(";") if h], fields["Signature"]
    except KeyError as exc:
        raise Forbidden(f"the Authorization header has no {exc.args[0]}") from None


def _credential(value: str) -> tuple[str, str, str]:
    """``(access key, date, region)`` of ``KEY/20261203/us-east-1/s3/aws4_request``."""
    parts = value.split("/")
    if len(parts) != 5 or parts[3] != "s3" or parts[4] != "aws4_request":
        raise Forbidden(f"the credential {value!r} is not KEY/DATE/REGION/s3/aws4_request")
    return parts[0], parts[1], parts[2]


@functools.lru_cache(maxsize=256)
def _timestamp(value: str) -> float:
    """Requests of one second share their X-Amz-Date: strptime's 10 µs once a second, not once a request."""
    try:
        return calendar.timegm(time.strptime(value, "%Y%m%dT%H%M%SZ")) if len(value) == 16 else _bad_date(value)
    except ValueError:
        return _bad_date(value)


def _bad_date(value: str) -> float:
    raise Forbidden(f"X-Amz-Date {value!r} is not YYYYMMDDTHHMMSSZ")


def _http_date(value: str) -> str:
    """A ``Date`` header (RFC 7231) as SigV4's ``YYYYMMDDTHHMMSSZ``: a request signed without X-Amz-Date is dated
    by it (botocore signs so when the caller sets ``Date``)."""
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        raise Forbidden(f"the Date header {value[:60]!r} is not an HTTP date, and there is no X-Amz-Date") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


async def verify(ctx: Context, method: str, raw_path: str, params: Sequence[tuple[str, str]],
                 header_pairs: list[tuple[bytes, bytes]], now: float | None = None) -> Verified:
    """Checks a request's signature; ``params``: its query string's pairs as they came (``parse_qsl`` with
    blank values kept)."""
    now = time.time() if now is None else now
    headers = _headers(header_pairs)
    if method == "OPTIONS":  # a browser's CORS preflight, which no one signs: this endpoint answers no CORS
        if "origin" not in headers:
            raise CorsPreflight("Insufficient information. Origin request header needed.")
        raise CorsRefused("CORSResponse: CORS is not enabled for this endpoint")
    names = {k for k, _ in params}
    if len(headers.get("authorization", ())) > 1:
        raise Forbidden("a request carries one Authorization header, not several")
    authorization = _one(headers, "authorization")
    if authorization is None and "X-Amz-Signature" not in names:
        raise Forbidden("anonymous access is not allowed: sign the request (SigV4) with a token's S3 key pair")
    presigned = authorization is None
    if presigned:
        query_fields = dict(params)
        if query_fields.get("X-Amz-Algorithm") != ALGORITHM:
            raise BadInput(f"X-Amz-Algorithm must be {ALGORITHM}")
        credential = query_fields.get("X-Amz-Credential", "")
        signed_headers = [h for h in query_fields.get("X-Amz-SignedHeaders", "").split(";") if h]
        signature = query_fields.get("X-Amz-Signature", "")
        stamp = query_fields.get("X-Amz-Date", "")
        try:
            expires = int(query_fields.get("X-Amz-Expires", ""))
        except ValueError:
            raise Forbidden("X-Amz-Expires must be a number of seconds") from None
        if not 0 < expires <= MAX_EXPIRES:
            raise Forbidden(f"X-Amz-Expires must be between 1 and {MAX_EXPIRES} seconds (7 days)")
        signed_at = _timestamp(stamp)
        if now < signed_at - MAX_SKEW:
            raise Forbidden("the request is not yet valid: X-Amz-Date is in the future")
        if now > signed_at + expires:
            raise Forbidden("request has expired: the presigned URL's X-Amz-Expires has passed")
        payload = UNSIGNED
        params = [(k, v) for k, v in params if k != "X-Amz-Signature"]
    else:
        assert authorization is not None
        credential, signed_headers, signature = _parse_authorization(authorization)
        stamp = _one(headers, "x-amz-date") or ""
        if not stamp:
            date_header = _one(headers, "date")
            if not date_header:
                raise Forbidden("a signed request needs an X-Amz-Date or a Date header")
            stamp = _http_date(date_header)
        if abs(now - _timestamp(stamp)) > MAX_SKEW:
            raise RequestTimeSkewed("the difference between the request time and the server's time is too large")
        payload = _one(headers, "x-amz-content-sha256") or ""
        if not payload:
            raise BadInput("a signed request needs an x-amz-content-sha256 header")
    if "host" not in signed_headers:
        raise Forbidden("the signature must cover the host header")
    access_key, date, region = _credential(credential)
    if date != stamp[:8]:
        raise Forbidden("the credential's date is not the request's")
    found = await s3_keys.credentials(ctx, access_key)
    chosen: list[tuple[str, str]] = []
    for name in signed_headers:
        for value in headers.get(name, ()):
            chosen.append((name, value))
    host = _one(headers, "host") or ""
    if presigned:
        expected = _presigned_signature(found.secret, region, tuple(signed_headers), method, host, raw_path,
                                        tuple(params), tuple(chosen), stamp)
        if any(hmac.compare_digest(one, signature) for one in expected):
            return Verified(found.principal, payload, signature)
        raise _mismatch()
    if "x-amz-content-sha256" not in signed_headers:
        chosen.append(("x-amz-content-sha256", payload))  # the canonical request ends with it, signed or not
    signer = _header_signer(found.secret, region)
    for request in _requests(method, host, raw_path, params, chosen, stamp):
        if hmac.compare_digest(signer.signature(request), signature):
            return Verified(found.principal, payload, signature, signer, request)
    raise _mismatch()


def _mismatch() -> SignatureMismatch:
    return SignatureMismatch("the request signature we calculated does not match the signature you provided; "
                             "check your key and signing method")


def _requests(method: str, host: str, raw_path: str, params: Sequence[tuple[str, str]],
              chosen: Sequence[tuple[str, str]], stamp: str) -> list[AWSRequest]:
    """The request as botocore would have signed it: its path as S3 encodes it, then as it came."""
    requests = []
    for path in dict.fromkeys((_canonical_path(raw_path), raw_path)):
        # Pairs, not a mapping: a parameter may come twice; botocore's canonical query takes either.
        request = AWSRequest(method=method, url=f"http://{host}{path}", params=list(params))  # type: ignore[arg-type]
        request.headers = _SignedHeaders(chosen)  # type: ignore[assignment]
        request.context["timestamp"] = stamp
        requests.append(request)
    return requests


@functools.lru_cache(maxsize=256)
def _header_signer(secret: str, region: str) -> _Signed:
    """One signer per key and region: botocore's signer keeps no state of a request."""
    return _Signed(False, secret, region)


@functools.lru_cache(maxsize=4096)
def _presigned_signature(secret: str, region: str, signed_headers: tuple[str, ...], method: str, host: str,
                         raw_path: str, params: tuple[tuple[str, str], ...], chosen: tuple[tuple[str, str], ...],
                         stamp: str) -> tuple[str, ...]:
    """The signatures a presigned request may carry (one per spelling of its path), computed once per URL. The
    secret is part of the key: a URL is never taken as signed by a key it was not checked with."""
    signer = _Signed(True, secret, region)
    return tuple(signer.signature(request) for request in _requests(method, host, raw_path, params, chosen, stamp))
