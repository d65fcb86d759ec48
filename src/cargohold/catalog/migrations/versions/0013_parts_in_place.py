"""S3 multipart parts written in place: an upload's stride, where a part starts in the upload's one file.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("s3_uploads") as batch:
        batch.add_column(sa.Column("stride", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("s3_parts") as batch:
        batch.add_column(sa.Column("start", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("s3_parts") as batch:
        batch.drop_column("start")
    with op.batch_alter_table("s3_uploads") as batch:
        batch.drop_column("stride")
