"""Two ``cargohold up`` replicas on different ports sharing one PostgreSQL catalog and one S3 server
(moto), each with its own instance home (cache, data folder) and the same ``SECRET_KEY``, as
docs/DEPLOY.md describes. Checked: what one stores the other serves; URLs one signs the other opens;
a connection added through one is used by the other; tokens and their revocation hold on both at
once; only one makes the first-start admin token; ``gc`` deletes garbage while uploads go on through
the other replica without any item losing its bytes, and two ``gc`` (or ``migrate``) runs never run at
once."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import io
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import httpx
import pytest
from PIL import Image

from cargohold.catalog.db import ADVISORY_NAMESPACE, Catalog
from cargohold.services import locks
from cargohold.settings import load_settings

from ..support.api import assert_error, cli, content_key, create_dataset
from ..support.api_server import RunningServer
from ..support.postgres import PostgresServer
from ..support.servers import Server


@dataclass
class Replicas:
    a: RunningServer
    b: RunningServer
    env: dict[str, str]
    postgres: PostgresServer

    @property
    def database_url(self) -> str:
        return self.env["DATABASE_URL"]

    @property
    def both(self) -> tuple[RunningServer, RunningServer]:
        return self.a, self.b

    @property
    def admin_token(self) -> str:
        """The first-start admin token, from whichever home got it."""
        made = [r.home / "admin.token" for r in self.both if (r.home / "admin.token").exists()]
        return made[0].read_text().strip()

    def client(self, replica: RunningServer, token: str | None = None) -> httpx.Client:
        return replica.client(token or self.admin_token)

    @functools.cached_property
    def s3(self) -> Any:
        """An S3 client of the test's own (boto3 clients may be shared by threads)."""
        return boto3.client("s3", endpoint_url=self.env["STORAGE_ENDPOINT"], aws_access_key_id="testing",
                            aws_secret_access_key="testing", region_name="us-east-1")

    @property
    def public_bucket(self) -> str:
        return f"{self.env['STORAGE_BUCKET_PREFIX']}-public"

    def stored(self, sha: str) -> bytes | None:
        """The content object's bytes, read from S3 itself (no replica's cache in between)."""
        try:
            return bytes(self.s3.get_object(Bucket=self.public_bucket, Key=content_key(sha))["Body"].read())
        except self.s3.exceptions.NoSuchKey:
            return None


