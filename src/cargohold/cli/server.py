"""``cargohold up``, ``down`` and ``status``: the server in the foreground or as a background process.

A background server keeps ``cargohold.pid`` and ``cargohold.log`` in the instance home. ``up -d``
when one already runs restarts it, so edited settings apply.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click
import httpx

from ..errors import CargoholdError
from ..settings import Settings, instance_home, load_settings
from ..storage import OwnStorage
from ..storage.connections import load_file
from ._context import base_url

START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
HEALTH_POLL_TIMEOUT = 5.0


def pid_file(home: Path) -> Path:
    return home / "cargohold.pid"


def log_file(home: Path) -> Path:
    return home / "cargohold.log"


def running_pid(home: Path) -> int | None:
    """The pid in the pid file if that process is alive and is a cargohold server; else None."""
    path = pid_file(home)
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes() if Path("/proc").is_dir() else b"cargohold"
    except (ProcessLookupError, FileNotFoundError):
        path.unlink(missing_ok=True)
        return None
    except PermissionError:
        return pid
    if b"cargohold" not in cmdline:  # a stale file whose pid was reused by something else
        path.unlink(missing_ok=True)
        return None
    return pid


def stop_process(pid: int, timeout: float = STOP_TIMEOUT) -> None:
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        _reap(pid)
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


@click.command()
@click.option("-d", "--detach", is_flag=True, help="Run in the background (pid and log file in the instance home).")
def up(detach: bool) -> None:
    """Start the HTTP server (default http://127.0.0.1:8080)."""
    settings = load_settings()
    if detach:
        _start_background(settings)
        return
    import uvicorn

    from ..http.app import create_app
    from ..http.timeouts import BodyTimeout, CloseUnreadBody, TimedHttpTools

    if settings.remote_links_path.exists():  # a bad file stops start-up here, with the CLI's message
        load_file(settings.remote_links_path, settings.aws_ec2_metadata_service_endpoint)
    storage = OwnStorage.from_settings(settings)
    asyncio.run(storage.ensure_buckets())
    app = create_app(settings, storage, ensure_buckets=False)
    click.echo(
        f"cargohold serving on {base_url(settings)} (storage: {settings.storage_provider}, data: {settings.data_path})",
        err=True,
    )
    protocol = TimedHttpTools.configured(settings.server_header_timeout, settings.server_body_timeout)
    configs = [uvicorn.Config(app, host=settings.server_host, port=settings.server_port, log_level="info",
                              access_log=False, http=protocol)]
    if settings.server_s3_port is not None:
        from ..s3.app import S3App

        click.echo(f"S3 endpoint on {settings.s3_url} (docs/S3.md)", err=True)
        # The same process and context: the S3 door reads the API app's catalog, storage and caches.
        s3 = CloseUnreadBody(BodyTimeout(S3App(lambda: app.state.ctx), settings.server_body_timeout))
        configs.append(uvicorn.Config(s3, host=settings.server_host,
                                      port=settings.server_s3_port, log_level="info", access_log=False,
                                      http=protocol, lifespan="off"))
    if not asyncio.run(_serve([uvicorn.Server(c) for c in configs])):
        sys.exit(1)


async def _serve(servers: list[Any]) -> bool:
    """Runs the listeners in one loop until one stops (a signal, a port it could not bind); then all stop.
    False when one did not start."""
    async def serve(server: Any) -> None:
        with contextlib.suppress(SystemExit):  # uvicorn exits when it cannot bind; it has logged why
            await server.serve()

    tasks = [asyncio.create_task(serve(server)) for server in servers]
    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for server in servers:
        server.should_exit = True
    await asyncio.gather(*tasks, return_exceptions=True)
    return all(server.started for server in servers)


def _start_background(settings: Settings) -> None:
    home = settings.home
    home.mkdir(parents=True, exist_ok=True)
    old = running_pid(home)
    if old is not None:
        click.echo(f"restarting cargohold (pid {old}) so the current settings apply")
        stop_process(old)
    log = log_file(home)
    # Private, as admin.token is: the first start prints the admin token once, and here that goes to the log.
    with os.fdopen(os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab") as out:
        os.fchmod(out.fileno(), 0o600)  # a log made before by an older version
        process = subprocess.Popen(
            [sys.executable, "-m", "cargohold", "up"], stdin=subprocess.DEVNULL, stdout=out, stderr=out,
            start_new_session=True, env={**os.environ, "CARGOHOLD_HOME": str(home)},
        )
    pid_file(home).write_text(f"{process.pid}\n")
    url = base_url(settings)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pid_file(home).unlink(missing_ok=True)
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
            raise CargoholdError(f"the server exited with code {process.returncode}; end of {log}:\n{tail}")
        try:
            answer = httpx.get(f"{url}/healthz", timeout=HEALTH_POLL_TIMEOUT)
        except httpx.HTTPError:
            time.sleep(0.2)
            continue
        click.echo(f"cargohold is up on {url} (pid {process.pid}, health {answer.json().get('status')}); log: {log}")
        return
    raise CargoholdError(f"the server did not answer on {url} within {START_TIMEOUT:.0f}s; see {log}")



@click.command()
def down() -> None:
    """Stop the background server."""
    home = instance_home()
    pid = running_pid(home)
    if pid is None:
        click.echo("cargohold is not running")
        return
    stop_process(pid)
    pid_file(home).unlink(missing_ok=True)
    click.echo(f"cargohold stopped (pid {pid})")


@click.command()
def status() -> None:
    """Say whether the background server runs and what its health check answers. Exit 0 if healthy."""
    settings = load_settings()
    pid = running_pid(settings.home)
    if pid is None:
        click.echo("cargohold is not running")
        sys.exit(1)
    url = base_url(settings)
    try:
        answer = httpx.get(f"{url}/healthz", timeout=HEALTH_POLL_TIMEOUT)
    except httpx.HTTPError as exc:
        click.echo(f"cargohold runs (pid {pid}) but {url} does not answer: {exc}")
        sys.exit(1)
    body = answer.json()
    click.echo(f"cargohold runs (pid {pid}) on {url}: {body.get('status')}, provider {body.get('provider')}")
    if body.get("s3_endpoint"):
        click.echo(f"  S3 endpoint: {body['s3_endpoint']}")
    for bucket in body.get("buckets", []):
        extra = f" ({bucket['error']})" if bucket.get("error") else ""
        click.echo(f"  {bucket['name']}: {bucket['status']}{extra}")
    sys.exit(0 if answer.status_code == 200 else 1)
