"""Every provider, declared once: its name, link schemes, connection fields, what the web UI calls it,
whether it can be own storage and/or a connection, and the function that opens its store.

Settings (``STORAGE_PROVIDER``), connections (``make_connection``, the API's ``PUT`` body), link URIs,
the opening of stores, the API's ``GET /providers`` and the web UI's forms all read this table;
``tests/unit/test_providers.py`` checks that they agree with it. Adding a provider is adding a row here
and writing its module (docs/ARCHITECTURE.md, "Adding a provider").

This module imports nothing of cargohold at run time (``settings.py`` reads it); the openers import
their provider's module, and so its libraries, only when a store of that provider is opened.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, cast

if TYPE_CHECKING:
    from .base import Store
    from .connection import Connection

ProviderName = Literal["http", "minio", "azure", "google", "fs"]
OwnStorageName = Literal["http", "minio", "azure", "google"]
"""The values of ``STORAGE_PROVIDER``."""
ConnectionProviderName = Literal["minio", "azure", "google", "fs"]
"""The ``provider`` of a connection (``remote_links.yml``, ``PUT /connections/{name}``)."""
Origin = Literal["file", "catalog"]
"""Where a connection is defined: ``remote_links.yml`` or the catalog (made through the API)."""
FieldKind = Literal["text", "list", "json"]


@dataclass(frozen=True)
class FieldSpec:
    """One field of a provider's connections, as ``remote_links.yml`` and the API spell it."""

    name: str
    label: str
    """What the web UI's form calls it."""
    help: str = ""
    example: str = ""
    required: bool = False
    """A connection without it is refused (within its ``choice``, when the choice is taken)."""
    secret: bool = False
    """Write-only: stored encrypted, never answered, kept when a change leaves it out."""
    kind: FieldKind = "text"
    """``list``: a list of names (buckets); ``json``: a JSON document, which the form reads from a file."""
    choice: str = ""
    """Fields of one choice are given together, instead of another choice's (S3: keys or an IAM role)."""
    origins: tuple[Origin, ...] = ("file", "catalog")


@dataclass(frozen=True)
class ProviderSpec:
    name: str
    label: str
    """What the web UI calls it, short: a card's subtitle, a fieldset's legend."""
    title: str
    """What the web UI calls it in a heading or a choice of providers."""
    bucket: str
    """What its buckets are called: bucket, container, folder."""
    open: Callable[[Connection, str], Store]
    """The store of one bucket of a connection of this provider."""
    schemes: tuple[str, ...] = ()
    """The link schemes it serves, the one cargohold writes first (``fs://storage-id/path`` for folders)."""
    fields: tuple[FieldSpec, ...] = ()
    own_storage: bool = False
    """Can be ``STORAGE_PROVIDER``."""
    connection: bool = False
    """Can be a connection's ``provider``."""
    server_folder: bool = False
    """It reads a folder of this server. Such a connection names ``path`` and ``storage_id`` (its one bucket)
    instead of ``buckets``, and may be made through the API only under ``LINKS_FS_ROOTS``."""

    @property
    def scheme(self) -> str:
        """The scheme of the links it serves, as cargohold writes them ("" for own storage only)."""
        return self.schemes[0] if self.schemes else ""

    def fields_of(self, origin: Origin) -> tuple[FieldSpec, ...]:
        return tuple(f for f in self.fields if origin in f.origins)

    def field_names(self, origin: Origin) -> tuple[str, ...]:
        """The fields a connection of this provider takes besides ``provider``."""
        return tuple(f.name for f in self.fields_of(origin))


def _open_folder(conn: Connection, bucket: str) -> Store:
    from .local import LocalStore

    assert conn.root is not None, "a folder provider needs its root"
    return LocalStore(conn.root / bucket)


def _open_mount(conn: Connection, bucket: str) -> Store:
    from .local import LocalStore

    assert conn.root is not None, "a folder provider needs its root"
    return LocalStore(conn.root, read_only=True)


def _open_s3(conn: Connection, bucket: str) -> Store:
    from .s3 import open_s3

    return open_s3(conn, bucket)


def _open_azure(conn: Connection, bucket: str) -> Store:
    from .azure import open_azure

    return open_azure(conn, bucket)