@pytest.fixture(scope="module")
def replicas(postgres_server: PostgresServer, moto_server: Server,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicas]:
    root = tmp_path_factory.mktemp("replicas")
    env = {
        "DATABASE_URL": postgres_server.create_database("replicas"),
        "SECRET_KEY": secrets.token_urlsafe(32),
        "STORAGE_PROVIDER": "minio", "STORAGE_ENDPOINT": moto_server.url, "STORAGE_ACCESS_KEY": "testing",
        "STORAGE_SECRET_KEY": "testing", "STORAGE_BUCKET_PREFIX": f"replicas-{secrets.token_hex(3)}",
    }
    a, b = RunningServer(root / "a", env), RunningServer(root / "b", env)
    # Started at the same moment on an empty database: both migrate it, both try the first-start token.
    failures: list[BaseException] = []

    def start(replica: RunningServer) -> None:
        try:
            replica.start()
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=start, args=(r,)) for r in (a, b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert not failures, failures
        yield Replicas(a, b, env, postgres_server)
    finally:
        a.stop()
        b.stop()


def jpeg(size: tuple[int, int], seed: int) -> bytes:
    rng = random.Random(seed)
    image = Image.new("RGB", size, (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


def upload(client: httpx.Client, dataset: int, name: str, data: bytes) -> dict[str, Any]:
    answer = client.post(f"/datasets/{dataset}/items", files=[("files", (name, data))])
    assert answer.status_code == 201, answer.text
    return dict(answer.json()["results"][0]["item"])


def on(replica: RunningServer, url: str) -> str:
    """The same URL (path and query) on another replica."""
    parts = urlsplit(url)
    return f"{replica.url}{parts.path}?{parts.query}"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- what one stores the other serves -----------------------------------------------------------------------------


def test_an_upload_on_one_is_served_by_the_other(replicas: Replicas) -> None:
    photo = jpeg((640, 480), seed=1)
    with replicas.client(replicas.a) as a, replicas.client(replicas.b) as b:
        dataset = create_dataset(a, "from-a")["id"]
        item = upload(a, dataset, "photo.jpg", photo)
        assert b.get(f"/items/{item['id']}").json()["sha256"] == sha256(photo)
        assert [d["name"] for d in b.get("/datasets").json()["datasets"]].count("from-a") == 1
        content = b.get(f"/items/{item['id']}/content")
        assert content.status_code == 200 and content.content == photo
        preview = b.get(f"/items/{item['id']}/preview", params={"w": 64})
        assert preview.status_code == 200, preview.text
        assert Image.open(io.BytesIO(preview.content)).size == (64, 48)
        # and the other way round, through the other replica's own cache
        back = upload(b, dataset, "back.jpg", jpeg((100, 50), seed=2))
        assert a.get(f"/items/{back['id']}/content").content == jpeg((100, 50), seed=2)
        assert Image.open(io.BytesIO(a.get(f"/items/{back['id']}/preview", params={"w": 32}).content)).size == (32, 16)


def test_a_url_signed_by_one_opens_on_the_other(replicas: Replicas) -> None:
    data = os.urandom(5000)
    with replicas.client(replicas.a) as a, replicas.client(replicas.b) as b, httpx.Client(timeout=30) as anonymous:
        dataset = create_dataset(a, "signed")["id"]
        item = upload(a, dataset, "blob.bin", data)
        by_a = a.post(f"/items/{item['id']}/sign", json={"expires_in": 300}).json()["url"]
        by_b = b.post(f"/items/{item['id']}/sign", json={"expires_in": 300}).json()["url"]
        for url in (by_a, by_b):
            for replica in replicas.both:
                answer = anonymous.get(on(replica, url))
                assert answer.status_code == 200 and answer.content == data, (url, replica.url)
        signature = by_a.rsplit("signature=", 1)[1]
        tampered = by_a.replace(signature, ("A" if signature[0] != "A" else "B") + signature[1:])
        for replica in replicas.both:
            assert_error(anonymous.get(on(replica, tampered)), 401, "unauthenticated")


def test_a_connection_added_through_one_is_used_by_the_other(replicas: Replicas) -> None:
    s3 = replicas.s3
    bucket = f"linked-{secrets.token_hex(3)}"
    s3.create_bucket(Bucket=bucket)
    picture = jpeg((30, 20), seed=3)
    s3.put_object(Bucket=bucket, Key="cams/1.jpg", Body=picture)
    with replicas.client(replicas.a) as a, replicas.client(replicas.b) as b:
        made = a.put(f"/connections/shared-{bucket}", json={
            "provider": "minio", "endpoint": replicas.env["STORAGE_ENDPOINT"], "access_key": "testing",
            "secret_key": "testing", "region": "us-east-1", "buckets": [bucket]})
        assert made.status_code == 201, made.text
        dataset = create_dataset(b, "linked-through-b")["id"]
        # B re-reads the catalog's connections every 2 s (ConnectionRegistry.CHECK_EVERY): within that, it knows.
        deadline = time.monotonic() + 10
        while True:
            report = b.post(f"/datasets/{dataset}/links", json={"links": [f"s3://{bucket}/cams/1.jpg"]}).json()
            if report["added"] == 1:
                break
            assert time.monotonic() < deadline, f"replica b never saw the connection: {report}"
            time.sleep(0.25)
        item = b.get(f"/datasets/{dataset}/items").json()["items"][0]
        assert (item["source"], item["width"], item["height"]) == ("link", 30, 20)
        for client in (a, b):
            assert client.get(f"/items/{item['id']}/content").content == picture
        names = {c["name"] for c in b.get("/connections").json()["connections"]}
        assert f"shared-{bucket}" in names, "listed by the replica it was not made on"


# --- tokens ---------------------------------------------------------------------------------------------------------


def test_only_one_replica_makes_the_first_start_admin_token(replicas: Replicas) -> None:
    homes = [r for r in replicas.both if (r.home / "admin.token").exists()]
    assert len(homes) == 1, "both replicas started on the empty catalog: exactly one makes the admin token"
    other = replicas.b if homes[0] is replicas.a else replicas.a
    assert "token create --admin" in other.log.read_text(), "the other replica says how to get a token"
    for replica in replicas.both:
        with replicas.client(replica) as client:
            assert client.get("/datasets").status_code == 200
    # The operator makes one for the other replica's home, on that replica (it works on every one).
    made = cli(other, "token", "create", "--admin", "--name", "replica-admin", "--save")
    token = made.stdout.strip()
    assert (other.home / "admin.token").read_text().strip() == token
    assert oct((other.home / "admin.token").stat().st_mode & 0o777) == "0o600"
    for replica in replicas.both:
        with replica.client(token) as client:
            assert client.get("/connections").status_code == 200  # an admin route
    again = cli(other, "token", "create", "--admin", "--name", "replica-admin-2", "--save", check=False)
    assert again.returncode != 0 and "exists" in again.stderr + again.stdout


def test_a_token_works_on_all_and_its_revocation_on_all_at_once(replicas: Replicas) -> None:
    token = cli(replicas.a, "token", "create", "--name", "alice").stdout.strip()
    for replica in replicas.both:
        with replica.client(token) as client:
            assert client.get("/datasets").status_code == 200
            assert_error(client.get("/connections"), 403)  # a user token, on both
    assert "alice" in cli(replicas.b, "token", "list").stdout
    cli(replicas.b, "token", "revoke", "alice")
    for replica in replicas.both:  # no cache of tokens anywhere: refused at once, on both
        with replica.client(token) as client:
            assert_error(client.get("/datasets"), 401, "unauthenticated")


# --- gc and migrate while replicas serve ----------------------------------------------------------------------------


GRACE = 1
"""gc's ``--older-than`` in seconds, in the test below."""
GC_RUNS = 3


def gc(replica: RunningServer, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return cli(replica, "gc", *args, check=check)


def test_gc_deletes_garbage_while_uploads_go_on_through_the_other_replica(replicas: Replicas) -> None:
    """Contents whose items were deleted are garbage to gc, and are uploaded again (the same bytes: the
    upload finds the object there and writes only a row) through replica b, over and over, by several
    clients at once, while ``cargohold gc --yes`` runs again and again from replica a's home: gc takes
    what nobody uses, and no item ever points at deleted bytes (checked in S3 itself, each time before
    the item is replaced, and at the end)."""
    writers, per_writer = 3, 3
    contents = [[os.urandom(20_000 + 100 * w + k) for k in range(per_writer)] for w in range(writers)]
    never_again = [os.urandom(10_000 + i) for i in range(4)]  # garbage no one uploads again: gc takes it
    with replicas.client(replicas.a) as a:
        dataset = create_dataset(a, "gc-garbage")["id"]
        for i, data in enumerate([c for cs in contents for c in cs] + never_again):
            a.delete(f"/items/{upload(a, dataset, f'old-{i}.bin', data)['id']}")
    time.sleep(GRACE + 0.2)  # every content object is now older than gc's --older-than

    live: dict[tuple[int, int], int] = {}  # (writer, content) -> the item using it now
    uploads = 0
    failures: list[str] = []
    stop = threading.Event()

    def churn(writer: int) -> None:
        nonlocal uploads
        with replicas.client(replicas.b) as b:
            target = create_dataset(b, f"gc-live-{writer}")["id"]
            round_ = 0
            while not stop.is_set() or round_ < 3:
                for k, data in enumerate(contents[writer]):
                    if (writer, k) in live:
                        if replicas.stored(sha256(data)) != data:
                            failures.append(f"item {live[writer, k]} points at content gc deleted")
                        # no row uses the content for a moment: garbage to a gc looking now
                        b.delete(f"/items/{live.pop((writer, k))}")
                    answer = b.post(f"/datasets/{target}/items", files=[("files", (f"r{round_}-{k}.bin", data))])
                    if answer.status_code != 201:
                        failures.append(answer.text)
                        continue
                    live[writer, k] = answer.json()["results"][0]["item"]["id"]
                    uploads += 1
                    time.sleep(0.02)  # leave gc and the servers some of the machine
                round_ += 1

    workers = [threading.Thread(target=churn, args=(w,)) for w in range(writers)]
    for worker in workers:
        worker.start()
    try:
        runs = [gc(replicas.a, "--yes", "--older-than", f"{GRACE}s") for _ in range(GC_RUNS)]
    finally:
        stop.set()
        for worker in workers:
            worker.join(120)
    assert not failures, failures
    deleted = [line for r in runs for line in r.stdout.splitlines() if line.startswith("deleted ")]
    assert len(deleted) == GC_RUNS and deleted[0] != "deleted 0 objects, 0 bytes", deleted
    for data in never_again:
        assert replicas.stored(sha256(data)) is None, "garbage nobody uploaded again is deleted"
    assert uploads >= writers * per_writer * 3
    with replicas.client(replicas.a) as a:
        for (writer, k), item_id in live.items():
            data = contents[writer][k]
            assert replicas.stored(sha256(data)) == data, f"item {item_id} lost its bytes in S3"
            answer = a.get(f"/items/{item_id}/content")
            assert answer.status_code == 200 and sha256(answer.content) == sha256(data)


def test_two_gc_runs_at_once_one_is_refused(replicas: Replicas) -> None:
    """A real gc is caught holding the lock (and frozen there with SIGSTOP); a second one, from the
    other replica's home, is refused with who holds it; the first then ends normally."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STORAGE_", "CACHE_", "DATA_PATH", "SERVER_"))}
    env["CARGOHOLD_HOME"] = str(replicas.a.home)
    holding = (f"SELECT count(*) FROM pg_locks l JOIN pg_stat_activity s ON s.pid = l.pid WHERE l.locktype = 'advisory'"
               f" AND l.granted AND l.classid = {ADVISORY_NAMESPACE} AND s.application_name LIKE 'cargohold lock:%'")
    for _attempt in range(5):
        first = subprocess.Popen([sys.executable, "-m", "cargohold", "gc"], env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        while first.poll() is None and not replicas.postgres.execute(replicas.database_url, holding)[0][0]:
            time.sleep(0.002)
        if first.poll() is None:
            os.kill(first.pid, signal.SIGSTOP)
            break
        first.communicate()  # it was done before it could be caught: again
    else:
        pytest.fail("never caught a gc holding its lock")
    try:
        second = gc(replicas.b, check=False)
        assert second.returncode == 1, second.stdout + second.stderr
        message = second.stderr.strip()
        assert message.startswith("cargohold: another cargohold gc is running (started "), message
        assert f"on host {socket.gethostname()}, pid {first.pid}); try again when it ends" in message, message
    finally:
        os.kill(first.pid, signal.SIGCONT)
    out, err = first.communicate(timeout=60)
    assert first.returncode == 0, out + err
    assert "unreferenced objects" in out
    assert gc(replicas.b).returncode == 0, "free again once the first ended"


def test_migrate_is_one_at_a_time_and_safe_while_replicas_serve(replicas: Replicas, tmp_path: Path) -> None:
    target = tmp_path / "target.env"
    target.write_text(f"STORAGE_PROVIDER=http\nDATA_PATH={tmp_path / 'target-data'}\n")
    catalog = Catalog(load_settings(home=replicas.a.home, environ={"DATABASE_URL": replicas.database_url}))

    async def hold_while_refused() -> subprocess.CompletedProcess[str]:
        async with locks.exclusive(catalog, "migrate"):
            return await asyncio.to_thread(cli, replicas.b, "migrate", "--to", str(target), "--dry-run", check=False)

    try:
        refused = asyncio.run(hold_while_refused())
    finally:
        asyncio.run(catalog.close())
    assert refused.returncode == 1
    assert "another cargohold migrate is running (started " in refused.stderr, refused.stderr
    assert f"pid {os.getpid()}); try again when it ends" in refused.stderr, refused.stderr

    # A real copy from replica b's home while replica a takes uploads: the source is only read.
    photo = jpeg((64, 64), seed=9)
    with replicas.client(replicas.a) as a:
        dataset = create_dataset(a, "during-migrate")["id"]
        done: list[subprocess.CompletedProcess[str]] = []
        runner = threading.Thread(target=lambda: done.append(cli(replicas.b, "migrate", "--to", str(target),
                                                                 check=False)))
        runner.start()
        items = [upload(a, dataset, f"p{i}.jpg", photo) for i in range(5)]
        runner.join(120)
        assert done and done[0].returncode == 0, (done[0].stdout + done[0].stderr) if done else "no result"
        assert "failed 0" in done[0].stdout, done[0].stdout
        for item in items:
            assert a.get(f"/items/{item['id']}/content").content == photo
