"""Alembic environment: the URL comes from ``catalog.db.migrate`` (never from a config file).

On PostgreSQL the run holds an advisory lock: replicas started at the same moment on a new database
take turns, and the ones after the first find the schema up to date instead of failing on
``relation already exists``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool, text

from cargohold.catalog.db import MIGRATION_LOCK, advisory_key
from cargohold.catalog.models import Base

config = context.config
url = config.attributes["url"]
postgres = url.get_backend_name() == "postgresql"
engine = create_engine(url, poolclass=pool.NullPool)


def include_object(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    """Leave out of comparisons what the models keep for another database (``Index(...).ddl_if(dialect=)``)."""
    condition = getattr(obj, "_ddl_if", None)
    dialect = getattr(condition, "dialect", None)
    return dialect is None or dialect == url.get_backend_name()


with engine.connect() as connection:
    if postgres:
        connection.execute(text("SELECT pg_advisory_lock(:ns, hashtext(:name))"), advisory_key(MIGRATION_LOCK))
        connection.commit()  # the lock is the session's; the migrations' transaction starts clean
    try:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=url.get_backend_name() == "sqlite",
            include_object=include_object,
        )
        with context.begin_transaction():
            context.run_migrations()
    finally:
        if postgres:
            connection.rollback()
            connection.execute(text("SELECT pg_advisory_unlock(:ns, hashtext(:name))"), advisory_key(MIGRATION_LOCK))
            connection.commit()
engine.dispose()
