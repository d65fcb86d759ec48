"""``cargohold catalog copy``: a one-machine instance on SQLite moves its catalog to PostgreSQL (docs/DEPLOY.md).

A real server writes the SQLite catalog through the API; the copy goes to the PostgreSQL server the tests
start; the server then runs on PostgreSQL and must answer exactly as before: same ids, same bytes, the
same tokens and connection secrets, and new rows numbered after the copied ones.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import httpx

from ..support.api import cli, create_dataset, make_image, upload_one
from ..support.api_server import RunningServer
from ..support.postgres import PostgresServer


def everything(client: httpx.Client) -> dict[str, Any]:
    """What the API shows of the catalog, ids included."""
    datasets = client.get("/datasets").json()["datasets"]
    items = {d["name"]: client.get(f"/datasets/{d['id']}/items", params={"limit": 1000}).json()["items"]
             for d in datasets}
    files = client.get("/files").json()["files"]
    connections = [{k: c[k] for k in ("name", "provider", "buckets", "has_secret", "problem")}
                   for c in client.get("/connections").json()["connections"]]
    return {"datasets": datasets, "items": items, "files": files, "connections": connections}


def test_sqlite_catalog_copied_to_postgresql_serves_the_same(tmp_path: Path, postgres_server: PostgresServer
                                                              ) -> None:
    home = tmp_path / "home"
    folder = tmp_path / "shared"
    (folder / "persons").mkdir(parents=True)
    (folder / "persons" / "1.jpg").write_bytes(make_image("JPEG", (40, 30)))
    home.mkdir()
    (home / "remote_links.yml").write_text(f"shared:\n  provider: fs\n  path: {folder}\n  storage_id: shared\n")
    server = RunningServer(home, {}).start()
    images = {f"{n}.png": make_image("PNG", (20 + n, 10 + n)) for n in range(3)}
    try:
        with server.client() as client:
            cars = create_dataset(client, "cars")["id"]
            create_dataset(client, "persons")
            for name, data in images.items():
                upload_one(client, cars, name, data)
            linked = client.post(f"/datasets/{cars}/links", json={"links": ["fs://shared/persons/1.jpg"]}).json()
            assert linked["added"] == 1, linked
            assert client.put("/files/models/best.pt", content=b"weights").status_code == 201
            made = client.put("/connections/api-s3", json={"provider": "minio", "endpoint": "http://127.0.0.1:9",
                                                           "access_key": "k", "secret_key": "copied-sealed-secret",
                                                           "buckets": ["far-away"]})
            assert made.status_code == 201, made.text
            user_token = cli(server, "token", "create", "--name", "copied-user").stdout.strip()
            before = everything(client)

        target = postgres_server.create_database("copy")
        running = cli(server, "catalog", "copy", "--to", target, check=False)
        assert running.returncode == 2 and "a cargohold server is running" in running.stderr, running.stderr
        assert postgres_server.execute(target, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [(0,)]
        server.stop()

        copied = cli(server, "catalog", "copy", "--to", target)
        assert "items" in copied.stdout and "to use it, set DATABASE_URL=" in copied.stdout, copied.stdout
        again = cli(server, "catalog", "copy", "--to", target, check=False)
        assert again.returncode == 1 and "already holds" in again.stderr and "rows in" in again.stderr, again.stderr

        target = postgres_server.create_database("copy-switched")
        switched = cli(server, "catalog", "copy", "--to", target, "--switch")
        assert "switched" in switched.stdout, switched.stdout
        assert f"DATABASE_URL={target}" in (home / ".env").read_text() and (home / ".env.bak").is_file()
        assert oct((home / ".env").stat().st_mode & 0o777) == "0o600"
        in_use = cli(server, "catalog", "copy", "--to", target, check=False)
        assert in_use.returncode == 1 and "is the catalog in use now" in in_use.stderr, in_use.stderr

        server.env["DATABASE_URL"] = target  # RunningServer writes .env from env: keep the switched URL
        server.start()
        with server.client() as client:
            assert everything(client) == before
            item = next(i for i in before["items"]["cars"] if i["name"] == "1.png")
            assert client.get(f"/items/{item['id']}/content").content == images["1.png"]
            linked_item = next(i for i in before["items"]["cars"] if i["source"] != "stored")
            assert client.get(f"/items/{linked_item['id']}/content").content == (folder / "persons/1.jpg").read_bytes()
            assert client.get("/files/models/best.pt").content == b"weights"
            new = create_dataset(client, "after-the-copy")["id"]
            assert new == max(d["id"] for d in before["datasets"]) + 1, "the id sequence starts after the copied ids"
            fresh = upload_one(client, new, "new.png", make_image("PNG", (8, 8)))
            all_ids = [i["id"] for items in before["items"].values() for i in items]
            assert fresh["id"] == max(all_ids) + 1
        with server.client(user_token) as user:
            assert user.get("/datasets").status_code == 200, "a token made before the copy still works"
        assert (home / "data" / "catalog.sqlite3").is_file(), "the SQLite catalog is left as it was"
    finally:
        server.stop()


def test_a_row_the_new_database_refuses_names_it_and_leaves_it_empty(tmp_path: Path,
                                                                     postgres_server: PostgresServer) -> None:
    """SQLite keeps a text longer than its column; PostgreSQL refuses it. The copy stops with the table and
    the reason, the new database keeps no row (one transaction), and after the fix it runs to the end."""
    server = RunningServer(tmp_path / "home", {}).start()
    try:
        with server.client() as client:
            dataset = create_dataset(client, "d")["id"]
            upload_one(client, dataset, "a.png", make_image("PNG", (4, 4)))
    finally:
        server.stop()
    catalog = tmp_path / "home" / "data" / "catalog.sqlite3"
    with sqlite3.connect(catalog) as db:
        db.execute("UPDATE items SET mime_type = ?", ("image/" + "x" * 300,))
    target = postgres_server.create_database("copy-refused")
    refused = cli(server, "catalog", "copy", "--to", target, check=False)
    assert refused.returncode == 1, refused.stderr
    assert "items" in refused.stderr and "nothing was copied" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr
    assert postgres_server.execute(target, "SELECT count(*) FROM datasets") == [(0,)]
    with sqlite3.connect(catalog) as db:
        db.execute("UPDATE items SET mime_type = 'image/png'")
    done = cli(server, "catalog", "copy", "--to", target)
    assert "copied" in done.stdout
    assert postgres_server.execute(target, "SELECT count(*) FROM items") == [(1,)]
