"""ids never reused: SQLite tables whose ids are named from outside rebuilt with AUTOINCREMENT

A signed URL names an item and the token that signed it, a cursor an item; SQLite gave a deleted row's id
to the next row when it was the largest. PostgreSQL's sequences never go back: nothing to do there.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TABLES = ("datasets", "items", "team_files", "api_tokens", "connections")


def _rebuild(autoincrement: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    # A batch rebuild copies the rows with their ids into the new table; SQLite then starts the table's
    # counter (sqlite_sequence) at the largest. Foreign keys are off in a migration (env.py sets no pragma),
    # so dropping the old datasets table does not cascade to items.
    for table in TABLES:
        with op.batch_alter_table(table, recreate="always",
                                  table_kwargs={"sqlite_autoincrement": autoincrement}):
            pass


def upgrade() -> None:
    _rebuild(True)


def downgrade() -> None:
    _rebuild(False)
