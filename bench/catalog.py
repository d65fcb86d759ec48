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
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

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


def timed(fn: object, runs: int) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        settings = load_settings(home=home, environ={})
        migrate(database_urls(settings))
        db = settings.data_path / "catalog.sqlite3"
        start = time.perf_counter()
        fill(db, args.items)
        print(f"wrote {args.items:,} items in {time.perf_counter() - start:.1f} s")
        server = RunningServer(home, {}).start()
        try:
            conn = sqlite3.connect(db)
            client = httpx.Client(base_url=server.api, headers={"Authorization": f"Bearer {server.token}"})
            print(f"{'page at':<10} {'API ms':>8} {'SQL ms':>8} {'ratio':>6}")
            results = {}
            pages = {}
            for label, after in (("start", 0), ("middle", args.items // 2), ("end", args.items - PAGE)):
                params = {"limit": PAGE, **({"cursor": encode_cursor(after)} if after else {})}
                page = client.get("/datasets/1/items", params=params)
                page.raise_for_status()
                assert len(page.json()["items"]) == PAGE
                api_ms = timed(lambda p=params: client.get("/datasets/1/items", params=p).raise_for_status(), args.runs)
                sql_ms = timed(lambda a=after: conn.execute(QUERY, (1, a, PAGE + 1)).fetchall(), args.runs)
                results[label] = api_ms
                pages[label] = {"api_ms": api_ms, "sql_ms": sql_ms}
                print(f"{label:<10} {api_ms:>8.2f} {sql_ms:>8.2f} {api_ms / sql_ms:>6.1f}")
            flat = results["end"] < 2 * results["start"]
            print(f"last page vs first: {results['end'] / results['start']:.2f}x ({'flat' if flat else 'NOT flat'})")
            if args.json:
                args.json.write_text(json.dumps({"items": args.items, "runs": args.runs, "page": PAGE, "pages": pages,
                                                 "end_vs_start": results["end"] / results["start"]}, indent=2) + "\n")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
