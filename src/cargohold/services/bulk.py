"""Actions on many items in one request: a selection (ids) or every item under a folder (a dataset and a
prefix), each item done on its own, with its own result (issue 17). One item failing (gone, out of the
token's reach, a name it cannot take) leaves the others done; nothing is all-or-nothing, as in a file
browser. A request does at most ``MAX_ITEMS``; a folder with more answers ``more`` and is asked again
(what was moved or deleted has left it).

``move`` changes rows only (``items.move_item``): no byte is copied, a linked file stays where it is.
``delete`` removes rows (``items.delete_item``): stored bytes no item uses are left to gc, linked files are
never touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ..errors import BadInput, CargoholdError
from . import access, items
from .access import Scope
from .context import Context
from .listing import list_names

MAX_ITEMS = 1000
Action = Literal["delete", "move"]
Status = items.Moved | Literal["deleted", "failed"]


@dataclass
class Outcome:
    id: int
    status: Status
    """``deleted``, or a move's (``moved``, ``renamed``, ``replaced``, ``skipped``, ``unchanged``), or
    ``failed``."""
    item: Any = None
    error: CargoholdError | None = None


async def selected(ctx: Context, ids: list[int] | None, dataset_id: int | None, prefix: str | None) -> tuple[
        list[int], dict[int, str] | None, bool]:
    """The items a request names, in order; a folder's with their names (None for a selection); and whether
    the folder holds more than one request does."""
    if (ids is None) == (dataset_id is None):
        raise BadInput("name the items by `ids`, or a folder by `dataset_id` and `prefix`: one of them")
    if ids is not None:
        if not ids or len(ids) > MAX_ITEMS:
            raise BadInput(f"give 1 to {MAX_ITEMS:,} ids, not {len(ids):,}")
        return list(dict.fromkeys(ids)), None, False
    assert dataset_id is not None
    await items.require_dataset(ctx, dataset_id)
    page = await list_names(ctx, dataset_id, prefix=prefix or "", limit=MAX_ITEMS)
    rows = [row for row in page.items if row.source != items.FOLDER]
    return [row.id for row in rows], {row.id: row.name for row in rows}, page.truncated


async def run(ctx: Context, scope: Scope, action: Action, chosen: list[int], names: dict[int, str] | None, *,
              prefix: str | None, to_dataset: int | None, to_prefix: str | None,
              conflict: items.Conflict) -> list[Outcome]:
    """Each item of ``chosen`` done in turn. ``move``: to ``to_dataset`` (else its own), its name's ``prefix``
    replaced by ``to_prefix`` (a folder moved or renamed) or, for a selection, ``to_prefix`` put before its
    file name."""
    if action == "move":
        if to_dataset is None and to_prefix is None:
            raise BadInput("a move needs to_dataset_id, to_prefix, or both")
        if to_dataset is not None:
            access.require(scope, "write", dataset=to_dataset)
            await items.require_dataset(ctx, to_dataset)
    outcomes = []
    for item_id in chosen:
        try:
            await access.require_item(ctx, scope, "write", item_id)
            if action == "delete":
                await items.delete_item(ctx, item_id)
                outcomes.append(Outcome(item_id, "deleted"))
                continue
            name = None
            if to_prefix is not None and names is not None:  # a folder's item: its path below the folder kept
                name = to_prefix + names[item_id][len(prefix or ""):]
            elif to_prefix is not None:  # a selection's: its file name
                name = to_prefix + (await items.get_item(ctx, item_id)).name.rpartition("/")[2]
            status, moved = await items.move_item(ctx, item_id, name, to_dataset, conflict)
            outcomes.append(Outcome(item_id, status, moved))
        except CargoholdError as exc:
            outcomes.append(Outcome(item_id, "failed", error=exc))
    return outcomes
