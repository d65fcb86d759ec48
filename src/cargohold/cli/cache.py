"""``cargohold cache stats|clear``: the running server's cache tiers, over the HTTP API."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from ..cache import TIER_NAMES
from ._context import connection_options, open_client


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


@click.group()
def cache() -> None:
    """The cache tiers of the running server: storage, previews, image-converter."""


@cache.command("stats")
@connection_options
def cache_stats(url: str | None, token: str | None) -> None:
    """Entries, bytes against the size cap, hits, misses and evictions of each tier."""
    with open_client(url, token) as client:
        tiers = client.cache_stats()
    table = Table("tier", "entries", "size", "limit", "hit rate", "hits", "misses", "evictions", "expired",
                  "fetch errors")
    for t in tiers:
        rate = "" if t["hit_rate"] is None else f"{t['hit_rate']:.1%}"
        table.add_row(t["name"], str(t["entries"]), _human(t["bytes"]), _human(t["limit"]), rate,
                      str(t["hits"]), str(t["misses"]), str(t["evictions"]), str(t["expired"]), str(t["fill_errors"]))
    Console(highlight=False).print(table)


@cache.command("clear")
@click.argument("tier", required=False, type=click.Choice(TIER_NAMES))
@connection_options
def cache_clear(tier: str | None, url: str | None, token: str | None) -> None:
    """Empty TIER, or every tier when none is named (an admin token)."""
    with open_client(url, token) as client:
        for name in [tier] if tier else TIER_NAMES:
            click.echo(f"{name}: {client.clear_cache(name)} entries removed")