def _open_gcs(conn: Connection, bucket: str) -> Store:
    from .gcs import GcsStore

    return GcsStore(conn, bucket)


_BUCKETS_HELP = "A link’s bucket picks the connection that lists it, so a bucket can be listed by one connection only."


def _buckets(label: str = "Buckets") -> FieldSpec:
    return FieldSpec("buckets", label, _BUCKETS_HELP, required=True, kind="list")


_KEYS = "Use an access key and secret key"
_ROLE = "Use an IAM role"

PROVIDERS: dict[str, ProviderSpec] = {p.name: p for p in (
    ProviderSpec(
        "http", "Local disk", "Local disk", "bucket", _open_folder, own_storage=True, server_folder=True,
    ),
    ProviderSpec(
        "minio", "S3-compatible", "S3-compatible (AWS S3, MinIO…)", "bucket", _open_s3, ("s3",),
        own_storage=True, connection=True, fields=(
            FieldSpec("endpoint", "Endpoint", "host, host:port or http(s)://host[:port]; empty for AWS.",
                      "https://s3.amazonaws.com"),
            FieldSpec("access_key", "Access key", required=True, choice=_KEYS),
            FieldSpec("secret_key", "Secret key", required=True, secret=True, choice=_KEYS),
            FieldSpec("iam_role", "IAM role", "Keys come from the instance metadata service (on AWS).",
                      "cargohold-s3", required=True, choice=_ROLE),
            FieldSpec("region", "Region", example="eu-central-1"),
            _buckets(),
        ),
    ),
    ProviderSpec(
        "azure", "Azure Blob Storage", "Azure Blob Storage", "container", _open_azure, ("azure",),
        own_storage=True, connection=True, fields=(
            FieldSpec("endpoint", "Endpoint (optional)", "Empty for Azure itself; an emulator: http://127.0.0.1:10000",
                      "https://myaccount.blob.core.windows.net"),
            FieldSpec("access_key", "Storage account", example="myaccount", required=True),
            FieldSpec("secret_key", "Account key", "The storage account’s access key (base64).",
                      required=True, secret=True),
            _buckets("Containers"),
        ),
    ),
    ProviderSpec(
        "google", "Google Cloud Storage", "Google Cloud Storage", "bucket", _open_gcs, ("gs", "google"),
        own_storage=True, connection=True, fields=(
            FieldSpec("endpoint", "Endpoint (optional)", "Empty for Google itself.", "https://storage.googleapis.com"),
            FieldSpec("credentials_path", "Service account file",
                      "The service-account key file; a relative path is from remote_links.yml's folder.",
                      "/etc/cargohold/gcs.json", required=True, origins=("file",)),
            FieldSpec("credentials_json", "Service-account key (JSON file)",
                      "The key file downloaded from the Google Cloud console.",
                      required=True, secret=True, kind="json", origins=("catalog",)),
            _buckets(),
        ),
    ),
    ProviderSpec(
        "fs", "Server folder", "Server folder (fs://)", "folder", _open_mount, ("fs",),
        connection=True, server_folder=True, fields=(
            FieldSpec("path", "Folder on the server", "An absolute path on the server.", "/data/datasets",
                      required=True),
            FieldSpec("storage_id", "Storage id",
                      "The name links use for this folder: fs://<storage id>/path/to/file.jpg",
                      "local-datasets", required=True),
        ),
    ),
)}
"""Provider name → what it is. Every list of providers, fields or link schemes is read from here."""

OWN_STORAGE = cast(tuple[OwnStorageName, ...], tuple(n for n, p in PROVIDERS.items() if p.own_storage))
CONNECTION_PROVIDERS = cast(tuple[ConnectionProviderName, ...], tuple(n for n, p in PROVIDERS.items() if p.connection))
SCHEMES: dict[str, str] = {scheme: p.name for p in PROVIDERS.values() for scheme in p.schemes}
"""Link scheme → the provider that serves it."""


def one_of(words: tuple[str, ...] | list[str], last: str = "or") -> str:
    """``a, b, c or d``: a list of names in a message."""
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} {last} {words[-1]}"
