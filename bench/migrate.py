"""``cargohold migrate`` vs ``rclone copy``: local disk → the S3 server, the same objects, the same parallelism.

An instance home is made in a temporary folder with own storage on local disk holding ``--small``
objects of 100 KB and ``--large`` objects of 100 MB (deterministic random bytes, stored as content,
``sha256/aa/bb/<sha256>``, the way uploads store them). moto is started here on 127.0.0.1. Then,
alternating (A, B, A, B, ...), each side copies both buckets into fresh buckets on moto:

- cargohold: ``cargohold migrate --to s3.env --jobs N`` (a subprocess; it hashes every object while
  it streams and checks it against its key before the put completes);
- rclone: ``rclone copy <bucket folder> s3:<bucket> --transfers N --checkers N`` for each of the two
  buckets, one after the other, with a remote configured by environment variables (rclone computes
  MD5 for its own upload check, as it does by default).

After each run the bench checks that the target holds every object with the right size, then deletes
the buckets (moto keeps everything in memory). It prints the median MiB/s of each side, the ratio
cargohold / rclone (target >= 1.0) and cargohold's peak RSS (psutil, sampled every 20 ms). It reports,
it never fails on a missed target. rclone comes from Debian (``make bench-tools``).

    .venv/bin/python bench/migrate.py [--runs 3] [--small 2000] [--large 4] [--jobs 8] [--json PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3
from _harness import MiB, PeakRss, Row, Table, at_least, main, started, version

from tests.support.servers import moto

RATIO_TARGET = 1.0


def populate(storage: Path, small: int, large: int) -> tuple[int, int]:
    """Content objects as uploads leave them; returns (objects, bytes)."""
    rng = random.Random(42)
    total = 0
    for i in range(small + large):
        size = 100 * 1024 if i < small else 100 * MiB
        blob = rng.randbytes(size)
        digest = hashlib.sha256(blob).hexdigest()
        bucket = "cargohold-public" if i < small else "cargohold-private"
        key = f"sha256/{digest[:2]}/{digest[2:4]}/{digest}" if i < small else f"models/weights-{i}.bin"
        path = storage / bucket / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(blob)
        total += size
    return small + large, total


def run_cargohold(home: Path, env_file: Path, jobs: int) -> tuple[float, int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STORAGE_", "DATA_PATH", "CACHE_"))}
    env["CARGOHOLD_HOME"] = str(home)
    began = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "cargohold", "migrate", "--to", str(env_file), "--jobs", str(jobs)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    with PeakRss(proc.pid) as rss:
        out, _ = proc.communicate()
    seconds = time.perf_counter() - began
    if proc.returncode != 0 or "failed 0" not in out:
        raise RuntimeError(f"cargohold migrate failed: {out}")
    return seconds, rss.peak


def run_rclone(storage: Path, moto_url: str, prefix: str, jobs: int) -> float:
    # rclone 1.60 refuses AWS_CA_BUNDLE with its own transport (LoadCustomCABundleError); loopback is plain http.
    env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
    env |= {"RCLONE_CONFIG_BENCH_TYPE": "s3", "RCLONE_CONFIG_BENCH_PROVIDER": "Other",
           "RCLONE_CONFIG_BENCH_ENDPOINT": moto_url, "RCLONE_CONFIG_BENCH_ACCESS_KEY_ID": "testing",
           "RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY": "testing", "RCLONE_CONFIG_BENCH_REGION": "us-east-1"}
    began = time.perf_counter()
    for visibility in ("public", "private"):
        done = subprocess.run(["rclone", "copy", str(storage / f"cargohold-{visibility}"),
                               f"bench:{prefix}-{visibility}", "--transfers", str(jobs), "--checkers", str(jobs),
                               "--s3-upload-concurrency", "4"], env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"rclone failed: {done.stderr[-2000:]}")
    return time.perf_counter() - began


def check_and_drop(s3: Any, prefix: str, objects: int, total: int) -> None:
    seen, size = 0, 0
    for visibility in ("public", "private"):
        bucket = f"{prefix}-{visibility}"
        keys = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for obj in page.get("Contents", []):
                seen += 1
                size += obj["Size"]
                keys.append({"Key": obj["Key"]})
        for start in range(0, len(keys), 1000):
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys[start:start + 1000]})
        s3.delete_bucket(Bucket=bucket)
    if (seen, size) != (objects, total):
        raise RuntimeError(f"{prefix}: the target holds {seen} objects, {size} bytes; expected {objects}, {total}")


def measure(args: argparse.Namespace) -> dict[str, Any]:
    if shutil.which("rclone") is None:
        sys.exit("rclone is not installed: run `make bench-tools` (Debian's rclone)")
    with tempfile.TemporaryDirectory(prefix="bench-migrate-") as tmp, contextlib.ExitStack() as stack:
        root = Path(tmp)
        home = root / "home"
        objects, total = populate(home / "data" / "storage", args.small, args.large)
        server = started(stack, moto(root))
        s3 = boto3.client("s3", endpoint_url=server.url, aws_access_key_id="testing",
                          aws_secret_access_key="testing", region_name="us-east-1")
        ours: list[float] = []
        theirs: list[float] = []
        peaks: list[int] = []
        for run in range(args.runs):
            prefix = f"ch{run}"
            env_file = root / f"{prefix}.env"
            env_file.write_text(f"STORAGE_PROVIDER=minio\nSTORAGE_ENDPOINT={server.url}\nSTORAGE_ACCESS_KEY=testing\n"
                                f"STORAGE_SECRET_KEY=testing\nSTORAGE_BUCKET_PREFIX={prefix}\n")
            seconds, rss = run_cargohold(home, env_file, args.jobs)
            check_and_drop(s3, prefix, objects, total)
            ours.append(total / MiB / seconds)
            peaks.append(rss)
            prefix = f"rc{run}"
            for visibility in ("public", "private"):
                s3.create_bucket(Bucket=f"{prefix}-{visibility}")
            theirs.append(total / MiB / run_rclone(home / "data" / "storage", server.url, prefix, args.jobs))
            check_and_drop(s3, prefix, objects, total)
            print(f"run {run + 1}: cargohold {ours[-1]:.1f} MiB/s (peak RSS {rss / MiB:.0f} MB), "
                  f"rclone {theirs[-1]:.1f} MiB/s", flush=True)
    return {"objects": objects, "bytes": total, "jobs": args.jobs, "cargohold_mib_s": ours, "rclone_mib_s": theirs,
            "ratio": statistics.median(ours) / statistics.median(theirs), "peak_rss": max(peaks),
            "rclone": version(["rclone", "version"], r"rclone v?(\S+)")}


def table(f: dict[str, Any]) -> Table:
    ours, theirs = f["cargohold_mib_s"], f["rclone_mib_s"]
    runs = len(ours)
    t = Table(f"{f['objects']:,} objects ({f['bytes'] / MiB:,.0f} MiB) from own storage on local disk to moto, "
              f"`cargohold migrate --jobs {f['jobs']}` vs `rclone copy --transfers {f['jobs']} --checkers "
              f"{f['jobs']}`, {runs} alternating run{'s' if runs != 1 else ''}, median.")
    t.rows.append(Row("copy local disk → S3 (moto), MiB/s",
                      f"{statistics.median(ours):.1f} (runs {', '.join(f'{x:.1f}' for x in ours)})",
                      f"{statistics.median(theirs):.1f} (runs {', '.join(f'{x:.1f}' for x in theirs)}): "
                      f"rclone {f['rclone']}", f["ratio"], at_least(RATIO_TARGET)))
    t.rows.append(Row("`cargohold migrate` peak RSS", f"{f['peak_rss'] / 1e6:.0f} MB"))
    return t


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--small", type=int, default=2000)
    parser.add_argument("--large", type=int, default=4)
    parser.add_argument("--jobs", type=int, default=8)
    main(parser, measure, table)
