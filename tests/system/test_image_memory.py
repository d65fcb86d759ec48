"""Issue 18, finding 4: image work bounded by IMAGE_MEMORY_BUDGET, against a real server. The server's
RSS, with its child processes' (the images Pillow decodes in Python are made in one: media/isolated.py),
is sampled (psutil, every 20 ms) and /healthz timed while the issue's own requests run."""

from __future__ import annotations

import contextlib
import io
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from PIL import Image

from cargohold.media.preview import QUALITIES, PreviewSpec

from ..support.api_server import RunningServer
from ..unit.test_image_budget import rle8_bmp_declaring

MB = 1024 * 1024
BUDGET = 1024 * MB
MARGIN = 400 * MB
"""Over the budget: the server itself (Python, FastAPI, SQLite, libvips: about 150 MB at rest) and what the
allocators keep after a decode ends."""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    running = RunningServer(tmp_path / "home", {"IMAGE_MEMORY_BUDGET": "1g"}).start()
    try:
        yield running
    finally:
        running.stop()


class Watch:
    """The peak RSS of the server and its children together, and /healthz's times, while something runs."""

    def __init__(self, server: RunningServer) -> None:
        assert server.process is not None
        self.process = psutil.Process(server.process.pid)
        self.url = server.url + "/healthz"
        self.peak = 0
        self.child_peak = 0  # the most one child process held
        self.healthz: list[float] = []
        self.stop = threading.Event()

    def __enter__(self) -> Watch:
        self.threads = [threading.Thread(target=self._rss), threading.Thread(target=self._health)]
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()

    def _rss(self) -> None:
        while not self.stop.wait(0.02):
            total = self.process.memory_info().rss
            for child in self.process.children(recursive=True):
                with contextlib.suppress(psutil.NoSuchProcess):
                    rss = child.memory_info().rss
                    total += rss
                    self.child_peak = max(self.child_peak, rss)
            self.peak = max(self.peak, total)

    def _health(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self.stop.wait(0.1):
                started = time.monotonic()
                assert client.get(self.url).status_code == 200
                self.healthz.append(time.monotonic() - started)


def upload(client: httpx.Client, dataset: int, name: str, data: bytes) -> int:
    answer = client.post(f"/datasets/{dataset}/items", files=[("files", (name, data))], timeout=120)
    assert answer.status_code in (200, 201), answer.text
    result = answer.json()["results"][0]
    assert "item" in result, result
    return int(result["item"]["id"])


def at_once(client: httpx.Client, urls: list[str]) -> list[httpx.Response]:
    with ThreadPoolExecutor(len(urls)) as pool:
        return list(pool.map(lambda url: client.get(url, timeout=180), urls))


def check_answers(answers: list[httpx.Response]) -> tuple[int, int, int]:
    """Every answer a 200 image or a 503 that says when to ask again; never a 500. (200s, 503s, 503s
    with the Retry-After header)."""
    for answer in answers:
        assert answer.status_code in (200, 503), (answer.status_code, answer.text[:300])
        if answer.status_code == 503:
            error = answer.json()["error"]
            assert error["code"] == "overloaded" and "IMAGE_MEMORY_BUDGET" in error["message"], error
            assert "ask again in" in error["message"]
            assert answer.headers.get("retry-after", "").isdigit(), answer.headers
        else:
            Image.open(io.BytesIO(answer.content)).load()
    refused = [a for a in answers if a.status_code == 503]
    with_header = [a for a in refused if a.headers.get("retry-after", "").isdigit()]
    return len(answers) - len(refused), len(refused), len(with_header)


def run_case(server: RunningServer, make: Callable[[httpx.Client], list[str]]) -> tuple[Watch, list[httpx.Response]]:
    with server.client() as client:
        urls = make(client)
        with Watch(server) as watch:
            answers = at_once(client, urls)
    return watch, answers


def describe(what: str, watch: Watch, counts: tuple[int, int, int]) -> str:
    ok, refused, with_header = counts
    child = f"; one child at most {watch.child_peak / MB:.0f} MB" if watch.child_peak else ""
    return (f"{what}: {ok} x 200, {refused} x 503 overloaded ({with_header} with Retry-After), no 500; "
            f"peak RSS of the server and its children {watch.peak / MB:.0f} MB (budget 1024 MB + {MARGIN // MB} MB "
            f"margin{child}); "
            f"/healthz: {within_100_ms(watch):.0%} of {len(watch.healthz)} probes within 100 ms, "
            f"slowest {max(watch.healthz) * 1000:.0f} ms")


def within_100_ms(watch: Watch) -> float:
    return sum(1 for t in watch.healthz if t < 0.1) / len(watch.healthz)


def check_bounds(watch: Watch) -> None:
    """Peak RSS (the server's and its children's) under the budget and its margin; /healthz within 100 ms
    for 95 % of the probes and never over 1 s. The bound is what the issue found broken (healthz held 5.9 s
    behind image work), not a speed figure: the two cores here are shared with the test's own threads and
    whatever else runs, and a 250 ms bound failed when other test runs shared the machine (0.27 and 0.46 s;
    the figures themselves are in the reliability report)."""
    assert watch.peak < BUDGET + MARGIN, f"peak RSS {watch.peak / MB:.0f} MB"
    assert watch.healthz
    assert within_100_ms(watch) >= 0.95 and max(watch.healthz) < 1.0, sorted(watch.healthz)[-5:]


@pytest.mark.reliability(kind="attack", what="image work over the memory budget (IMAGE_MEMORY_BUDGET)", cases=4)
def test_four_rle8_bmps_declaring_15000_x_13000_asked_for_64_px_previews_at_once(
        server: RunningServer, request: pytest.FixtureRequest) -> None:
    bomb = rle8_bmp_declaring(15000, 13000, rows=13000)
    assert 1_400_000 < len(bomb) < 1_700_000  # the 1.5 MB

    def make(client: httpx.Client) -> list[str]:
        ds = client.post("/datasets", json={"name": "bmps"}).json()["id"]
        # Four different files (one palette entry changed), so that four decodes run, not one shared.
        at = bomb.index(b"\x00\x00\xff\x00") + 1
        ids = [upload(client, ds, f"b{i}.bmp", bomb[:at] + bytes([i]) + bomb[at + 1:]) for i in range(4)]
        return [f"/items/{i}/preview?w=64&h=64" for i in ids]

    watch, answers = run_case(server, make)
    counts = check_answers(answers)
    request.node.user_properties.append(("reliability_result", describe(
        "4 RLE8 BMPs (1.5 MB, declaring 15000 x 13000) asked at 64 px at once", watch, counts)))
    assert watch.child_peak, "the BMPs were not made in a process of their own"
    check_bounds(watch)


@pytest.mark.reliability(kind="attack", what="image work over the memory budget (IMAGE_MEMORY_BUDGET)", cases=6)
def test_six_196_mp_jpegs_turned_by_exif_asked_as_png_at_once(server: RunningServer,
                                                               request: pytest.FixtureRequest) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    Image.new("RGB", (14000, 14000), (200, 30, 30)).save(buffer, "JPEG", exif=exif)
    photo = buffer.getvalue()

    def make(client: httpx.Client) -> list[str]:
        ds = client.post("/datasets", json={"name": "photos"}).json()["id"]
        # Six different files (bytes after the image's end), six conversions.
        ids = [upload(client, ds, f"p{i}.jpg", photo + b"\0" * i) for i in range(6)]
        return [f"/items/{i}/content?format=png" for i in ids]

    watch, answers = run_case(server, make)
    counts = check_answers(answers)
    request.node.user_properties.append(("reliability_result", describe(
        "6 JPEGs of 196 MP with EXIF orientation 6 asked ?format=png at once", watch, counts)))
    check_bounds(watch)


@pytest.mark.reliability(kind="attack", what="preview sizes: variants per item", cases=371)
def test_371_distinct_preview_sizes_make_a_few_previews(server: RunningServer, request: pytest.FixtureRequest) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (3000, 2000), (10, 120, 200)).save(buffer, "JPEG")
    sizes = [(w, h) for w in range(16, 2048, 47) for h in range(16, 2048, 233)][:371]
    assert len(set(sizes)) == 371
    boxes = {(s.width, s.height) for s in (PreviewSpec(w, h).snapped() for w, h in sizes)}
    with server.client() as client:
        ds = client.post("/datasets", json={"name": "sizes"}).json()["id"]
        item = upload(client, ds, "big.jpg", buffer.getvalue())
        etags: set[str] = set()
        for w, h in sizes:
            answer = client.get(f"/items/{item}/preview", params={"w": w, "h": h})
            assert answer.status_code == 200, answer.text
            shown = Image.open(io.BytesIO(answer.content)).size
            assert shown[0] >= min(w, 3000 * h // 2000) - 1 or shown[1] >= min(h, 2000 * w // 3000) - 1
            etags.add(answer.headers["etag"])
        tiers = {t["name"]: t for t in client.get("/cache").json()["tiers"]}
    made: Any = tiers["previews"]["entries"]
    assert made == len(boxes) == len(etags) and made <= 60, (made, len(boxes), len(etags))
    request.node.user_properties.append(("reliability_result", (
        f"371 distinct sizes of one 3000 x 2000 JPEG: {made} previews made (boxes snapped: longer side one of "
        "32...2048, shorter side an eighth of it); at most 105 boxes per fit and format")))


@pytest.mark.reliability(kind="attack", what="preview sizes: variants per item", cases=201)
def test_qualities_1_to_100_make_7_previews(server: RunningServer, request: pytest.FixtureRequest) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (800, 600), (200, 120, 10)).save(buffer, "JPEG")
    with server.client() as client:
        ds = client.post("/datasets", json={"name": "qualities"}).json()["id"]
        item = upload(client, ds, "q.jpg", buffer.getvalue())
        etags: dict[int, str] = {}
        for q in range(1, 101):
            answer = client.get(f"/items/{item}/preview", params={"w": 64, "h": 64, "q": q})
            assert answer.status_code == 200 and answer.headers["content-type"] == "image/jpeg", answer.text
            etags[q] = answer.headers["etag"]
        made = {t["name"]: t for t in client.get("/cache").json()["tiers"]}["previews"]["entries"]
        assert made == len(set(etags.values())) == len(QUALITIES), (made, len(set(etags.values())))
        assert etags[71] == etags[75] == etags[80] != etags[81], "q is snapped up to the next of QUALITIES"
        pngs = {client.get(f"/items/{item}/preview", params={"w": 64, "h": 64, "format": "png", "q": q})
                .headers["etag"] for q in range(1, 101)}
        assert len(pngs) == 1
        # A URL signed with the q asked verifies, and answers the snapped preview.
        signed = client.post(f"/items/{item}/sign", json={"expires_in": 600, "preview": {"w": 64, "h": 64, "q": 75}})
        url = signed.json()["url"]
        assert "q=75" in url, url
        previews = {t["name"]: t for t in client.get("/cache").json()["tiers"]}["previews"]["entries"]
    with httpx.Client(timeout=30) as anonymous:
        answer = anonymous.get(url)
    assert answer.status_code == 200 and answer.headers["etag"] == etags[80], answer.text
    assert previews == len(QUALITIES) + 1
    request.node.user_properties.append(("reliability_result", (
        f"q=1..100 of one JPEG at 64 px: {made} previews made (q snapped up to one of "
        f"{', '.join(map(str, QUALITIES))}); q=1..100 as PNG: 1 (lossless, q100); a URL signed with q=75 "
        "verifies and answers q80's preview (same ETag)")))
