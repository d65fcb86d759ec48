"""Datasets as S3 buckets: found by bucket name, made by CreateBucket, removed by DeleteBucket when empty."""

from __future__ import annotations

from sqlalchemy import or_, select

from ..catalog.models import Dataset, Item
from ..errors import AlreadyExists, InvalidBucketName, NoSuchBucket, NotEmpty
from .bucket_names import is_bucket_name
from .context import Context
from .items import create_dataset, delete_dataset


async def dataset_of_bucket(ctx: Context, bucket: str) -> Dataset:
    """The dataset whose bucket is ``bucket``; ``NoSuchBucket`` when none is. Remembered for ``memo.ITEM_TTL``
    (forgotten when a dataset is deleted here; another replica's deletion is seen within that)."""
    known: Dataset | None = ctx.memo.buckets.get(bucket)
    if known is not None:
        return known
    async with ctx.catalog.session() as session:
        dataset = await session.scalar(select(Dataset).where(Dataset.bucket == bucket))
    if dataset is None:
        raise NoSuchBucket("The specified bucket does not exist")
    ctx.memo.buckets.put(bucket, dataset)
    return dataset


async def create_bucket(ctx: Context, bucket: str, location: str | None = None) -> Dataset:
    """A new dataset named ``bucket`` (its bucket name is then its name), with the ``LocationConstraint`` it was
    created with; AlreadyExists when a dataset has that name or that bucket."""
    if not is_bucket_name(bucket):
        raise InvalidBucketName("The specified bucket is not valid: 3-63 lowercase letters, digits, '.' and '-'")
    async with ctx.catalog.session() as session:
        taken = await session.scalar(select(Dataset.id).where(or_(Dataset.bucket == bucket, Dataset.name == bucket)))
    if taken is not None:
        raise AlreadyExists("Your previous request to create the named bucket succeeded and you already own it")
    info = await create_dataset(ctx, bucket)
    if location is not None:
        async with ctx.catalog.session() as session:
            made = await session.get(Dataset, info.dataset.id)
            if made is not None:
                made.s3_location = location
                await session.commit()
                return made
    return info.dataset


async def delete_bucket(ctx: Context, dataset: Dataset) -> None:
    """Deletes an empty dataset; ``NotEmpty`` when it holds items."""
    async with ctx.catalog.session() as session:
        held = await session.scalar(select(Item.id).where(Item.dataset_id == dataset.id).limit(1))
    if held is not None:
        raise NotEmpty("The bucket you tried to delete is not empty")
    await delete_dataset(ctx, dataset.id)
