"""cargohold behind nginx (deploy/nginx.conf) vs nginx alone, for a cached 100 KiB item.

A moto server, one cargohold replica on it (``STORAGE_PROVIDER=minio``, ``SERVER_ACCEL_REDIRECT``), and
Debian's nginx started with deploy/nginx.conf in front (tests/support/nginx_front.py fills in ports and folders;
``worker_processes 1``, as the reference). The item is read once so that it sits in the storage tier.
Then wrk (1 thread, 32 connections, ``--duration`` s per run, ``--runs`` runs alternating, medians):

1. through nginx, a SIGNED URL (how browsers load images): nginx answers from its own cache, the URL
   having been answered once by cargohold with X-Accel-Expires;
2. through nginx, with a TOKEN: every request is authorised by cargohold (a catalog lookup), then the
   file is sent by nginx from the replica's disk (X-Accel-Redirect);
3. the reference: nginx alone (``static_nginx`` of bench/_harness.py, as bench/cache.py has it) serving the
   same bytes from disk.

wrk is pinned to CPU 0, nginx and cargohold to CPU 1. It prints requests/s, p50/p99 and the ratio of
each to nginx alone (target for 1: >= 0.8). It reports, it never fails on a missed target.

    .venv/bin/python bench/front.py [--runs 3] [--duration 5] [--json PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import random
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import httpx
from _harness import (
    Row,
    Table,
    WrkSide,
    at_least,
    main,
    minio_env,
    pinnable,
    started,
    static_nginx,
    summarize_wrk,
    wrk_figure,
    wrk_rounds,
    wrk_warm_up,
)

from tests.support.api_server import RunningServer
from tests.support.nginx_front import NginxFront, Replica
from tests.support.servers import moto

TARGET = 0.8
ROWS = {
    "front, signed URL": ("cached 100 KiB item through nginx, signed URL (nginx's cache), requests/s",
                          at_least(TARGET)),
    "front, token": ("the same through nginx with a token (cargohold authorises, nginx sends it: X-Accel-Redirect), "
                     "requests/s", None),
}


def pid(process: subprocess.Popen[bytes] | None) -> int:
    assert process is not None
    return process.pid


def measure(args: argparse.Namespace) -> dict[str, Any]:
    data = random.Random(7).randbytes(100 * 1024)
    pinned = pinnable()
    with tempfile.TemporaryDirectory(prefix="bench-front-") as tmp_name, contextlib.ExitStack() as stack:
        tmp = Path(tmp_name)
        s3 = started(stack, moto(tmp))
        env = minio_env(s3.url, "bench-front") | {"SERVER_ACCEL_REDIRECT": "/_cargohold/r1/"}
        replica = started(stack, RunningServer(tmp / "r1", env))
        front = NginxFront(tmp / "front", [Replica("r1", replica.port, replica.home / "data")])
        render = front.render
        front.render = lambda: render().replace("worker_processes auto;", "worker_processes 1;")  # type: ignore[method-assign]
        started(stack, front)
        static_root = tmp / "static"
        static_root.mkdir()
        (static_root / "item.bin").write_bytes(data)
        tmp.chmod(0o755)  # nginx's workers (nobody) read the reference file
        static_root.chmod(0o755)
        alone = started(stack, static_nginx(tmp / "alone", static_root))
        auth = {"Authorization": f"Bearer {replica.token}"}
        with httpx.Client(base_url=f"{front.url}/api/v1", headers=auth, timeout=60) as client:
            ds = client.post("/datasets", json={"name": "bench"}).json()["id"]
            item = client.post(f"/datasets/{ds}/items",
                               files=[("files", ("item.bin", data))]).json()["results"][0]["item"]
            assert client.get(f"/items/{item['id']}/content").content == data  # into the storage tier
            signed = client.post(f"/items/{item['id']}/sign", json={"expires_in": 3600}).json()["url"]
        signed = signed.replace(replica.url, front.url)  # SERVER_PUBLIC_URL is the replica's own address here
        first = httpx.get(signed)
        assert first.content == data and first.headers["x-cache-status"] in ("MISS", "HIT")
        assert httpx.get(signed).headers["x-cache-status"] == "HIT"
        token_script = tmp / "token.lua"
        token_script.write_text(f'wrk.headers["Authorization"] = "Bearer {replica.token}"\n')
        behind = [pid(front.process), pid(replica.process)]
        sides = [WrkSide("front, signed URL", signed, behind),
                 WrkSide("front, token", f"{front.url}/api/v1/items/{item['id']}/content", behind, token_script),
                 WrkSide("nginx alone", alone.url + "/item.bin", [pid(alone.process)])]
        wrk_warm_up(sides, args.duration, pinned)
        runs = wrk_rounds(sides, args.runs, args.duration, pinned)
    summary: dict[str, Any] = {"runs": args.runs, "duration_s": args.duration, "pinned": pinned}
    reference = summarize_wrk(runs["nginx alone"])["rps"]
    for side, results in runs.items():
        summary[side] = summarize_wrk(results)
        summary[side]["ratio"] = summary[side]["rps"] / reference
    return summary


def table(f: dict[str, Any]) -> Table:
    t = Table("`deploy/nginx.conf` in front of one replica (`worker_processes 1`, as the reference), a 100 KiB item "
              "in its storage tier; wrk 1 thread, 32 connections, alternating runs, medians.")
    reference = f"{wrk_figure(f['nginx alone'], p99=True)}: nginx alone, same file"
    for side, (label, target) in ROWS.items():
        if side in f:
            s = f[side]
            t.rows.append(Row(label, wrk_figure(s, p99=True), reference, s["ratio"], target))
            if s.get("errors"):
                t.notes.append(f"{side}: {s['errors']} requests failed during the runs: that row is not valid.")
    return t


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5)
    main(parser, measure, table)
