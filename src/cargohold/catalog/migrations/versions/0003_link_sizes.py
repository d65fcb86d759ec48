"""links: a linked item added without verification has no known size; links are found by URI

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.alter_column("size", existing_type=sa.BigInteger(), nullable=True)
        batch_op.create_index("ix_items_dataset_uri", ["dataset_id", "uri"], unique=False)


def downgrade() -> None:
    op.execute("UPDATE items SET size = 0 WHERE size IS NULL")
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.drop_index("ix_items_dataset_uri")
        batch_op.alter_column("size", existing_type=sa.BigInteger(), nullable=False)
