"""What the commands share: an open service context for catalog work, the server's URL on this machine,
an SDK client with the instance's token, the end of a run that tells what failed, and text made safe to
print (``shown``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from ..errors import CargoholdError, Unauthenticated
from ..instance import ADMIN_TOKEN_FILE
from ..sdk.client import Client
from ..services.context import Context
from ..settings import Settings, instance_home, load_settings

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


def with_context(action: Callable[[Context], Awaitable[T]], storage: bool = True) -> T:
    """Run ``action`` with an open context; ``storage=False`` for commands that only touch the catalog."""

    async def run() -> T:
        ctx = await Context.open(load_settings(), ensure_buckets=storage)
        try:
            return await action(ctx)
        finally:
            await ctx.close()

    return asyncio.run(run())


def base_url(settings: Settings) -> str:
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(settings.server_host, settings.server_host)
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{settings.server_port}"


def connection_options(command: F) -> F:
    command = click.option("--token", envvar="CARGOHOLD_TOKEN", show_envvar=True,
                           help="API token [default: the instance home's admin.token].")(command)
    return click.option("--url", envvar="CARGOHOLD_URL", show_envvar=True,
                        help="Server URL [default: this machine's server, from its settings].")(command)


def open_client(url: str | None, token: str | None) -> Client:
    if not token:
        path = instance_home() / ADMIN_TOKEN_FILE
        try:
            token = path.read_text().strip()
        except OSError:
            raise Unauthenticated(f"no token: pass --token, set CARGOHOLD_TOKEN, or run where {path} exists") from None
    return Client(url or base_url(load_settings()), token)


def shown(text: str) -> str:
    """``text`` for a terminal: each character that would hide or reorder what is shown (a control, bidi or
    line-separator character) escaped as ``repr`` escapes it (``'a\\tb'``, ``'\\u202e'``), the rest as it is."""
    return text if text.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def finish(summary: str, failures: list[tuple[str, str]]) -> None:
    for name, message in failures:
        click.echo(f"failed: {name}: {message}", err=True)
    click.echo(summary)
    if failures:
        raise CargoholdError(f"{len(failures)} file(s) failed")
