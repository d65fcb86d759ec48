"""``cargohold migrate --to NEW.env``: own storage to another provider, verified, resumable."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click
from dotenv import dotenv_values
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from ..catalog.db import Catalog
from ..catalog.db import migrate as migrate_catalog
from ..errors import ConfigError
from ..instance import update_env
from ..services import locks
from ..services.migrate import DEFAULT_JOBS, Migration, Report, Work, plan
from ..services.team_files import team_file_sums
from ..settings import Settings, load_settings
from ..storage import OwnStorage


def _target_settings(current: Settings, env_file: Path) -> Settings:
    if not env_file.is_file():
        raise ConfigError("--to", f"{env_file} is not a file", "give the .env file that describes the new storage")
    # The new file alone describes the target: the environment's STORAGE_* belong to the current one.
    target = load_settings(current.home, environ={}, env_file=env_file)
    if (target.storage_provider, target.storage_endpoint, target.storage_port, target.storage_bucket_prefix,
            target.data_path) == (current.storage_provider, current.storage_endpoint, current.storage_port,
                                  current.storage_bucket_prefix, current.data_path):
        raise ConfigError("--to", f"{env_file} describes the storage in use now",
                          "point it at another provider, endpoint or STORAGE_BUCKET_PREFIX")
    return target


def _where(s: Settings) -> str:
    if s.storage_provider == "http":
        return f"local disk {s.data_path / 'storage'}"
    return f"{s.storage_provider} {s.storage_endpoint or ''} {s.bucket('public')}, {s.bucket('private')}".strip()


@click.command()
@click.option("--to", "to", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="A .env file describing the new storage (STORAGE_PROVIDER and its keys).")
@click.option("--jobs", default=DEFAULT_JOBS, show_default=True, type=click.IntRange(1, 256),
              help="Objects copied at once.")
@click.option("--dry-run", is_flag=True, help="List what would be copied; copy nothing.")
@click.option("--verify-only", is_flag=True, help="Compare both sides by SHA-256; copy nothing.")
@click.option("--switch", is_flag=True,
              help="After a complete, verified copy, point .env at the new storage (old one kept as .env.bak).")
def migrate(to: Path, jobs: int, dry_run: bool, verify_only: bool, switch: bool) -> None:
    """Copy both buckets to the storage NEW.env describes; skip what is already there; verify all.

    Nothing at the source is changed. Run it again after an interruption: it goes on where it stopped.
    Then `cargohold up -d` (after --switch) serves from the new storage."""
    current = load_settings()
    target_settings = _target_settings(current, to)
    console = Console(stderr=True)
    console.print(f"from {_where(current)}\n  to {_where(target_settings)}")
    report = asyncio.run(_run(current, target_settings, jobs, dry_run, verify_only, console))
    if report is None:
        return
    _print_report(report, verify_only)
    if not report.ok:
        raise SystemExit(1)
    if switch and not dry_run:
        _switch(current, to)
        click.echo(f"switched: {current.home / '.env'} now uses {target_settings.storage_provider} "
                   "(the old one is .env.bak); run `cargohold up -d` to apply it")


async def _run(current: Settings, target_settings: Settings, jobs: int, dry_run: bool, verify_only: bool,
               console: Console) -> Report | None:
    catalog = Catalog(current)
    try:
        # One migrate at a time over the catalog, from whichever replica or host: a second is refused at once.
        async with locks.exclusive(catalog, "migrate"):
            return await _run_locked(catalog, current, target_settings, jobs, dry_run, verify_only, console)
    finally:
        await catalog.close()


async def _run_locked(catalog: Catalog, current: Settings, target_settings: Settings, jobs: int, dry_run: bool,
                      verify_only: bool, console: Console) -> Report | None:
    source, target = OwnStorage.from_settings(current), OwnStorage.from_settings(target_settings)
    try:
        await asyncio.to_thread(migrate_catalog, catalog.urls)  # a home that never ran a server has no tables yet
        if not dry_run and not verify_only:
            await target.ensure_buckets()
        work = await plan(source, lambda keys: team_file_sums(catalog, keys))
        migration = Migration(source, target, jobs)
        if dry_run:
            await _dry_run(migration, work)
            return None
        verb = "verifying" if verify_only else "copying"
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                      TimeRemainingColumn(), console=console) as bars:
            task = bars.add_task(f"{verb} 0/{len(work)} objects", total=sum(w.meta.size for w in work))
            done = 0

            def advance(size: int, count: int) -> None:
                nonlocal done
                done += count
                bars.update(task, advance=size, description=f"{verb} {done}/{len(work)} objects")

            migration.progress = advance
            return await migration.run(work, verify_only=verify_only)
    finally:
        await source.close()
        await target.close()


async def _dry_run(migration: Migration, work: list[Work]) -> None:
    missing = await migration.missing(work)
    for item in missing:
        click.echo(f"{item.bucket}\t{item.meta.key}\t{item.meta.size}")
    size = sum(item.meta.size for item in missing)
    click.echo(f"would copy {len(missing)} of {len(work)} objects, {size:,} bytes "
               f"({len(work) - len(missing)} already there)")


def _print_report(report: Report, verify_only: bool) -> None:
    out = Console(highlight=False)
    if verify_only:
        out.print(f"verified {report.verified} of {report.objects} objects, {report.bytes_total:,} bytes; "
                  f"{len(report.failed)} differ")
    else:
        rate = report.throughput / 2**20
        out.print(f"copied {report.copied}, skipped {report.skipped} (already there), failed {len(report.failed)}; "
                  f"{report.bytes_copied:,} bytes in {report.seconds:.1f} s ({rate:.1f} MiB/s)")
    if report.failed:
        table = Table("bucket", "key", "reason", title="failed", title_justify="left")
        for failure in report.failed:
            table.add_row(failure.bucket, failure.key, failure.reason)
        out.print(table)


def _switch(current: Settings, new_env: Path) -> None:
    new_values = {k: v or "" for k, v in dotenv_values(new_env).items()}
    update_env(current.home, new_values, drop_prefix="STORAGE_")
