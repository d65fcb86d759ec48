"""``cargohold upload`` and ``cargohold download``: folders to a dataset and back, over the HTTP API.

They are clients of a running server (this machine's by default, any with ``--url``), not of the
catalog directly: the same path every other client takes.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import click

from ..errors import BadInput, ChecksumMismatch, NotFound, Unsupported
from ..sdk.client import CONFLICTS, Conflict, Json
from ..units import human_size
from ._context import connection_options, finish, open_client
from ._progress import bars

# Errors about one file, after which the others can still go; any other error ends the run.
PER_FILE_ERRORS = (BadInput, ChecksumMismatch, NotFound, Unsupported, OSError)


def local_files(paths: tuple[Path, ...]) -> Iterator[tuple[str, Path]]:
    """(item name, file): a file is named after itself, a folder's files by their path inside it."""
    for path in paths:
        if not path.is_dir():
            yield path.name, path
            continue
        for folder, dirs, names in os.walk(path):
            dirs.sort()
            for name in sorted(names):
                file = Path(folder, name)
                if file.is_file():
                    yield file.relative_to(path).as_posix(), file


def local_path(dest_dir: Path, name: str) -> Path:
    """Where item ``name`` goes; the server checks names, but a client does not write outside its folder."""
    parts = name.split("/")
    if name.startswith("/") or "\\" in name or any(p in ("", ".", "..") for p in parts):
        raise BadInput(f"item name {name!r} is not a relative path; not written")
    return dest_dir.joinpath(*parts)


@click.command()
@click.argument("dataset")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--conflict", type=click.Choice(CONFLICTS), default="rename", show_default=True,
              help="When an item of the same name exists: store under a new name, keep the old, or replace it.")
@click.option("--create", is_flag=True, help="Create the dataset if there is none of that name.")
@connection_options
def upload(dataset: str, paths: tuple[Path, ...], conflict: Conflict, create: bool, url: str | None,
           token: str | None) -> None:
    """Upload files and folders (recursively) into DATASET (a name or an id).

    Items from a folder are named by their path inside it: `upload cars photos/` makes `red/1.jpg`
    of `photos/red/1.jpg`."""
    files = list(local_files(paths))
    started = time.monotonic()
    with open_client(url, token) as client:
        try:
            target = client.dataset(dataset)
        except NotFound:
            if not create:
                raise NotFound(f"no dataset {dataset!r} (add --create to make it)") from None
            target = client.create_dataset(dataset)
        counts: Counter[str] = Counter()
        if conflict == "skip":
            # Known names are skipped here, before their bytes travel (the server would drop them).
            existing = {item["name"] for item in client.list_items(target, page_size=1000)}
            counts["skipped"] = sum(name in existing for name, _ in files)
            files = [(name, file) for name, file in files if name not in existing]
        failures: list[tuple[str, str]] = []
        with bars(sum(file.stat().st_size for _, file in files), len(files)) as shown:
            for name, file in files:
                with shown.file(name, file.stat().st_size) as advance:
                    try:
                        result = client.upload(target, [(name, file)], conflict, progress=advance)[0]
                    except PER_FILE_ERRORS as exc:
                        failures.append((name, getattr(exc, "message", str(exc))))
                        continue
                counts[result["status"]] += 1
    statuses = ", ".join(f"{counts[s]} {s}" for s in ("created", "renamed", "replaced", "skipped"))
    finish(f"uploaded {human_size(shown.moved)} to dataset {target['name']!r} in {time.monotonic() - started:.1f}s: "
           f"{statuses}, {len(failures)} failed", failures)


@click.command()
@click.argument("dataset")
@click.argument("dest_dir", type=click.Path(file_okay=False, path_type=Path))
@connection_options
def download(dataset: str, dest_dir: Path, url: str | None, token: str | None) -> None:
    """Download every item of DATASET (a name or an id) into DEST_DIR/<item name>.

    Files already there with the item's size are skipped; a `.part` left by an interrupted run is
    resumed, and every file is checked against the item's SHA-256."""
    started = time.monotonic()
    failures: list[tuple[str, str]] = []
    done = 0
    with open_client(url, token) as client:
        items = list(client.list_items(client.dataset(dataset), page_size=1000))
        todo: list[tuple[Json, Path]] = []
        complete = 0
        for item in items:
            try:
                dest = local_path(dest_dir, item["name"])
            except BadInput as exc:
                failures.append((item["name"], exc.message))
                continue
            if dest.is_file() and dest.stat().st_size == item["size"]:
                complete += 1
            else:
                todo.append((item, dest))
        with bars(sum(item["size"] for item, _ in todo), len(todo)) as shown:
            for item, dest in todo:
                part = dest.with_name(dest.name + ".part")
                have = part.stat().st_size if part.is_file() else 0
                with shown.file(item["name"], item["size"], done=have if have <= item["size"] else 0) as advance:
                    try:
                        dest.parent.mkdir(parents=True, exist_ok=True)
                        client.download(item, dest, progress=advance)
                    except PER_FILE_ERRORS as exc:
                        failures.append((item["name"], getattr(exc, "message", str(exc))))
                        continue
                done += 1
    finish(f"downloaded {done} files ({human_size(shown.moved)} transferred) to {dest_dir} in "
           f"{time.monotonic() - started:.1f}s, {complete} already complete, {len(failures)} failed", failures)
