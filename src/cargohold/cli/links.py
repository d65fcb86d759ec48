"""``cargohold links add``: register a links file in a dataset, over the HTTP API."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn
from rich.table import Table

from ..sdk.client import CONFLICTS
from ..storage.uris import parse_prefix
from ._context import connection_options, open_client, shown


@click.group()
def links() -> None:
    """Links: files that stay in their bucket or folder, registered by URI."""


@links.command("add")
@click.argument("dataset")
@click.argument("links_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--no-verify", is_flag=True, help="Fetch nothing: no existence check, size or image header.")
@click.option("--conflict", type=click.Choice(CONFLICTS), default="rename", show_default=True,
              help="When a name is taken by another link or file.")
@connection_options
def links_add(dataset: str, links_file: Path, no_verify: bool, conflict: str, url: str | None,
              token: str | None) -> None:
    """Add every link of LINKS_FILE (one URL a line, # comments) to DATASET (a name or id).

    Good lines are added even when others are refused; each refused line is listed with its number
    and the reason. Exits 1 if any line was refused."""
    console = Console(stderr=True)
    with open_client(url, token) as client, Progress(
        TextColumn("sending links"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
        TextColumn("{task.description}"), console=console, transient=True,
    ) as bars:
        task = bars.add_task("", total=links_file.stat().st_size)
        report = client.add_links(dataset, links_file, verify=not no_verify, conflict=conflict,  # type: ignore[arg-type]
                                  progress=lambda n: bars.update(task, advance=n))
        bars.update(task, description="verifying and adding" if not no_verify else "adding")
    out = Console(highlight=False, markup=False, soft_wrap=True)  # a link may hold "[/]": text, not markup
    out.print(f"added {report['added']}, already there {report['unchanged']}, renamed {report['renamed']}, "
              f"replaced {report['replaced']}, skipped {report['skipped']}, refused {report['refused_count']}")
    if report["refused"]:
        table = Table("line", "link", "reason", title="refused lines", title_justify="left")
        for refused in report["refused"]:
            table.add_row(str(refused["line"]), shown(refused["url"]), refused["reason"])
        out.print(table)
        sys.exit(1)


@links.command("sync")
@click.argument("dataset")
@click.argument("source")
@click.option("--filter", "pattern", help="Only keys containing a match of this RE2 regular expression "
              "(no backreferences or lookaround; docs/LINKS.md).")
@click.option("--verify", is_flag=True, help="Also read each image's header for its width and height.")
@connection_options
def links_sync(dataset: str, source: str, pattern: str | None, verify: bool, url: str | None,
               token: str | None) -> None:
    """Register every object under SOURCE (s3://bucket/prefix/) in DATASET; run again for new keys only.
    Links whose objects are gone are listed, never deleted."""
    with open_client(url, token) as client, Console(stderr=True).status(f"listing {source} ..."):
        report = client.sync_links(dataset, source, pattern, verify)
    out = Console(highlight=False, markup=False, soft_wrap=True)
    out.print(f"listed {report['listed']}: added {report['added']}, already there {report['unchanged']}, "
              f"renamed {report['renamed']}, refused {report['refused_count']}; gone from the bucket "
              f"{report['removed_count']}")
    for uri in report["removed"]:
        out.print(f"  gone: {shown(uri)}")
    for refused in report["refused"]:
        out.print(f"  refused {shown(refused['url'])}: {refused['reason']}")


@links.command("ls")
@click.argument("location")
@connection_options
def links_ls(location: str, url: str | None, token: str | None) -> None:
    """List one folder level of a connected bucket: LOCATION is s3://bucket/prefix/ (or azure://, gs://, fs://)."""
    base = parse_prefix(location)
    prefix = base.prefix
    out = Console(highlight=False, markup=False, soft_wrap=True)
    with open_client(url, token) as client:
        named = next((c for c in client.connections()
                      if c["provider"] == base.provider and base.bucket in c.get("buckets", [])), None)
        if named is None:
            raise click.ClickException(f"no connection lists {base.provider} bucket {base.bucket!r}")
        cursor: str | None = None
        while True:
            page = client.browse(named["name"], base.bucket, f"{prefix}/" if prefix else "", cursor)
            for folder in page["folders"]:
                out.print(f"{'':>12}  {'':<16}  {base.scheme}://{base.bucket}/{shown(folder['prefix'])}")
            for obj in page["objects"]:
                modified = (obj.get("modified") or "")[:16].replace("T", " ")
                out.print(f"{obj['size']:>12}  {modified:<16}  {base.scheme}://{base.bucket}/{shown(obj['key'])}")
            cursor = page.get("next_cursor")
            if not cursor:
                break
