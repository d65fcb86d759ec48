"""Streaming-download throughput: cargohold's ``Store`` protocol vs the bare library underneath it.

One object (``--size-mb``, default 256 MiB, deterministic bytes streamed in) goes into an S3 bucket on a
moto server started here on 127.0.0.1, and into a local-disk store in a temporary folder. Then the whole
object is streamed down, alternating cargohold and bare runs (A, B, A, B, ...), every chunk consumed the
same way (a running length):

- S3: ``store.get`` + ``async for`` vs ``obstore.get_async`` + ``result.stream(min_chunk_size=1 MiB)`` on
  an ``S3Store`` built with the same settings as ``cargohold.storage.s3``.
- local disk: ``store.get`` + ``async for`` vs a plain ``os.pread`` loop on the same file, in the chunk
  size the store itself reads (taken from its first chunk); obstore's ``LocalStore`` ``get_async`` +
  ``stream(min_chunk_size=1 MiB)`` is printed as a second reference.

It prints the median MiB/s of each side, the throughput ratio cargohold / bare (target >= 0.9), and the
peak RSS above the pre-run baseline during the cargohold runs (sampled every 10 ms; each side's untimed
first read starts from a heap trimmed with ``malloc_trim``; target < 100 MB; moto runs in its own process
and does not count). It reports, it never fails on a missed target.

    .venv/bin/python bench/storage.py [--runs 5] [--size-mb 256] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes.util
import gc
import os
import statistics
import sys
import tempfile
import time
import zlib
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import obstore
from _harness import MiB, PeakRss, Row, Table, Target, at_least, bare_s3, chunks, main, rate, started
from obstore.store import LocalStore as ObstoreLocalStore

from cargohold.storage import Connection, Store, open_store
from cargohold.storage.base import CHUNK_SIZE
from tests.support.servers import moto

BUCKET = "bench"
KEY = "big/object.bin"
RATIO_TARGET = 0.9
RSS_TARGET_MB = 100.0
REFERENCES = {"s3 (moto)": "obstore `get_async` + `stream`", "local disk": "plain `os.pread` loop"}

Read = Callable[[], Awaitable[tuple[int, int | None]]]
_LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6") if sys.platform == "linux" else None


async def source(size: int) -> AsyncIterator[bytes]:
    for chunk in chunks(size):
        yield chunk


async def consume(chunks: AsyncIterable[Any], crc: int | None = None) -> tuple[int, int | None]:
    """The consumer every side runs: a running length (and a CRC-32 when asked, untimed check only)."""
    n = 0
    async for chunk in chunks:
        n += len(chunk)
        if crc is not None:
            crc = zlib.crc32(chunk, crc)
    return n, crc


def via_store(store: Store, key: str, check: bool = False) -> Read:
    async def run() -> tuple[int, int | None]:
        return await consume(await store.get(key), 0 if check else None)

    return run


def via_obstore(raw: Any, key: str, check: bool = False) -> Read:
    async def run() -> tuple[int, int | None]:
        stream = (await obstore.get_async(raw, key)).stream(min_chunk_size=CHUNK_SIZE)
        return await consume(stream, 0 if check else None)

    return run


async def pread_chunks(path: Path, chunk_size: int) -> AsyncIterator[bytes]:
    """Plain Python: ``os.pread`` in a loop, on the event loop (the file is in the page cache)."""
    fd, pos = os.open(path, os.O_RDONLY), 0
    try:
        while chunk := os.pread(fd, chunk_size, pos):
            pos += len(chunk)
            yield chunk
    finally:
        os.close(fd)


def via_pread(path: Path, chunk_size: int, check: bool = False) -> Read:
    async def run() -> tuple[int, int | None]:
        return await consume(pread_chunks(path, chunk_size), 0 if check else None)

    return run


async def measured(read: Read, size: int, trim: bool = False) -> tuple[float, float, float, int | None]:
    """One full read: seconds, RSS peak above the pre-run baseline and absolute, in MB, and the CRC if any.

    ``trim`` hands freed heap back to the OS first, so that read's memory shows in full. Timed runs do
    not trim: that changes glibc's reuse of big blocks, and with it the speed of the very code measured.
    """
    gc.collect()
    if trim and _LIBC is not None:
        _LIBC.malloc_trim(0)
    with PeakRss(interval=0.01) as rss:
        start = time.perf_counter()
        n, crc = await read()
        seconds = time.perf_counter() - start
    if n != size:
        raise RuntimeError(f"read {n} bytes, expected {size}")
    return seconds, (rss.peak - rss.baseline) / 1e6, rss.peak / 1e6, crc


async def bench(sides: dict[str, Callable[[bool], Read]], size: int, runs: int, crc: int) -> dict[str, Any]:
    """Per side one untimed checked read from a trimmed heap, then ``runs`` rounds alternating the sides."""
    times: dict[str, list[float]] = {name: [] for name in sides}
    rss: dict[str, list[float]] = {name: [] for name in sides}
    absolute: dict[str, list[float]] = {name: [] for name in sides}
    for name, make in sides.items():
        _, peak, total, got = await measured(make(True), size, trim=True)
        if got != crc:
            raise RuntimeError(f"{name}: CRC-32 {got:#x}, expected {crc:#x}")
        rss[name].append(peak)
        absolute[name].append(total)
    for _ in range(runs):
        for name, make in sides.items():
            seconds, peak, total, _ = await measured(make(False), size)
            times[name].append(seconds)
            rss[name].append(peak)
            absolute[name].append(total)
    out: dict[str, Any] = {}
    for name in sides:
        median = statistics.median(times[name])
        out[name] = {"median_s": median, "mib_s": size / MiB / median, "runs_s": times[name],
                     "peak_rss_delta_mb": max(rss[name]), "peak_rss_mb": max(absolute[name])}
    return out


async def first_chunk_size(store: Store, key: str) -> int:
    """How many bytes the store reads per chunk: the length of its first one."""
    download = await store.get(key)
    size = len(await anext(aiter(download)))
    await download.chunks.aclose()  # type: ignore[attr-defined]
    return size


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    size = args.size_mb * MiB
    crc = 0
    for chunk in chunks(size):
        crc = zlib.crc32(chunk, crc)
    results: dict[str, Any] = {"size_mib": args.size_mb, "runs": args.runs, "chunk_bytes": CHUNK_SIZE,
                               "cpus": os.cpu_count(), "backends": {}}
    with tempfile.TemporaryDirectory(prefix="cargohold-bench-") as tmp_name, contextlib.ExitStack() as stack:
        tmp = Path(tmp_name)
        server = started(stack, moto(tmp / "moto"))
        s3 = open_store(Connection("minio", endpoint=server.url, access_key="testing", secret_key="testing"),
                        BUCKET)
        await s3.ensure_bucket()
        local = open_store(Connection("http", root=tmp / "storage"), BUCKET)
        await local.ensure_bucket()
        for store in (s3, local):
            began = time.perf_counter()
            await store.put(KEY, source(size))
            print(f"put {args.size_mb} MiB into {store.provider}: {time.perf_counter() - began:.1f} s")
        path = local.local_path(KEY)
        assert path is not None
        raw = bare_s3(BUCKET, server.url)
        s3_sides = {"cargohold": lambda check: via_store(s3, KEY, check),
                    "bare": lambda check: via_obstore(raw, KEY, check)}
        results["backends"]["s3 (moto)"] = await bench(s3_sides, size, args.runs, crc)
        chunk_size = await first_chunk_size(local, KEY)
        results["local_chunk_bytes"] = chunk_size
        obstore_local = ObstoreLocalStore(prefix=path.parent.parent)
        local_key = path.relative_to(path.parent.parent).as_posix()
        local_sides = {"cargohold": lambda check: via_store(local, KEY, check),
                       "bare": lambda check: via_pread(path, chunk_size, check)}
        local_results = await bench(local_sides, size, args.runs, crc)
        # The reference is slow and heavy on the kernel: run it apart, not between the A/B runs.
        reference = {"obstore LocalStore": lambda check: via_obstore(obstore_local, local_key, check)}
        results["backends"]["local disk"] = local_results | await bench(reference, size, args.runs, crc)
        await s3.close()
        await local.close()
    for sides in results["backends"].values():
        sides["ratio"] = sides["bare"]["median_s"] / sides["cargohold"]["median_s"]
    return results


def table(f: dict[str, Any]) -> Table:
    t = Table(f"{f['size_mib']} MiB object streamed down through `store.get`, median of {f['runs']} alternating "
              f"runs; memory: the reading process's RSS growth during a read.")
    for backend, sides in f["backends"].items():
        label = "S3 (moto)" if backend.startswith("s3") else backend
        ours, bare = sides["cargohold"], sides["bare"]
        t.rows.append(Row(f"{label}: download, MiB/s", rate(ours["mib_s"]),
                          f"{rate(bare['mib_s'])}: {REFERENCES.get(backend, 'the bare library')}",
                          sides["ratio"], at_least(RATIO_TARGET)))
        t.rows.append(Row(f"{label}: memory growth during the read",
                          f"+{ours['peak_rss_delta_mb']:.1f} MB (process {ours['peak_rss_mb']:.0f} MB)",
                          target=Target("<", RSS_TARGET_MB, "MB", on_ratio=False), value=ours["peak_rss_delta_mb"]))
        for name, side in sides.items():
            if name not in ("cargohold", "bare") and isinstance(side, dict) and "mib_s" in side:
                t.rows.append(Row(f"{label}: download, second reference, MiB/s", rate(ours["mib_s"]),
                                  f"{rate(side['mib_s'])}: {name}", ours["mib_s"] / side["mib_s"]))
    return t


def report(results: dict[str, Any]) -> None:
    print(f"\n{results['size_mib']} MiB object, median of {results['runs']} alternating runs, "
          f"{results['cpus']} CPUs; chunks: S3 {results['chunk_bytes'] / MiB:g} MiB (min), local disk "
          f"{results['local_chunk_bytes'] / MiB:g} MiB; peak RSS = highest RSS above the pre-run baseline")
    for backend, sides in results["backends"].items():
        for name, side in sides.items():
            if isinstance(side, dict):
                runs = " ".join(f"{s:.3f}" for s in side["runs_s"])
                print(f"  {backend:<11} {name:<18} {side['mib_s']:>7.0f} MiB/s  runs (s): {runs}  "
                      f"peak RSS +{side['peak_rss_delta_mb']:.1f} MB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs per side (median reported)")
    parser.add_argument("--size-mb", type=int, default=256, help="object size in MiB")
    main(parser, lambda args: asyncio.run(measure(args)), table, report)
