"""The LocationConstraint a bucket was created with on the S3 endpoint (GetBucketLocation answers it).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("datasets", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.add_column(sa.Column("s3_location", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("datasets", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_column("s3_location")
