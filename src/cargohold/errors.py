"""cargohold's one exception family.

    CargoholdError
    ├── ConfigError            a setting is missing or wrong (names the key and the fix)
    ├── BadInput               a request or argument cannot be used as given
    │   ├── InvalidKey         an object key no provider could store unchanged
    │   └── RangeNotSatisfiable
    │   ├── TooLarge           an upload over UPLOAD_MAX_SIZE (413)
    │   └── Unprocessable      well-formed but refused: an image over the pixel limit (422)
    ├── Unauthenticated        no token, an unknown one, a bad or expired signature (401)
    ├── NotFound
    ├── AlreadyExists
    ├── Forbidden              credentials missing, wrong, or not allowed to do this
    ├── BackendUnavailable     the storage service did not answer usefully
    │   └── StoreTimeout       ... or not at all, within the time a request may take (504)
    ├── BadGateway             a remote store answered with an error, or could not be reached (502)
    ├── GatewayTimeout         a remote store sent nothing for CACHE_FETCH_TIMEOUT (504)
    └── Unsupported            the provider has no such capability

Errors from libraries are translated where they enter (``raise X(...) from exc``), so callers
above ``storage/`` never see a boto, azure, google or obstore exception.
"""

from __future__ import annotations


class CargoholdError(Exception):
    code = "error"
    http_status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(CargoholdError):
    code = "bad_setting"
    http_status = 500

    def __init__(self, key: str, problem: str, fix: str) -> None:
        super().__init__(f"{key}: {problem}. Fix: {fix}")
        self.key = key
        self.problem = problem
        self.fix = fix


class BadInput(CargoholdError):
    code = "bad_input"
    http_status = 400


class InvalidKey(BadInput):
    code = "invalid_key"


class RangeNotSatisfiable(BadInput):
    code = "range_not_satisfiable"
    http_status = 416


class TooLarge(BadInput):
    code = "too_large"
    http_status = 413


class Unprocessable(BadInput):
    code = "unprocessable"
    http_status = 422


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


class BackendUnavailable(CargoholdError):
    code = "backend_unavailable"
    http_status = 503


class StoreTimeout(BackendUnavailable):
    """A store sent no answer within the time one request may take, its retries included
    (``storage/base.py``: ``META_TIMEOUT`` for listings, HEAD and DELETE)."""

    code = "gateway_timeout"
    http_status = 504


class BadGateway(CargoholdError):
    code = "bad_gateway"
    http_status = 502


class Unsupported(CargoholdError):
    code = "unsupported"
    http_status = 501


class GatewayTimeout(CargoholdError):
    code = "gateway_timeout"
    http_status = 504
