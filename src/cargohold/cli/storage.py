"""``cargohold where`` and ``cargohold check``."""

from __future__ import annotations

import asyncio
import sys

import click
from rich.console import Console
from rich.table import Table

from ..services.storage_check import StepResult, check_own_storage
from ..settings import instance_home, load_settings
from ..storage import OwnStorage


@click.command()
def where() -> None:
    """Print the instance home (the folder with .env, remote_links.yml and the admin token)."""
    click.echo(instance_home())


@click.command()
def check() -> None:
    """Show the settings (secrets masked), then write, read and delete a probe in both buckets.

    Exits 0 only if every step passes; 2 if a setting is wrong.
    """
    settings = load_settings()
    console = Console(highlight=False, soft_wrap=True)
    table = Table(title=f"settings ({settings.home / '.env'})", title_justify="left")
    table.add_column("key")
    table.add_column("value")
    table.add_column("from")
    for key, value, origin in settings.summary():
        table.add_row(key, value, origin)
    console.print(table)

    async def run() -> list[StepResult]:
        storage = OwnStorage.from_settings(settings)
        try:
            return await check_own_storage(storage)
        finally:
            await storage.close()

    results = asyncio.run(run())
    for r in results:
        mark = "[green]ok  [/green]" if r.ok else "[red]FAIL[/red]"
        console.print(f"{mark} {r.bucket:<28} {r.step:<7} {r.detail} ({r.seconds * 1000:.0f} ms)")
    failed = [r for r in results if not r.ok]
    expected_steps = 8
    if failed or len(results) != expected_steps:
        console.print(f"[red]storage check failed[/red] on {settings.storage_provider}")
        sys.exit(1)
    console.print(f"[green]storage check passed[/green] on {settings.storage_provider}")
