"""``kill -9`` of the real server in the middle of uploads, then a restart on the same home.

docs/ARCHITECTURE.md: the catalog row is written only after the bytes are complete, so a crash leaves
no row and at most garbage that ``cargohold gc`` accounts for; uploads finished before the crash
are intact. One large upload, then 100 at once (items and team files, some cut anywhere between their
first byte and their answer), each on local disk and S3. ``cargohold migrate`` killed midway is in
test_migrate.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from ..support.api import (
    bucket_name,
    cli,
    content_key,
    create_dataset,
    is_s3,
    local_bucket,
    random_bytes,
    read_object,
    s3_client,
    sha256,
    stored_objects,
    unfinished_uploads,
    upload_one,
)
from ..support.api_server import RunningServer

MIB = 1024 * 1024
BIG_SIZE = 24 * MIB
FAST_PART = 12 * MIB  # sent at once; then the body trickles until the server is killed
BOUNDARY = "crash-test-boundary"


def big_file() -> bytes:
    block = random_bytes(MIB, seed=30)
    return b"".join(i.to_bytes(8, "big") + block[8:] for i in range(BIG_SIZE // MIB))


def in_flight(server: RunningServer) -> int:
    """Bytes of the upload in progress the provider holds so far (local ``.partial`` file, S3 multipart parts)."""
    if is_s3(server):
        s3 = s3_client(server)
        total = 0
        for upload in s3.list_multipart_uploads(Bucket=bucket_name(server)).get("Uploads", []):
            assert upload["Key"].startswith(".staging/"), upload
            parts = s3.list_parts(Bucket=bucket_name(server), Key=upload["Key"], UploadId=upload["UploadId"])
            total += sum(p["Size"] for p in parts.get("Parts", []))
        return total
    partial = server.home / "data" / "storage" / ".partial"
    return sum(p.stat().st_size for p in partial.iterdir()) if partial.is_dir() else 0


def gc_lines(server: RunningServer, *args: str) -> list[str]:
    return cli(server, "gc", "--older-than", "0", *args).stdout.splitlines()


@pytest.mark.reliability(kind="crash", what="`kill -9` of the server during one 24 MiB upload: no row, the finished "
                         "upload intact, gc removes the staging object and the provider-held parts", cases=1)
def test_kill_during_a_large_upload_leaves_no_row_and_only_gc_garbage(api_server: RunningServer) -> None:
    data = big_file()
    kept = random_bytes(3 * MIB, seed=31)
    with api_server.client() as client:
        finished = create_dataset(client, "finished")["id"]
        kept_item = upload_one(client, finished, "kept.bin", kept)
        crash = create_dataset(client, "crash")["id"]

    killed = threading.Event()
    sent = 0
    outcome: dict[str, Any] = {}

    def body() -> Iterator[bytes]:
        nonlocal sent
        yield (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"big.bin\"\r\n"
               "Content-Type: application/octet-stream\r\n\r\n").encode()
        start = 0
        while start < len(data):
            if killed.is_set():
                return
            # Fast up to FAST_PART, then a trickle (the remaining 12 MiB would take ~20 s): bytes are still
            # flowing when the kill comes, however slow the machine is to show the upload in storage.
            step = 256 * 1024 if start < FAST_PART else 64 * 1024
            if start >= FAST_PART:
                time.sleep(0.1)
            yield data[start:start + step]
            start += step
            sent += step
        yield f"\r\n--{BOUNDARY}--\r\n".encode()

    def send() -> None:
        try:
            with api_server.client() as c:
                outcome["response"] = c.post(f"/datasets/{crash}/items", content=body(),
                                             headers={"content-type": f"multipart/form-data; boundary={BOUNDARY}"})
        except httpx.HTTPError as exc:
            outcome["error"] = exc

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    deadline = time.monotonic() + 15
    while in_flight(api_server) < 8 * MIB:
        assert time.monotonic() < deadline, f"the upload never reached storage ({sent:,} bytes sent)"
        assert sender.is_alive(), f"the upload ended before the kill: {outcome}"
        time.sleep(0.05)
    api_server.kill()
    killed.set()
    sent_at_kill = sent
    sender.join(30)
    assert not sender.is_alive()
    assert "response" not in outcome, f"the upload finished before the kill: {outcome['response'].text}"
    assert 8 * MIB <= sent_at_kill < len(data), sent_at_kill
    left_by_crash = in_flight(api_server)
    assert left_by_crash >= 8 * MIB

    # On disk nothing half-written is in the bucket folder: the partial file is beside it.
    if not is_s3(api_server):
        root = local_bucket(api_server)
        for path in root.rglob("*"):
            if path.is_file():
                key = path.relative_to(root).as_posix()
                complete = key == content_key(hashlib.sha256(path.read_bytes()).hexdigest())
                assert key.startswith(".staging/") or complete, f"{key} is in the bucket folder, not complete content"
    assert content_key(sha256(data)) not in stored_objects(api_server)

    api_server.start()
    with api_server.client() as client:
        page = client.get(f"/datasets/{crash}/items").json()
        assert page == {"items": [], "folders": [], "next_cursor": None}, "no row for an upload that never finished"
        assert client.get(f"/datasets/{crash}").json()["item_count"] == 0
        assert client.get(f"/items/{kept_item['id']}").json() == kept_item
        assert client.get(f"/items/{kept_item['id']}/content").content == kept, "a finished upload survives"

        found = gc_lines(api_server)
        garbage, summary = found[:-1], found[-1]
        assert garbage, "the killed upload left something for gc: a staging object or provider-held parts"
        assert all((line.endswith("\tunfinished upload") and "/.staging/" in line)
                   or line.endswith("\tinterrupted upload") for line in garbage), found
        assert summary.startswith(f"found {len(garbage)} unreferenced objects"), found
        deleted = gc_lines(api_server, "--yes")
        assert deleted[:-1] == garbage and deleted[-1].startswith(f"deleted {len(garbage)} objects"), deleted
        assert gc_lines(api_server) == ["found 0 unreferenced objects, 0 bytes"]
        assert set(stored_objects(api_server)) == {content_key(sha256(kept))}

        item = upload_one(client, crash, "big.bin", data)
        assert item["size"] == len(data) and item["sha256"] == sha256(data)
        assert client.get(f"/items/{item['id']}/content").content == data
        assert client.get(f"/items/{kept_item['id']}/content").content == kept
        assert set(stored_objects(api_server)) == {content_key(sha256(kept)), content_key(sha256(data))}

    # docs/ARCHITECTURE.md: "A crash at any point leaves at most a staging object or an unreferenced
    # content object: `cargohold gc` finds both". The killed upload's bytes must not outlive gc --yes.
    assert unfinished_uploads(api_server) == [], (
        f"after `gc --older-than 0 --yes`, {left_by_crash:,} bytes of the killed upload are still held by the "
        f"provider ({'an S3 multipart upload' if is_s3(api_server) else 'a file in DATA_PATH/storage/.partial/'}), "
        "invisible to `cargohold gc`")


# --- kill -9 during 100 concurrent uploads ------------------------------------------------------------------------

CONCURRENT = 100
LARGE_TRICKLE = 16 * MIB  # over two 8 MiB parts: S3 holds a multipart upload, local disk a .partial file
LARGE_FAST = 13 * MIB  # the first 12 MiB make two 4 MiB blocks past the 8 MiB head; then a trickle
HELD_BACK = 1024  # the last bytes of a trickling upload: sent never, so it is in flight whenever the kill comes


@dataclass
class Sent:
    """One of the 100 requests: an item upload (``dataset``) or a team-file PUT (``path``)."""

    name: str
    data: bytes
    dataset: int | None = None
    path: str | None = None
    fast: int | None = None  # trickling: bytes sent at once before the trickle; None: sent whole at once
    started: threading.Event = field(default_factory=threading.Event)  # the fast part is sent
    status: int | None = None
    answer: Any = None
    error: str | None = None


def concurrent_uploads(items: int, kept: bytes) -> list[Sent]:
    """100 requests: small, medium and few-MiB uploads sent at once, duplicates of stored content, team
    files, and uploads that trickle (kept in flight until the kill), three of them large."""
    rng = random.Random(7)
    out: list[Sent] = []

    def add(kind: str, size: int, fast: int | None = None, data: bytes | None = None) -> None:
        n = len(out)
        blob = data if data is not None else random_bytes(size, seed=1000 + n)
        if kind == "file":
            out.append(Sent(f"team/{n:03d}.bin", blob, path=f"team/{n:03d}.bin", fast=fast))
        else:
            out.append(Sent(f"u{n:03d}.bin", blob, dataset=items, fast=fast))

    for _ in range(45):
        add("item", rng.randint(1, 96) * 1024)
    for _ in range(15):
        add("item", rng.randint(256, 1536) * 1024)
    for _ in range(5):
        add("item", rng.randint(2 * 1024, 4 * 1024) * 1024)
    for _ in range(5):
        add("item", 0, data=kept)  # content already stored: the staging copy is kept until the row is written
    for _ in range(10):
        add("file", rng.randint(1, 512) * 1024)
    for _ in range(14):
        size = rng.randint(64, 2048) * 1024
        add("item", size, fast=size // 2)
    for _ in range(3):
        size = rng.randint(64, 1024) * 1024
        add("file", size, fast=size // 2)
    for _ in range(3):
        add("item", LARGE_TRICKLE, fast=LARGE_FAST)
    assert len(out) == CONCURRENT and len({s.name for s in out}) == CONCURRENT
    return out


def trickled(sent: Sent, killed: threading.Event, boundary: str | None) -> Iterator[bytes]:
    assert sent.fast is not None
    if boundary is not None:
        yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{sent.name}\"\r\n"
               "Content-Type: application/octet-stream\r\n\r\n").encode()
    for start in range(0, sent.fast, 256 * 1024):
        yield sent.data[start:min(start + 256 * 1024, sent.fast)]
    sent.started.set()
    position = sent.fast
    while position < len(sent.data) - HELD_BACK and not killed.is_set():
        step = min(4096, len(sent.data) - HELD_BACK - position)
        yield sent.data[position:position + step]
        position += step
        killed.wait(0.1)
    killed.wait()  # the last bytes never go: the request is cut by the kill


def send_one(server: RunningServer, sent: Sent, killed: threading.Event) -> None:
    boundary = f"b-{sent.name.replace('/', '-')}"
    try:
        with server.client() as c:
            if sent.path is not None:
                body: Any = trickled(sent, killed, None) if sent.fast is not None else sent.data
                answer = c.put(f"/files/{sent.path}", content=body,
                               headers={"content-type": "application/octet-stream"})
            elif sent.fast is not None:
                answer = c.post(f"/datasets/{sent.dataset}/items", content=trickled(sent, killed, boundary),
                                headers={"content-type": f"multipart/form-data; boundary={boundary}"})
            else:
                answer = c.post(f"/datasets/{sent.dataset}/items", files=[("files", (sent.name, sent.data))])
        sent.status = answer.status_code
        sent.answer = answer.json() if answer.headers.get("content-type", "").startswith("application/json") \
            else answer.text
    except httpx.HTTPError as exc:
        sent.error = f"{type(exc).__name__}: {exc}"
    finally:
        sent.started.set()


def held_uploads(server: RunningServer) -> list[tuple[str, int]]:
    """Unfinished writes the provider holds, of both buckets: (multipart upload or .partial file, bytes so far)."""
    if is_s3(server):
        s3 = s3_client(server)
        found = []
        for visibility in ("public", "private"):
            bucket = bucket_name(server, visibility)
            for upload in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
                parts = s3.list_parts(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
                found.append((f"{bucket}/{upload['Key']}", sum(p["Size"] for p in parts.get("Parts", []))))
        return found
    partial = server.home / "data" / "storage" / ".partial"
    return [(p.name, p.stat().st_size) for p in partial.iterdir()] if partial.is_dir() else []


def catalog_rows(server: RunningServer) -> tuple[dict[int, tuple[str, str, int, str]], dict[str, tuple[int, str]]]:
    """Read straight from the catalog (SQLite): stored items id -> (dataset name, name, size, sha256) and
    team files path -> (size, sha256)."""
    path = server.home / "data" / "catalog.sqlite3"
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        items = {row[0]: tuple(row[1:]) for row in db.execute(
            "SELECT items.id, datasets.name, items.name, items.size, items.sha256 FROM items "
            "JOIN datasets ON datasets.id = items.dataset_id WHERE items.source = 'stored'")}
        files = {row[0]: (row[1], row[2]) for row in db.execute("SELECT path, size, sha256 FROM team_files")}
    return items, files  # type: ignore[return-value]


def verify_every_row(server: RunningServer) -> tuple[int, int]:
    """Every catalog row's bytes are in storage, read with the provider's own means, of its size and SHA-256."""
    items, files = catalog_rows(server)
    for item_id, (_, name, size, sha) in items.items():
        data = read_object(server, content_key(sha))
        assert len(data) == size and hashlib.sha256(data).hexdigest() == sha, f"item {item_id} {name!r}"
    for path, (size, sha) in files.items():
        data = read_object(server, path, "private")
        assert len(data) == size and hashlib.sha256(data).hexdigest() == sha, f"team file {path!r}"
    return len(items), len(files)


def orphans(server: RunningServer) -> set[str]:
    """What no row refers to, found without cargohold: objects of both buckets and unfinished writes."""
    items, files = catalog_rows(server)
    used = {content_key(sha) for _, _, _, sha in items.values()}
    found = {f"{bucket_name(server)}/{key}" for key in stored_objects(server) if key not in used}
    found |= {f"{bucket_name(server, 'private')}/{key}" for key in stored_objects(server, "private")
              if key not in files}
    return found | {f"held:{name}" for name, _ in held_uploads(server)}


GC_REASONS = {"interrupted upload": "unfinished writes (.partial files, multipart uploads)",
              "unfinished upload": "staging objects", "no item uses it": "content objects without an item",
              "no team file row": "team-file objects without a row"}


def gc_found(lines: list[str], server: RunningServer) -> set[str]:
    """gc's listing in the terms of ``orphans``: unfinished writes by name, objects by bucket/key."""
    out = set()
    for line in lines[:-1]:
        name, _size, reason = line.split("\t")
        if reason == "interrupted upload":
            out.add("held:" + (name.split(" (multipart", 1)[0] if is_s3(server) else Path(name).name))
        else:
            out.add(name)
    return out


