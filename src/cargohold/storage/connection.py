"""Where a provider lives and how to sign in to it: one shape for own storage and for links.

Own storage builds one ``Connection`` from the ``STORAGE_*`` settings; ``remote_links.yml`` entries
become connections of the same shape, so every provider is opened by one function.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ..errors import ConfigError
from .providers import ProviderName

if TYPE_CHECKING:  # settings.py reads the provider table, which this package holds
    from ..settings import Settings

__all__ = ["Connection", "ProviderName", "own_connection"]

_UNSAFE = re.compile(r"[\x00-\x20\x7f<>\"'`{}|\\^]")
_HOST = re.compile(r"[A-Za-z0-9._-]+|[0-9A-Fa-f:.]+")  # a name or an IPv4 address; an IPv6 address, unbracketed


@dataclass(frozen=True)
class Connection:
    provider: ProviderName
    endpoint: str = ""
    port: int | None = None
    access_key: str = ""
    secret_key: str = field(default="", repr=False)
    region: str = ""
    iam_role: str = ""
    credentials_path: Path | None = None
    credentials_json: str = field(default="", repr=False)
    """Google: the service-account JSON itself (connections kept in the catalog), instead of a path."""
    metadata_endpoint: str = "http://169.254.169.254"
    root: Path | None = None
    """The folder that holds the buckets, for ``http`` and ``fs``."""
    setting_prefix: str = "STORAGE_"
    """How error messages name this connection's keys: ``STORAGE_`` gives ``STORAGE_ENDPOINT``; a prefix
    not ending in ``_`` (``connection 'x' field ``) gives the lowercase field (``connection 'x' field endpoint``)."""

    def key(self, name: str) -> str:
        """The name of one of this connection's fields in an error message (``name`` as in the yml file)."""
        return f"{self.setting_prefix}{name.upper() if self.setting_prefix.endswith('_') else name}"

    def endpoint_url(self, default_port_scheme: bool = True) -> str:
        """``STORAGE_ENDPOINT`` + ``STORAGE_PORT`` as a URL: a named scheme wins; otherwise port 443
        (or no port) means https and any other port http."""
        if not self.endpoint:
            return ""
        raw = self.endpoint if "://" in self.endpoint else f"//{self.endpoint}"
        if _UNSAFE.search(raw):
            # The object-store library panics on some of these (`<img ...>`): refused before it sees them.
            raise ConfigError(self.key("endpoint"), f"{self.endpoint[:100]!r} holds spaces, control characters or "
                              "one of < > \" ' ` { } | \\ ^", "write the endpoint as host, host:port or http://host:port")
        parts = urlsplit(raw)
        if parts.query or parts.fragment or parts.username or parts.password or (
                parts.hostname and not _HOST.fullmatch(parts.hostname)):
            raise ConfigError(self.key("endpoint"), f"{self.endpoint[:100]!r} is not a plain host, port and path",
                              "write the endpoint as host, host:port or http://host:port, without ?, # or user@")
        if not parts.hostname:
            raise ConfigError(self.key("endpoint"), f"{self.endpoint!r} names no host",
                              "write a host name, optionally with scheme and port: http://10.0.0.5:9000")
        port = parts.port or self.port
        scheme = parts.scheme or ("https" if port in (None, 443) else "http")
        if scheme not in ("http", "https"):
            raise ConfigError(self.key("endpoint"), f"scheme {scheme!r} is not http or https",
                              "write http://host:port or https://host")
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        netloc = host if port is None or (scheme, port) in (("https", 443), ("http", 80)) else f"{host}:{port}"
        return f"{scheme}://{netloc}{parts.path.rstrip('/')}"


def own_connection(settings: Settings) -> Connection:
    return Connection(
        provider=settings.storage_provider,
        endpoint=settings.storage_endpoint,
        port=settings.storage_port,
        access_key=settings.storage_access_key,
        secret_key=settings.storage_secret_key,
        region=settings.storage_region,
        iam_role=settings.storage_iam_role,
        credentials_path=settings.storage_credentials_path,
        metadata_endpoint=settings.aws_ec2_metadata_service_endpoint,
        root=settings.storage_root,
    )
