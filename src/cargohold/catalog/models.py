"""The catalog's tables. Schema changes go through an Alembic migration in ``migrations/versions``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UtcDateTime(TypeDecorator[datetime]):
    """Timestamps stored as UTC and read back timezone-aware on every database (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


MAX_ID = 2**31 - 1
"""The largest id a row can have: ``Integer`` keys are 32-bit on PostgreSQL (``SERIAL``). An id from
outside (a URL, a cursor) beyond it names no row; it must not reach the database, which refuses it
(``integer out of range`` on PostgreSQL, ``OverflowError`` past 64 bits on SQLite)."""


def is_row_id(value: int) -> bool:
    return 0 < value <= MAX_ID


NEVER_REUSED = {"sqlite_autoincrement": True}
"""The table args of every table whose ids are named from outside (signed URLs, cursors, a token inside a
signature): a deleted row's id is never given to another. SQLite reuses the largest id once that row is
deleted unless the key is ``AUTOINCREMENT``; PostgreSQL's sequences never go back."""


class Base(DeclarativeBase):
    pass


class Dataset(Base):
    __tablename__ = "datasets"
    __table_args__ = NEVER_REUSED

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    bucket: Mapped[str | None] = mapped_column(String(63), unique=True)
    """Its name on the S3 endpoint (services/buckets.py); set for every dataset, nullable only for the migration."""
    s3_location: Mapped[str | None] = mapped_column(String(64), nullable=True)
    """The LocationConstraint of the S3 CreateBucket that made it, answered by GetBucketLocation."""
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Item(Base):
    __tablename__ = "items"
    __table_args__ = (
        UniqueConstraint("dataset_id", "name", name="uq_items_dataset_name"),
        Index("ix_items_sha256", "sha256"),
        Index("ix_items_dataset_page", "dataset_id", "id"),  # cursor pages: WHERE dataset_id = ? AND id > ?
        # A link already in the dataset is not added twice: links are looked up by URI. A URI may have
        # 4 KiB (MAX_URI_BYTES); PostgreSQL's btree keys stop at about 2.7 kB, so there the index is a
        # hash index (equality is all the lookup needs), on SQLite a plain one.
        Index("ix_items_dataset_uri", "dataset_id", "uri").ddl_if(dialect="sqlite"),
        Index("ix_items_uri_hash", "uri", postgresql_using="hash").ddl_if(dialect="postgresql"),
        # Listings (services/listing.py) seek and sort names in byte order, as S3 lists keys: on PostgreSQL
        # COLLATE "C" whatever the database's collation (postgresql_ops is what follows the column in the
        # index's DDL; Alembic compares the columns, not their collation); SQLite compares bytes, and
        # uq_items_dataset_name's index serves there.
        Index("ix_items_dataset_name_bytes", "dataset_id", "name",
              postgresql_ops={"name": 'COLLATE "C"'}).ddl_if(dialect="postgresql"),
        NEVER_REUSED,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(1024))
    kind: Mapped[str] = mapped_column(String(16))  # image | video | file
    size: Mapped[int | None] = mapped_column(BigInteger)  # unknown for a link added without verification
    sha256: Mapped[str | None] = mapped_column(String(64))
    etag: Mapped[str | None] = mapped_column(String(255))
    md5: Mapped[str | None] = mapped_column(String(48))
    """A stored item's S3 ETag: the MD5 of its bytes, or for an S3 multipart upload the MD5 of its parts' MD5s
    and their count (``hex-N``); None for items stored before it was kept."""
    meta: Mapped[dict[str, str] | None] = mapped_column(JSON)
    """What an S3 client gave with the object (``content-type``, ``cache-control``, ``x-amz-meta-*``...), by
    lowercase header name, answered by the S3 endpoint only (s3/metadata.py)."""
    s3: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    """For an object written through the S3 endpoint: ``{"checksum": {"algorithm", "type", "value"}, "parts":
    [[size, checksum or null], ...]}`` (parts: a multipart upload's, in order), answered by the S3 endpoint only
    (services/checksums.py)."""
    video: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    """A video's probe (media/video.py ``VideoInfo``): duration, frame rates, frame count, rotation, codecs."""
    mime_type: Mapped[str] = mapped_column(String(255))
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(8))  # stored | link | folder (an empty folder: services/items.FOLDER)
    uri: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class TeamFile(Base):
    __tablename__ = "team_files"
    __table_args__ = NEVER_REUSED

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(String(1024), unique=True)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    content_type: Mapped[str] = mapped_column(String(255))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class TeamFileWrite(Base):
    """A team file's new bytes, whole in ``staged_key`` (``.staging/`` of the private bucket), announced
    before they are moved to the path and the row changed: a crash between the two is finished from
    here (services/team_files.py), so a row never names bytes other than those at its path."""

    __tablename__ = "team_file_writes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(String(1024), index=True)
    staged_key: Mapped[str] = mapped_column(String(128))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    content_type: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class ApiToken(Base):
    __tablename__ = "api_tokens"
    __table_args__ = NEVER_REUSED

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    role: Mapped[str] = mapped_column(String(16))  # read | write | admin (services/access.py)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    datasets: Mapped[list[int] | None] = mapped_column(JSON)
    """The dataset ids it is limited to; null: not limited by dataset (unless ``files`` is set)."""
    files: Mapped[list[str] | None] = mapped_column(JSON)
    """The team-file folders it is limited to, each ending in ``/``; null: not limited by folder."""
    connections: Mapped[list[str] | None] = mapped_column(JSON)
    """The connections whose buckets it may sync; null: none (an admin token may sync any)."""
    s3_access_key: Mapped[str | None] = mapped_column(String(32), unique=True)
    """Its S3 access key id, when it has a key pair (``token create --s3``)."""
    s3_secret: Mapped[str | None] = mapped_column(Text)
    """Its S3 secret access key, encrypted (SigV4 needs the secret itself, not a hash)."""
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class S3Upload(Base):
    """An S3 multipart upload in progress (or just completed: ``completed``): its parts are in the public bucket
    under ``.multipart/`` until it is completed or aborted (``cargohold gc`` removes those of one left for longer
    than a day)."""

    __tablename__ = "s3_uploads"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(1024))
    content_type: Mapped[str | None] = mapped_column(String(255))
    meta: Mapped[dict[str, str] | None] = mapped_column(JSON)
    """The object's metadata, given when the upload was created, for the item it becomes."""
    checksum_algorithm: Mapped[str | None] = mapped_column(String(16))
    """``x-amz-checksum-algorithm`` it was begun with (lowercase: crc32, crc32c, crc64nvme, sha1, sha256)."""
    checksum_type: Mapped[str | None] = mapped_column(String(16))
    """COMPOSITE or FULL_OBJECT (``x-amz-checksum-type``)."""
    stride: Mapped[int | None] = mapped_column(BigInteger)
    """The part size its parts are written in place at: part ``n`` at ``(n - 1) * stride`` of one file (a store
    with ``in_place`` writes; the first part of at least 5 MiB sets it). None: each part is a file of its own."""
    completed: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    """Once completed: what CompleteMultipartUpload answered (``etag``, ``checksum``), answered again to a client
    that repeats it (S3 does: a retried request must not fail); gc removes the row later."""
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class S3Part(Base):
    __tablename__ = "s3_parts"

    upload_id: Mapped[str] = mapped_column(ForeignKey("s3_uploads.id", ondelete="CASCADE"), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    md5: Mapped[str] = mapped_column(String(32))
    staged_key: Mapped[str] = mapped_column(String(128))
    start: Mapped[int | None] = mapped_column(BigInteger)
    """Where in ``staged_key`` its bytes begin, when written in place (the upload's one file); None: the whole of
    ``staged_key`` is the part."""
    checksum: Mapped[str | None] = mapped_column(String(128))
    """The part's checksum (base64) in its upload's algorithm, when the upload has one."""
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class ConnectionRecord(Base):
    """A connection made at run time (the API, the web UI); ``remote_links.yml`` ones are not stored here."""

    __tablename__ = "connections"
    __table_args__ = NEVER_REUSED

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    provider: Mapped[str] = mapped_column(String(16))  # minio | azure | google
    settings: Mapped[str] = mapped_column(Text)
    """The fields that are not secret, as a JSON object (endpoint, access_key, region, buckets...)."""
    secrets: Mapped[str | None] = mapped_column(Text)
    """The secret fields as a JSON object, encrypted (Fernet, key derived from the instance secret)."""
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


__all__ = ["ApiToken", "Base", "ConnectionRecord", "Dataset", "Item", "S3Part", "S3Upload", "TeamFile", "TeamFileWrite",
           "func"]
