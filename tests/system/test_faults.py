"""Faults: the S3 server stopped, slow, cutting connections or answering errors while cargohold reads,
uploads, verifies links and migrates; the cache's disk full; GCS and Azure endpoints that are dead.

Every fault is real: a real ``cargohold up`` process (or ``cargohold migrate``) talks to moto through
``FaultProxy`` (tests/support/fake_services.py), a byte-for-byte HTTP proxy of the tests' own that, switched at
run time, refuses connections, holds answers back, cuts answers or requests after some bytes, or
answers 503. Nothing of cargohold's own code is replaced. The full disk is a real file system (a
tmpfs, mounted in a mount namespace of the server process only) filled up.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import random
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from PIL import Image

from ..support.api import create_dataset, upload_one
from ..support.api_server import RunningServer
from ..support.fake_services import Fault, FaultProxy
from ..support.servers import AZURITE_ACCOUNT, AZURITE_KEY, Server

MB = 1024 * 1024
FETCH_TIMEOUT = 2  # CACHE_FETCH_TIMEOUT of the servers here, in seconds
NO_HANG = 30.0
"""Seconds an answer under a fault may take at most: generous, only to prove nothing hangs (the
libraries' own defaults retried a dead endpoint for 60 to 300 s)."""

_numbers = iter(range(1, 10_000))


# -- helpers --------------------------------------------------------------------------------------------


def noise(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def jpeg(width: int, height: int, colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, "JPEG", quality=90)
    return out.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def image_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        return image.size


def s3_client(moto: Server) -> Any:
    return boto3.client("s3", endpoint_url=moto.url, aws_access_key_id="testing", aws_secret_access_key="testing",
                        region_name="us-east-1")


def keys_in(moto: Server, bucket: str) -> list[str]:
    """The objects a reader of the bucket sees (moto directly, not through the proxy)."""
    pages = s3_client(moto).get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def unfinished_uploads(moto: Server, bucket: str) -> list[str]:
    return [u["Key"] for u in s3_client(moto).list_multipart_uploads(Bucket=bucket).get("Uploads", [])]


def start_server(home: Path, proxy: FaultProxy, **settings: str) -> RunningServer:
    """A server keeping its own storage on moto through ``proxy``."""
    env = {"STORAGE_PROVIDER": "minio", "STORAGE_ENDPOINT": proxy.url, "STORAGE_ACCESS_KEY": "testing",
           "STORAGE_SECRET_KEY": "testing", "STORAGE_BUCKET_PREFIX": f"faults-{next(_numbers):04d}",
           "CACHE_FETCH_TIMEOUT": f"{FETCH_TIMEOUT}s", **settings}
    return RunningServer(home, env).start()


def link_bucket(home: Path, moto: Server, proxy: FaultProxy) -> str:
    """A new bucket on moto, reached by the server through ``proxy`` (connection ``src``)."""
    bucket = f"faults-src-{next(_numbers):04d}"
    s3_client(moto).create_bucket(Bucket=bucket)
    home.mkdir(parents=True, exist_ok=True)
    (home / "remote_links.yml").write_text(
        f"src:\n  provider: minio\n  endpoint: {proxy.url}\n  access_key: testing\n  secret_key: testing\n"
        f"  buckets: [{bucket}]\n")
    return bucket


def add_links(client: httpx.Client, dataset: int, uris: list[str], verify: bool = True) -> dict[str, Any]:
    answer = client.post(f"/datasets/{dataset}/links", params={"verify": str(verify).lower()},
                         content=("\n".join(uris) + "\n").encode())
    assert answer.status_code == 200, answer.text
    report: dict[str, Any] = answer.json()
    return report


def items_of(client: httpx.Client, dataset: int) -> dict[str, dict[str, Any]]:
    return {i["name"]: i for i in client.get(f"/datasets/{dataset}/items").json()["items"]}


def timed_get(client: httpx.Client, path: str, **params: Any) -> tuple[httpx.Response | None, float]:
    """The answer (None when the connection was cut mid-answer) and the seconds it took."""
    started = time.monotonic()
    try:
        answer = client.get(path, params=params or None)
    except httpx.RemoteProtocolError:  # the answer began and was cut: never a short 200 that looks whole
        answer = None
    return answer, time.monotonic() - started


def assert_gateway_error(answer: httpx.Response | None, took: float, statuses: tuple[int, ...] = (502, 504)) -> str:
    """A clear JSON error of a remote that failed, answered in bounded time; its message."""
    assert answer is not None, "a miss under a fault must answer an error, not begin a 200 and cut it"
    assert answer.status_code in statuses, answer.text
    error = answer.json()["error"]
    assert error["code"] in ("bad_gateway", "gateway_timeout", "backend_unavailable") and error["message"], error
    assert took < NO_HANG, f"the error took {took:.1f} s"
    return str(error["message"])


def tier(client: httpx.Client, name: str) -> dict[str, Any]:
    return dict({t["name"]: t for t in client.get("/cache").json()["tiers"]}[name])


# -- one server for reads, uploads, link verification and browsing ----------------------------------------


class Shared:
    """A server keeping its own storage on moto through ``proxy``, with the connection ``src`` to a bucket
    of moto through the same proxy. Each test makes its own items; the proxy passes between tests."""

    def __init__(self, home: Path, moto: Server, proxy: FaultProxy) -> None:
        self.moto = moto
        self.proxy = proxy
        self.bucket = link_bucket(home, moto, proxy)
        self.prefix = f"faults-{next(_numbers):04d}"
        # CACHE_LINKS_REVALIDATE=0: a linked object's version is asked for on every request, the worst case.
        self.server = start_server(home, proxy, CACHE_LINKS_REVALIDATE="0", STORAGE_BUCKET_PREFIX=self.prefix)
        self.client = self.server.client()

    def put_linked(self, files: dict[str, bytes]) -> list[str]:
        s3 = s3_client(self.moto)
        for key, data in files.items():
            s3.put_object(Bucket=self.bucket, Key=key, Body=data)
        return [f"s3://{self.bucket}/{key}" for key in files]

    def close(self) -> None:
        self.client.close()
        self.server.stop()


@pytest.fixture(scope="module")
def shared_proxy(moto_server: Server) -> Iterator[FaultProxy]:
    with FaultProxy(moto_server.url) as faulty:
        yield faulty


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory, moto_server: Server,
                  shared_proxy: FaultProxy) -> Iterator[Shared]:
    shared = Shared(tmp_path_factory.mktemp("faults") / "home", moto_server, shared_proxy)
    try:
        yield shared
    finally:
        shared.close()


@pytest.fixture
def shared(shared_server: Shared) -> Iterator[Shared]:
    shared_server.proxy.heal()
    shared_server.proxy.forget()
    try:
        yield shared_server
    finally:
        shared_server.proxy.heal()


@pytest.fixture
def proxy(moto_server: Server) -> Iterator[FaultProxy]:
    with FaultProxy(moto_server.url) as faulty:
        yield faulty


# -- (a) reads of stored and linked items ----------------------------------------------------------------


def noisy_jpeg(width: int, height: int, seed: int) -> bytes:
    """A JPEG of noise: hundreds of KB, so that an answer can be cut in its middle."""
    out = io.BytesIO()
    Image.frombytes("RGB", (width, height), noise(width * height * 3, seed)).save(out, "JPEG", quality=90)
    return out.getvalue()


Check = Callable[[httpx.Client], None]


class Reads:
    """Two stored and two linked pictures: one of each read before the fault (content and a preview), so
    cached; the other never read, so a miss under the fault."""

    NAMES = ("stored-cached", "stored-missed", "linked-cached", "linked-missed")
    SPARE = "stored-spare"
    """Read once under a passing fault (retried unseen), before the others."""

    def __init__(self, shared: Shared) -> None:
        self.shared = shared
        n = next(_numbers)
        self.pictures = {name: noisy_jpeg(480 + i * 16, 360, n * 10 + i)
                         for i, name in enumerate((*self.NAMES, self.SPARE))}
        client = shared.client
        ds = create_dataset(client, f"reads-{n}")["id"]
        for name in ("stored-cached", "stored-missed", self.SPARE):
            upload_one(client, ds, f"{name}.jpg", self.pictures[name])
        linked = ("linked-cached", "linked-missed")
        uris = shared.put_linked({f"{n}/{name}.jpg": self.pictures[name] for name in linked})
        assert add_links(client, ds, uris)["added"] == 2
        self.items = {name.removesuffix(".jpg").rpartition("/")[2]: item["id"]
                      for name, item in items_of(client, ds).items()}
        for name in ("stored-cached", "linked-cached"):
            self.check_ok(client, name)
        self.entries = tier(client, "storage")["entries"]

    def check_ok(self, client: httpx.Client, name: str, preview_width: int = 64) -> None:
        item = self.items[name]
        answer = client.get(f"/items/{item}/content")
        assert answer.status_code == 200 and answer.content == self.pictures[name], (name, answer.text[:300])
        preview = client.get(f"/items/{item}/preview", params={"w": preview_width})
        assert preview.status_code == 200, (name, preview.text)
        assert image_size(preview.content)[0] == preview_width

    def under_fault(self, content_may_be_cut: bool = False, statuses: tuple[int, ...] = (502, 504)) -> list[str]:
        """Cached: still 200 (content, the preview made before, a new size made from the cached original).
        Missed: a clear error in bounded time, content and preview. All at once (each may wait for
        CACHE_FETCH_TIMEOUT). Returns the errors' messages; 10 requests."""
        messages: list[str] = []

        def cached(name: str, what: str, width: int = 64) -> Check:
            def check(client: httpx.Client) -> None:
                answer = client.get(f"/items/{self.items[name]}/{what}", params={"w": width} if width else None)
                assert answer.status_code == 200, (name, what, answer.text[:300])
                if what == "content":
                    assert answer.content == self.pictures[name]
                else:
                    assert image_size(answer.content)[0] == width

            return check

        def missed(name: str, what: str) -> Check:
            def check(client: httpx.Client) -> None:
                answer, took = timed_get(client, f"/items/{self.items[name]}/{what}")
                if answer is None and content_may_be_cut and what == "content":
                    assert took < NO_HANG
                    return
                messages.append(assert_gateway_error(answer, took, statuses))

            return check

        checks = [cached(name, what, width) for name in ("stored-cached", "linked-cached")
                  for what, width in (("content", 0), ("preview", 64), ("preview", 32))]
        checks += [missed(name, what) for name in ("stored-missed", "linked-missed") for what in ("content", "preview")]
        run_all(checks, self.shared.server)
        # Nothing of a failed fetch was kept.
        assert tier(self.shared.client, "storage")["entries"] == self.entries
        return messages

    def recovered(self) -> None:
        for name in self.NAMES:
            self.check_ok(self.shared.client, name)

    def read_spare(self) -> None:
        answer = self.shared.client.get(f"/items/{self.items[self.SPARE]}/content")
        assert answer.status_code == 200 and answer.content == self.pictures[self.SPARE], answer.text[:300]
        self.entries += 1
        assert tier(self.shared.client, "storage")["entries"] == self.entries


def run_all(checks: list[Check], server: RunningServer) -> None:
    """Runs the checks at once, each with a client of its own; re-raises the first failure."""
    from concurrent.futures import ThreadPoolExecutor

    def run(check: Check) -> None:
        with server.client() as client:
            check(client)

    with ThreadPoolExecutor(len(checks)) as pool:
        for future in [pool.submit(run, c) for c in checks]:
            future.result()


@pytest.mark.reliability(kind="fault", what="S3 stopped (connections refused) during reads of stored and linked "
                         "items: cached content and previews still 200, misses a clear 502, recovery", cases=10)
def test_s3_stopped_during_reads_cached_items_still_served_misses_give_502_then_recovers(shared: Shared) -> None:
    reads = Reads(shared)
    shared.proxy.down()
    messages = reads.under_fault(statuses=(502,))
    assert all("unreachable" in m for m in messages), messages
    shared.proxy.heal()
    reads.recovered()


@pytest.mark.reliability(kind="fault", what="S3 slow (answers held back past CACHE_FETCH_TIMEOUT) during reads: "
                         "cached still 200, misses a clear 504 in bounded time, recovery", cases=10)
def test_s3_slow_during_reads_misses_give_504_in_bounded_time_cached_still_served(shared: Shared) -> None:
    reads = Reads(shared)
    shared.proxy.fail(Fault.delay(NO_HANG * 2))
    messages = reads.under_fault(statuses=(504,))
    assert all("CACHE_FETCH_TIMEOUT" in m for m in messages), messages
    shared.proxy.heal()
    reads.recovered()


@pytest.mark.reliability(kind="fault", what="S3 cutting connections mid-answer during reads: one cut is retried "
                         "(ranged resume) unseen; persistent cuts: cached 200, misses 502 or a cut answer (never a "
                         "short 200), nothing kept, recovery", cases=11)
def test_s3_cut_mid_read_is_retried_then_gives_502_or_a_cut_answer_and_recovers(shared: Shared) -> None:
    reads = Reads(shared)
    proxy = shared.proxy
    # One cut in the middle of the body: obstore resumes the read (a ranged GET), the client sees nothing.
    proxy.fail(Fault.cut(after=40_000), method="GET", times=1)
    reads.read_spare()
    assert proxy.faults("cut") == 1
    gets = [r for r in proxy.requests if r.method == "GET" and sha(reads.pictures[reads.SPARE]) in r.target]
    assert gets[0].fault == "cut" and 206 in [g.status for g in gets[1:]], gets  # the cut read, a ranged resumption
    proxy.heal()
    # Every answer cut after its head and 40 KB of body.
    proxy.fail(Fault.cut(after=40_000), method="GET")
    messages = reads.under_fault(content_may_be_cut=True, statuses=(502,))
    assert messages and all("unreachable" in m for m in messages), messages
    proxy.heal()
    reads.recovered()


@pytest.mark.reliability(kind="fault", what="S3 answering 503 during reads: two 503s are retried unseen; "
                         "persistent 503: cached still 200, misses a clear 502 naming the 503, recovery", cases=11)
def test_s3_returning_503_during_reads_is_retried_then_gives_502_cached_still_served(shared: Shared) -> None:
    reads = Reads(shared)
    proxy = shared.proxy
    proxy.fail(Fault.answer(503), method="GET", times=2)
    reads.read_spare()
    assert proxy.faults("status") == 2
    proxy.heal()
    proxy.fail(Fault.answer(503))
    messages = reads.under_fault(statuses=(502,))
    assert all("503" in m for m in messages), messages
    proxy.heal()
    reads.recovered()


# -- (b) uploads to own storage on S3 -------------------------------------------------------------------


def content_keys(shared: Shared) -> list[str]:
    return [k for k in keys_in(shared.moto, f"{shared.prefix}-public") if k.startswith("sha256/")]


def staging_keys(shared: Shared) -> list[str]:
    return [k for k in keys_in(shared.moto, f"{shared.prefix}-public") if k.startswith(".staging/")]


@pytest.mark.reliability(kind="fault", what="S3 answering 503 to parts of an upload: retried per part, the "
                         "upload succeeds", cases=2)
def test_s3_returning_503_during_upload_is_retried_per_part_and_succeeds(shared: Shared) -> None:
    data = noise(20 * MB, next(_numbers))  # three parts of 8 MiB
    ds = create_dataset(shared.client, f"upload-{next(_numbers)}")["id"]
    shared.proxy.fail(Fault.answer(503), method="PUT", path=r"partNumber=2&", times=2)
    item = upload_one(shared.client, ds, "weights.bin", data)
    assert shared.proxy.faults("status") == 2
    assert item["sha256"] == sha(data)
    assert shared.client.get(f"/items/{item['id']}/content").content == data


def failed_upload(shared: Shared, ds: int, name: str, data: bytes) -> str:
    """Uploads under a fault; asserts the clear error, no row, no content object; returns the message."""
    before = content_keys(shared)
    started = time.monotonic()
    answer = shared.client.post(f"/datasets/{ds}/items", files=[("files", (name, data))])
    assert time.monotonic() - started < NO_HANG
    assert answer.status_code in (502, 503, 504), answer.text
    message = str(answer.json()["error"]["message"])
    assert name in message and "send it again" in message, message
    assert items_of(shared.client, ds) == {}, "no catalog row"
    assert content_keys(shared) == before, "no object at a content key"
    assert f"sha256/{sha(data)[:2]}/{sha(data)[2:4]}/{sha(data)}" not in content_keys(shared)
    return message


@pytest.mark.reliability(kind="fault", what="S3 answering 503 throughout an upload (small and multipart): a clear "
                         "error, no catalog row, nothing visible, the upload again after recovery succeeds", cases=4)
def test_s3_returning_503_throughout_an_upload_gives_a_clear_error_nothing_visible_then_retry_succeeds(
        shared: Shared) -> None:
    ds = create_dataset(shared.client, f"upload-{next(_numbers)}")["id"]
    small, large = noise(300_000, next(_numbers)), noise(20 * MB, next(_numbers))
    shared.proxy.fail(Fault.answer(503), method="PUT")
    assert "503" in failed_upload(shared, ds, "small.bin", small)
    assert "503" in failed_upload(shared, ds, "large.bin", large)
    assert staging_keys(shared) == [] and unfinished_uploads(shared.moto, f"{shared.prefix}-public") == []
    shared.proxy.heal()
    for name, data in (("small.bin", small), ("large.bin", large)):
        item = upload_one(shared.client, ds, name, data)
        assert item["sha256"] == sha(data) and shared.client.get(f"/items/{item['id']}/content").content == data


@pytest.mark.reliability(kind="fault", what="S3 cutting an upload mid-part, its abort refused too: a clear error, "
                         "no catalog row, no visible object, only an unfinished multipart upload that `cargohold gc` "
                         "lists and removes; the upload again after recovery succeeds", cases=3)
def test_s3_cut_mid_upload_gives_a_clear_error_nothing_visible_gc_clears_the_parts_then_retry_succeeds(
        shared: Shared) -> None:
    ds = create_dataset(shared.client, f"upload-{next(_numbers)}")["id"]
    data = noise(20 * MB, next(_numbers))
    bucket = f"{shared.prefix}-public"
    # Part 2 cut after 1 MB of its body, every time; the abort of the multipart upload reset.
    shared.proxy.fail(Fault.cut_request(after=MB), method="PUT", path=r"partNumber=2&")
    shared.proxy.fail(Fault.reset(), method="DELETE", path=r"uploadId=")
    failed_upload(shared, ds, "cut.bin", data)
    assert shared.proxy.faults("cut_request") >= 2, "the part is retried before the upload gives up"
    assert staging_keys(shared) == []
    left = unfinished_uploads(shared.moto, bucket)
    assert len(left) == 1 and left[0].startswith(".staging/"), left
    shared.proxy.heal()
    listed = cargohold(shared.server.home, "gc", "--older-than", "0s")
    assert listed.returncode == 0 and "interrupted upload" in listed.stdout, listed.stdout + listed.stderr
    cleared = cargohold(shared.server.home, "gc", "--older-than", "0s", "--yes")
    assert cleared.returncode == 0, cleared.stdout + cleared.stderr
    assert unfinished_uploads(shared.moto, bucket) == []
    item = upload_one(shared.client, ds, "cut.bin", data)
    assert item["sha256"] == sha(data) and shared.client.get(f"/items/{item['id']}/content").content == data


def cargohold(home: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STORAGE_", "CACHE_", "DATA_PATH"))}
    env.update(CARGOHOLD_HOME=str(home), COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "cargohold", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


# -- (c) link verification ------------------------------------------------------------------------------


@pytest.mark.reliability(kind="fault", what="S3 stopped, slow, answering 503 during link verification: every line "
                         "refused with its reason, nothing half-added; added on a re-run after recovery", cases=9)
def test_s3_failing_during_link_verification_refuses_each_line_with_its_reason_then_rerun_adds_them(
        shared: Shared) -> None:
    n = next(_numbers)
    files = {f"verify-{n}/{i}.jpg": jpeg(64 + i, 48, (200, 10 * i, 30)) for i in range(3)}
    uris = shared.put_linked(files)
    ds = create_dataset(shared.client, f"links-{n}")["id"]
    faults: list[tuple[Callable[[], None], str]] = [
        (shared.proxy.down, "error sending request"),
        (lambda: shared.proxy.fail(Fault.delay(NO_HANG * 2)), "CACHE_FETCH_TIMEOUT"),
        (lambda: shared.proxy.fail(Fault.answer(503)), "503"),
    ]
    for inject, reason in faults:
        inject()
        started = time.monotonic()
        report = add_links(shared.client, ds, uris)
        assert time.monotonic() - started < NO_HANG
        assert report["added"] == 0 and report["refused_count"] == 3, report
        assert [r["line"] for r in report["refused"]] == [1, 2, 3]
        assert all(reason in r["reason"] for r in report["refused"]), report["refused"]
        assert items_of(shared.client, ds) == {}, "nothing half-added"
        shared.proxy.heal()
    report = add_links(shared.client, ds, uris)
    assert report["added"] == 3 and report["refused_count"] == 0, report
    items = items_of(shared.client, ds)
    assert sorted((i["width"], i["height"]) for i in items.values()) == [(64, 48), (65, 48), (66, 48)]


# -- (d) cargohold migrate ------------------------------------------------------------------------------


@pytest.mark.reliability(kind="fault", what="S3 (migration target) cutting uploads mid-run: `cargohold migrate` "
                         "fails clearly (exit 1, each object's reason), nothing half-written visible; the re-run "
                         "after recovery copies the rest and verifies (cases: the uploads cut, and the runs)", cases=3)
def test_s3_cutting_uploads_mid_migration_fails_clearly_then_rerun_completes_and_verifies(
        tmp_path: Path, moto_server: Server, proxy: FaultProxy, request: pytest.FixtureRequest) -> None:
    home = tmp_path / "home"
    storage = home / "data" / "storage"
    blobs = [noise(40_000 + i, 500 + i) for i in range(20)] + [noise(12 * MB, 600)]  # the last one goes in parts
    expected = {f"public/sha256/{sha(b)[:2]}/{sha(b)[2:4]}/{sha(b)}": sha(b) for b in blobs}
    expected.update({f"private/team/{i:02d}.bin": sha(noise(30_000, 700 + i)) for i in range(10)})
    for key in expected:
        bucket, _, path = key.partition("/")
        data = next(b for b in blobs if sha(b) == expected[key]) if bucket == "public" else noise(
            30_000, 700 + int(path[-6:-4]))
        (storage / f"cargohold-{bucket}" / path).parent.mkdir(parents=True, exist_ok=True)
        (storage / f"cargohold-{bucket}" / path).write_bytes(data)
    prefix = f"mig-faults-{next(_numbers):04d}"
    target = tmp_path / "s3.env"
    target.write_text(f"STORAGE_PROVIDER=minio\nSTORAGE_ENDPOINT={proxy.url}\nSTORAGE_ACCESS_KEY=testing\n"
                      f"STORAGE_SECRET_KEY=testing\nSTORAGE_BUCKET_PREFIX={prefix}\n")

    def on_s3() -> dict[str, str]:
        s3 = s3_client(moto_server)
        return {f"{v}/{k}": sha(s3.get_object(Bucket=f"{prefix}-{v}", Key=k)["Body"].read())
                for v in ("public", "private") for k in keys_in(moto_server, f"{prefix}-{v}")}

    # Ten object uploads pass, then every one is cut after 10 KB of its body (parts included).
    proxy.fail(Fault.cut_request(after=10_000), method="PUT", path=rf"^/{prefix}-(public|private)/.", skip=10)
    first = cargohold(home, "migrate", "--to", str(target), "--jobs", "4")
    assert first.returncode == 1, first.stdout + first.stderr
    match = re.search(r"copied (\d+), skipped 0 \(already there\), failed (\d+)", first.stdout)
    assert match, first.stdout
    copied, failed = int(match[1]), int(match[2])
    assert failed > 0 and copied + failed == len(expected), first.stdout
    assert first.stdout.count("error sending request") >= 1, first.stdout  # each failure names its reason
    seen = on_s3()
    assert len(seen) == copied and all(expected[k] == v for k, v in seen.items()), "only whole, verified objects"
    assert unfinished_uploads(moto_server, f"{prefix}-public") == []  # the cut multipart upload was aborted
    # The cases: each upload cut (retries included), and the three runs.
    request.node.user_properties.append(("reliability_cases", proxy.faults("cut_request") + 3))

    proxy.heal()
    second = cargohold(home, "migrate", "--to", str(target), "--jobs", "4")
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"copied {failed}, skipped {copied} (already there), failed 0" in second.stdout, second.stdout
    assert on_s3() == expected
    verified = cargohold(home, "migrate", "--to", str(target), "--verify-only")
    assert verified.returncode == 0 and f"verified {len(expected)} of {len(expected)} objects" in verified.stdout, (
        verified.stdout + verified.stderr)


# -- (e) the cache's disk full ----------------------------------------------------------------------------


def namespaces_work() -> str | None:
    """Why a tmpfs cannot be mounted in a mount namespace of our own here, or None if it can."""
    if shutil.which("unshare") is None or shutil.which("nsenter") is None:
        return "unshare/nsenter (util-linux) are not installed"
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
                            "mount -t tmpfs -o size=64k tmpfs /mnt 2>&1 || mount -t tmpfs -o size=64k tmpfs /tmp"],
                           capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        return f"no user and mount namespaces here (unshare: {(probe.stderr or probe.stdout).strip()[:200]})"
    return None


class CacheOnTmpfs(RunningServer):
    """``cargohold up`` in user and mount namespaces of its own, where ``DATA_PATH/cache`` is a tmpfs of
    ``size`` bytes: a real file system that fills up, seen by this server process only (no root needed
    where unprivileged user namespaces are allowed). The tests reach it through ``/proc/<pid>/root``."""

    size: int = 8 * MB

    @property
    def cache_dir(self) -> Path:
        return self.home / "data" / "cache"

    @property
    def cache_seen(self) -> Path:
        """The tmpfs, as this (test) process can reach it."""
        assert self.process is not None
        return Path(f"/proc/{self.process.pid}/root") / str(self.cache_dir).lstrip("/")

    def start(self, timeout: float = 30) -> CacheOnTmpfs:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        super().start(timeout)
        return self

    def command(self) -> list[str]:
        script = (f'mount -t tmpfs -o size={self.size} tmpfs "{self.cache_dir}" && '
                  f'exec "{sys.executable}" -m cargohold up')
        return ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script]

    def fill(self, leave: int = 0) -> None:
        """Fills the tmpfs until ``leave`` bytes are free (0: until it refuses a write: ENOSPC)."""
        try:
            with (self.cache_seen / "filler").open("ab", buffering=0) as out:
                while True:
                    stat = os.statvfs(self.cache_seen)
                    free = stat.f_bavail * stat.f_frsize
                    if leave and free <= leave + 64 * 1024:
                        break
                    out.write(b"\0" * min(256 * 1024, max(4096, free - leave)))
        except OSError as exc:  # full
            assert exc.errno == errno.ENOSPC and not leave, exc

    def empty(self) -> None:
        (self.cache_seen / "filler").unlink()

    def read_only(self, on: bool) -> None:
        """Covers the cache with a read-only bind mount of itself (every new write: EROFS), or takes it away,
        from inside the server's namespaces. (A plain ``remount,ro`` is refused while the tiers' index files
        are open for writing; those stay writable through the mount below.)"""
        assert self.process is not None
        where = str(self.cache_dir)
        steps = [["mount", "--bind", where, where], ["mount", "-o", "remount,bind,ro", where]] if on else [
            ["umount", "--lazy", where]]
        for step in steps:
            subprocess.run(["nsenter", "--target", str(self.process.pid), "--user", "--mount",
                            "--preserve-credentials", *step], check=True, capture_output=True, timeout=30)


@pytest.mark.reliability(kind="fault", what="the cache's disk full (a real tmpfs filled up: ENOSPC) then read-only "
                         "(EROFS): content served whole from the source, previews still made, the error logged once; "
                         "copies kept again once it has room", cases=12)
def test_cache_disk_full_serves_from_source(tmp_path: Path, moto_server: Server) -> None:
    """Not simulated: ``DATA_PATH/cache`` is a real 8 MB tmpfs, mounted in the server's own mount namespace,
    filled with a file until writes fail with ENOSPC (first with room for part of an original, so a fill
    breaks in its middle), and later remounted read-only (EROFS). Previews made meanwhile go through the
    temporary folder (TMPDIR, another file system here), not the cache."""
    why_not = namespaces_work()
    if why_not is not None:
        pytest.skip(why_not)
    env = {"STORAGE_PROVIDER": "minio", "STORAGE_ENDPOINT": moto_server.url, "STORAGE_ACCESS_KEY": "testing",
           "STORAGE_SECRET_KEY": "testing", "STORAGE_BUCKET_PREFIX": f"faults-{next(_numbers):04d}"}
    server = CacheOnTmpfs(tmp_path / "home", env).start()
    try:
        with server.client() as client:
            ds = create_dataset(client, "d")["id"]
            photos = {f"p{i}.jpg": noisy_jpeg(320 + 16 * i, 240, 900 + i) for i in range(5)}
            blobs = {f"b{i}.bin": noise(3 * MB, 950 + i) for i in range(3)}
            items = {name: upload_one(client, ds, name, data)["id"] for name, data in {**photos, **blobs}.items()}

            def content(name: str, **headers: str) -> httpx.Response:
                answer = client.get(f"/items/{items[name]}/content", headers=headers)
                assert answer.status_code in (200, 206), (name, answer.text[:300])
                return answer

            def preview(name: str, width: int) -> None:
                answer = client.get(f"/items/{items[name]}/preview", params={"w": width})
                assert answer.status_code == 200, (name, answer.text[:300])
                assert image_size(answer.content)[0] == width

            # Cached while the disk had room: served from the cache throughout.
            assert content("p0.jpg").content == photos["p0.jpg"]
            preview("p0.jpg", 64)
            entries = tier(client, "storage")["entries"]

            # Room for about one chunk (1 MiB) of a 3 MB original: the fill breaks in its middle with
            # ENOSPC, and the answer goes on from the source, whole.
            server.fill(leave=int(1.5 * MB))
            assert content("b0.bin").content == blobs["b0.bin"]
            # Full: nothing more can be written.
            server.fill()
            for name in ("p1.jpg", "p2.jpg", "b1.bin"):
                assert content(name).content == {**photos, **blobs}[name]
            assert content("b1.bin", Range="bytes=100-").content == blobs["b1.bin"][100:]
            assert content("p0.jpg").content == photos["p0.jpg"]
            preview("p0.jpg", 64)  # made before: from the cache
            preview("p0.jpg", 32)  # a new size of a cached original
            preview("p1.jpg", 64)  # neither original nor preview cached: both only in the temporary folder
            preview("p3.jpg", 128)
            assert tier(client, "storage")["entries"] == entries, "nothing was kept"

            # Read-only: the same.
            server.empty()
            server.read_only(True)
            assert content("b2.bin").content == blobs["b2.bin"]
            preview("p4.jpg", 64)
            assert tier(client, "storage")["entries"] == entries

            # Room again: the next fill lands and is kept.
            server.read_only(False)
            assert content("p2.jpg").content == photos["p2.jpg"]
            assert tier(client, "storage")["entries"] == entries + 1
    finally:
        server.stop()
    log = server.log.read_text()
    assert log.count("cache storage: cannot write to") == 1, log  # once, not for each of the requests
    assert log.count("cache previews: cannot write to") <= 1, log
    assert "cache storage:" in log and "takes writes again" in log, log
    assert "Traceback" not in log, log


# -- browsing a connected bucket on a dead GCS or Azure endpoint -----------------------------------------


@pytest.mark.reliability(kind="fault", what="GCS (fake-gcs-server) and Azure (Azurite) endpoints stopped or silent "
                         "while a connected bucket is browsed: a clear 5xx in seconds (the SDKs had retried for 60 to "
                         "300 s), browsing again on recovery", cases=8)
def test_gcs_and_azure_endpoints_dead_during_browse_give_a_clear_error_in_seconds_then_recover(
        shared: Shared, azurite_server: Server, gcs_server: Server, gcs_credentials: Path) -> None:
    from azure.storage.blob import BlobServiceClient
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage as gcs

    n = next(_numbers)
    azure = BlobServiceClient(f"{azurite_server.url}/{AZURITE_ACCOUNT}",
                              credential={"account_name": AZURITE_ACCOUNT, "account_key": AZURITE_KEY})
    google = gcs.Client(project="test", credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
                        client_options={"api_endpoint": gcs_server.url})
    proxies: dict[str, FaultProxy] = {}
    try:
        for provider, upstream in (("azure", azurite_server), ("google", gcs_server)):
            for fault in ("stopped", "silent"):
                name = f"{provider}-{fault}-{n}"
                bucket = f"browse-{fault}-{n}"
                proxies[name] = proxy = FaultProxy(upstream.url).start()
                if provider == "azure":
                    azure.create_container(bucket).upload_blob("cars/red.jpg", b"x")
                    body = {"provider": "azure", "endpoint": proxy.url, "access_key": AZURITE_ACCOUNT,
                            "secret_key": AZURITE_KEY, "buckets": [bucket]}
                else:
                    google.create_bucket(bucket).blob("cars/red.jpg").upload_from_string(b"x")
                    body = {"provider": "google", "endpoint": proxy.url,
                            "credentials_json": gcs_credentials.read_text(), "buckets": [bucket]}
                made = shared.client.put(f"/connections/{name}", json=body)
                assert made.status_code == 201, made.text
                top = shared.client.get(f"/connections/{name}/browse").json()
                assert [f["prefix"] for f in top["folders"]] == ["cars/"], top
                if fault == "stopped":
                    proxy.down()
                else:
                    proxy.fail(Fault.delay(NO_HANG * 4))
        answers: dict[str, tuple[httpx.Response | None, float]] = {}

        def browse(name: str) -> Check:
            def check(client: httpx.Client) -> None:
                answers[name] = timed_get(client, f"/connections/{name}/browse", prefix="cars/")

            return check

        run_all([browse(name) for name in proxies], shared.server)
        for name, (answer, took) in answers.items():
            message = assert_gateway_error(answer, took, (502, 503, 504))
            assert answer is not None
            if "silent" in name:
                assert answer.status_code == 504 and "no answer in time" in message, (name, message)
            assert AZURITE_KEY not in message
        for proxy in proxies.values():
            proxy.heal()
        for name in proxies:
            page = shared.client.get(f"/connections/{name}/browse", params={"prefix": "cars/"})
            assert page.status_code == 200, page.text
            assert [o["key"] for o in page.json()["objects"]] == ["cars/red.jpg"], page.text
    finally:
        for proxy in proxies.values():
            proxy.stop()
