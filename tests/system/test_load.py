"""200 concurrent clients against the real server on loopback: content, previews, listings, uploads.

locust drives the load from a process of its own (``tests/support/load/locustfile.py``; gevent must not patch
pytest's interpreter), headless, for a bounded time, against ``cargohold up`` on local disk with a
seeded dataset of images (so previews are made, then served from the cache) and other files. The test
asserts zero failures (every answer is checked by the locustfile, not only its status) and that
every kind of request ran; latency and throughput are reported, never asserted: they depend on the
machine. The figures go into the test's row of docs/RELIABILITY.md.

``make soak`` runs the same for longer (``CARGOHOLD_LOAD_SECONDS``, 300 there; 20 here).
"""

from __future__ import annotations

import io
import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw

from ..support.api import cli, create_dataset, random_bytes, upload
from ..support.api_server import RunningServer

USERS = 200
SPAWN_RATE = 100
SECONDS = int(os.environ.get("CARGOHOLD_LOAD_SECONDS", "20"))
IMAGES = 300
OTHER_FILES = 60
TASKS = ("content", "preview", "listing", "upload")
LOCUSTFILE = Path(__file__).resolve().parents[1] / "support" / "load" / "locustfile.py"


def seed_image(n: int) -> bytes:
    rng = random.Random(n)
    width, height = rng.choice(((640, 480), (800, 600), (1024, 768), (1280, 720), (480, 640)))
    image = Image.new("RGB", (width, height), (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x, y = rng.randrange(width), rng.randrange(height)
        draw.rectangle((x, y, x + rng.randrange(40, 300), y + rng.randrange(40, 300)),
                       fill=(rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


@pytest.fixture
def load_server(tmp_path: Path) -> Any:
    server = RunningServer(tmp_path / "home", {}).start()
    try:
        yield server
    finally:
        server.stop()


def seed(server: RunningServer) -> tuple[int, list[tuple[int, int, bool]]]:
    files = [(f"img-{n:04d}.jpg", seed_image(n)) for n in range(IMAGES)]
    files += [(f"file-{n:03d}.bin", random_bytes(random.Random(n).randint(1, 512) * 1024, seed=n))
              for n in range(OTHER_FILES)]
    items: list[tuple[int, int, bool]] = []
    with server.client() as client:
        dataset = create_dataset(client, "load")["id"]
        for start in range(0, len(files), 60):
            for result in upload(client, dataset, files[start:start + 60]).json()["results"]:
                item = result["item"]
                items.append((item["id"], item["size"], item["kind"] == "image"))
    assert sum(1 for _, _, image in items if image) == IMAGES
    return dataset, items


def percentile(histogram: dict[int, int], share: float) -> int:
    """The response time (ms, as locust rounds it) under which ``share`` of the requests were answered."""
    total, seen = sum(histogram.values()), 0
    for ms in sorted(histogram):
        seen += histogram[ms]
        if seen >= share * total:
            return ms
    raise ValueError("no requests")


def read_stats(path: Path) -> dict[str, dict[str, Any]]:
    """locust's final statistics (``--json-file``, written after the last user stopped; its CSV files are
    written every few seconds and miss the requests finished while users stop), by request name."""
    out = {}
    for entry in json.loads(path.read_text()):
        histogram = {int(ms): count for ms, count in entry["response_times"].items()}
        out[entry["name"]] = {**entry, "histogram": histogram}
    return out


@pytest.mark.timeout(SECONDS + 150)
@pytest.mark.reliability(kind="load", what="200 concurrent clients: content, previews, listings, uploads", cases=0)
def test_200_concurrent_clients_get_content_previews_listings_and_upload_without_an_error(
        load_server: RunningServer, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    dataset, items = seed(load_server)
    token = cli(load_server, "token", "create", "--name", "load").stdout.strip().splitlines()[-1]
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"token": token, "dataset": dataset, "items": items}))
    plan.chmod(0o600)
    prefix = tmp_path / "locust"
    errors = tmp_path / "errors.json"
    env = {**os.environ, "CARGOHOLD_LOAD_PLAN": str(plan), "CARGOHOLD_LOAD_ERRORS": str(errors)}
    run = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", load_server.url,
         "-u", str(USERS), "-r", str(SPAWN_RATE), "-t", f"{SECONDS}s", "--stop-timeout", "30",
         "--json-file", str(prefix), "--only-summary"],
        env=env, capture_output=True, text=True, timeout=SECONDS + 120, cwd=tmp_path)
    report = f"{errors.read_text()[:6000] if errors.exists() else ''}\n{run.stderr[-3000:]}"
    assert Path(f"{prefix}.json").exists(), f"locust exited {run.returncode}:\n{report}"
    stats = read_stats(Path(f"{prefix}.json"))
    assert set(stats) == set(TASKS), f"every kind of request ran: {sorted(stats)}"
    counts = {name: int(stats[name]["num_requests"]) for name in TASKS}
    failures = {name: int(stats[name]["num_failures"]) for name in TASKS}
    assert all(counts.values()), counts
    assert not any(failures.values()), f"{failures}\n{report}"
    assert run.returncode == 0, f"locust exited {run.returncode}:\n{report}"

    # Every upload counted is in the dataset; the server is still serving and logged no error.
    with load_server.client() as client:
        answer = client.get(f"/datasets/{dataset}")
        assert answer.status_code == 200 and answer.json()["item_count"] == len(items) + counts["upload"]
    log = load_server.log.read_text(errors="replace")
    assert "Traceback" not in log and " 500 " not in log, log[-4000:]

    requests = sum(counts.values())
    every: dict[int, int] = {}
    for name in TASKS:
        for ms, count in stats[name]["histogram"].items():
            every[ms] = every.get(ms, 0) + count
    started = min(float(stats[name]["start_time"]) for name in TASKS)
    ended = max(float(stats[name]["last_request_timestamp"]) for name in TASKS)
    per_task = ", ".join(f"{name} {counts[name]:,} (p50 {percentile(stats[name]['histogram'], 0.5)} ms, "
                         f"p99 {percentile(stats[name]['histogram'], 0.99)} ms)" for name in TASKS)
    result = (f"0 errors in {requests:,} requests in {SECONDS} s; p50 {percentile(every, 0.5)} ms, "
              f"p99 {percentile(every, 0.99)} ms, {requests / (ended - started):,.0f} req/s; {per_task}")
    request.node.user_properties.append(("reliability_cases", requests))
    request.node.user_properties.append(("reliability_result", result))
