"""The JSON shapes of the API (docs/API.md), as pydantic models for FastAPI's OpenAPI schema."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field

from ..media.convert import BROWSER_SAFE
from ..media.preview import ImageFormat
from ..services.items import DatasetInfo
from .params import PreviewIn


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorOut(BaseModel):
    error: ErrorBody


class DatasetIn(BaseModel):
    name: str = Field(min_length=1, max_length=255)


class DatasetOut(BaseModel):
    id: int
    name: str
    bucket: str
    """Its bucket on the S3 endpoint (docs/S3.md): the name itself when it is a valid bucket name."""
    created_at: datetime
    item_count: int
    total_size: int

    @classmethod
    def of(cls, info: DatasetInfo) -> DatasetOut:
        d = info.dataset
        return cls(id=d.id, name=d.name, bucket=d.bucket or "", created_at=d.created_at, item_count=info.item_count,
                   total_size=info.total_size)


class DatasetList(BaseModel):
    datasets: list[DatasetOut]


class ItemOut(BaseModel):
    id: int
    dataset_id: int
    name: str
    kind: Literal["image", "video", "file"]
    size: int | None
    sha256: str | None
    etag: str | None
    mime_type: str
    width: int | None
    height: int | None
    source: Literal["stored", "link"]
    uri: str | None
    created_at: datetime
    video: dict[str, Any] | None = None
    """A video's probe: ``duration`` (s), ``frame_rate``, ``nominal_frame_rate``, ``frame_count`` and
    ``frame_count_from`` (``container`` or ``counted``), displayed ``width``/``height``, ``rotation``,
    ``codec``, ``pixel_format``, ``bit_rate``, ``audio_codec`` (docs/VIDEO.md)."""

    @computed_field  # type: ignore[prop-decorator]  # pydantic's documented use on a property
    @property
    def browser_shows(self) -> bool:
        """Whether a browser shows the content as it is; if not, ask ``?format=jpeg`` (the converter tier)."""
        return self.mime_type in BROWSER_SAFE

    @classmethod
    def of(cls, item: object) -> ItemOut:
        """From a catalog row: an ORM object, or a mapping (a page of items is read as mappings)."""
        if isinstance(item, Mapping):
            return cls.model_validate(dict(item))
        return cls.model_validate(item, from_attributes=True)


class ItemPage(BaseModel):
    items: list[ItemOut]
    folders: list[str] = Field(default_factory=list, description=(
        "With `delimiter`: the folders of this level, each a common prefix ending with the delimiter (`a/b/`), in "
        "name order beside the items"))
    next_cursor: str | None


class UploadResult(BaseModel):
    filename: str
    status: Literal["created", "renamed", "replaced", "skipped"]
    item: ItemOut


class UploadOut(BaseModel):
    results: list[UploadResult]


class ItemPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=1024, description="The item's new name (a path: `a/b/c.jpg`)")
    dataset_id: int | None = Field(default=None, description="The dataset to move it to")


class BulkIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["delete", "move"]
    ids: list[int] | None = Field(default=None, description="A selection: these items (at most 1,000)")
    dataset_id: int | None = Field(default=None, description="A folder: the items of this dataset under `prefix`")
    prefix: str | None = Field(default=None, max_length=1024, description="The folder (`a/b/`; empty: the dataset)")
    to_dataset_id: int | None = Field(default=None, description="move: the dataset the items go to")
    to_prefix: str | None = Field(default=None, max_length=1024, description=(
        "move: the folder they go to; a folder's items keep their path below `prefix`, a selection's its file name"))
    conflict: Literal["rename", "skip", "replace"] = "rename"


class BulkResult(BaseModel):
    id: int
    status: Literal["deleted", "moved", "renamed", "replaced", "skipped", "unchanged", "failed"]
    item: ItemOut | None = None
    error: ErrorBody | None = Field(default=None, description="Why this item failed (the error envelope's body)")


class BulkOut(BaseModel):
    results: list[BulkResult]
    more: bool = Field(description="The folder holds more items than one request does: ask again")


class MoveOut(BaseModel):
    status: Literal["moved", "renamed", "replaced", "skipped", "unchanged"] = Field(description=(
        "`renamed`: the name was taken and the policy is `rename`, the item got `name (1).ext`"))
    item: ItemOut


class SignIn(BaseModel):
    model_config = ConfigDict(strict=True)  # `true` is not an expiry, nor an item id (SignManyIn)
    expires_in: int = Field(default=3600, ge=1, le=7 * 86400)
    preview: PreviewIn | None = Field(default=None, description="Sign a preview URL with these parameters")
    format: ImageFormat | Literal["mp4"] | None = Field(
        default=None, description="Sign a content URL of this conversion (`mp4`: a video made playable)")
    frame: int | None = Field(default=None, ge=0, description="Sign the URL of this frame of a video (0-based), "
                              "sized by `preview` when given")


class SignOut(BaseModel):
    url: str
    expires_at: datetime


class SignManyIn(SignIn):
    items: list[int] = Field(min_length=1, max_length=1000, description="Item ids")


class SignManyOut(BaseModel):
    urls: dict[str, str] = Field(description="Signed URL by item id")
    expires_at: datetime


class TeamFileOut(BaseModel):
    path: str
    size: int
    sha256: str
    content_type: str
    updated_at: datetime

    @classmethod
    def of(cls, row: object) -> TeamFileOut:
        return cls.model_validate(row, from_attributes=True)


class TeamFilePage(BaseModel):
    files: list[TeamFileOut]
    next_cursor: str | None
