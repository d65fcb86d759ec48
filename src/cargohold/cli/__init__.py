"""The ``cargohold`` command. Every subcommand calls the same services the HTTP API calls."""

from __future__ import annotations

import os
import sys

import click

from ..errors import CargoholdError, ConfigError, ConnectionsFileError
from .admin import gc, token
from .cache import cache
from .catalog import catalog
from .files import files, workspace
from .items import items
from .links import links
from .migrate import migrate
from .server import down, status, up
from .storage import check, where
from .transfer import download, upload


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cargohold")
def cli() -> None:
    """cargohold: one storage service for images, videos and model files, on disk or in the cloud."""


for command in (where, check, up, down, status, token, gc, upload, download, links, cache, migrate, items, files,
                workspace, catalog):
    cli.add_command(command)


PRIVATE_UMASK = 0o077
"""Every file cargohold makes (catalog, uploads, team files, caches, the instance home) is its user's alone:
0600 files and 0700 folders, however it was started (make run, cargohold up, the container, the unit)."""


def main() -> None:
    os.umask(PRIVATE_UMASK)
    try:
        cli.main(standalone_mode=False)
    except ConfigError as exc:
        what = "" if isinstance(exc, ConnectionsFileError) else "bad setting "
        click.echo(f"cargohold: {what}{exc.key}: {exc.problem}.\n  fix: {exc.fix}", err=True)
        sys.exit(2)
    except CargoholdError as exc:
        click.echo(f"cargohold: {exc.message}", err=True)
        sys.exit(1)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
