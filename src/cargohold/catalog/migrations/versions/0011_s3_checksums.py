"""S3 checksums and parts: what a client asked for and gets back (x-amz-checksum-*, partNumber, attributes)

``items.s3`` keeps, for an object written through the S3 endpoint, its checksum (algorithm, FULL_OBJECT or
COMPOSITE, value) and, for a multipart upload, each part's size and checksum: GetObject and HeadObject by
``partNumber`` and GetObjectAttributes answer from it. ``s3_uploads`` keeps the checksum an upload was begun
with and, once completed, the answer a repeated CompleteMultipartUpload gets; ``s3_parts`` each part's checksum.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("items") as batch:
        batch.add_column(sa.Column("s3", sa.JSON(), nullable=True))
    with op.batch_alter_table("s3_uploads") as batch:
        batch.add_column(sa.Column("checksum_algorithm", sa.String(16), nullable=True))
        batch.add_column(sa.Column("checksum_type", sa.String(16), nullable=True))
        batch.add_column(sa.Column("completed", sa.JSON(), nullable=True))
    with op.batch_alter_table("s3_parts") as batch:
        batch.add_column(sa.Column("checksum", sa.String(128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("s3_parts") as batch:
        batch.drop_column("checksum")
    with op.batch_alter_table("s3_uploads") as batch:
        batch.drop_column("completed")
        batch.drop_column("checksum_type")
        batch.drop_column("checksum_algorithm")
    with op.batch_alter_table("items", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_column("s3")
