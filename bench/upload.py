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
import os
import secrets
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import obstore
import psutil  # type: ignore[import-untyped,unused-ignore]
from _harness import (
    Measured,
    MiB,
    PeakRss,
    Row,
    Table,
    Target,
    api_client,
    at_least,
    bare_s3,
    chunks,
    log,
    main,
    medians,
    minio_env,
    rate,
    started,
)

from cargohold.services.blobs import STAGING_PREFIX, content_key
from cargohold.storage.base import PART_SIZE
from tests.support.api_server import RunningServer
from tests.support.servers import moto

RATIO_TARGET = 0.8
RSS_TARGET_MB = 200.0
BUCKET_PREFIX = "cargohold"
PUBLIC_BUCKET = f"{BUCKET_PREFIX}-public"
FILENAME = "big.bin"
DIRECTIONS = ("upload", "download")
LOW_MEMORY = 3 * 1024 * MiB
"""Below this much available memory (moto holds S3 objects in RAM) no further run starts."""
REFERENCES = {
    ("local disk", "upload"): "Python file copy + fsync",
    ("local disk", "download"): "plain file read (page cache)",
    ("s3 (moto)", "upload"): "obstore `put_async`, multipart",
    ("s3 (moto)", "download"): "obstore `get_async` + `stream`",
}


class LowestMemory:
    """The lowest memory available on the machine while in the ``with`` block, sampled every 0.1 s."""

    def __init__(self, interval: float = 0.1) -> None:
        self.available = psutil.virtual_memory().available
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.available = min(self.available, psutil.virtual_memory().available)

    def __enter__(self) -> LowestMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# --- the source file and the client -----------------------------------------------------------------------


def make_source(path: Path, size: int) -> str:
    """Writes the harness's ``size`` deterministic bytes to ``path``; returns their SHA-256."""
    sha = hashlib.sha256()
    with path.open("wb") as fh:
        for chunk in chunks(size):
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

    def body() -> Iterator[bytes]:
        yield head
        with path.open("rb", buffering=0) as fh:
            while chunk := fh.read(MiB):
                yield chunk
        yield tail
        sent.append(time.perf_counter())

    return f"multipart/form-data; boundary={boundary}", length, body()


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
        client = api_client(server, 900)
        answer = client.post("/datasets", json={"name": f"bench-{secrets.token_hex(4)}"})
        answer.raise_for_status()
        return cls(server, client, answer.json()["id"], source, size, sha256)

    def upload(self) -> float:
        """Returns the seconds it took until the whole body was sent; the answer comes after."""
        sent: list[float] = []
        content_type, length, body = multipart_body(self.source, FILENAME, sent)
        start = time.perf_counter()
        answer = self.client.post(f"/datasets/{self.dataset_id}/items", content=body,
                                  headers={"Content-Type": content_type, "Content-Length": str(length)})
        if answer.status_code != 201:
            raise RuntimeError(f"upload answered {answer.status_code}: {answer.text[:500]}")
        item = answer.json()["results"][0]["item"]
        if item["size"] != self.size or item["sha256"] != self.sha256:
            raise RuntimeError(f"upload stored {item['size']} bytes, sha256 {item['sha256']}; expected {self.size}, "
                               f"{self.sha256}")
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
        self.raw = bare_s3(PUBLIC_BUCKET, endpoint)

    def bare_upload(self) -> None:
        async def put() -> None:
            # The same part size and concurrency as cargohold's ObstoreStore.put.
            await obstore.put_async(self.raw, self.key, self.source, use_multipart=True, chunk_size=PART_SIZE,
                                    max_concurrency=4)
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
        async def rename() -> None:  # Runner.run takes a coroutine, not obstore's future
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


