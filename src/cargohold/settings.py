"""Every setting, declared once: its key, default, help and parser.

Values come from ``.env`` in the instance home, and the process environment overrides the file.
The README's settings table is checked against these declarations by a test, so a
new setting is added here and in that table, nowhere else.
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, TypeVar, cast
from urllib.parse import urlsplit

from dotenv import dotenv_values

from .errors import ConfigError
from .storage.providers import OWN_STORAGE, OwnStorageName
from .units import parse_duration, parse_size

T = TypeVar("T")
Provider = OwnStorageName
PROVIDERS: tuple[Provider, ...] = OWN_STORAGE
"""The values of STORAGE_PROVIDER: the providers that ``storage/providers.py`` marks as own storage."""
HOME_ENV = "CARGOHOLD_HOME"


@dataclass(frozen=True)
class Declaration:
    key: str
    default: str
    help: str
    parse: Callable[[str], Any]
    example: str
    secret: bool = False


def setting(
    key: str, default: str, help: str, parse: Callable[[str], T], *, example: str = "", secret: bool = False
) -> T:
    decl = Declaration(key, default, help, parse, example or default, secret)
    return cast(T, field(metadata={"setting": decl}))


def _text(value: str) -> str:
    return value.strip()


def _path(value: str) -> Path:
    return Path(value.strip()).expanduser()


def _optional_path(value: str) -> Path | None:
    return _path(value) if value.strip() else None


def _folders(value: str) -> tuple[Path, ...]:
    folders = []
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        folder = Path(part).expanduser()
        if not folder.is_absolute():
            raise ValueError(f"{part!r} is not an absolute path")
        folders.append(folder)
    return tuple(folders)


def _port(value: str) -> int | None:
    if not value.strip():
        return None
    if not value.strip().isdigit() or not 0 < int(value) < 65536:
        raise ValueError(f"{value!r} is not a TCP port (1-65535)")
    return int(value)


def _accel_prefix(text: str) -> str:
    text = text.strip()
    if text and not (text.startswith("/") and text.endswith("/")):
        raise ValueError(f"{text!r} is not a location path; write it with a leading and a trailing slash")
    return text


def _public_url(value: str) -> str:
    text = value.strip().rstrip("/")
    if not text:
        return ""
    parts = urlsplit(text)
    if (parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment
            or "@" in parts.netloc):
        raise ValueError(f"{value!r} is not an http(s) address without a query (like https://data.example.com)")
    parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    return text


def _server_port(value: str) -> int:
    port = _port(value)
    if port is None:
        raise ValueError("it is empty")
    return port


def _count(value: str) -> int:
    if not value.strip().isdigit() or int(value) <= 0:
        raise ValueError(f"{value!r} is not a positive whole number")
    return int(value)


def _timeout(value: str) -> float:
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError(f"{value!r} would wait no time at all; a timeout is longer than 0")
    return seconds


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("", "0", "false", "no", "off"):
        return False
    raise ValueError(f"{value!r} is not true or false")


def _provider(value: str) -> Provider:
    lowered = value.strip().lower()
    if lowered not in PROVIDERS:
        raise ValueError(f"{value!r} is not a storage provider")
    return lowered


def _bucket_prefix(value: str) -> str:
    prefix = value.strip()
    # The strictest of the four providers: Azure container names (3-63 lowercase letters, digits,
    # single hyphens), less the room that "-private" takes.
    ok = 3 <= len(prefix) <= 55 and all(c.islower() or c.isdigit() or c == "-" for c in prefix)
    if not ok or prefix[0] == "-" or prefix[-1] == "-" or "--" in prefix:
        raise ValueError(f"{value!r} cannot name a bucket on every provider")
    return prefix


@dataclass(frozen=True)
class Settings:
    home: Path
    origins: dict[str, tuple[str, str]] = field(compare=False, repr=False)
    """Per key: the text as written and where it came from (``environment``, ``.env`` or ``default``)."""
    data_path: Path = setting(
        "DATA_PATH", "$CARGOHOLD_HOME/data",
        "Storage (local provider), caches and the SQLite catalog live here.", _path, example="/srv/cargohold",
    )
    storage_provider: Provider = setting(
        "STORAGE_PROVIDER", "http",
        "`http` local disk, `minio` S3-compatible (AWS S3 included), `azure`, `google`.", _provider,
        example="minio",
    )
    storage_bucket_prefix: str = setting(
        "STORAGE_BUCKET_PREFIX", "cargohold",
        "The `<prefix>` of the two buckets `<prefix>-public` and `<prefix>-private`.", _bucket_prefix,
    )
    storage_endpoint: str = setting(
        "STORAGE_ENDPOINT", "",
        "Object-store host, e.g. `s3.amazonaws.com`; may carry its scheme (`http://10.0.0.5`).", _text,
        example="s3.amazonaws.com",
    )
    storage_port: int | None = setting(
        "STORAGE_PORT", "", "Port of `STORAGE_ENDPOINT`; 443 means https, any other port http.", _port,
        example="9000",
    )
    storage_access_key: str = setting(
        "STORAGE_ACCESS_KEY", "", "S3 access key id; for Azure the storage account name.", _text,
        example="AKIA...",
    )
    storage_secret_key: str = setting(
        "STORAGE_SECRET_KEY", "", "S3 secret access key; for Azure the account key.", _text,
        example="...", secret=True,
    )
    storage_region: str = setting("STORAGE_REGION", "", "S3 region (`us-east-1` when empty).", _text,
                                  example="eu-central-1")
    storage_iam_role: str = setting(
        "STORAGE_IAM_ROLE", "",
        "AWS only: the instance's IAM role; temporary keys come from the metadata service (IMDSv2).", _text,
        example="cargohold-s3",
    )
    storage_credentials_path: Path | None = setting(
        "STORAGE_CREDENTIALS_PATH", "", "Google service-account JSON file.", _optional_path,
        example="/etc/cargohold/gcs.json",
    )
    aws_ec2_metadata_service_endpoint: str = setting(
        "AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://169.254.169.254",
        "Where `STORAGE_IAM_ROLE` asks for keys (the AWS SDKs' own variable).", _text,
    )
    jupyter_download_files_before_start: bool = setting(
        "JUPYTER_DOWNLOAD_FILES_BEFORE_START", "false", "Workspace sync: pull team files before start.", _bool,
    )
    storage_jupyter_sync: bool = setting(
        "STORAGE_JUPYTER_SYNC", "false", "Workspace sync: push changes back while running.", _bool,
    )
    cache_previews_size: int = setting("CACHE_PREVIEWS_SIZE", "1g", "Size cap of the previews tier.", parse_size)
    cache_previews_expires: float = setting(
        "CACHE_PREVIEWS_EXPIRES", "12h", "A preview unused this long is dropped.", parse_duration,
    )
    cache_storage_size: int = setting(
        "CACHE_STORAGE_SIZE", "10g", "Size cap of the storage tier (remote originals).", parse_size,
    )
    cache_storage_expires: float = setting(
        "CACHE_STORAGE_EXPIRES", "7d", "A cached original unused this long is dropped.", parse_duration,
    )
    cache_image_converter_size: int = setting(
        "CACHE_IMAGE_CONVERTER_SIZE", "10g", "Size cap of the image-converter tier.", parse_size,
    )
    cache_image_converter_expires: float = setting(
        "CACHE_IMAGE_CONVERTER_EXPIRES", "7d", "A conversion unused this long is dropped.", parse_duration,
    )
    cache_links_revalidate: float = setting(
        "CACHE_LINKS_REVALIDATE", "1m",
        "How long a linked file's version (ETag) is trusted before it is asked again; `0` asks on every request.",
        parse_duration,
    )
    cache_fetch_timeout: float = setting(
        "CACHE_FETCH_TIMEOUT", "30s", "Longest wait for a remote's next bytes before a cache miss answers 504.",
        parse_duration,
    )
    database_url: str = setting(
        "DATABASE_URL", "", "Catalog database; SQLite under `DATA_PATH` when empty, PostgreSQL for replicas.",
        _text, example="postgresql://cargohold@db/cargohold", secret=True,
    )
    remote_links_path: Path = setting(
        "REMOTE_LINKS_PATH", "$CARGOHOLD_HOME/remote_links.yml", "The connections file.", _path,
    )
    secret_key: str = setting(
        "SECRET_KEY", "",
        "Signs URLs and encrypts stored secrets; made once into `secret.key` in the instance home when empty. "
        "Give every replica the same one.", _text, example="a long random string", secret=True,
    )
    image_max_pixels: int = setting(
        "IMAGE_MAX_PIXELS", "200000000", "Images declaring more pixels than this are refused (422).", _count,
    )
    image_memory_budget: int = setting(
        "IMAGE_MEMORY_BUDGET", "2g",
        "Memory all image decoding (previews, conversions) may hold at once, each decode's cost estimated from "
        "its header; more waits, and after 10 s is refused (503, `Retry-After`); one image over it alone is "
        "refused (422).", parse_size,
    )
    video_max_duration: float = setting(
        "VIDEO_MAX_DURATION", "24h",
        "Longest video read: one declaring more, or whose frames run past it when counted or converted, is refused "
        "(422) there, so a stream that never ends cannot hold a worker.", parse_duration,
    )
    video_conversions: int = setting(
        "VIDEO_CONVERSIONS", "1",
        "Videos converted for playback (`?format=mp4`: a remux, or a transcode to H.264/AAC) at once; more wait "
        "their turn, each answering 202 with its progress.", _count,
    )
    upload_max_size: int = setting(
        "UPLOAD_MAX_SIZE", "100g", "Largest accepted file; a larger one is refused (413).", parse_size,
    )
    links_allow_private_networks: bool = setting(
        "LINKS_ALLOW_PRIVATE_NETWORKS", "false",
        "Let `http(s)://` links reach loopback, private, link-local and cloud-metadata addresses.", _bool,
    )
    links_fs_roots: tuple[Path, ...] = setting(
        "LINKS_FS_ROOTS", "",
        "Folders of the server under which an admin may connect a server folder (`provider: fs`) from the API or "
        "the web UI, comma-separated; empty: server folders come from `remote_links.yml` only.", _folders,
        example="/data/datasets,/mnt/nas",
    )
    server_host: str = setting(
        "SERVER_HOST", "127.0.0.1", "Address the HTTP server listens on.", _text, example="0.0.0.0",
    )
    server_port: int = setting("SERVER_PORT", "8080", "Port the HTTP server listens on.", _server_port)
    server_s3_port: int | None = setting(
        "SERVER_S3_PORT", "8081",
        "Port of the S3 endpoint (docs/S3.md), on `SERVER_HOST`: every S3 client reads and writes datasets there. "
        "Empty: no S3 endpoint.", _port, example="9000",
    )
    server_header_timeout: float = setting(
        "SERVER_HEADER_TIMEOUT", "10s",
        "Longest a client may take to send a request's whole header block, counted from the connection or, on a "
        "kept-alive one, from the first byte of the next request; then the connection is closed (nginx's "
        "`client_header_timeout`).", _timeout,
    )
    server_body_timeout: float = setting(
        "SERVER_BODY_TIMEOUT", "60s",
        "Longest wait for the next piece of a request body before the request is refused (408) and the connection "
        "closed; the wait starts again with every piece, so a slow upload that keeps sending is never cut (nginx's "
        "`client_body_timeout`).", _timeout,
    )
    server_accel_redirect: str = setting(
        "SERVER_ACCEL_REDIRECT", "",
        "Behind nginx (deploy/nginx.conf): the internal location that maps to `DATA_PATH`; files on local disk "
        "are then sent by nginx (`X-Accel-Redirect`) and signed answers may be cached by it until they expire.",
        _accel_prefix, example="/_cargohold/r1/",
    )
    server_accel_cache: float = setting(
        "SERVER_ACCEL_CACHE", "1m",
        "Behind nginx: how long nginx may answer a signed URL from its own cache (at most until the URL expires). "
        "A URL whose item was deleted or whose token was revoked keeps answering from there that long.",
        parse_duration, example="10s",
    )
    server_public_url: str = setting(
        "SERVER_PUBLIC_URL", "",
        "The address signed URLs name (scheme, host, port, and a path if a proxy adds one); empty: the listening "
        "address, `http://SERVER_HOST:SERVER_PORT`. Never taken from a request's `Host` header.",
        _public_url, example="https://data.example.com",
    )

    @property
    def public_url(self) -> str:
        """Where this server is reached, without a trailing slash: SERVER_PUBLIC_URL, or the listening address."""
        if self.server_public_url:
            return self.server_public_url
        host = f"[{self.server_host}]" if ":" in self.server_host else self.server_host
        return f"http://{host}:{self.server_port}"

    @property
    def s3_url(self) -> str | None:
        """The S3 endpoint's address on this machine, None when it is off."""
        if self.server_s3_port is None:
            return None
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.server_host, self.server_host)
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.server_s3_port}"

    @property
    def storage_root(self) -> Path:
        return self.data_path / "storage"

    def bucket(self, visibility: Literal["public", "private"]) -> str:
        return f"{self.storage_bucket_prefix}-{visibility}"

    def summary(self) -> list[tuple[str, str, str]]:
        """Every setting as it may be shown: key, value as written (secrets masked), and its origin."""
        rows = []
        for decl in declarations():
            text, origin = self.origins[decl.key]
            if decl.secret and text:
                text = "****"
            rows.append((decl.key, text, origin))
        return rows


