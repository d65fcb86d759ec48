"""links: on PostgreSQL, look links up through a hash index on the URI (a btree refuses URIs over ~2.7 kB)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite keeps ix_items_dataset_uri: its index keys have no size limit
    op.drop_index("ix_items_dataset_uri", table_name="items")
    op.create_index("ix_items_uri_hash", "items", ["uri"], unique=False, postgresql_using="hash")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index("ix_items_uri_hash", table_name="items")
    op.create_index("ix_items_dataset_uri", "items", ["dataset_id", "uri"], unique=False)
