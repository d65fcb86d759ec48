"""``cargohold files pull|push`` and ``cargohold workspace start``: team files to a local folder and back.

Like ``upload`` and ``download``, these are clients of a running server over the HTTP API (this
machine's by default, any with ``--url``); what moves is decided in ``cargohold.sync``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from types import FrameType
from typing import Any, Literal, TypeVar

import click

from ..errors import BadInput, CargoholdError
from ..sdk.sync import BackgroundPush, Plan, Result, Sync, remote_prefix
from ..settings import load_settings
from ..units import human_size
from ._context import connection_options, finish, open_client
from ._progress import bars

F = TypeVar("F", bound=Callable[..., Any])
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _prefix(remote_dir: str, hint: str) -> str:
    try:
        return remote_prefix(remote_dir)
    except BadInput as exc:
        raise click.BadParameter(exc.message, param_hint=hint) from None


def _where(prefix: str) -> str:
    return prefix or "/ (every team file)"


def exclude_option(command: F) -> F:
    return click.option(
        "--exclude", multiple=True, metavar="GLOB",
        help="Leave out paths, or folders and files of a name, matching GLOB (e.g. .ipynb_checkpoints); "
             "repeatable. Left out both ways: never moved, never deleted.",
    )(command)


def _notes(plan: Plan, *, quiet_kept: set[str] | None = None) -> None:
    """What was left alone and why, on stderr; ``quiet_kept`` names said once already (a workspace's pushes)."""
    for rel, why in plan.skipped:
        if quiet_kept is None or rel not in quiet_kept:
            click.echo(f"skipped: {rel}: {why}", err=True)
            if quiet_kept is not None:
                quiet_kept.add(rel)
    for rel, why in plan.kept:
        if quiet_kept is None or rel not in quiet_kept:
            click.echo(f"left alone: {rel}: {why}", err=True)
            if quiet_kept is not None:
                quiet_kept.add(rel)
    for rel in plan.conflicts:
        click.echo(f"conflict: {rel} changed on both sides since the last sync; this workspace's copy wins",
                   err=True)


def _dry_run(plan: Plan) -> None:
    for step in plan.steps:
        size = f" ({human_size(step.size)})" if step.action in ("download", "upload") else ""
        click.echo(f"would {step.action} {step.rel}{size}")
    click.echo(f"dry run: {len(plan.transfers)} to move ({human_size(plan.bytes)}), {plan.unchanged} unchanged, "
               f"{len(plan.deletions)} to delete; nothing was changed")


@click.group()
def files() -> None:
    """Team files to a local folder and back: only new and changed files move."""


@files.command("pull")
@click.argument("remote_dir")
@click.argument("local_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--delete", is_flag=True, help="Also delete local files that are not team files under REMOTE_DIR.")
@click.option("--dry-run", is_flag=True, help="List what would move or be deleted; change nothing.")
@exclude_option
@connection_options
def pull(remote_dir: str, local_dir: Path, delete: bool, dry_run: bool, exclude: tuple[str, ...],
         url: str | None, token: str | None) -> None:
    """Download the team files under REMOTE_DIR into LOCAL_DIR: those missing here or different.

    REMOTE_DIR is a team-file folder, like `notebooks/alice/` ("" or / for every team file); the file
    `notebooks/alice/a/b.ipynb` lands in LOCAL_DIR/a/b.ipynb. A file is different when its size or
    SHA-256 is. Local files are never deleted unless --delete is given."""
    prefix = _prefix(remote_dir, "REMOTE_DIR")
    _mirror("pull", local_dir, prefix, delete, dry_run, exclude, url, token,
            f"pulled {_where(prefix)} into {local_dir}")


def _mirror(way: Literal["pull", "push"], local_dir: Path, prefix: str, delete: bool, dry_run: bool,
            exclude: tuple[str, ...], url: str | None, token: str | None, done: str) -> None:
    with open_client(url, token) as client:
        sync = Sync(client, local_dir, prefix, exclude)
        plan = sync.plan(way, delete=delete)
        _notes(plan)
        if dry_run:
            _dry_run(plan)
            return
        with bars(plan.bytes, len(plan.transfers)) as shown:
            result = sync.run(plan, shown)
    finish(f"{done}: {result.counts()} in {result.seconds:.1f}s", result.failed)


@files.command("push")
@click.argument("local_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("remote_dir")
@click.option("--delete", is_flag=True, help="Also delete team files under REMOTE_DIR that LOCAL_DIR does not have.")
@click.option("--dry-run", is_flag=True, help="List what would move or be deleted; change nothing.")
@exclude_option
@connection_options
def push(local_dir: Path, remote_dir: str, delete: bool, dry_run: bool, exclude: tuple[str, ...],
         url: str | None, token: str | None) -> None:
    """Upload the files of LOCAL_DIR to the team-file folder REMOTE_DIR: those missing there or different.

    `LOCAL_DIR/a/b.ipynb` becomes the team file `REMOTE_DIR/a/b.ipynb`. Team files are never deleted
    unless --delete is given. Symlinks that lead outside LOCAL_DIR are skipped."""
    prefix = _prefix(remote_dir, "REMOTE_DIR")
    _mirror("push", local_dir, prefix, delete, dry_run, exclude, url, token, f"pushed {local_dir} to {_where(prefix)}")


@click.group()
def workspace() -> None:
    """A folder kept in sync with team files while a command (a notebook server, a job) runs in it."""


@workspace.command("start")
@click.argument("directory", metavar="DIR", type=click.Path(file_okay=False, path_type=Path))
@click.argument("command", metavar="-- CMD...", nargs=-1, required=True)
@click.option("--remote", "remote_dir", default="", metavar="PREFIX",
              help="The team-file folder DIR mirrors, like notebooks/alice/ [default: every team file].")
@click.option("--every", type=click.FloatRange(min=0.1), default=30.0, show_default=True, metavar="SECONDS",
              help="How often changes are pushed while CMD runs (STORAGE_JUPYTER_SYNC=true).")
@exclude_option
@connection_options
def start(directory: Path, command: tuple[str, ...], remote_dir: str, every: float, exclude: tuple[str, ...],
          url: str | None, token: str | None) -> None:
    """Run CMD with DIR synced to team files, as the instance settings say; exit with CMD's status.

    JUPYTER_DOWNLOAD_FILES_BEFORE_START=true: pull the team files under --remote into DIR first.
    STORAGE_JUPYTER_SYNC=true: push what changed in DIR every --every seconds while CMD runs, and once
    more when it ends (also after Ctrl-C or SIGTERM, which are passed on to CMD). Nothing is ever
    deleted, on either side. With both false, CMD just runs."""
    settings = load_settings()
    prefix = _prefix(remote_dir, "--remote")
    pull_first, keep_synced = settings.jupyter_download_files_before_start, settings.storage_jupyter_sync
    if not (pull_first or keep_synced):
        sys.exit(_run(command, None))
    with open_client(url, token) as client:
        sync = Sync(client, directory, prefix, exclude)
        if pull_first:
            try:
                plan = sync.plan("pull", mode="workspace")
                _notes(plan)
                with bars(plan.bytes, len(plan.transfers)) as shown:
                    result = sync.run(plan, shown)
            except KeyboardInterrupt:  # before CMD: nothing to pass it on to
                raise click.Abort() from None
            for rel, message in result.failed:
                click.echo(f"failed: {rel}: {message}", err=True)
            if result.failed:
                raise CargoholdError(f"{len(result.failed)} file(s) could not be pulled into {directory}; "
                                     f"{command[0]} was not started")
            click.echo(f"cargohold: pulled {_where(prefix)} into {directory}: {result.counts()}", err=True)
        directory.mkdir(parents=True, exist_ok=True)
        if not keep_synced:
            sys.exit(_run(command, None))
        said: set[str] = set()

        def report(result: Result) -> None:
            _notes(result.plan, quiet_kept=said)
            for rel, message in result.failed:
                click.echo(f"cargohold: push failed: {rel}: {message}", err=True)
            if result.moved:
                click.echo(f"cargohold: pushed {len(result.moved)} file(s) ({human_size(result.bytes)}) from "
                           f"{directory} to {_where(prefix)}", err=True)

        def failed(exc: Exception) -> None:
            click.echo(f"cargohold: push failed, will try again: {getattr(exc, 'message', None) or exc}", err=True)

        pusher = BackgroundPush(sync, every, report, failed)
        code = _run(command, pusher)
        click.echo(f"cargohold: {command[0]} exited with {code}; pushing {directory} to {_where(prefix)}", err=True)
        try:
            last = pusher.push()
        except Exception as exc:  # whatever it is, CMD's status and the files' whereabouts must be said
            failed_push = getattr(exc, "message", None) or str(exc)
            click.echo(f"cargohold: the last push failed: {failed_push}; the files are still in {directory}",
                       err=True)
            sys.exit(code or 1)
        report(last)
        click.echo(f"cargohold: last push: {last.counts()}", err=True)
        # CMD's status, unless CMD succeeded and its work could not all be saved.
        sys.exit(code or (1 if last.failed else 0))


def _run(command: tuple[str, ...], pusher: BackgroundPush | None) -> int:
    """Run CMD to its end, passing on SIGINT, SIGTERM and SIGHUP; its exit status (128+N if killed by N)."""
    try:
        process = subprocess.Popen(list(command))
    except OSError as exc:
        click.echo(f"cargohold: cannot run {command[0]!r}: {exc.strerror or exc}", err=True)
        return 127 if isinstance(exc, FileNotFoundError) else 126

    def forward(signum: int, frame: FrameType | None) -> None:
        # Ctrl-C in a terminal reaches every process of the foreground group, CMD included: passing it
        # on again would make it two.
        if signum in (signal.SIGINT, signal.SIGHUP) and _terminal_in_front():
            return
        with suppress(ProcessLookupError):
            process.send_signal(signum)

    # Left in place after CMD ends: a SIGTERM then must not cut the last push short.
    for signum in FORWARDED:
        signal.signal(signum, forward)
    if pusher is not None:
        pusher.start()
    try:
        code = process.wait()
    finally:
        if pusher is not None:
            pusher.stop()  # waits for a push under way; the last push is the caller's
    return 128 - code if code < 0 else code


def _terminal_in_front() -> bool:
    """True if this process's group is the foreground of the terminal on stdin (so a Ctrl-C reached CMD)."""
    try:
        return os.tcgetpgrp(sys.stdin.fileno()) == os.getpgrp()
    except (OSError, ValueError, AttributeError):
        return False
