"""``cargohold catalog copy --to URL``: the catalog into another database (SQLite to PostgreSQL for replicas)."""

from __future__ import annotations

import dataclasses

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from ..catalog.copy import copy_catalog, count_rows, describe, server_running
from ..catalog.db import database_urls, migrate
from ..errors import BackendUnavailable, ConfigError
from ..instance import update_env
from ..settings import load_settings


@click.group()
def catalog() -> None:
    """The catalog database (datasets, items, team files, tokens, connections)."""


@catalog.command("copy")
@click.option("--to", "to", required=True, metavar="URL",
              help="The new, empty database: postgresql://user:password@host:5432/dbname.")
@click.option("--switch", is_flag=True,
              help="After a complete copy, set DATABASE_URL in .env to it (the old file kept as .env.bak).")
def catalog_copy(to: str, switch: bool) -> None:
    """Copy every row of the catalog in use into the database at URL, ids kept, in one transaction.

    Stop the server first: what it writes during the copy would not be in the new database. An
    interrupted copy leaves the new database empty; run it again. Own storage is not touched."""
    current = load_settings()
    source = database_urls(current)
    try:
        target = database_urls(dataclasses.replace(current, database_url=to))
    except ConfigError as exc:
        raise ConfigError("--to", exc.problem, exc.fix) from None
    if server_running(current.data_path):
        raise ConfigError("DATA_PATH", f"a cargohold server is running on {current.data_path}; what it writes "
                          "during the copy would be lost", "stop it (`cargohold down`), then copy")
    migrate(source)  # a home that never ran a server has no tables yet
    before = count_rows(source)
    console = Console(stderr=True)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), console=console) as bars:
        task = bars.add_task("copying rows", total=sum(before.values()))
        copy_catalog(source, target,
                     lambda table, rows: bars.update(task, advance=rows, description=f"copying {table}"))
    after = count_rows(target)
    table = Table("table", "rows in the catalog", "rows copied", title=f"{describe(source)} → {describe(target)}",
                  title_justify="left")
    for name, rows in before.items():
        table.add_row(name, f"{rows:,}", f"{after.get(name, 0):,}")
    Console(highlight=False).print(table)
    if after != before:
        raise BackendUnavailable("the new database's row counts differ from the catalog's (was something written "
                                 "during the copy?); empty the new database and copy again")
    if switch:
        update_env(current.home, {"DATABASE_URL": to})
        click.echo(f"switched: {current.home / '.env'} now has DATABASE_URL={describe(target)} (the old one is "
                   ".env.bak); every replica needs it and the same SECRET_KEY")
    else:
        click.echo(f"copied; to use it, set DATABASE_URL={describe(target)} in .env (or run again with --switch)")
