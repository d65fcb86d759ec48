"""``cargohold items materialize|relink``: linked items into own storage, stored items onto existing copies."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from ..services import items as items_svc
from ..services import relocate
from ..services.context import Context
from ._context import with_context


@click.group()
def items() -> None:
    """Move a dataset's items between linked and stored."""


def _print(report: relocate.RelocateReport, verb: str) -> None:
    out = Console(highlight=False, soft_wrap=True)
    out.print(f"{verb} {report.moved} items ({report.bytes:,} bytes), skipped {report.skipped}, "
              f"failed {len(report.failed)}")
    if report.failed:
        table = Table("item", "reason", title="not moved", title_justify="left")
        for name, reason in report.failed:
            table.add_row(name, reason)
        out.print(table)
    if report.failed:
        raise SystemExit(1)


@items.command("materialize")
@click.argument("dataset")
def items_materialize(dataset: str) -> None:
    """Copy every linked item of DATASET (a name or id) into own storage; the item becomes stored.

    The linked files are only read. Run it again after an interruption: stored items are skipped."""

    async def run(ctx: Context) -> relocate.RelocateReport:
        found = await items_svc.find_dataset(ctx, dataset)
        return await relocate.materialize(ctx, found.dataset.id)

    _print(with_context(run), "materialized")


@items.command("relink")
@click.argument("dataset")
@click.option("--to", "target", required=True, metavar="URI",
              help="A bucket folder holding copies named as the items, e.g. s3://bucket/prefix/.")
def items_relink(dataset: str, target: str) -> None:
    """Point every stored item of DATASET at its copy under URI (checked by SHA-256); it becomes linked.

    Items without a matching copy stay stored and are listed. The stored bytes stay until `cargohold gc`."""

    async def run(ctx: Context) -> relocate.RelocateReport:
        found = await items_svc.find_dataset(ctx, dataset)
        return await relocate.relink(ctx, found.dataset.id, target)

    _print(with_context(run), "relinked")
