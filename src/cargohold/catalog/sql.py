"""SQL that means the same on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, func
from sqlalchemy.orm import InstrumentedAttribute

Text = InstrumentedAttribute[str] | InstrumentedAttribute[str | None]


def starts_with(column: Text, prefix: str) -> ColumnElement[bool]:
    """``column`` begins with ``prefix``, exactly (case included) on every database.

    ``LIKE 'prefix%'`` alone ignores ASCII case on SQLite (``'Team/'`` matched ``team/x``) and respects
    it on PostgreSQL; the ``substr`` comparison makes both exact, the ``LIKE`` keeps an index usable
    where the database can use one for it."""
    return and_(column.startswith(prefix, autoescape=True), func.substr(column, 1, len(prefix)) == prefix)
