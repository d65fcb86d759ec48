"""token scopes: roles read | write | admin, and limits to datasets, team-file folders and connections

``user`` tokens become ``write`` tokens: they keep what they could do. A limit is a JSON list; null is no
limit by that (services/access.py).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

LIMITS = ("datasets", "files", "connections")


def upgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        for column in LIMITS:
            batch.add_column(sa.Column(column, sa.JSON(), nullable=True))
    op.execute("UPDATE api_tokens SET role = 'write' WHERE role = 'user'")


def downgrade() -> None:
    # An older cargohold knows no limits and no read role: such a token kept there would reach everything,
    # so it is removed (make it again after upgrading).
    op.execute("DELETE FROM api_tokens WHERE role = 'read' OR datasets IS NOT NULL OR files IS NOT NULL")
    op.execute("UPDATE api_tokens SET role = 'user' WHERE role = 'write'")
    # A SQLite batch that drops columns rebuilds the table: keep its ids never reused (0006).
    with op.batch_alter_table("api_tokens", table_kwargs={"sqlite_autoincrement": True}) as batch:
        for column in LIMITS:
            batch.drop_column(column)