def declarations() -> list[Declaration]:
    return [f.metadata["setting"] for f in fields(Settings) if "setting" in f.metadata]


def _field_name(key: str) -> str:
    return key.lower()


def instance_home(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    return Path(env.get(HOME_ENV) or "~/.cargohold").expanduser().absolute()


def load_settings(home: Path | None = None, environ: Mapping[str, str] | None = None,
                  env_file: Path | None = None) -> Settings:
    """Read ``.env`` from the instance home (or ``env_file``), let the environment override it, check
    every value."""
    env = os.environ if environ is None else environ
    home = home or instance_home(env)
    env_file = env_file or home / ".env"
    file_values = {k: v or "" for k, v in dotenv_values(env_file).items()} if env_file.is_file() else {}
    known = {d.key for d in declarations()}
    for key in file_values:
        if key not in known and key != HOME_ENV:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"did you mean {close[0]}?" if close else "the README lists every key"
            raise ConfigError(key, f"unknown setting in {env_file}", f"remove it or rename it; {hint}")
    values: dict[str, Any] = {}
    origins: dict[str, tuple[str, str]] = {}
    for decl in declarations():
        if decl.key in env:
            raw, origin = env[decl.key], "environment"
        elif decl.key in file_values:
            raw, origin = file_values[decl.key], ".env"
        else:
            raw, origin = decl.default, "default"
        raw = raw.replace("$CARGOHOLD_HOME", str(home))
        origins[decl.key] = (raw, origin)
        try:
            value = decl.parse(raw)
        except ValueError as exc:
            raise ConfigError(
                decl.key, str(exc), f"set {decl.key} to a value like {decl.example!r} ({decl.help})"
            ) from None
        if isinstance(value, Path) and not value.is_absolute():
            value = home / value
        values[_field_name(decl.key)] = value
    settings = Settings(home=home, origins=origins, **values)
    _check_provider(settings)
    return settings


def _check_provider(s: Settings) -> None:
    """The checks that involve more than one key, or the file a key names."""
    if s.server_s3_port == s.server_port:
        raise ConfigError("SERVER_S3_PORT", f"it is SERVER_PORT's port too ({s.server_port})",
                          "give the S3 endpoint a port of its own, e.g. SERVER_S3_PORT=8081, or leave it empty")
    if s.storage_provider == "minio":
        if not s.storage_iam_role and not (s.storage_access_key and s.storage_secret_key):
            missing = "STORAGE_SECRET_KEY" if s.storage_access_key else "STORAGE_ACCESS_KEY"
            raise ConfigError(
                missing, "STORAGE_PROVIDER=minio needs static keys or an IAM role",
                "set STORAGE_ACCESS_KEY and STORAGE_SECRET_KEY, or STORAGE_IAM_ROLE on an AWS instance",
            )
        if s.storage_iam_role and s.storage_access_key:
            raise ConfigError(
                "STORAGE_IAM_ROLE", "both static keys and an IAM role are set",
                "keep one: remove STORAGE_IAM_ROLE or STORAGE_ACCESS_KEY/STORAGE_SECRET_KEY",
            )
    elif s.storage_provider == "azure":
        for key, value in (("STORAGE_ACCESS_KEY", s.storage_access_key), ("STORAGE_SECRET_KEY", s.storage_secret_key)):
            if not value:
                raise ConfigError(
                    key, "STORAGE_PROVIDER=azure needs the storage account name and key",
                    "set STORAGE_ACCESS_KEY to the account name and STORAGE_SECRET_KEY to its key",
                )
    elif s.storage_provider == "google":
        read_service_account(s.storage_credentials_path)


def read_service_account(path: Path | None, key: str = "STORAGE_CREDENTIALS_PATH") -> dict[str, Any]:
    """The service-account JSON that STORAGE_CREDENTIALS_PATH (or ``key``) names, checked for what we use."""
    if path is None:
        who = "STORAGE_PROVIDER=google" if key.startswith("STORAGE_") else "a google connection"
        raise ConfigError(key, f"{who} needs a service-account JSON file",
                          f"set {key} to the file downloaded from the Google Cloud console")
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(key, f"cannot read {path}: {exc.strerror}",
                          "point it at a readable service-account JSON file") from None
    return parse_service_account(text, str(path), key)


def parse_service_account(text: str, where: str, key: str) -> dict[str, Any]:
    """A service-account key from its JSON text, checked for what we use. Errors never quote the text."""
    try:
        info = json.loads(text)
    except ValueError:
        raise ConfigError(key, f"{where} is not JSON", "download the service-account key again as JSON") from None
    required = ("type", "project_id", "private_key", "client_email")
    missing = [k for k in required if not isinstance(info, dict) or not info.get(k)]
    if missing:
        raise ConfigError(key, f"{where} lacks {', '.join(missing)}",
                          "use a service-account key file (type service_account), not another kind of JSON")
    from google.oauth2 import service_account

    try:  # the key itself, now rather than at the first read (where it was a 500)
        service_account.Credentials.from_service_account_info(info)  # type: ignore[no-untyped-call]
    except ValueError:
        raise ConfigError(key, f"{where} cannot be used: its private_key is not a PEM private key, or token_uri is "
                          "missing", "download the service-account key again") from None
    return cast(dict[str, Any], info)
