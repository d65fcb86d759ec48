"""What a token may reach, and the one check every route and the hot route make (docs/SECURITY.md, "Tokens").

A token has a role, ``read`` (it reads and signs URLs, never changes anything), ``write`` (it also adds,
replaces and deletes) or ``admin`` (it also runs the admin routes: connections, storage, cache clearing,
tokens, metrics), and it may be limited: to some datasets and to team files under some folders. A token
made with either limit reaches only what it names (``--read --datasets cars`` reads the dataset ``cars``
and no team file); one made with neither reaches every dataset and team file. Syncing a connected bucket
lists it, which browsing keeps to admins: it needs the admin role or a token granted that connection.

Limits are fixed when a token is made (there is no way to widen a token: make another), so a signed URL,
checked here when it is signed, never opens more than its token could.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ..errors import BadInput, Forbidden

if TYPE_CHECKING:
    from .context import Context

Role = Literal["read", "write", "admin"]
ROLES: tuple[Role, ...] = ("read", "write", "admin")
_RANK = {role: rank for rank, role in enumerate(ROLES)}


@dataclass(frozen=True)
class Scope:
    role: Role
    datasets: frozenset[int] | None = None
    """The dataset ids it reaches; None: every dataset."""
    files: tuple[str, ...] | None = None
    """The team-file folders it reaches, each ending in ``/``; None: every team file."""
    connections: frozenset[str] = frozenset()
    """The connections whose buckets it may sync (list); an admin token may sync any."""

    @property
    def limited(self) -> bool:
        return self.datasets is not None or self.files is not None

    def reaches_dataset(self, dataset_id: int) -> bool:
        return self.datasets is None or dataset_id in self.datasets

    def reaches_file(self, path: str) -> bool:
        return self.files is None or any(path.startswith(folder) for folder in self.files)


def require(scope: Scope, need: Role, *, dataset: int | None = None, file: str | None = None,
            connection: str | None = None) -> None:
    """Raises ``Forbidden`` unless a token of ``scope`` may do a ``need`` thing to what is named."""
    if _RANK[scope.role] < _RANK[need]:
        raise Forbidden({
            "admin": "this route needs an admin token",
            "write": "this token may only read (it was made with --read); this request changes something",
        }[need])
    if dataset is not None and not scope.reaches_dataset(dataset):
        raise Forbidden(f"this token does not reach dataset {dataset}: it is limited to the datasets it was made "
                        "for (`cargohold token list` shows them)")
    if file is not None and not scope.reaches_file(file):
        folders = ", ".join(scope.files or ()) or "none"
        raise Forbidden(f"this token does not reach team file {file!r}: the folders it reaches are {folders}")
    if connection is not None and scope.role != "admin" and connection not in scope.connections:
        raise Forbidden(f"syncing a bucket of connection {connection!r} lists it: that needs an admin token, or "
                        f"a token made with --connections {connection}")


def require_unlimited(scope: Scope, what: str) -> None:
    """For what no limit can name (creating a dataset): a limited token may not."""
    if scope.limited:
        raise Forbidden(f"this token is limited to some datasets and team-file folders; it cannot {what}")


def file_folders(values: Iterable[str]) -> tuple[str, ...]:
    """Team-file folders as a token keeps them: each a path ending in ``/`` (``models`` is ``models/``), so
    that ``models`` never reaches ``models-old/``."""
    folders: list[str] = []
    for value in values:
        folder = value.strip().strip("/")
        if not folder or any(part in ("", ".", "..") for part in folder.split("/")):
            raise BadInput(f"team-file folder {value!r}: give a folder path such as models/ or notes/2024/")
        if folder + "/" not in folders:
            folders.append(folder + "/")
    return tuple(folders)


async def require_item(ctx: Context, scope: Scope, need: Role, item_id: int) -> None:
    """``require`` for the item ``item_id``: its dataset is looked up (from memory, services/memo.py) only
    for a token limited by dataset. An item that does not exist is a 404 here, as on any route."""
    if scope.datasets is None:
        require(scope, need)
        return
    # Imported here: serving reaches links, which checks sync through this module.
    from .serving import item_view

    require(scope, need, dataset=(await item_view(ctx, item_id)).dataset_id)
