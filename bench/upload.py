"""Upload and download throughput through cargohold's HTTP API vs the bare library on the same storage.

One source file (``--size-mb``, default 2048 MiB, deterministic bytes written in 1 MiB chunks) is made
once in a temporary folder. For each backend a real ``cargohold up`` process is started (tests/support/api_server.py,
a fresh home each) and the file goes up and comes back down, alternating cargohold and bare runs:

- cargohold, upload: ``POST /api/v1/datasets/{id}/items``, httpx streaming a ``multipart/form-data`` body
  built by hand from a generator over the file (1 MiB reads; never the whole file in memory). The timing
  runs until the answer: it includes the server's multipart parse, SHA-256 hashing, the staging put and
  the staging -> ``sha256/..`` rename (local disk: ``os.replace``; S3: a server-side copy + delete) and
  the catalog row.
- cargohold, download: ``GET /api/v1/items/{id}/content``, streamed by httpx, every chunk counted.
- bare, local disk (``STORAGE_PROVIDER=http``): a plain Python copy of the file in 1 MiB chunks into a file
  beside the server's bucket folders (write + fsync, as cargohold's local store fsyncs); download is a
  plain read of that file in 1 MiB chunks.
- bare, S3 (moto started here on 127.0.0.1; the server gets ``STORAGE_PROVIDER=minio``): ``obstore.put_async``
  of the same file into the same bucket, multipart with cargohold's part size (``PART_SIZE``) and
  concurrency; download ``obstore.get_async(...).stream(min_chunk_size=1 MiB)``, every chunk counted.

cargohold deduplicates (same SHA-256, one object): after each run the bench deletes the item through the
API and its content object straight from storage (what ``cargohold gc`` would do), so every upload takes
the same path, staging -> rename included. Bare objects are deleted after each run too, so disk use and
moto's memory stay bounded.

It prints per backend and direction the median MiB/s of ``--runs``, the ratio cargohold / bare (target
>= 0.8) and the peak RSS of the server process (psutil on its pid and any children, sampled every 20 ms
during the cargohold runs; target < 200 MB). It reports, it never fails on a missed target.

To tell where the time goes it also prints, per step, the CPU seconds of the server, of moto and of this
process (the client); for the cargohold upload, when the body had been sent and how long the answer took
after it; on S3, the time of a bare ``obstore.rename_async`` (copy + delete) of the same-size object, the
step cargohold adds to a put; and, if curl is installed, the cargohold download with curl as the client
(httpx's own cost set aside). ``--local-data /dev/shm`` puts the local-disk server's data and the bare copy
on a tmpfs, taking the disk (whose fsync speed varies a lot on a VM) out of the comparison. moto keeps
objects in memory (about 4-5x the object size at its peak): the lowest available memory is printed, and no
further run starts below 3 GiB.

    .venv/bin/python bench/upload.py [--runs 3] [--size-mb 2048] [--backends local,s3] [--local-data DIR]
                                     [--no-curl] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import obstore
import psutil  # type: ignore[import-untyped,unused-ignore]
from obstore.store import S3Store

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cargohold.services.blobs import STAGING_PREFIX, content_key  # noqa: E402
from cargohold.storage.base import PART_SIZE  # noqa: E402
from tests.support.api_server import RunningServer  # noqa: E402
from tests.support.servers import Server, moto  # noqa: E402

MiB = 1024 * 1024
RATIO_TARGET = 0.8
RSS_TARGET_MB = 200.0
SAMPLE_INTERVAL = 0.02
BUCKET_PREFIX = "cargohold"
PUBLIC_BUCKET = f"{BUCKET_PREFIX}-public"
FILENAME = "big.bin"
DIRECTIONS = ("upload", "download")
LOW_MEMORY = 3 * 1024 * MiB
"""Below this much available memory (moto holds S3 objects in RAM) no further run starts."""


# --- memory sampling --------------------------------------------------------------------------------------


def tree_rss(proc: psutil.Process) -> int:
    """RSS of a process and its children (the server runs in one process; children would count too)."""
    total = proc.memory_info().rss
    for child in proc.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            total += child.memory_info().rss
    return int(total)


class PeakRss:
    """Samples the RSS of process ``pid`` (and children) every 20 ms on a thread; ``peak`` is the highest."""

    def __init__(self, pid: int, interval: float = SAMPLE_INTERVAL) -> None:
        self._proc = psutil.Process(pid)
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.samples = 0
        self.baseline = self.peak = tree_rss(self._proc)

    def _sample(self) -> None:
        try:
            self.peak = max(self.peak, tree_rss(self._proc))
            self.samples += 1
        except psutil.Error:
            pass

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample()

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


class MachineWatch:
    """For the whole run: the lowest available memory of the machine and the highest RSS of moto."""

    def __init__(self, interval: float = 0.1) -> None:
        self.min_available = psutil.virtual_memory().available
        self.moto_peak = 0
        self.moto: psutil.Process | None = None
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.min_available = min(self.min_available, psutil.virtual_memory().available)
            if self.moto is not None:
                with contextlib.suppress(psutil.Error):
                    self.moto_peak = max(self.moto_peak, tree_rss(self.moto))

    def __enter__(self) -> MachineWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# --- the source file and the client -----------------------------------------------------------------------


def make_source(path: Path, size: int) -> str:
    """``size`` deterministic bytes in 1 MiB chunks (one random block, rotated per chunk); their SHA-256."""
    block = random.Random(20261101).randbytes(MiB)
    sha = hashlib.sha256()
    with path.open("wb") as fh:
        for i, pos in enumerate(range(0, size, MiB)):
            k = (i * 4099) % MiB
            chunk = (block[k:] + block[:k])[: min(MiB, size - pos)]
            sha.update(chunk)
            fh.write(chunk)
    return sha.hexdigest()


def multipart_body(path: Path, filename: str, sent: list[float]) -> tuple[str, int, Iterator[bytes]]:
    """Content type, length and chunks of a one-file ``multipart/form-data`` body, streamed from ``path``.

    When the last chunk has been handed over (httpx asks for the next), ``time.perf_counter()`` goes into ``sent``.
    """
    boundary = "bench-" + secrets.token_hex(12)
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    length = len(head) + path.stat().st_size + len(tail)

    def chunks() -> Iterator[bytes]:
        yield head
        with path.open("rb", buffering=0) as fh:
            while chunk := fh.read(MiB):
                yield chunk
        yield tail
        sent.append(time.perf_counter())

    return f"multipart/form-data; boundary={boundary}", length, chunks()


@dataclass
class Cargohold:
    """The API side: one dataset, one item per run."""

    server: RunningServer
    client: httpx.Client
    dataset_id: int
    source: Path
    size: int
    sha256: str
    item_id: int | None = None

    @classmethod
    def open(cls, server: RunningServer, source: Path, size: int, sha256: str) -> Cargohold:
        client = httpx.Client(
            base_url=server.api,
            headers={"Authorization": f"Bearer {server.token}"},
            timeout=httpx.Timeout(900, connect=10),
        )
        answer = client.post("/datasets", json={"name": f"bench-{secrets.token_hex(4)}"})
        answer.raise_for_status()
        return cls(server, client, answer.json()["id"], source, size, sha256)

    def upload(self) -> float:
        """Returns the seconds it took until the whole body was sent; the answer comes after."""
        sent: list[float] = []
        content_type, length, body = multipart_body(self.source, FILENAME, sent)
        start = time.perf_counter()
        answer = self.client.post(
            f"/datasets/{self.dataset_id}/items",
            content=body,
            headers={"Content-Type": content_type, "Content-Length": str(length)},
        )
        if answer.status_code != 201:
            raise RuntimeError(f"upload answered {answer.status_code}: {answer.text[:500]}")
        item = answer.json()["results"][0]["item"]
        if item["size"] != self.size or item["sha256"] != self.sha256:
            raise RuntimeError(
                f"upload stored {item['size']} bytes, sha256 {item['sha256']}; expected {self.size}, {self.sha256}"
            )
        self.item_id = item["id"]
        return sent[0] - start

    def download(self) -> None:
        n = 0
        with self.client.stream("GET", f"/items/{self.item_id}/content") as answer:
            if answer.status_code != 200:
                answer.read()
                raise RuntimeError(f"download answered {answer.status_code}: {answer.text[:500]}")
            for chunk in answer.iter_raw():
                n += len(chunk)
        if n != self.size:
            raise RuntimeError(f"downloaded {n} bytes, expected {self.size}")

    def delete_item(self) -> None:
        if self.item_id is not None:
            self.client.delete(f"/items/{self.item_id}").raise_for_status()
            self.item_id = None

    def close(self) -> None:
        self.client.close()


# --- the bare references ----------------------------------------------------------------------------------


class Backend:
    """One storage: how the bare library writes and reads it, and how content is removed from it."""

    name: str
    bare_label: str

    def bare_upload(self) -> None: ...
    def bare_download(self) -> None: ...
    def bare_delete(self) -> None: ...
    def delete_content(self, sha256: str) -> None: ...
    def staging_left(self) -> int:
        raise NotImplementedError


class LocalBackend(Backend):
    name = "local disk"
    bare_label = "Python file copy, 1 MiB chunks, write + fsync / read"

    def __init__(self, data_path: Path, source: Path, size: int) -> None:
        self.storage_root = data_path / "storage"  # the server's DATA_PATH/storage
        self.bucket = self.storage_root / PUBLIC_BUCKET
        self.source = source
        self.size = size
        # Beside the server's bucket folders: same file system, same disk.
        self.target = self.storage_root / "bench-bare" / "object.bin"

    def bare_upload(self) -> None:
        self.target.parent.mkdir(parents=True, exist_ok=True)
        with self.source.open("rb", buffering=0) as src, self.target.open("wb", buffering=0) as dst:
            while chunk := src.read(MiB):
                dst.write(chunk)
            os.fsync(dst.fileno())

    def bare_download(self) -> None:
        n = 0
        with self.target.open("rb", buffering=0) as fh:
            while chunk := fh.read(MiB):
                n += len(chunk)
        if n != self.size:
            raise RuntimeError(f"read {n} bytes, expected {self.size}")

    def bare_delete(self) -> None:
        self.target.unlink(missing_ok=True)

    def delete_content(self, sha256: str) -> None:
        (self.bucket / content_key(sha256)).unlink(missing_ok=True)

    def staging_left(self) -> int:
        staging = self.bucket / STAGING_PREFIX
        return sum(1 for p in staging.rglob("*") if p.is_file()) if staging.is_dir() else 0


class S3Backend(Backend):
    name = "s3 (moto)"
    bare_label = f"obstore put_async (multipart, {PART_SIZE // MiB} MiB parts, 4 in flight) / get_async stream"

    def __init__(self, endpoint: str, source: Path, size: int, runner: asyncio.Runner) -> None:
        self.source = source
        self.size = size
        self.runner = runner
        self.key = "bench-bare/object.bin"
        # The settings cargohold.storage.s3.open_s3 uses for a non-AWS endpoint.
        self.raw = S3Store(
            PUBLIC_BUCKET,
            endpoint=endpoint,
            region="us-east-1",
            virtual_hosted_style_request=False,
            access_key_id="testing",
            secret_access_key="testing",
            client_options={"allow_http": True, "connect_timeout": "5s", "timeout": "300s"},
            retry_config={"max_retries": 3, "retry_timeout": timedelta(seconds=30)},
        )

    def bare_upload(self) -> None:
        async def put() -> None:
            # The same part size and concurrency as cargohold's ObstoreStore.put.
            await obstore.put_async(
                self.raw, self.key, self.source, use_multipart=True, chunk_size=PART_SIZE, max_concurrency=4
            )
            meta = await obstore.head_async(self.raw, self.key)
            if meta["size"] != self.size:
                raise RuntimeError(f"stored {meta['size']} bytes, expected {self.size}")

        self.runner.run(put())

    def bare_download(self) -> None:
        async def get() -> int:
            n = 0
            async for chunk in (await obstore.get_async(self.raw, self.key)).stream(min_chunk_size=MiB):
                n += len(chunk)
            return n

        n = self.runner.run(get())
        if n != self.size:
            raise RuntimeError(f"read {n} bytes, expected {self.size}")

    def bare_rename(self) -> None:
        """The step cargohold adds after its put, done to the bare object: a server-side copy + delete."""

        async def rename() -> None:
            await obstore.rename_async(self.raw, self.key, self.key + ".renamed")

        self.runner.run(rename())

    def _delete(self, key: str) -> None:
        async def delete() -> None:
            await obstore.delete_async(self.raw, key)

        self.runner.run(delete())

    def bare_delete(self) -> None:
        self._delete(self.key)
        self._delete(self.key + ".renamed")

    def delete_content(self, sha256: str) -> None:
        self._delete(content_key(sha256))

    def staging_left(self) -> int:
        async def count() -> int:
            return sum([len(page) async for page in obstore.list(self.raw, prefix=STAGING_PREFIX)])

        return self.runner.run(count())


# --- the runs ---------------------------------------------------------------------------------------------


class Measured:
    """Wall time of one action, CPU seconds of each watched process, and the server's peak RSS if asked."""

    def __init__(self, procs: dict[str, psutil.Process], server_pid: int | None = None) -> None:
        self.procs = procs
        self.rss = PeakRss(server_pid) if server_pid is not None else None
        self.seconds = 0.0
        self.cpu: dict[str, float] = {}

    @staticmethod
    def _cpu(proc: psutil.Process) -> float:
        t = proc.cpu_times()  # children: curl, for the bench process
        return float(t.user + t.system + t.children_user + t.children_system)

    def __enter__(self) -> Measured:
        self._cpu0 = {name: self._cpu(proc) for name, proc in self.procs.items()}
        if self.rss is not None:
            self.rss.__enter__()
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._start
        if self.rss is not None:
            self.rss.__exit__()
        self.cpu = {name: self._cpu(proc) - self._cpu0[name] for name, proc in self.procs.items()}