@pytest.mark.reliability(kind="crash", what="`kill -9` of the server during 100 concurrent uploads (items and team "
                         "files, 1 KiB to 16 MiB, some trickling): after a restart every catalog row's bytes have its "
                         "SHA-256, every answered upload is there, `cargohold gc` finds every orphan and leaves none",
                         cases=CONCURRENT)
def test_kill_during_100_concurrent_uploads_keeps_every_row_whole_and_gc_accounts_for_the_rest(
        api_server: RunningServer, request: pytest.FixtureRequest) -> None:
    kept = random_bytes(200 * 1024, seed=40)
    with api_server.client() as client:
        before = create_dataset(client, "before")["id"]
        kept_item = upload_one(client, before, "kept.bin", kept)
        dataset = create_dataset(client, "concurrent")["id"]
    uploads = concurrent_uploads(dataset, kept)
    killed = threading.Event()
    threads = {s.name: threading.Thread(target=send_one, args=(api_server, s, killed), daemon=True) for s in uploads}
    fast = [s for s in uploads if s.fast is None]
    trickling = [s for s in uploads if s.fast is not None]
    large = sum(1 for s in trickling if len(s.data) == LARGE_TRICKLE)
    # The trickling uploads first, until each is in flight (the large ones held by the provider); then the 80
    # others at once, and the kill when half of those have been answered: the rest are cut anywhere between
    # their first byte and their answer.
    for sent in trickling:
        threads[sent.name].start()
    deadline = time.monotonic() + 60
    while (held := sum(1 for _, size in held_uploads(api_server) if size >= 8 * MIB)) < large or not all(
            s.started.is_set() for s in trickling):
        assert time.monotonic() < deadline, f"the trickling uploads never got going: {held} large ones held"
        time.sleep(0.05)
    for sent in fast:
        threads[sent.name].start()
    while (answered := sum(1 for s in fast if s.status is not None or s.error is not None)) < len(fast) // 2:
        assert time.monotonic() < deadline, f"no kill point: {answered} answered"
        time.sleep(0.01)
    api_server.kill()
    killed.set()
    for thread in threads.values():
        thread.join(30)
        assert not thread.is_alive()
    in_flight = [s for s in uploads if s.status is None]
    assert all(s.status is None and s.error for s in trickling), [s.status for s in trickling if s.status]
    refused = [(s.name, s.status, s.answer) for s in uploads if s.status is not None and s.status >= 300]
    assert not refused, refused
    left = held_uploads(api_server)
    assert sum(1 for _, size in left if size >= 8 * MIB) >= large, left

    api_server.start()
    # Every row, straight from the catalog, has its bytes with its checksum.
    items_before_gc, files_before_gc = verify_every_row(api_server)
    by_name = {s.name: s for s in uploads}
    items, files = catalog_rows(api_server)
    for _, (dataset_name, name, size, sha) in items.items():
        if dataset_name == "concurrent":  # a row only for a request sent whole, with the bytes sent
            assert by_name[name].fast is None and sha == sha256(by_name[name].data) and size == len(by_name[name].data)
    for path, (size, sha) in files.items():
        assert by_name[path].fast is None and (size, sha) == (len(by_name[path].data), sha256(by_name[path].data))
    # Every upload answered 2xx is there, as answered.
    with api_server.client() as client:
        for sent in uploads:
            if sent.status is None:
                continue
            if sent.path is not None:
                assert sent.answer["sha256"] == sha256(sent.data) and sent.path in files
                assert client.get(f"/files/{sent.path}").content == sent.data
            else:
                (result,) = sent.answer["results"]
                item = result["item"]
                assert item["sha256"] == sha256(sent.data) and item["id"] in items, sent.name
                assert client.get(f"/items/{item['id']}").json() == item
                assert client.get(f"/items/{item['id']}/content").content == sent.data
        listed = []
        cursor = None
        while True:
            page = client.get(f"/datasets/{dataset}/items", params={"limit": 1000, "cursor": cursor}).json()
            listed += page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert {i["id"] for i in listed} == {i for i, row in items.items() if row[0] == "concurrent"}
        assert client.get(f"/items/{kept_item['id']}/content").content == kept

    # gc lists exactly the orphans found without it (staging objects, content without rows, unfinished writes),
    # deletes them all, and every row still verifies.
    expected = orphans(api_server)
    assert any(name.startswith("held:") for name in expected), "the trickling uploads left unfinished writes"
    found = gc_lines(api_server)
    assert found[-1].startswith(f"found {len(found) - 1} unreferenced objects"), found
    assert gc_found(found, api_server) == expected, found
    assert all(line.split("\t")[2] in GC_REASONS for line in found[:-1]), found
    deleted = gc_lines(api_server, "--yes")
    assert deleted[-1].startswith(f"deleted {len(found) - 1} objects"), deleted
    assert gc_lines(api_server) == ["found 0 unreferenced objects, 0 bytes"]
    assert orphans(api_server) == set() and held_uploads(api_server) == []
    assert verify_every_row(api_server) == (items_before_gc, files_before_gc)

    # The server serves and takes uploads as before.
    with api_server.client() as client:
        again = upload_one(client, dataset, "after.bin", uploads[-1].data)
        assert client.get(f"/items/{again['id']}/content").content == uploads[-1].data
    verify_every_row(api_server)

    reasons: dict[str, int] = {}
    for line in found[:-1]:
        reasons[line.split("\t")[2]] = reasons.get(line.split("\t")[2], 0) + 1
    provider = "S3" if is_s3(api_server) else "local disk"
    request.node.user_properties.append(("reliability_result", (
        f"{provider}: {CONCURRENT - len(in_flight)} answered before the kill, {len(in_flight)} cut; "
        f"{items_before_gc + files_before_gc} rows verified; gc found {len(found) - 1} orphans ("
        + ", ".join(f"{n} {GC_REASONS[reason]}" for reason, n in sorted(reasons.items())) + "), then none")))


