"""``cargohold token ...`` and ``cargohold gc``: admin commands that work on the catalog directly (on any
replica's instance home: they meet the others in the shared catalog)."""

from __future__ import annotations

import json
from datetime import timedelta

import click
from rich.console import Console
from rich.table import Table

from ..instance import ADMIN_TOKEN_FILE, write_private_file
from ..services import gc as gc_service
from ..services import locks, tokens
from ..services.context import Context
from ..services.team_files import finish_writes
from ..settings import load_settings
from ..units import parse_duration
from ._context import with_context


@click.group()
def token() -> None:
    """API tokens: create (shown once), list, revoke."""


@token.command("create")
@click.option("--name", required=True, help="A name to tell the token by (unique).")
@click.option("--read", "role", flag_value="read", help="Read only: list, download, previews, signed URLs.")
@click.option("--write", "role", flag_value="write", default=True,
              help="Read and write: upload, add links, replace, delete (the default).")
@click.option("--admin", "role", flag_value="admin", help="Everything, admin routes too (connections, tokens...).")
@click.option("--datasets", metavar="A,B", help="Limit it to these datasets (names or ids, comma-separated).")
@click.option("--files", metavar="DIR/,DIR/", help="Limit it to team files under these folders (comma-separated).")
@click.option("--connections", metavar="C,D", help="Let it sync the buckets of these connections (comma-separated).")
@click.option("--s3", is_flag=True, help="Also make an S3 access key id and secret for the S3 endpoint (docs/S3.md).")
@click.option("--json", "as_json", is_flag=True,
              help='Print {"name", "token", "s3_access_key_id", "s3_secret_access_key"} as JSON.')
@click.option("--save", is_flag=True,
              help="With --admin: also write it to this instance home's admin.token (mode 0600), where the CLI "
                   "and the operator look for it; for a replica whose first start found the admin token made.")
def token_create(name: str, role: str, datasets: str | None, files: str | None, connections: str | None,
                 s3: bool, as_json: bool, save: bool) -> None:
    """Print a new token. Only its hash is stored: copy it now.

    With --datasets or --files, the token reaches only what they name: `--read --datasets cars` reads the
    dataset cars and no team file."""
    if save:
        if role != "admin":
            raise click.UsageError("--save writes admin.token: give --admin too")
        path = load_settings().home / ADMIN_TOKEN_FILE
        if path.exists():
            raise click.UsageError(f"{path} exists; its token still works (revoke it first to replace it)")
    made = with_context(lambda ctx: tokens.create_token(
        ctx, name, role, datasets=_names(datasets), files=_names(files), connections=_names(connections), s3=s3),
        storage=False)
    if save:
        write_private_file(path, made.token + "\n")
        click.echo(f"saved in {path}", err=True)
    if as_json:
        click.echo(json.dumps({"name": name, "token": made.token, "s3_access_key_id": made.s3_access_key,
                               "s3_secret_access_key": made.s3_secret}))
        return
    click.echo(made.token)
    if made.s3_access_key:
        click.echo(f"s3_access_key_id: {made.s3_access_key}\ns3_secret_access_key: {made.s3_secret}")


def _names(value: str | None) -> list[str] | None:
    return None if value is None else [v for v in value.split(",") if v.strip()]


@token.command("list")
def token_list() -> None:
    """Names, roles, limits and last use of every token (never the tokens themselves)."""
    rows = with_context(tokens.list_tokens, storage=False)
    table = Table()
    for column in ("name", "role", "datasets", "team files", "sync", "s3 key", "created", "last used"):
        table.add_column(column)
    for t in rows:
        table.add_row(t.name, t.role, _limit(t.datasets), _limit(t.files), ", ".join(t.connections),
                      t.s3_access_key or "",
                      t.created_at.strftime("%Y-%m-%d %H:%M"),
                      t.last_used_at.strftime("%Y-%m-%d %H:%M") if t.last_used_at else "")
    Console().print(table)


def _limit(values: list[str] | None) -> str:
    return "all" if values is None else ", ".join(values) or "none"


@token.command("revoke")
@click.argument("name")
def token_revoke(name: str) -> None:
    """Delete the token NAME: requests with it get 401 from now on."""
    with_context(lambda ctx: tokens.revoke_token(ctx, name), storage=False)
    click.echo(f"token {name!r} revoked")


@click.command()
@click.option("--yes", is_flag=True, help="Delete what is found (without it, only list).")
@click.option("--older-than", default="1h", show_default=True,
              help="Leave objects younger than this (an upload may be between its bytes and its row).")
def gc(yes: bool, older_than: str) -> None:
    """Find objects in own storage that no catalog row refers to; delete them with --yes."""
    try:
        grace = timedelta(seconds=parse_duration(older_than))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--older-than") from None

    async def run(ctx: Context) -> tuple[int, int, int, int]:
        # One gc at a time over the catalog, from whichever replica or host: a second is refused at once.
        async with locks.exclusive(ctx, "gc"):
            done = await finish_writes(ctx)  # their staged bytes are not garbage: finish them first
            if done.finished:
                click.echo(f"finished {done.finished} team-file writes a stop had interrupted")
            for problem in done.problems():  # reported, and gc goes on
                click.echo(problem)
            garbage = await gc_service.find_garbage(ctx, grace)
            for store, meta, reason in garbage.found:
                click.echo(f"{store.name}/{meta.key}\t{meta.size}\t{reason}")
            for name, size in garbage.unfinished:
                click.echo(f"{name}\t{size}\tinterrupted upload")
            for upload_id, size in garbage.s3_uploads:
                click.echo(f"s3 multipart upload {upload_id}\t{size}\tnothing written to it since the grace period")
            deleted = await gc_service.delete_garbage(ctx, garbage) if yes else 0
            return garbage.count, garbage.size, deleted, garbage.deleted_size

    found, size, deleted, deleted_size = with_context(run)
    if yes:
        kept = f" ({found - deleted} came into use or were written again meanwhile: kept)" if deleted < found else ""
        click.echo(f"deleted {deleted} objects, {deleted_size:,} bytes{kept}")
    else:
        hint = " (run with --yes to delete)" if found else ""
        click.echo(f"found {found} unreferenced objects, {size:,} bytes{hint}")
