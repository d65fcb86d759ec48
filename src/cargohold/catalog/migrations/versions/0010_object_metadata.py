"""object metadata: what an S3 client gave with an object (Content-Type, Cache-Control, x-amz-meta-*...)

Kept beside the item and answered by the S3 endpoint as S3 would; the HTTP API's answers are cargohold's own
(typed from the bytes and the name), so this changes nothing there.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("items") as batch:
        batch.add_column(sa.Column("meta", sa.JSON(), nullable=True))
    with op.batch_alter_table("s3_uploads") as batch:
        batch.add_column(sa.Column("meta", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("s3_uploads") as batch:
        batch.drop_column("meta")
    with op.batch_alter_table("items", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_column("meta")
