"""cargohold behind nginx (deploy/nginx.conf) vs nginx alone, for a cached 100 KiB item.

A moto server, one cargohold replica on it (``STORAGE_PROVIDER=minio``, ``SERVER_ACCEL_REDIRECT``), and
Debian's nginx started with deploy/nginx.conf in front (tests/support/nginx_front.py fills in ports and folders;
``worker_processes 1``, as the reference). The item is read once so that it sits in the storage tier.
Then wrk (1 thread, 32 connections, ``--duration`` s per run, ``--runs`` runs alternating, medians):

1. through nginx, a SIGNED URL (how browsers load images): nginx answers from its own cache, the URL
   having been answered once by cargohold with X-Accel-Expires;
2. through nginx, with a TOKEN: every request is authorised by cargohold (a catalog lookup), then the
   file is sent by nginx from the replica's disk (X-Accel-Redirect);
3. the reference: nginx alone (bench/cache.py's static configuration) serving the same bytes from disk.

wrk is pinned to CPU 0, nginx and cargohold to CPU 1. It prints requests/s, p50/p99 and the ratio of
each to nginx alone (target for 1: >= 0.8). It reports, it never fails on a missed target.

    .venv/bin/python bench/front.py [--runs 3] [--duration 5] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from cache import WrkRun, nginx, pin, tree, wrk  # noqa: E402

from tests.support.api_server import RunningServer  # noqa: E402
from tests.support.nginx_front import NginxFront, Replica  # noqa: E402
from tests.support.servers import moto  # noqa: E402

TARGET = 0.8


def pin_all(pids: list[int]) -> None:
    for pid in pids:
        for proc in tree(pid):
            pin(proc.pid, {1})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    data = random.Random(7).randbytes(100 * 1024)
    pinned = (os.cpu_count() or 1) >= 2
    with tempfile.TemporaryDirectory(prefix="bench-front-") as tmp_name:
        tmp = Path(tmp_name)
        s3 = moto(tmp).start()
        env = {"STORAGE_PROVIDER": "minio", "STORAGE_ENDPOINT": s3.url, "STORAGE_ACCESS_KEY": "testing",
               "STORAGE_SECRET_KEY": "testing", "STORAGE_BUCKET_PREFIX": "bench-front",
               "SERVER_ACCEL_REDIRECT": "/_cargohold/r1/"}
        replica = RunningServer(tmp / "r1", env).start()
        front = NginxFront(tmp / "front", [Replica("r1", replica.port, replica.home / "data")])
        render = front.render
        front.render = lambda: render().replace("worker_processes auto;", "worker_processes 1;")  # type: ignore[method-assign]
        front.start()
        static_root = tmp / "static"
        static_root.mkdir()
        (static_root / "item.bin").write_bytes(data)
        tmp.chmod(0o755)  # nginx's workers (nobody) read the reference file
        static_root.chmod(0o755)
        alone = nginx(tmp / "alone", static_root).start()
        try:
            auth = {"Authorization": f"Bearer {replica.token}"}
            with httpx.Client(base_url=front.url, headers=auth, timeout=60) as client:
                ds = client.post("/api/v1/datasets", json={"name": "bench"}).json()["id"]
                item = client.post(f"/api/v1/datasets/{ds}/items",
                                   files=[("files", ("item.bin", data))]).json()["results"][0]["item"]
                assert client.get(f"/api/v1/items/{item['id']}/content").content == data  # into the storage tier
                signed = client.post(f"/api/v1/items/{item['id']}/sign", json={"expires_in": 3600}).json()["url"]
            first = httpx.get(signed)
            assert first.content == data and first.headers["x-cache-status"] in ("MISS", "HIT")
            assert httpx.get(signed).headers["x-cache-status"] == "HIT"
            if pinned:
                pin_all([front.process.pid if front.process else 0, replica.process.pid if replica.process else 0,
                         alone.process.pid if alone.process else 0])
            token_url = f"{front.url}/api/v1/items/{item['id']}/content"
            sides: dict[str, list[WrkRun]] = {"front, signed URL": [], "front, token": [], "nginx alone": []}
            token_script = tmp / "token.lua"
            token_script.write_text(f'wrk.headers["Authorization"] = "Bearer {replica.token}"\n')
            for side in sides:  # warm-up
                wrk_for(side, signed, token_url, alone.url + "/item.bin", token_script, 1, pinned)
            for run in range(args.runs):
                for side, results in sides.items():
                    results.append(wrk_for(side, signed, token_url, alone.url + "/item.bin", token_script,
                                           args.duration, pinned))
                    print(f"run {run + 1} {side:<18} {results[-1].rps:>9,.0f} req/s  errors {results[-1].errors}",
                          flush=True)
        finally:
            alone.stop()
            front.stop()
            replica.stop()
            s3.stop()
    reference = statistics.median(r.rps for r in sides["nginx alone"])
    summary: dict[str, Any] = {}
    print(f"\n100 KiB cached item, wrk -t1 -c32, {args.runs} x {args.duration:g} s, medians"
          f"{'; wrk on CPU 0, servers on CPU 1' if pinned else ''}")
    for side, results in sides.items():
        rps = statistics.median(r.rps for r in results)
        p50 = statistics.median(r.p50_ms or 0 for r in results)
        p99 = statistics.median(r.p99_ms or 0 for r in results)
        ratio = rps / reference
        summary[side] = {"rps": rps, "p50_ms": p50, "p99_ms": p99, "ratio": ratio,
                         "errors": sum(r.errors for r in results)}
        target = f"target >= {TARGET}" if side == "front, signed URL" else ""
        print(f"{side:<18} {rps:>9,.0f} req/s  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  ratio {ratio:.2f}  {target}")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))


def wrk_for(side: str, signed: str, token_url: str, alone: str, token_script: Path, duration: float,
            pinned: bool) -> WrkRun:
    cpu = 0 if pinned else None
    if side == "front, token":
        return wrk(token_url, duration, cpu, script=token_script)
    return wrk(signed if side == "front, signed URL" else alone, duration, cpu)


if __name__ == "__main__":
    main()
