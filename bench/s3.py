"""The S3 endpoint (issue 15, docs/S3.md) against its references, in one run: GetObject, ListObjectsV2 and a
multipart PutObject, each side by side with its reference and the ratio.

Every cargohold here is a real ``cargohold up`` (tests/support/api_server.py, a home of its own, the S3 endpoint
on ``SERVER_S3_PORT``) with an admin token and its S3 key pair made by ``cargohold token create --name s3-bench
--admin --s3 --json``; clients sign with SigV4 (botocore), path-style.

1. **GetObject of a cached 100 KiB item**, requests/s with wrk (1 thread, 32 connections, ``--duration`` s per run,
   ``--runs`` rounds alternating the five sides, medians; p50 / p99 from ``wrk --latency``). cargohold's own
   storage is a moto server started here (``STORAGE_PROVIDER=minio``), so the item is served from the storage
   tier, as bench/cache.py serves it; one request before the runs fills the tier and the tier's counters are read
   before and after. The five sides serve the same 100 KiB of seeded random bytes:
   (a) cargohold's S3 endpoint, a presigned GetObject URL (boto3 ``generate_presigned_url``, SigV4, path-style,
   7 days), the URL a data loader or a labelling tool is handed and fetches again and again: cargohold computes
   its signature once (s3/auth.py) and checks its dates and its key's token on every request;
   (a') the same GetObject signed in its headers as boto3 signs one (botocore's ``S3SigV4Auth``), replayed by wrk
   within the 15 minutes of skew S3 allows: a full SigV4 check on every request (canonical request, signing
   key, HMAC), what each request of a boto3 client costs;
   (b) the same item through ``GET /api/v1/items/{id}/content`` with ``Authorization: Bearer <token>`` (a wrk Lua
   script sets the header), the reference of the target;
   (c) moto's GetObject of the same bytes in a bucket of its own, presigned the same way (moto checks no
   signature);
   (d) nginx (one worker, sendfile; ``static_nginx`` of bench/_harness.py) serving the same bytes from disk.
   On 2+ CPUs wrk is pinned to CPU 0 and the measured server (every thread) to CPU 1.
   Targets: (a) and (a') >= 0.8 of (b), (a) >= 3x (c).
2. **ListObjectsV2 over a ``--items`` dataset** (default 1,000,000) of a second cargohold on local disk: the rows
   are written straight into its SQLite catalog before it starts (``sqlite3`` ``executemany``, as bench/catalog.py
   does; every column a stored item has, an MD5 included), named ``part-NN/NNNNNNN.jpg`` over 10 folders. Pages of
   1,000 at the start, the middle and the end (``start-after`` the key before), and the delimiter listing of the
   root (``delimiter=/``: the 10 folders), each a request signed with botocore's ``S3SigV4Auth`` in its
   ``Authorization`` header (signing untimed) sent by one keep-alive httpx client, timed until the whole answer is
   read; median of ``--list-runs``, alternating with the reference: the same SQL the listing runs
   (services/listing.py: ids and names from the name index, then the page's rows by id; for the delimiter one seek
   per folder) through ``sqlite3`` on the same file. Each answer's keys are checked. Targets: every page < 50 ms,
   the last page no slower than 2x the first. Also printed: boto3's ``list_objects_v2`` of the first page (its
   XML parsing included), what a Python client waits.
3. **PutObject of ``--size-mb`` MiB** (default 1024) in the multipart upload ``aws s3 cp`` makes: boto3
   ``upload_file`` with ``TransferConfig(multipart_threshold=8 MiB, multipart_chunksize=8 MiB, max_concurrency=10)``
   (the AWS CLI's defaults; botocore's default checksums) from a file of the harness's deterministic bytes, into
   the local-disk cargohold and into moto; the reference is the bare store: the same file written in 1 MiB chunks
   with fsync beside the server's bucket folders (same disk). ``--put-runs`` rounds, the order of the sides turned
   each round, medians. After each cargohold run the item and its content object are deleted (what ``cargohold
   gc`` would do), so every run takes the whole path; the first run's item is checked (size, SHA-256, the
   ``-N`` multipart ETag). Also printed: the server's peak RSS and CPU seconds, moto's and this process's.
   Target: cargohold >= 0.8 of the bare store.

``--py-spy BINARY`` (a py-spy, e.g. ``.bench/py-spy-venv/bin/py-spy``) records the server (100 Hz, not pausing
it) once more per part, untimed: a wrk run on the presigned GetObject URL, 50 first pages, one more PutObject; it
prints the top of each profile (per function, the share of busy samples where it runs and where it is on the
stack); ``--profile-dir`` keeps the raw stacks. ``--quick``: 1 wrk run of 2 s, 100,000 items,
64 MiB, 1 put run, 5 list runs. It reports, it never fails on a missed target.

    .venv/bin/python bench/s3.py [--runs 3] [--duration 5] [--items 1000000] [--list-runs 15] [--size-mb 1024]
                                 [--put-runs 3] [--parts get,list,put] [--quick] [--no-pin]
                                 [--py-spy BINARY] [--profile-dir DIR] [--json PATH]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import hashlib
import importlib.metadata
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx
import psutil  # type: ignore[import-untyped,unused-ignore]
from _harness import (
    CONNECTIONS,
    KiB,
    Measured,
    MiB,
    PeakRss,
    Row,
    Table,
    Target,
    WrkSide,
    api_client,
    at_least,
    chunks,
    log,
    main,
    medians,
    minio_env,
    ms,
    nginx_version,
    pin,
    pinnable,
    started,
    static_nginx,
    summarize_wrk,
    timed_ms,
    wrk,
    wrk_figure,
    wrk_rounds,
    wrk_version,
    wrk_warm_up,
)
from boto3.s3.transfer import TransferConfig
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from cargohold.catalog.db import database_urls, migrate
from cargohold.services.blobs import content_key
from cargohold.settings import load_settings
from tests.support.api import cli
from tests.support.api_server import RunningServer
from tests.support.servers import moto

TOKEN_TARGET = 0.8
MOTO_TARGET = 3.0
PAGE_TARGET_MS = 50.0
FLAT_TARGET = 2.0
PUT_TARGET = 0.8
GET_BUCKET = "s3bench"
LIST_BUCKET = "listing"
PUT_BUCKET = "putbench"
MOTO_BUCKET = "reference"
ITEM_KEY = "item-100k.bin"
PUT_KEY = "big.bin"
FOLDERS = 10
PAGE = 1000
PART = 8 * MiB
CONCURRENCY = 10
PRESIGN_SECONDS = 7 * 24 * 3600
STAMP = "2026-01-01 00:00:00"
LOW_MEMORY = 3 * 1024 * MiB
PARTS = ("get", "list", "put")


@dataclass(frozen=True)
class Keys:
    access: str
    secret: str


MOTO_KEYS = Keys("testing", "testing")


def s3_keys(server: RunningServer) -> Keys:
    made = json.loads(cli(server, "token", "create", "--name", "s3-bench", "--admin", "--s3", "--json").stdout)
    return Keys(made["s3_access_key_id"], made["s3_secret_access_key"])


def s3_client(endpoint: str, keys: Keys) -> Any:
    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=keys.access,
                        aws_secret_access_key=keys.secret, region_name="us-east-1",
                        config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                                      retries={"max_attempts": 1}, max_pool_connections=2 * CONCURRENCY))


def presigned_get(client: Any, bucket: str, key: str) -> str:
    return str(client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key},
                                             ExpiresIn=PRESIGN_SECONDS))


def header_signed_get(endpoint: str, keys: Keys, bucket: str, key: str) -> tuple[str, dict[str, str]]:
    """A GetObject signed in its headers as boto3 signs one (botocore's S3SigV4Auth, the empty body's SHA-256):
    the URL and the headers to send. Valid for the 15 minutes of clock skew S3 allows, replayed by wrk."""
    url = f"{endpoint}/{bucket}/{key}"
    request = AWSRequest(method="GET", url=url, headers={"x-amz-content-sha256": hashlib.sha256(b"").hexdigest()})
    S3SigV4Auth(Credentials(keys.access, keys.secret), "s3", "us-east-1").add_auth(request)
    return url, {name: str(value) for name, value in request.headers.items()}


def ok(answer: httpx.Response, what: str) -> httpx.Response:
    if answer.status_code >= 300:
        raise RuntimeError(f"{what} answered {answer.status_code}: {answer.text[:400].strip()}")
    return answer


def pid_of(server: RunningServer | Any) -> int:
    assert server.process is not None
    return int(server.process.pid)


def dist(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


# --- part 1: GetObject -------------------------------------------------------------------------------------


def storage_tier(api: httpx.Client) -> dict[str, int] | None:
    answer = api.get("/cache")
    if answer.status_code != 200:
        return None
    return next(({"hits": int(t["hits"]), "misses": int(t["misses"])} for t in answer.json()["tiers"]
                 if t["name"] == "storage"), None)


IDLE = re.compile(r"^(_connection_worker_thread \(aiosqlite/core\.py:59\)$|_worker \(concurrent/futures/thread\.py|"
                  r"(Condition\.wait|Queue\.get|SimpleQueue\.get|Event\.wait|EpollSelector\.select) )")
"""Leaf frames of a thread that waits: an idle aiosqlite or pool worker, the event loop in ``epoll``."""
GENERIC = re.compile(r"\((<frozen runpy>|click/|asyncio/|threading\.py|cargohold/__main__|cargohold/cli/)")
"""Frames under every sample of their thread (the loop, the runner): left out of the inclusive top."""


def top_of(raw: Path, count: int = 20) -> dict[str, Any]:
    """py-spy's raw (collapsed) stacks summed up. A sample is the event loop's (the main thread) or another
    thread's, busy or idle (``IDLE``); among busy samples, per function (line numbers dropped), the share where it
    is the running frame (``own``) and where it is anywhere on the stack (``inclusive``, ``GENERIC`` frames left
    out)."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, number = line.rpartition(" ")
        if not number.isdigit() or not stack:
            continue
        frames = stack.split(";")
        samples = int(number)
        thread = "loop" if frames[0].startswith("_run_module_as_main") else "other"
        if IDLE.match(frames[-1]):
            threads[f"{thread} idle"] += samples
            continue
        threads[f"{thread} busy"] += samples
        names = [re.sub(r":\d+\)$", ")", frame) for frame in frames]
        own[names[-1]] += samples
        for name in set(names):
            if not GENERIC.search(name):
                inclusive[name] += samples
    busy = threads["loop busy"] + threads["other busy"]

    def shares(counter: collections.Counter[str]) -> list[tuple[str, float]]:
        return [(frame, n / max(busy, 1)) for frame, n in counter.most_common(count)]

    return {"samples": dict(threads), "busy": busy, "own": shares(own), "inclusive": shares(inclusive)}


