"""the S3 endpoint: datasets' bucket names, items' MD5s, tokens' key pairs, multipart uploads

Every dataset gets its bucket name here (services/buckets.py), in id order, so that the oldest keeps the
name when two derive the same.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from cargohold.services.bucket_names import bucket_for

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A SQLite batch adding a constraint rebuilds the table: keep its ids never reused (0006).
    keep = {"sqlite_autoincrement": True}
    with op.batch_alter_table("datasets", table_kwargs=keep) as batch:
        batch.add_column(sa.Column("bucket", sa.String(length=63), nullable=True))
        batch.create_unique_constraint("uq_datasets_bucket", ["bucket"])
    with op.batch_alter_table("items") as batch:
        batch.add_column(sa.Column("md5", sa.String(length=48), nullable=True))
    with op.batch_alter_table("api_tokens", table_kwargs=keep) as batch:
        batch.add_column(sa.Column("s3_access_key", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("s3_secret", sa.Text(), nullable=True))
        batch.create_unique_constraint("uq_api_tokens_s3_access_key", ["s3_access_key"])
    bind = op.get_bind()
    taken: set[str] = set()
    for row in bind.execute(sa.text("SELECT id, name FROM datasets ORDER BY id")).all():
        bucket = bucket_for(row.name, taken)
        taken.add(bucket)
        bind.execute(sa.text("UPDATE datasets SET bucket = :bucket WHERE id = :id"), {"bucket": bucket, "id": row.id})
    op.create_table(
        "s3_uploads",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=1024), nullable=False),
        sa.Column("content_type", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_s3_uploads_dataset_id", "s3_uploads", ["dataset_id"], unique=False)
    op.create_table(
        "s3_parts",
        sa.Column("upload_id", sa.String(length=64), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("md5", sa.String(length=32), nullable=False),
        sa.Column("staged_key", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["upload_id"], ["s3_uploads.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("upload_id", "number"),
    )


def downgrade() -> None:
    op.drop_table("s3_parts")
    op.drop_index("ix_s3_uploads_dataset_id", table_name="s3_uploads")
    op.drop_table("s3_uploads")
    keep = {"sqlite_autoincrement": True}  # as in upgrade
    with op.batch_alter_table("api_tokens", table_kwargs=keep) as batch:
        batch.drop_constraint("uq_api_tokens_s3_access_key", type_="unique")
        batch.drop_column("s3_secret")
        batch.drop_column("s3_access_key")
    with op.batch_alter_table("items", table_kwargs=keep) as batch:
        batch.drop_column("md5")
    with op.batch_alter_table("datasets", table_kwargs=keep) as batch:
        batch.drop_constraint("uq_datasets_bucket", type_="unique")
        batch.drop_column("bucket")