@dataclass
class Figures:
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Per step (``upload/cargohold``, ``download/bare``...) one record per run."""
    server_baseline: int = 0
    staging_left: int = 0
    stopped_early: str | None = None

    def add(self, step: str, m: Measured, **extra: Any) -> None:
        record = {"seconds": m.seconds, "cpu_s": m.cpu} | extra
        if m.rss is not None:
            record["server_peak_rss"] = m.rss.peak
        self.runs.setdefault(step, []).append(record)


def curl_download(server: RunningServer, item_id: int, size: int) -> None:
    """The same download with curl, a client that is not the limit: what the server itself can send."""
    out = subprocess.run(
        [
            "curl",
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{size_download}",
            "-H",
            f"Authorization: Bearer {server.token}",
            f"{server.api}/items/{item_id}/content",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    if out.stdout.split() != ["200", str(size)]:
        raise RuntimeError(f"curl download: {out.stdout} {out.stderr}")


def bench_backend(
    backend: Backend,
    server: RunningServer,
    source: Path,
    size: int,
    sha256: str,
    runs: int,
    machine: MachineWatch,
    log: Callable[[str], None],
    curl: bool,
) -> Figures:
    assert server.process is not None
    pid = server.process.pid
    procs = {"server": psutil.Process(pid), "client": psutil.Process()}
    if machine.moto is not None:
        procs["moto"] = machine.moto
    figures = Figures()
    api = Cargohold.open(server, source, size, sha256)
    figures.server_baseline = PeakRss(pid).baseline
    try:
        for run in range(1, runs + 1):
            # Alternating: cargohold then bare, per direction; every run starts with nothing stored.
            with Measured(procs, pid) as m:
                sent_after = api.upload()
            figures.add("upload/cargohold", m, body_sent_s=sent_after)
            with Measured(procs) as m:
                backend.bare_upload()
            figures.add("upload/bare", m)
            with Measured(procs, pid) as m:
                api.download()
            figures.add("download/cargohold", m)
            with Measured(procs) as m:
                backend.bare_download()
            figures.add("download/bare", m)
            if curl:
                assert api.item_id is not None
                with Measured(procs, pid) as m:
                    curl_download(server, api.item_id, size)
                figures.add("download/cargohold via curl", m)
            if isinstance(backend, S3Backend):
                # What the staging -> content step costs on its own: the same rename of the bare object.
                with Measured(procs) as m:
                    backend.bare_rename()
                figures.add("rename/bare", m)
            api.delete_item()
            backend.delete_content(sha256)
            backend.bare_delete()
            figures.staging_left = max(figures.staging_left, backend.staging_left())
            r = {step: records[-1]["seconds"] for step, records in figures.runs.items()}
            sent = figures.runs["upload/cargohold"][-1]["body_sent_s"]
            peak = max(figures.runs[s][-1]["server_peak_rss"] for s in ("upload/cargohold", "download/cargohold"))
            log(
                f"  {backend.name} run {run}/{runs}: upload cargohold {r['upload/cargohold']:.2f} s (body sent after "
                f"{sent:.2f} s), bare {r['upload/bare']:.2f} s; download cargohold {r['download/cargohold']:.2f} s, "
                f"bare {r['download/bare']:.2f} s; server RSS peak {peak / 1e6:.0f} MB; lowest available memory "
                f"{machine.min_available / 1e6:.0f} MB"
            )
            if run < runs and psutil.virtual_memory().available < LOW_MEMORY:
                figures.stopped_early = (
                    f"stopped after run {run}: only {psutil.virtual_memory().available / 1e6:.0f} "
                    "MB of memory available"
                )
                log("  " + figures.stopped_early)
                break
    finally:
        api.close()
    return figures


def summarize(figures: Figures, size: int) -> dict[str, Any]:
    mib = size / MiB
    steps: dict[str, Any] = {}
    for step, records in figures.runs.items():
        seconds = [r["seconds"] for r in records]
        median = statistics.median(seconds)
        cpu = {name: statistics.median(r["cpu_s"][name] for r in records) for name in records[0]["cpu_s"]}
        steps[step] = {"median_s": median, "mib_s": mib / median, "runs_s": seconds, "cpu_s_median": cpu}
        if "server_peak_rss" in records[0]:
            steps[step]["server_peak_rss_mb"] = max(r["server_peak_rss"] for r in records) / 1e6
        if "body_sent_s" in records[0]:
            steps[step]["body_sent_s_median"] = statistics.median(r["body_sent_s"] for r in records)
            steps[step]["after_body_s_median"] = statistics.median(r["seconds"] - r["body_sent_s"] for r in records)
    out: dict[str, Any] = {
        "server_rss_baseline_mb": figures.server_baseline / 1e6,
        "staging_objects_left": figures.staging_left,
        "stopped_early": figures.stopped_early,
        "steps": steps,
    }
    for direction in DIRECTIONS:
        ours, bare = steps[f"{direction}/cargohold"], steps[f"{direction}/bare"]
        ratio = bare["median_s"] / ours["median_s"]
        peak = ours["server_peak_rss_mb"]
        out[direction] = {
            "cargohold_mib_s": ours["mib_s"],
            "bare_mib_s": bare["mib_s"],
            "ratio": ratio,
            "ratio_pass": ratio >= RATIO_TARGET,
            "server_peak_rss_mb": peak,
            "rss_pass": peak < RSS_TARGET_MB,
        }
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    size = args.size_mb * MiB
    started = time.perf_counter()
    log = print
    curl = not args.no_curl and shutil.which("curl") is not None
    results: dict[str, Any] = {
        "size_mib": args.size_mb,
        "local_data": str(args.local_data) if args.local_data else None,
        "runs": args.runs,
        "cpus": os.cpu_count(),
        "part_size_mib": PART_SIZE / MiB,
        "ratio_target": RATIO_TARGET,
        "rss_target_mb": RSS_TARGET_MB,
        "backends": {},
        "bare": {},
    }
    with tempfile.TemporaryDirectory(prefix="cargohold-upload-bench-") as tmp_name, MachineWatch() as machine:
        tmp = Path(tmp_name)
        t0 = time.perf_counter()
        source = tmp / "source.bin"
        sha256 = make_source(source, size)
        log(f"source: {args.size_mb} MiB in {source} ({time.perf_counter() - t0:.1f} s), sha256 {sha256[:16]}...")
        started_here: list[Server | RunningServer] = []
        cleanup: list[Path] = []
        runner = asyncio.Runner()
        try:
            if "local" in args.backends:
                home = tmp / "home-local"
                data_path = home / "data"
                if args.local_data:
                    data_path = Path(tempfile.mkdtemp(prefix="cargohold-upload-bench-", dir=args.local_data))
                    cleanup.append(data_path)
                server = RunningServer(home, {"STORAGE_BUCKET_PREFIX": BUCKET_PREFIX, "DATA_PATH": str(data_path)})
                started_here.append(server)
                server.start(timeout=60)
                assert server.process is not None
                log(f"cargohold (local disk) pid {server.process.pid} on {server.url}")
                local = LocalBackend(data_path, source, size)
                results["bare"][local.name] = local.bare_label
                results["backends"][local.name] = summarize(
                    bench_backend(local, server, source, size, sha256, args.runs, machine, log, curl), size
                )
                server.stop()
            if "s3" in args.backends:
                s3_server = moto(tmp / "moto")
                started_here.append(s3_server)
                s3_server.start()
                assert s3_server.process is not None
                machine.moto = psutil.Process(s3_server.process.pid)
                env = {
                    "STORAGE_PROVIDER": "minio",
                    "STORAGE_ENDPOINT": s3_server.url,
                    "STORAGE_ACCESS_KEY": "testing",
                    "STORAGE_SECRET_KEY": "testing",
                    "STORAGE_BUCKET_PREFIX": BUCKET_PREFIX,
                }
                server = RunningServer(tmp / "home-s3", env)
                started_here.append(server)
                server.start(timeout=60)
                assert server.process is not None
                log(f"cargohold (S3 on moto {s3_server.url}) pid {server.process.pid} on {server.url}")
                s3 = S3Backend(s3_server.url, source, size, runner)
                results["bare"][s3.name] = s3.bare_label
                results["backends"][s3.name] = summarize(
                    bench_backend(s3, server, source, size, sha256, args.runs, machine, log, curl), size
                )
        finally:
            runner.close()
            for process in reversed(started_here):
                process.stop()
            machine.moto = None
            for folder in cleanup:
                shutil.rmtree(folder, ignore_errors=True)
    results["moto_peak_rss_mb"] = machine.moto_peak / 1e6
    results["min_available_memory_mb"] = machine.min_available / 1e6
    results["total_memory_mb"] = psutil.virtual_memory().total / 1e6
    results["wall_s"] = time.perf_counter() - started
    return results


def report(results: dict[str, Any]) -> None:
    print(
        f"\n{results['size_mib']} MiB file, median of {results['runs']} alternating runs (cargohold, bare), "
        f"{results['cpus']} CPUs, wall time {results['wall_s']:.0f} s"
    )
    if results["local_data"]:
        print(f"local disk: the server's DATA_PATH and the bare copy are under {results['local_data']}")
    print(
        "cargohold upload = POST multipart through the API until its answer: includes the multipart parse, "
        "SHA-256 hashing,\n  the staging put and the staging -> content rename (local disk: os.replace; S3: a "
        "server-side copy + delete)\n  and the catalog row. Content is deduplicated by SHA-256; the bench "
        "deletes item and content after each run,\n  so every upload stores and renames anew. Client: httpx."
    )
    for backend, label in results["bare"].items():
        print(f"bare {backend}: {label}")
    header = (
        f"{'backend':<11} {'direction':<9} {'cargohold MiB/s':>15} {'bare MiB/s':>11} {'ratio':>6} "
        f"{'server peak RSS':>16}"
    )
    print()
    print(header)
    print("-" * len(header))
    backends = results["backends"]
    for backend, figures in backends.items():
        for direction in DIRECTIONS:
            f = figures[direction]
            print(
                f"{backend:<11} {direction:<9} {f['cargohold_mib_s']:>15.0f} {f['bare_mib_s']:>11.0f} "
                f"{f['ratio']:>6.2f} {f['server_peak_rss_mb']:>13.0f} MB"
            )
    print(
        "\nEvery step (seconds per run; median MiB/s; median CPU seconds per run of server / moto / this "
        "process, the client, with curl as its child):"
    )
    for backend, figures in backends.items():
        for step, s in figures["steps"].items():
            runs = " ".join(f"{x:.2f}" for x in s["runs_s"])
            cpu = " / ".join(f"{s['cpu_s_median'].get(name, 0):.1f}" for name in ("server", "moto", "client"))
            print(f"  {backend:<11} {step:<28} {s['mib_s']:>6.0f} MiB/s  runs (s): {runs:<20} CPU s: {cpu}")
        up = figures["steps"]["upload/cargohold"]
        line = (
            f"  {backend:<11} cargohold upload: body sent after {up['body_sent_s_median']:.2f} s, answer "
            f"{up['after_body_s_median']:.2f} s later (the last parts, rename, catalog row)"
        )
        if "rename/bare" in figures["steps"]:
            line += f"; a bare obstore rename of the same object: {figures['steps']['rename/bare']['median_s']:.2f} s"
        print(line)
        if "download/cargohold via curl" in figures["steps"]:
            curl = figures["steps"]["download/cargohold via curl"]
            ratio = figures["steps"]["download/bare"]["median_s"] / curl["median_s"]
            print(
                f"  {backend:<11} cargohold download with curl as the client: {curl['mib_s']:.0f} MiB/s, ratio "
                f"{ratio:.2f} to bare (reference: the server without httpx's cost)"
            )
        print(
            f"  {backend:<11} server RSS before the runs {figures['server_rss_baseline_mb']:.0f} MB; staging "
            f"objects left after runs: {figures['staging_objects_left']}"
        )
        if figures["stopped_early"]:
            print(f"  {backend:<11} {figures['stopped_early']}")
    print()
    for backend, figures in backends.items():
        for direction in DIRECTIONS:
            f = figures[direction]
            print(
                f"{backend} {direction}: {'PASS' if f['ratio_pass'] else 'BELOW TARGET'} (ratio {f['ratio']:.2f} "
                f"vs >= {RATIO_TARGET}); server peak RSS {f['server_peak_rss_mb']:.0f} MB: "
                f"{'PASS' if f['rss_pass'] else 'BELOW TARGET'} (< {RSS_TARGET_MB:.0f} MB)"
            )
    if results.get("moto_peak_rss_mb"):
        print(f"moto peak RSS {results['moto_peak_rss_mb']:.0f} MB; ", end="")
    print(
        f"lowest available memory during the run {results['min_available_memory_mb']:.0f} MB of "
        f"{results['total_memory_mb']:.0f} MB"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="timed runs per side (median reported)")
    parser.add_argument("--size-mb", type=int, default=2048, help="file size in MiB")
    parser.add_argument(
        "--backends",
        type=lambda s: [b.strip() for b in s.split(",") if b.strip()],
        default=["local", "s3"],
        help="comma-separated: local, s3 (default both)",
    )
    parser.add_argument(
        "--local-data",
        type=Path,
        help="put the local-disk server's DATA_PATH (and the bare copy) under this folder, e.g. "
        "/dev/shm to take the disk out of the comparison; default: the temporary folder",
    )
    parser.add_argument("--no-curl", action="store_true", help="skip the reference download with curl")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    arguments = parser.parse_args()
    unknown = set(arguments.backends) - {"local", "s3"}
    if unknown:
        parser.error(f"unknown backend(s): {', '.join(sorted(unknown))}")
    figures = run(arguments)
    report(figures)
    if arguments.json:
        arguments.json.write_text(json.dumps(figures, indent=2) + "\n")
        print(f"figures written to {arguments.json}")