@dataclass
class Figures:
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Per step (``upload/cargohold``, ``download/bare``...) one :meth:`Measured.record` per run."""
    server_baseline: int = 0
    staging_left: int = 0
    stopped_early: str | None = None

    def add(self, step: str, m: Measured, **extra: Any) -> None:
        self.runs.setdefault(step, []).append(m.record(**extra))


def curl_download(server: RunningServer, item_id: int, size: int) -> None:
    """The same download with curl, a client that is not the limit: what the server itself can send."""
    out = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{size_download}", "-H",
                          f"Authorization: Bearer {server.token}", f"{server.api}/items/{item_id}/content"],
                         capture_output=True, text=True, check=True)
    if out.stdout.split() != ["200", str(size)]:
        raise RuntimeError(f"curl download: {out.stdout} {out.stderr}")


def bench_backend(backend: Backend, server: RunningServer, source: Path, size: int, sha256: str, runs: int,
                  procs: dict[str, psutil.Process], memory: LowestMemory, curl: bool) -> Figures:
    assert server.process is not None
    pid = server.process.pid
    procs = {"server": psutil.Process(pid), "client": psutil.Process()} | procs
    figures = Figures()
    api = Cargohold.open(server, source, size, sha256)
    figures.server_baseline = PeakRss(pid, children=True).baseline

    def server_rss() -> PeakRss:
        return PeakRss(pid, children=True)

    try:
        for run in range(1, runs + 1):
            # Alternating: cargohold then bare, per direction; every run starts with nothing stored.
            with Measured(procs, server_rss()) as m:
                sent_after = api.upload()
            figures.add("upload/cargohold", m, body_sent_s=sent_after)
            with Measured(procs) as m:
                backend.bare_upload()
            figures.add("upload/bare", m)
            with Measured(procs, server_rss()) as m:
                api.download()
            figures.add("download/cargohold", m)
            with Measured(procs) as m:
                backend.bare_download()
            figures.add("download/bare", m)
            if curl:
                assert api.item_id is not None
                with Measured(procs, server_rss()) as m:
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
            peak = max(figures.runs[s][-1]["peak_rss_mb"] for s in ("upload/cargohold", "download/cargohold"))
            log(f"  {backend.name} run {run}/{runs}: upload cargohold {r['upload/cargohold']:.2f} s (body sent after "
                f"{sent:.2f} s), bare {r['upload/bare']:.2f} s; download cargohold {r['download/cargohold']:.2f} s, "
                f"bare {r['download/bare']:.2f} s; server RSS peak {peak:.0f} MB; lowest available memory "
                f"{memory.available / 1e6:.0f} MB")
            if run < runs and psutil.virtual_memory().available < LOW_MEMORY:
                figures.stopped_early = (f"stopped after run {run}: only {psutil.virtual_memory().available / 1e6:.0f}"
                                         " MB of memory available")
                log("  " + figures.stopped_early)
                break
    finally:
        api.close()
    return figures


def summarize(figures: Figures, size: int) -> dict[str, Any]:
    steps: dict[str, Any] = {}
    for step, records in figures.runs.items():
        steps[step] = medians(records, size / MiB)  # per_s: MiB/s
        if "body_sent_s" in records[0]:
            steps[step]["body_sent_s_median"] = statistics.median(r["body_sent_s"] for r in records)
            steps[step]["after_body_s_median"] = statistics.median(r["seconds"] - r["body_sent_s"] for r in records)
    out: dict[str, Any] = {"server_rss_baseline_mb": figures.server_baseline / 1e6,
                           "staging_objects_left": figures.staging_left, "stopped_early": figures.stopped_early,
                           "steps": steps}
    for direction in DIRECTIONS:
        ours, bare = steps[f"{direction}/cargohold"], steps[f"{direction}/bare"]
        out[direction] = {"cargohold_mib_s": ours["per_s"], "bare_mib_s": bare["per_s"],
                          "ratio": bare["median_s"] / ours["median_s"], "server_peak_rss_mb": ours["peak_rss_mb"]}
    return out


def backends(text: str) -> list[str]:
    chosen = [b.strip() for b in text.split(",") if b.strip()]
    unknown = set(chosen) - {"local", "s3"}
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown backend(s): {', '.join(sorted(unknown))}")
    return chosen


def measure(args: argparse.Namespace) -> dict[str, Any]:
    size = args.size_mb * MiB
    began = time.perf_counter()
    curl = not args.no_curl and shutil.which("curl") is not None
    results: dict[str, Any] = {"size_mib": args.size_mb, "runs": args.runs,
                               "local_data": str(args.local_data) if args.local_data else None,
                               "cpus": os.cpu_count(), "part_size_mib": PART_SIZE / MiB,
                               "ratio_target": RATIO_TARGET, "rss_target_mb": RSS_TARGET_MB, "backends": {}, "bare": {}}
    with tempfile.TemporaryDirectory(prefix="cargohold-upload-bench-") as tmp_name, LowestMemory() as memory, \
            contextlib.ExitStack() as stack:
        tmp = Path(tmp_name)
        t0 = time.perf_counter()
        source = tmp / "source.bin"
        sha256 = make_source(source, size)
        log(f"source: {args.size_mb} MiB in {source} ({time.perf_counter() - t0:.1f} s), sha256 {sha256[:16]}...")
        runner = stack.enter_context(asyncio.Runner())
        if "local" in args.backends:
            home = tmp / "home-local"
            data_path = home / "data"
            if args.local_data:
                data_path = Path(tempfile.mkdtemp(prefix="cargohold-upload-bench-", dir=args.local_data))
                stack.callback(shutil.rmtree, data_path, ignore_errors=True)
            env = {"STORAGE_BUCKET_PREFIX": BUCKET_PREFIX, "DATA_PATH": str(data_path)}
            server = started(stack, RunningServer(home, env))
            assert server.process is not None
            log(f"cargohold (local disk) pid {server.process.pid} on {server.url}")
            local = LocalBackend(data_path, source, size)
            results["bare"][local.name] = local.bare_label
            results["backends"][local.name] = summarize(
                bench_backend(local, server, source, size, sha256, args.runs, {}, memory, curl), size)
            server.stop()
        if "s3" in args.backends:
            s3_server = started(stack, moto(tmp / "moto"))
            assert s3_server.process is not None
            moto_rss = stack.enter_context(PeakRss(s3_server.process.pid, 0.1, children=True))
            server = started(stack, RunningServer(tmp / "home-s3", minio_env(s3_server.url, BUCKET_PREFIX)))
            assert server.process is not None
            log(f"cargohold (S3 on moto {s3_server.url}) pid {server.process.pid} on {server.url}")
            s3 = S3Backend(s3_server.url, source, size, runner)
            results["bare"][s3.name] = s3.bare_label
            procs = {"moto": psutil.Process(s3_server.process.pid)}
            results["backends"][s3.name] = summarize(
                bench_backend(s3, server, source, size, sha256, args.runs, procs, memory, curl), size)
            results["moto_peak_rss_mb"] = moto_rss.peak / 1e6
    results["min_available_memory_mb"] = memory.available / 1e6
    results["total_memory_mb"] = psutil.virtual_memory().total / 1e6
    results["wall_s"] = time.perf_counter() - began
    return results


def report(results: dict[str, Any]) -> None:
    print(f"\n{results['size_mib']} MiB file, median of {results['runs']} alternating runs (cargohold, bare), "
          f"{results['cpus']} CPUs, wall time {results['wall_s']:.0f} s")
    if results["local_data"]:
        print(f"local disk: the server's DATA_PATH and the bare copy are under {results['local_data']}")
    print("cargohold upload = POST multipart through the API until its answer: includes the multipart parse, "
          "SHA-256 hashing,\n  the staging put and the staging -> content rename (local disk: os.replace; S3: a "
          "server-side copy + delete)\n  and the catalog row. Content is deduplicated by SHA-256; the bench "
          "deletes item and content after each run,\n  so every upload stores and renames anew. Client: httpx.")
    for backend, label in results["bare"].items():
        print(f"bare {backend}: {label}")
    print("\nEvery step (seconds per run; median MiB/s; median CPU seconds per run of server / moto / this "
          "process, the client, with curl as its child):")
    for backend, figures in results["backends"].items():
        for step, s in figures["steps"].items():
            runs = " ".join(f"{x:.2f}" for x in s["runs_s"])
            cpu = " / ".join(f"{s['cpu_s_median'].get(name, 0):.1f}" for name in ("server", "moto", "client"))
            print(f"  {backend:<11} {step:<28} {s['per_s']:>6.0f} MiB/s  runs (s): {runs:<20} CPU s: {cpu}")
        up = figures["steps"]["upload/cargohold"]
        line = (f"  {backend:<11} cargohold upload: body sent after {up['body_sent_s_median']:.2f} s, answer "
                f"{up['after_body_s_median']:.2f} s later (the last parts, rename, catalog row)")
        if "rename/bare" in figures["steps"]:
            line += f"; a bare obstore rename of the same object: {figures['steps']['rename/bare']['median_s']:.2f} s"
        print(line)
        print(f"  {backend:<11} server RSS before the runs {figures['server_rss_baseline_mb']:.0f} MB; staging "
              f"objects left after runs: {figures['staging_objects_left']}")
        if figures["stopped_early"]:
            print(f"  {backend:<11} {figures['stopped_early']}")
    if results.get("moto_peak_rss_mb"):
        print(f"moto peak RSS {results['moto_peak_rss_mb']:.0f} MB; ", end="")
    print(f"lowest available memory during the run {results['min_available_memory_mb']:.0f} MB of "
          f"{results['total_memory_mb']:.0f} MB")


def table(f: dict[str, Any]) -> Table:
    t = Table(f"{f['size_mib']:,} MiB file through the API of a real `cargohold up` (httpx streaming the body and "
              f"the answer), median of {f['runs']} alternating runs; memory: the server's peak RSS.")
    for backend, b in f["backends"].items():
        label = "S3 (moto)" if backend.startswith("s3") else backend
        for direction in DIRECTIONS:
            d = b[direction]
            ref = REFERENCES.get((backend, direction), "the bare library")
            t.rows.append(Row(f"{label}: {direction}, MiB/s", rate(d["cargohold_mib_s"]),
                              f"{rate(d['bare_mib_s'])}: {ref}", d["ratio"], at_least(f["ratio_target"])))
        steps = b["steps"]
        curl = steps.get("download/cargohold via curl")
        if curl:
            bare = steps["download/bare"]
            t.rows.append(Row(f"{label}: download with curl as the client, MiB/s", rate(curl["per_s"]),
                              f"{rate(bare['per_s'])}: {REFERENCES.get((backend, 'download'), 'the bare library')}",
                              bare["median_s"] / curl["median_s"]))
        peak = max(b[d]["server_peak_rss_mb"] for d in DIRECTIONS)
        t.rows.append(Row(f"{label}: server peak RSS", f"{peak:.0f} MB",
                          target=Target("<", f["rss_target_mb"], "MB", on_ratio=False), value=peak))
        if b.get("stopped_early"):
            t.notes.append(f"{label}: {b['stopped_early']}.")
    return t


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="timed runs per side (median reported)")
    parser.add_argument("--size-mb", type=int, default=2048, help="file size in MiB")
    parser.add_argument("--backends", type=backends, default=["local", "s3"],
                        help="comma-separated: local, s3 (default both)")
    parser.add_argument("--local-data", type=Path,
                        help="put the local-disk server's DATA_PATH (and the bare copy) under this folder, e.g. "
                        "/dev/shm to take the disk out of the comparison; default: the temporary folder")
    parser.add_argument("--no-curl", action="store_true", help="skip the reference download with curl")
    main(parser, measure, table, report)
