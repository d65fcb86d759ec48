from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, inspect

from cargohold.catalog.db import MIGRATIONS, database_urls, migrate
from cargohold.settings import load_settings


def test_migrations_build_exactly_the_models_and_run_twice(tmp_path: Path) -> None:
    urls = database_urls(load_settings(home=tmp_path, environ={}))
    migrate(urls)
    migrate(urls)  # a second start finds nothing to do
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["url"] = urls.sync_url
    command.check(config)  # raises if the models and the migrated schema differ
    tables = set(inspect(create_engine(urls.sync_url)).get_table_names())
    assert {"datasets", "items", "team_files", "api_tokens", "connections", "alembic_version"} <= tables
