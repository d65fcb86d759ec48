"""``kill -9`` of the real server in the middle of an upload, then a restart on the same home.

docs/ARCHITECTURE.md: the catalog row is written only after the bytes are complete, so a crash leaves
no row and at most garbage that ``cargohold gc`` accounts for; uploads finished before the crash
are intact.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx

from .api_server import RunningServer
from .test_api import (
    bucket_name,
    cli,
    content_key,
    create_dataset,
    is_s3,
    local_bucket,
    random_bytes,
    s3_client,
    sha256,
    stored_objects,
    unfinished_uploads,
    upload_one,
)

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
        assert page == {"items": [], "next_cursor": None}, "no row for an upload that never finished"
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