# --- team files replaced while the server is killed ------------------------------------------------------------

OVERWRITTEN = 20
WRITERS = 3  # per path, at once


def pending_writes(server: RunningServer) -> int:
    path = server.home / "data" / "catalog.sqlite3"
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        return int(db.execute("SELECT count(*) FROM team_file_writes").fetchone()[0])


@pytest.mark.reliability(kind="crash", what="`kill -9` of the server during 60 concurrent replacements of 20 team "
                         "files (three writers a path, some trickling): after a restart every row names the bytes at "
                         "its path, which are one whole version", cases=OVERWRITTEN * WRITERS)
def test_kill_during_concurrent_team_file_replacements_keeps_each_row_on_its_bytes(
        api_server: RunningServer, request: pytest.FixtureRequest) -> None:
    paths = [f"models/m{n:02d}.pt" for n in range(OVERWRITTEN)]
    versions = {path: [random_bytes(64 * 1024 + n * 4096, seed=2000 + n)] for n, path in enumerate(paths)}
    with api_server.client() as client:
        for path in paths:
            assert client.put(f"/files/{path}", content=versions[path][0]).status_code == 201
    rng = random.Random(11)
    writes: list[Sent] = []
    for n, path in enumerate(paths):
        for w in range(WRITERS):
            data = random_bytes(rng.randint(16, 3 * 1024) * 1024, seed=3000 + n * WRITERS + w)
            trickle = w == 0 and n % 4 == 0
            writes.append(Sent(f"{path}#{w}", data, path=path, fast=len(data) // 2 if trickle else None))
            if not trickle:
                versions[path].append(data)
    killed = threading.Event()
    threads = [threading.Thread(target=send_one, args=(api_server, s, killed), daemon=True) for s in writes]
    for thread in threads:
        thread.start()
    whole = [s for s in writes if s.fast is None]
    deadline = time.monotonic() + 60
    while sum(1 for s in whole if s.status is not None or s.error is not None) < len(whole) // 3:
        assert time.monotonic() < deadline, "no kill point"
        time.sleep(0.005)
    api_server.kill()
    killed.set()
    for thread in threads:
        thread.join(30)
    refused = [(s.name, s.status, s.answer) for s in writes if s.status is not None and s.status >= 300]
    assert not refused, refused
    answered = sum(1 for s in writes if s.status is not None)
    announced = pending_writes(api_server)

    api_server.start()
    assert pending_writes(api_server) == 0, "the start finished every announced write"
    _, files = catalog_rows(api_server)
    assert set(files) == set(paths)
    verify_every_row(api_server)  # each row's size and SHA-256 are those of the bytes at its path
    for path, (_, sha) in files.items():
        assert sha in {sha256(v) for v in versions[path]}, f"{path}: a whole version sent, or the first"
    with api_server.client() as client:
        for path in paths:
            listed = client.get(f"/files/{path}")
            assert sha256(listed.content) == files[path][1] == listed.headers["etag"].strip('"')

    found = gc_lines(api_server)
    assert all(line.split("\t")[0].startswith(f"{bucket_name(api_server, 'private')}/.staging/")
               or line.split("\t")[2] == "interrupted upload" for line in found[:-1]), found
    gc_lines(api_server, "--yes")
    assert gc_lines(api_server) == ["found 0 unreferenced objects, 0 bytes"]
    verify_every_row(api_server)
    provider = "S3" if is_s3(api_server) else "local disk"
    request.node.user_properties.append(("reliability_result", (
        f"{provider}: {answered} of {len(writes)} answered before the kill, {announced} announced writes finished "
        f"at the restart; {len(files)} rows verified; gc found {len(found) - 1} staged or unfinished objects")))


@pytest.mark.reliability(kind="crash", what="the three states a crash can leave a team-file replacement in "
                         "(announced; moved but not recorded; staged bytes lost), finished or dropped at the start",
                         cases=3)
def test_an_interrupted_team_file_write_is_finished_or_dropped_at_the_start(tmp_path: Path) -> None:
    """Each state is made as a `kill -9` leaves it (a row in team_file_writes, files in the bucket folder),
    then the server starts on it."""
    server = RunningServer(tmp_path / "home", {}).start()
    old, new = b"old weights " * 1000, b"new weights " * 2000
    with server.client() as client:
        for path in ("announced.pt", "moved.pt", "lost.pt"):
            assert client.put(f"/files/{path}", content=old).status_code == 201
    server.kill()
    bucket = local_bucket(server, "private")
    (bucket / ".staging").mkdir(exist_ok=True)
    (bucket / ".staging" / "a1").write_bytes(new)  # announced: the staged bytes wait to be moved
    (bucket / "moved.pt").write_bytes(new)  # moved before the kill; the row still says old
    catalog = server.home / "data" / "catalog.sqlite3"
    with contextlib.closing(sqlite3.connect(catalog)) as db, db:
        for path, staged in (("announced.pt", ".staging/a1"), ("moved.pt", ".staging/m1"), ("lost.pt", ".staging/l1")):
            db.execute("INSERT INTO team_file_writes (path, staged_key, size, sha256, content_type, created_at) "
                       "VALUES (?, ?, ?, ?, 'application/octet-stream', '2026-11-29 00:00:00.000000')",
                       (path, staged, len(new), sha256(new)))
    server.start()
    try:
        assert pending_writes(server) == 0
        _, files = catalog_rows(server)
        assert files == {"announced.pt": (len(new), sha256(new)), "moved.pt": (len(new), sha256(new)),
                         "lost.pt": (len(old), sha256(old))}
        verify_every_row(server)
        assert not (bucket / ".staging" / "a1").exists()
        assert "finished 3 team-file writes the last stop interrupted" in server.log.read_text()
    finally:
        server.stop()