def profiled(binary: Path, pid: int, out: Path, action: Callable[[], object]) -> dict[str, Any]:
    """``action`` run once more with py-spy recording ``pid`` without pausing it (``--nonblocking``: a pausing
    py-spy stops the server's threads at every sample and caps it); how long it took is not a figure."""
    out.parent.mkdir(parents=True, exist_ok=True)
    spy = subprocess.Popen([str(binary), "record", "-p", str(pid), "-r", "100", "--nonblocking", "-f", "raw", "-o",
                            str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.0)
    began = time.perf_counter()
    try:
        action()
    finally:
        seconds = time.perf_counter() - began
        spy.send_signal(signal.SIGINT)
        try:
            _, err = spy.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            spy.kill()
            _, err = spy.communicate()
    if not out.exists():
        return {"error": f"py-spy wrote nothing (exit {spy.returncode}): {err.decode(errors='replace')[-400:]}"}
    return {"raw": str(out), "seconds": seconds, **top_of(out)}


def part_get(args: argparse.Namespace, tmp: Path, pinned: bool) -> dict[str, Any]:
    data = random.Random(20261105).randbytes(100 * KiB)
    www = tmp / "www"
    www.mkdir()
    (www / ITEM_KEY).write_bytes(data)
    tmp.chmod(0o755)  # nginx's worker runs as another user (nobody) when started by root
    www.chmod(0o755)
    with contextlib.ExitStack() as stack:
        store = started(stack, moto(tmp / "moto"))
        server = started(stack, RunningServer(tmp / "get-home", minio_env(store.url, "s3bench")))
        log(f"cargohold pid {pid_of(server)}: API {server.url}, S3 {server.s3_url}, storage on moto {store.url}")
        keys = s3_keys(server)
        api = stack.enter_context(api_client(server))
        dataset = ok(api.post("/datasets", json={"name": GET_BUCKET}), "POST /datasets").json()
        added = ok(api.post(f"/datasets/{dataset['id']}/items", files=[("files", (ITEM_KEY, data))]), "upload").json()
        item_id = int(added["results"][0]["item"]["id"])
        content_url = f"{server.api}/items/{item_id}/content"
        if ok(api.get(content_url), "GET content").content != data:  # also fills the storage tier
            raise RuntimeError("the content route sent other bytes than the item's")
        s3_url = presigned_get(s3_client(server.s3_url, keys), dataset["bucket"], ITEM_KEY)
        signed_url, signed_headers = header_signed_get(server.s3_url, keys, dataset["bucket"], ITEM_KEY)
        if ok(httpx.get(signed_url, headers=signed_headers, timeout=30), "a header-signed GetObject").content != data:
            raise RuntimeError("a header-signed GetObject sent other bytes than the item's")
        reference = s3_client(store.url, MOTO_KEYS)
        reference.create_bucket(Bucket=MOTO_BUCKET)
        reference.put_object(Bucket=MOTO_BUCKET, Key=ITEM_KEY, Body=data)
        moto_url = presigned_get(reference, MOTO_BUCKET, ITEM_KEY)
        web = started(stack, static_nginx(tmp / "nginx", www))
        nginx_url = f"{web.url}/{ITEM_KEY}"
        for what, url in (("cargohold's presigned GetObject", s3_url), ("moto's presigned GetObject", moto_url),
                          ("nginx", nginx_url)):
            if ok(httpx.get(url, timeout=30), what).content != data:
                raise RuntimeError(f"{what} sent other bytes than the item's")
        token_script = tmp / "token.lua"
        token_script.write_text(f'wrk.headers["Authorization"] = "Bearer {server.token}"\n')
        signed_script = tmp / "signed.lua"
        signed_script.write_text("".join(f'wrk.headers["{name}"] = "{value}"\n'
                                         for name, value in signed_headers.items()))
        sides = [WrkSide("cargohold S3", s3_url, [pid_of(server)]),
                 WrkSide("cargohold S3 header-signed", signed_url, [pid_of(server)], signed_script),
                 WrkSide("cargohold token", content_url, [pid_of(server)], token_script),
                 WrkSide("moto", moto_url, [pid_of(store)]),
                 WrkSide("nginx", nginx_url, [pid_of(web)])]
        log(f"  100 KiB item: wrk 1 thread, {CONNECTIONS} connections, {args.runs} x {args.duration:g} s per side")
        try:
            wrk_warm_up(sides, args.duration, pinned)
            before = storage_tier(api)
            runs = wrk_rounds(sides, args.runs, args.duration, pinned, moto_pid=pid_of(store))
            after = storage_tier(api)
            profile = None
            if args.py_spy:
                profile = profiled(args.py_spy, pid_of(server), (args.profile_dir or tmp) / "s3-get.raw",
                                   lambda: wrk(s3_url, max(args.duration, 5.0), 0 if pinned else None))
        finally:
            if pinned:
                for side in sides:
                    for pid in side.pids:
                        pin(pid, set(range(os.cpu_count() or 1)))
    out: dict[str, Any] = {"runs": args.runs, "duration_s": args.duration, "pinned": pinned,
                           "connections": CONNECTIONS, "bytes": len(data),
                           "sides": {name: summarize_wrk(results) for name, results in runs.items()}}
    if before is not None and after is not None:
        out["storage_tier"] = {k: after[k] - before[k] for k in ("hits", "misses")}
    if profile is not None:
        out["profile"] = profile
    return out


# --- part 2: ListObjectsV2 ---------------------------------------------------------------------------------


def key_of(i: int, count: int) -> str:
    """The ``i``-th name in byte order: folders and numbers are fixed-width, so ``i``'s order is the names'."""
    return f"part-{i * FOLDERS // count:02d}/{i:07d}.jpg"


def fill(db: Path, count: int) -> int:
    with contextlib.closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("INSERT INTO datasets (name, bucket, created_at) VALUES (?, ?, ?)", (LIST_BUCKET, LIST_BUCKET,
                                                                                          STAMP))
        dataset_id = int(conn.execute("SELECT id FROM datasets WHERE bucket = ?", (LIST_BUCKET,)).fetchone()[0])
        rows = ((dataset_id, key_of(i, count), "image", 100_000 + i % 9973, f"{i:064x}", f"{i:032x}", "image/jpeg",
                 640, 480, "stored", STAMP) for i in range(count))
        conn.executemany("INSERT INTO items (dataset_id, name, kind, size, sha256, md5, mime_type, width, height, "
                         "source, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    return dataset_id


class Signer:
    """Requests to the S3 endpoint signed in their Authorization header by botocore's own signer."""

    def __init__(self, endpoint: str, keys: Keys) -> None:
        self.endpoint = endpoint
        self.auth = S3SigV4Auth(Credentials(keys.access, keys.secret), "s3", "us-east-1")

    def get(self, path: str, params: dict[str, str]) -> tuple[str, dict[str, str]]:
        request = AWSRequest(method="GET", url=self.endpoint + path, params=params)
        request.headers["x-amz-content-sha256"] = hashlib.sha256(b"").hexdigest()
        self.auth.add_auth(request)
        prepared = request.prepare()
        return str(prepared.url), dict(prepared.headers.items())


KEY = re.compile(rb"<Key>([^<]*)</Key>")
PREFIX = re.compile(rb"<CommonPrefixes><Prefix>([^<]*)</Prefix>")


def bare_page(conn: sqlite3.Connection, dataset_id: int, after: str) -> int:
    """What services/listing.py asks the catalog for a page without a delimiter: ids and names, then the rows."""
    ids = [row[0] for row in conn.execute("SELECT id, name FROM items WHERE dataset_id = ? AND name > ? ORDER BY "
                                          "name LIMIT ?", (dataset_id, after, PAGE + 1))][:PAGE]
    marks = ",".join("?" * len(ids))
    return len(conn.execute(f"SELECT * FROM items WHERE id IN ({marks})", ids).fetchall())


def bare_folders(conn: sqlite3.Connection, dataset_id: int) -> int:
    """The root's common prefixes as the listing finds them: one seek past each folder."""
    found, start = 0, ""
    while True:
        row = conn.execute("SELECT id, name FROM items WHERE dataset_id = ? AND name >= ? ORDER BY name LIMIT 1",
                           (dataset_id, start)).fetchone()
        if row is None:
            return found
        folder = row[1].split("/", 1)[0] + "/"
        found += 1
        start = folder[:-1] + chr(ord("/") + 1)


@dataclass(frozen=True)
class Listing:
    label: str
    params: dict[str, str]
    first: str | None
    """The first key the page must hold (None: a delimiter listing, checked by its prefixes)."""
    bare: Callable[[], int]


def part_list(args: argparse.Namespace, tmp: Path, stack: contextlib.ExitStack[Any]) -> tuple[dict[str, Any],
                                                                                             RunningServer, Keys]:
    home = tmp / "local-home"
    settings = load_settings(home=home, environ={})
    migrate(database_urls(settings))
    db = settings.data_path / "catalog.sqlite3"
    began = time.perf_counter()
    dataset_id = fill(db, args.items)
    wrote_s = time.perf_counter() - began
    log(f"wrote {args.items:,} items into the catalog in {wrote_s:.1f} s")
    server = started(stack, RunningServer(home, {}))
    keys = s3_keys(server)
    log(f"cargohold pid {pid_of(server)} (local disk): S3 {server.s3_url}")
    conn = stack.enter_context(contextlib.closing(sqlite3.connect(db)))
    http = stack.enter_context(httpx.Client(timeout=60))
    signer = Signer(server.s3_url, keys)
    n = args.items
    page = {"list-type": "2", "max-keys": str(PAGE)}
    listings = [Listing("start", page, key_of(0, n), lambda: bare_page(conn, dataset_id, "")),
                Listing("middle", page | {"start-after": key_of(n // 2 - 1, n)}, key_of(n // 2, n),
                        lambda: bare_page(conn, dataset_id, key_of(n // 2 - 1, n))),
                Listing("end", page | {"start-after": key_of(n - PAGE - 1, n)}, key_of(n - PAGE, n),
                        lambda: bare_page(conn, dataset_id, key_of(n - PAGE - 1, n))),
                Listing("root, delimiter /", page | {"delimiter": "/"}, None,
                        lambda: bare_folders(conn, dataset_id))]
    folders = [f"part-{k:02d}/" for k in range(FOLDERS)]
    results: dict[str, Any] = {}
    for listing in listings:
        def request(listing: Listing = listing) -> tuple[bytes, float]:
            url, headers = signer.get(f"/{LIST_BUCKET}", listing.params)  # signing is not timed
            start = time.perf_counter()
            answer = http.get(url, headers=headers)
            elapsed = (time.perf_counter() - start) * 1e3
            return ok(answer, f"ListObjectsV2 {listing.label}").content, elapsed

        body, _ = request()  # untimed: checked
        keys_in = [k.decode() for k in KEY.findall(body)]
        prefixes = [p.decode() for p in PREFIX.findall(body)]
        if listing.first is not None:
            if len(keys_in) != PAGE or keys_in[0] != listing.first:
                raise RuntimeError(f"{listing.label}: {len(keys_in)} keys from {keys_in[:1]}, not {PAGE} from "
                                   f"{listing.first}")
        elif prefixes != folders or keys_in:
            raise RuntimeError(f"{listing.label}: prefixes {prefixes}, keys {keys_in[:3]}; expected {folders}")
        if listing.bare() != (PAGE if listing.first is not None else len(folders)):
            raise RuntimeError(f"the bare side of {listing.label} found another count")
        ours, bare = [], []
        for _ in range(args.list_runs):
            ours.append(request()[1])
            bare.append(timed_ms(listing.bare))
        row = {"ms": statistics.median(ours), "bare_ms": statistics.median(bare), "runs_ms": ours,
               "bytes": len(body), "entries": len(keys_in) + len(prefixes)}
        results[listing.label] = row
        log(f"  {listing.label:<18} cargohold {row['ms']:7.2f} ms   bare SQL {row['bare_ms']:6.2f} ms   "
            f"({len(body) / 1e3:.0f} kB answer)")
    profile = None
    if args.py_spy:
        first = listings[0]

        def pages() -> None:
            for _ in range(50):
                url, headers = signer.get(f"/{LIST_BUCKET}", first.params)
                ok(http.get(url, headers=headers), "ListObjectsV2")

        profile = profiled(args.py_spy, pid_of(server), (args.profile_dir or tmp) / "s3-list.raw", pages)
    client = s3_client(server.s3_url, keys)
    client.list_objects_v2(Bucket=LIST_BUCKET, MaxKeys=PAGE)
    boto_ms = statistics.median(timed_ms(lambda: client.list_objects_v2(Bucket=LIST_BUCKET, MaxKeys=PAGE))
                                for _ in range(max(3, args.list_runs // 3)))
    out = {"items": n, "folders": FOLDERS, "runs": args.list_runs, "insert_s": wrote_s, "pages": results,
           "end_vs_start": results["end"]["ms"] / results["start"]["ms"], "boto3_first_page_ms": boto_ms}
    if profile is not None:
        out["profile"] = profile
    return out, server, keys


# --- part 3: multipart PutObject ---------------------------------------------------------------------------


def make_source(path: Path, size: int) -> str:
    sha = hashlib.sha256()
    with path.open("wb") as fh:
        for chunk in chunks(size):
            sha.update(chunk)
            fh.write(chunk)
    return sha.hexdigest()


def bare_write(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with source.open("rb", buffering=0) as src, target.open("wb", buffering=0) as dst:
        while chunk := src.read(MiB):
            dst.write(chunk)
        os.fsync(dst.fileno())


def item_of(server: RunningServer, bucket: str) -> dict[str, Any]:
    with api_client(server) as api:
        dataset = next(d for d in ok(api.get("/datasets"), "GET /datasets").json()["datasets"] if d["bucket"] == bucket)
        items = ok(api.get(f"/datasets/{dataset['id']}/items"), "GET items").json()["items"]
    return dict(items[0])


def part_put(args: argparse.Namespace, tmp: Path, stack: contextlib.ExitStack[Any], server: RunningServer,
             keys: Keys) -> dict[str, Any]:
    size = args.size_mb * MiB
    source = tmp / "source.bin"
    sha = make_source(source, size)
    store = started(stack, moto(tmp / "moto-put"))
    ours, theirs = s3_client(server.s3_url, keys), s3_client(store.url, MOTO_KEYS)
    ours.create_bucket(Bucket=PUT_BUCKET)
    theirs.create_bucket(Bucket=PUT_BUCKET)
    transfer = TransferConfig(multipart_threshold=PART, multipart_chunksize=PART, max_concurrency=CONCURRENCY)
    storage = server.home / "data" / "storage"
    bucket = storage / "cargohold-public"
    bare_target = storage / "bench-bare" / "object.bin"
    procs = {"server": psutil.Process(pid_of(server)), "moto": psutil.Process(pid_of(store)),
             "client": psutil.Process()}
    sides: dict[str, Callable[[], None]] = {
        "cargohold": lambda: ours.upload_file(str(source), PUT_BUCKET, PUT_KEY, Config=transfer),
        "moto": lambda: theirs.upload_file(str(source), PUT_BUCKET, PUT_KEY, Config=transfer),
        "bare": lambda: bare_write(source, bare_target),
    }

    def forget_ours() -> None:
        ours.delete_object(Bucket=PUT_BUCKET, Key=PUT_KEY)
        (bucket / content_key(sha)).unlink(missing_ok=True)

    cleanup: dict[str, Callable[[], None]] = {
        "cargohold": forget_ours,
        "moto": lambda: theirs.delete_object(Bucket=PUT_BUCKET, Key=PUT_KEY),
        "bare": lambda: bare_target.unlink(missing_ok=True),
    }
    records: dict[str, list[dict[str, Any]]] = {name: [] for name in sides}
    order = list(sides)
    checked: dict[str, Any] = {}
    stopped: str | None = None
    for run in range(1, args.put_runs + 1):
        for name in order:
            rss = PeakRss(pid_of(server), children=True) if name == "cargohold" else None
            with Measured(procs, rss) as m:
                sides[name]()
            records[name].append(m.record())
            if name == "cargohold" and not checked:
                head = ours.head_object(Bucket=PUT_BUCKET, Key=PUT_KEY)
                item = item_of(server, PUT_BUCKET)
                checked = {"size": head["ContentLength"], "etag": head["ETag"], "sha256": item["sha256"]}
                parts = -(-size // PART)
                if head["ContentLength"] != size or item["sha256"] != sha or not head["ETag"].endswith(f'-{parts}"'):
                    raise RuntimeError(f"the uploaded object is not the file: {checked}, expected {size} bytes, "
                                       f"SHA-256 {sha}, {parts} parts")
            cleanup[name]()
        left = sum(1 for p in (bucket / ".multipart").rglob("*") if p.is_file()) if (bucket / ".multipart").is_dir() \
            else 0
        checked["multipart_files_left"] = max(checked.get("multipart_files_left", 0), left)
        shown = ", ".join(f"{name} {records[name][-1]['seconds']:.2f} s" for name in sides)
        log(f"  PutObject {args.size_mb} MiB run {run}/{args.put_runs}: {shown}; server peak RSS "
            f"{records['cargohold'][-1]['peak_rss_mb']:.0f} MB")
        order = order[1:] + order[:1]
        if run < args.put_runs and psutil.virtual_memory().available < LOW_MEMORY:
            stopped = f"stopped after run {run}: {psutil.virtual_memory().available / 1e6:.0f} MB of memory available"
            log("  " + stopped)
            break
    profile = None
    if args.py_spy:
        profile = profiled(args.py_spy, pid_of(server), (args.profile_dir or tmp) / "s3-put.raw", sides["cargohold"])
        cleanup["cargohold"]()
    out: dict[str, Any] = {"size_mb": args.size_mb, "part_mb": PART // MiB, "concurrency": CONCURRENCY,
                           "runs": args.put_runs, "checked": checked,
                           "sides": {name: medians(r, args.size_mb) for name, r in records.items()}}
    if stopped:
        out["stopped_early"] = stopped
    if profile is not None:
        out["profile"] = profile
    return out


# --- the run -----------------------------------------------------------------------------------------------


def measure(args: argparse.Namespace) -> dict[str, Any]:
    if args.quick:
        args.runs, args.duration, args.items, args.size_mb, args.put_runs, args.list_runs = 1, 2.0, 100_000, 64, 1, 5
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    if set(parts) - set(PARTS):
        raise SystemExit(f"--parts takes {', '.join(PARTS)}")
    if "get" in parts and shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: run `make bench-tools`")
    if args.py_spy and not Path(args.py_spy).exists():
        raise SystemExit(f"no py-spy at {args.py_spy}")
    began = time.perf_counter()
    pinned = not args.no_pin and pinnable()
    results: dict[str, Any] = {
        "cpus": os.cpu_count(), "load_average_at_start": os.getloadavg(),
        "versions": {"nginx": nginx_version(), "wrk": wrk_version(), "moto": dist("moto"), "boto3": dist("boto3")},
    }
    with tempfile.TemporaryDirectory(prefix="cargohold-s3-bench-") as tmp_name, contextlib.ExitStack() as stack:
        tmp = Path(tmp_name)
        if "get" in parts:
            log("\n1. GetObject of a cached 100 KiB item: S3 presigned vs token content route vs moto vs nginx")
            results["get"] = part_get(args, tmp, pinned)
        if "list" in parts or "put" in parts:
            log(f"\n2. ListObjectsV2 over {args.items:,} items")
            results["list"], server, keys = part_list(args, tmp, stack)
            if "list" not in parts:
                del results["list"]
            if "put" in parts:
                log(f"\n3. PutObject of {args.size_mb} MiB, multipart: cargohold vs moto vs the bare store")
                results["put"] = part_put(args, tmp, stack, server, keys)
    results["wall_s"] = time.perf_counter() - began
    results["load_average_at_end"] = os.getloadavg()
    return results


def report(f: dict[str, Any]) -> None:
    v = f["versions"]
    print(f"\n{f['cpus']} CPUs, load average {f['load_average_at_start'][0]:.2f} at start, "
          f"{f['load_average_at_end'][0]:.2f} at end; wall time {f['wall_s']:.0f} s; nginx {v['nginx']}, wrk "
          f"{v['wrk']}, moto {v['moto']}, boto3 {v['boto3']}")
    if "get" in f:
        for name, side in f["get"]["sides"].items():
            print(f"  GetObject {name:<16} {side['rps']:>8,.0f} req/s  p50 {side['p50_ms']:.2f} / p99 "
                  f"{side['p99_ms']:.2f} ms  server CPU {side['server_cpu_us_per_request']:.0f} µs/request  "
                  f"errors {side['errors']}")
    if "put" in f:
        for name, side in f["put"]["sides"].items():
            cpu = ", ".join(f"{k} {s:.1f}" for k, s in side["cpu_s_median"].items())
            print(f"  PutObject {name:<10} {side['per_s']:>8,.0f} MiB/s  (median {side['median_s']:.2f} s; CPU s: "
                  f"{cpu})")
    for part, what in (("get", "a presigned GetObject wrk run"), ("list", "50 pages of 1,000 at the start"),
                       ("put", "one more PutObject")):
        profile = f.get(part, {}).get("profile")
        if profile and "own" in profile:
            counts = ", ".join(f"{k} {n}" for k, n in sorted(profile["samples"].items()))
            print(f"\n  py-spy (100 Hz, --nonblocking) on the server during {what} ({profile['seconds']:.1f} s); "
                  f"samples: {counts}; raw stacks: {profile['raw']}")
            for kind in ("own", "inclusive"):
                print(f"    top by {kind} share of the busy samples:")
                for frame, share in profile[kind]:
                    print(f"      {share:6.1%}  {frame}")
        elif profile:
            print(f"  py-spy during {what}: {profile['error']}")


def table(f: dict[str, Any]) -> Table:
    t = Table("Two `cargohold up` servers (the S3 endpoint on `SERVER_S3_PORT`), each part against its references; ")
    about: list[str] = []
    if "get" in f:
        g = f["get"]
        s = g["sides"]
        about.append(f"GetObject: storage on moto, the item in the storage tier, wrk 1 thread, {g['connections']} "
                     f"connections, {g['runs']} × {g['duration_s']:g} s alternating"
                     f"{', wrk on CPU 0 and the server on CPU 1' if g['pinned'] else ''}, one presigned URL and "
                     "one header-signed request")
        ours = wrk_figure(s["cargohold S3"], p99=True)
        t.rows.append(Row("GetObject, cached 100 KiB item, presigned, requests/s", ours,
                          f"{wrk_figure(s['cargohold token'], p99=True)}: `/api/v1/items/{{id}}/content`, token",
                          s["cargohold S3"]["rps"] / s["cargohold token"]["rps"], at_least(TOKEN_TARGET)))
        signed = wrk_figure(s["cargohold S3 header-signed"], p99=True)
        t.rows.append(Row("GetObject, the same item, signed in the headers (as boto3 signs), requests/s", signed,
                          f"{wrk_figure(s['cargohold token'], p99=True)}: `/api/v1/items/{{id}}/content`, token",
                          s["cargohold S3 header-signed"]["rps"] / s["cargohold token"]["rps"],
                          at_least(TOKEN_TARGET)))
        t.rows.append(Row("the same against moto's GetObject of the same bytes, requests/s", ours,
                          f"{wrk_figure(s['moto'], p99=True)}: moto {f['versions']['moto']}, presigned",
                          s["cargohold S3"]["rps"] / s["moto"]["rps"], at_least(MOTO_TARGET)))
        t.rows.append(Row("the same against nginx from disk, requests/s", ours,
                          f"{wrk_figure(s['nginx'], p99=True)}: nginx", s["cargohold S3"]["rps"] / s["nginx"]["rps"]))
        cpu_s3, cpu_token = (s[side]["server_cpu_us_per_request"] for side in ("cargohold S3", "cargohold token"))
        t.rows.append(Row("GetObject, server CPU per request", f"{cpu_s3:.0f} µs",
                          f"{cpu_token:.0f} µs: the token content route", cpu_token / cpu_s3))
        errors = sum(side["errors"] for side in s.values())
        if errors:
            t.notes.append(f"GetObject: {errors} requests failed during the runs: those rows are not valid.")
        if "storage_tier" in g:
            timed = sum(s[name]["requests"] for name in ("cargohold S3", "cargohold S3 header-signed",
                                                         "cargohold token"))
            t.notes.append(f"GetObject: storage tier {g['storage_tier']['hits']:,} hits, {g['storage_tier']['misses']}"
                           f" misses for {timed:,} timed cargohold requests; moto used "
                           f"{s['cargohold S3']['moto_cpu_s']:.2f} CPU s during cargohold's S3 runs.")
        rates = {name: [r["rps"] for r in side["runs"]] for name, side in s.items()}
        spread = ", ".join(f"{name} {min(r):,.0f}-{max(r):,.0f}" for name, r in rates.items())
        t.notes.append(f"GetObject, requests/s of each side's runs (lowest-highest): {spread}.")
        t.notes.append("moto checks no signature on a presigned GET. cargohold computes a presigned URL's signature "
                       "once (botocore's signer) and checks its dates and its key's token on every request; a "
                       "header-signed request, replayed here by wrk within the 15 minutes S3 allows, is checked in "
                       "full every time, as every boto3 request would be.")
    if "list" in f:
        li = f["list"]
        about.append(f"ListObjectsV2: {li['items']:,} items in {li['folders']} folders of a local-disk server's "
                     f"SQLite catalog, requests signed in the header (httpx, keep-alive), median of {li['runs']}")
        for label, page in li["pages"].items():
            what = f"ListObjectsV2, {label}, ms" if label.startswith("root") else \
                f"ListObjectsV2, page of {PAGE:,} {'in' if label == 'middle' else 'at'} the {label}, ms"
            t.rows.append(Row(what, ms(page["ms"]), f"{ms(page['bare_ms'])}: `sqlite3`, the listing's own queries",
                              page["bare_ms"] / page["ms"],
                              Target("<", PAGE_TARGET_MS, "ms", on_ratio=False), page["ms"]))
        t.rows.append(Row("ListObjectsV2, last page / first page", f"{li['end_vs_start']:.2f}×",
                          target=Target("<=", FLAT_TARGET, on_ratio=False, label=f"≤ {FLAT_TARGET:g}×"),
                          value=li["end_vs_start"]))
        t.notes.append("ListObjectsV2: boto3's `list_objects_v2` of the first page takes "
                       f"{ms(li['boto3_first_page_ms'])} ms in all (its XML parsing included); the catalog took "
                       f"{li['insert_s']:.0f} s to fill with `sqlite3`.")
    if "put" in f:
        p = f["put"]
        s = p["sides"]
        about.append(f"PutObject: {p['size_mb']:,} MiB from a file, boto3 `upload_file` as `aws s3 cp` "
                     f"({p['part_mb']} MiB parts, {p['concurrency']} threads), into the local-disk server, "
                     f"median of {p['runs']}")
        ours = f"{s['cargohold']['per_s']:,.0f} ({s['cargohold']['median_s']:.1f} s)"
        t.rows.append(Row(f"PutObject {p['size_mb']:,} MiB, multipart, MiB/s", ours,
                          f"{s['bare']['per_s']:,.0f} ({s['bare']['median_s']:.1f} s): the bare store, file write + "
                          "fsync, same disk", s["cargohold"]["per_s"] / s["bare"]["per_s"], at_least(PUT_TARGET)))
        t.rows.append(Row("the same against moto's PutObject, MiB/s", ours,
                          f"{s['moto']['per_s']:,.0f} ({s['moto']['median_s']:.1f} s): moto, same client",
                          s["cargohold"]["per_s"] / s["moto"]["per_s"]))
        cpu = s["cargohold"]["cpu_s_median"]
        t.rows.append(Row("PutObject: server peak RSS / CPU", f"{s['cargohold']['peak_rss_mb']:.0f} MB / "
                          f"{cpu['server']:.1f} CPU s (client {cpu['client']:.1f} s)"))
        if p.get("stopped_early"):
            t.notes.append(f"PutObject: {p['stopped_early']}")
    t.about += "; ".join(about) + "."
    return t


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="wrk runs per side (median reported)")
    parser.add_argument("--duration", type=float, default=5, help="seconds per wrk run")
    parser.add_argument("--items", type=int, default=1_000_000, help="items in the listed dataset")
    parser.add_argument("--list-runs", type=int, default=15, help="requests per listing and side (median)")
    parser.add_argument("--size-mb", type=int, default=1024, help="MiB put by PutObject")
    parser.add_argument("--put-runs", type=int, default=3, help="PutObject runs per side (median)")
    parser.add_argument("--parts", default=",".join(PARTS), help="which parts: get, list, put")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 1 wrk run of 2 s, 100,000 items, 64 MiB, 1 put run, 5 list runs")
    parser.add_argument("--no-pin", action="store_true", help="do not pin wrk and the server to one CPU each")
    parser.add_argument("--py-spy", type=Path, help="a py-spy binary: profile the server once more per part")
    parser.add_argument("--profile-dir", type=Path, help="where py-spy's raw stacks are kept (default: a temp dir)")
    main(parser, measure, table, report)
