"""Copying an SQLite catalog into PostgreSQL: ``cargohold catalog copy`` vs a bare ``COPY ... FROM STDIN``.

A catalog with one dataset of ``--items`` rows (default 200,000) is written straight into SQLite; a
PostgreSQL server (Debian's, as the tests start it) gets two empty databases with the schema. Into one,
``copy_catalog`` (what the command runs: one snapshot, batched INSERTs in one transaction, counts checked);
into the other, psycopg's ``COPY items FROM STDIN`` fed by ``sqlite3`` directly, the fastest way
PostgreSQL loads rows. Prints seconds, rows per second and the ratio.

    .venv/bin/python bench/catalog_copy.py [--items 200000] [--runs 3] [--json PATH]
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
from _harness import Row, Table, at_least, main
from catalog import fill
from sqlalchemy.engine import make_url

from cargohold.catalog.copy import copy_catalog
from cargohold.catalog.db import DatabaseUrls, database_urls, migrate
from cargohold.settings import load_settings
from tests.support.postgres import PostgresServer

COLUMNS = "id, dataset_id, name, kind, size, sha256, etag, mime_type, width, height, source, uri, created_at"


def pg_urls(url: str) -> DatabaseUrls:
    driver = make_url(url).set(drivername="postgresql+psycopg")
    return DatabaseUrls(driver, driver)


def bare_copy(db: Path, url: str) -> None:
    """The reference: every row straight from sqlite3 into PostgreSQL's COPY, one transaction."""
    with sqlite3.connect(db) as source, psycopg.connect(url) as target:
        with target.cursor() as cur:
            for row in source.execute("SELECT id, name, created_at FROM datasets ORDER BY id"):
                cur.execute("INSERT INTO datasets (id, name, created_at) VALUES (%s, %s, %s)", row)
            with cur.copy(f"COPY items ({COLUMNS}) FROM STDIN") as copy:
                for row in source.execute(f"SELECT {COLUMNS} FROM items ORDER BY id"):
                    copy.write_row(row)
        target.commit()


def measure(args: argparse.Namespace) -> dict[str, Any]:
    postgres = PostgresServer().start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            settings = load_settings(home=Path(tmp) / "home", environ={})
            source = database_urls(settings)
            migrate(source)
            fill(settings.data_path / "catalog.sqlite3", args.items)
            ours, bare = [], []
            for run in range(args.runs):
                target = postgres.create_database("bench_copy")
                began = time.perf_counter()
                copy_catalog(source, pg_urls(target))
                ours.append(time.perf_counter() - began)
                reference = postgres.create_database("bench_bare")
                migrate(pg_urls(reference))  # the schema, as the command makes it (not timed)
                began = time.perf_counter()
                bare_copy(settings.data_path / "catalog.sqlite3", reference)
                bare.append(time.perf_counter() - began)
                counted = [postgres.execute(url, "SELECT count(*) FROM items")[0][0] for url in (target, reference)]
                assert counted == [args.items, args.items], counted
                print(f"run {run + 1}: catalog copy {ours[-1]:.2f} s, bare COPY {bare[-1]:.2f} s")
    finally:
        postgres.stop()
    return {"items": args.items, "runs": args.runs, "copy_s": statistics.median(ours),
            "bare_s": statistics.median(bare)}


def table(f: dict[str, Any]) -> Table:
    t = Table(f"An SQLite catalog of {f['items']:,} items into an empty PostgreSQL database (Debian's, on 127.0.0.1): "
              f"`cargohold catalog copy` vs psycopg's `COPY items FROM STDIN` fed by `sqlite3`, median of "
              f"{f['runs']} run{'s' if f['runs'] != 1 else ''}.")
    ours, bare = f["copy_s"], f["bare_s"]
    t.rows.append(Row("SQLite → PostgreSQL, rows/s", f"{f['items'] / ours:,.0f} ({ours:.2f} s)",
                      f"{f['items'] / bare:,.0f} ({bare:.2f} s): bare COPY, no checks", bare / ours, at_least(0.5)))
    return t


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    main(parser, measure, table)
