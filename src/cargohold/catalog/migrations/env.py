"""Alembic environment: the URL comes from ``catalog.db.migrate`` (never from a config file)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from cargohold.catalog.models import Base

config = context.config
url = config.attributes["url"]
engine = create_engine(url, poolclass=pool.NullPool)
with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=url.get_backend_name() == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
