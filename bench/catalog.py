"""Listing a 100,000-item dataset page by page: the API's cursor pages vs the bare SQL query.

A catalog with one dataset of ``--items`` rows (default 100,000) is written straight into SQLite,
then a real ``cargohold up`` process on 127.0.0.1 is asked for pages of 100 items at the start, the
middle and the end of the dataset (``GET /api/v1/datasets/{id}/items?limit=100&cursor=...``), and
the same pages are read with the same SQL through sqlite3 directly. Prints milliseconds per page,
the ratio, and whether the last page costs what the first does (a cursor, unlike an offset, must not
get slower deeper into the dataset).

    .venv/bin/python bench/catalog.py [--items 100000] [--runs 50] [--json PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from _harness import Row, Table, Target, api_client, main, median_ms, ms, started

from cargohold.catalog.db import database_urls, migrate
from cargohold.services.items import encode_cursor
from cargohold.settings import load_settings
from tests.support.api_server import RunningServer

PAGE = 100
QUERY = "SELECT * FROM items WHERE dataset_id = ? AND id > ? ORDER BY id LIMIT ?"


def fill(db: Path, count: int) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO datasets (id, name, created_at) VALUES (1, 'big', '2026-01-01 00:00:00')")
        rows = (
            (1, f"img/{i:07d}.jpg", "image", 100_000 + i, f"{i:064x}", "image/jpeg", 640, 480, "stored",
             "2026-01-01 00:00:00")
            for i in range(count)
        )
        conn.executemany(
            "INSERT INTO items (dataset_id, name, kind, size, sha256, mime_type, width, height, source, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows,
        )


def api_page(client: httpx.Client, params: dict[str, str | int]) -> Callable[[], object]:
    return lambda: client.get("/datasets/1/items", params=params).raise_for_status()


def sql_page(conn: sqlite3.Connection, after: int) -> Callable[[], object]:
    return lambda: conn.execute(QUERY, (1, after, PAGE + 1)).fetchall()


def measure(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        home = Path(tmp) / "home"
        settings = load_settings(home=home, environ={})
        migrate(database_urls(settings))
        db = settings.data_path / "catalog.sqlite3"
        began = time.perf_counter()
        fill(db, args.items)
        print(f"wrote {args.items:,} items in {time.perf_counter() - began:.1f} s")
        server = started(stack, RunningServer(home, {}))
        conn = stack.enter_context(contextlib.closing(sqlite3.connect(db)))
        client = stack.enter_context(api_client(server))
        print(f"{'page at':<10} {'API ms':>8} {'SQL ms':>8} {'ratio':>6}")
        pages = {}
        for label, after in (("start", 0), ("middle", args.items // 2), ("end", args.items - PAGE)):
            params: dict[str, str | int] = {"limit": PAGE, **({"cursor": encode_cursor(after)} if after else {})}
            page = client.get("/datasets/1/items", params=params)
            page.raise_for_status()
            assert len(page.json()["items"]) == PAGE
            api_ms = median_ms(api_page(client, params), args.runs)
            sql_ms = median_ms(sql_page(conn, after), args.runs)
            pages[label] = {"api_ms": api_ms, "sql_ms": sql_ms}
            print(f"{label:<10} {api_ms:>8.2f} {sql_ms:>8.2f} {api_ms / sql_ms:>6.1f}")
    return {"items": args.items, "runs": args.runs, "page": PAGE, "pages": pages,
            "end_vs_start": pages["end"]["api_ms"] / pages["start"]["api_ms"]}


def table(f: dict[str, Any]) -> Table:
    t = Table(f"{f['items']:,} items in one dataset (SQLite); a page of {f['page']} through the API of a real server "
              f"vs the same SQL through `sqlite3`, median of {f['runs']} requests.")
    for where, page in f["pages"].items():
        at = "in" if where == "middle" else "at"
        t.rows.append(Row(f"page of {f['page']} {at} the {where}, ms", ms(page["api_ms"]),
                          f"{ms(page['sql_ms'])}: `sqlite3`, same query", page["sql_ms"] / page["api_ms"]))
    t.rows.append(Row("last page / first page (a cursor stays flat)", f"{f['end_vs_start']:.2f}×",
                      target=Target("<", 2, on_ratio=False, label="< 2×"), value=f["end_vs_start"]))
    return t


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=50)
    main(parser, measure, table)
