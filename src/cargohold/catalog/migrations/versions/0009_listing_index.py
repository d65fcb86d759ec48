"""listing: on PostgreSQL, an index on items' names in byte order, for prefix + delimiter listings

S3 lists keys in UTF-8 byte order, and ``services/listing.py`` compares and sorts names ``COLLATE "C"``:
on a database whose collation is not C, ``uq_items_dataset_name`` cannot be seeked in that order, this
index can. SQLite compares names by their bytes already; the unique constraint's index serves there.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.create_index("ix_items_dataset_name_bytes", "items", ["dataset_id", "name"], unique=False,
                    postgresql_ops={"name": 'COLLATE "C"'})  # CREATE INDEX ... (dataset_id, name COLLATE "C")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index("ix_items_dataset_name_bytes", table_name="items")
