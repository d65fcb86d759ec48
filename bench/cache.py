"""The caching proxy (issue 5): cached bytes vs nginx, previews vs bare pyvips, previews vs thumbor.

Everything runs in one go on 127.0.0.1. The bench makes its test images itself (deterministic: seeded noise
and gradients that compress like a photo) and uploads them, with one 100 KiB file of seeded random bytes,
into a real ``cargohold up`` process (tests/support/api_server.py) on S3: a moto server started here, the server
pointed at it with ``STORAGE_PROVIDER=minio``, so content is served from the storage cache tier. Three
comparisons, each side by side with its reference and the ratio:

1. Serving cached bytes, requests/s with wrk (1 thread, 32 connections, ``--duration`` s per run, ``--runs``
   runs alternating cargohold / nginx, medians; latency p50 / p99 from ``wrk --latency``):
   (a) the 100 KiB item's ``/content`` and (b) a 256 px JPEG preview of the 12 MP JPEG (``/preview?w=256&
   h=256&fit=contain&format=jpeg&q=80``), both through a SIGNED URL (``POST /items/{id}/sign``; no token, as
   a browser loads an image), vs nginx serving the same bytes (fetched from cargohold) from disk. One
   request before the runs fills the tier (storage, previews); the tiers' hit counters are read before and
   after to show the runs were hits. nginx: 1 worker, ``sendfile on``, ``tcp_nopush off``, ``access_log
   off``, ``keepalive_requests`` high (wrk keeps its 32 connections), ``daemon off``, started with ``-p
   <tmp> -c <conf>`` on a free loopback port. On 2+ CPUs wrk is pinned to CPU 0 and the server measured
   (every thread of cargohold; nginx master and worker) to CPU 1: one core each. Also printed: the
   server's CPU µs per request, and moto's CPU seconds during the cargohold runs (~0 when served from
   the cache). Target: cargohold >= 0.5 of nginx.
2. Preview generation in this process, one thread: ``cargohold.media.preview.make_preview(source, dest,
   PreviewSpec(256, 256, "contain", "jpeg", 80), IMAGE_MAX_PIXELS)`` vs the plain library call
   ``pyvips.Image.thumbnail(path, 256, height=256).jpegsave(dest, Q=80)``, file to file, on the same
   images, ``--preview-runs`` runs alternating the order per run, median ms per image. ``VIPS_CONCURRENCY=1``
   (also for the cargohold server, which inherits this environment) and libvips' operation cache off
   (``pyvips.cache_set_max(0)``, as a server should run it) for both sides. Ratio = bare ms / ours ms;
   target >= 0.9 (ours at most ~10% slower). Also printed: output size and mean |difference| per pixel
   between the two outputs (a check that both made the same picture).
3. Previews through HTTP, every request a miss: cargohold's ``GET /items/{id}/preview?...`` (admin token)
   after ``DELETE /api/v1/cache/previews`` before each request (untimed; the original stays in the storage
   tier, filled by an untimed warm-up, so both sides read the original from local disk) vs thumbor (its own
   venv, ``make bench-tools``; file loader rooted at the images folder, no storage, no result storage,
   ``ENGINE_THREADPOOL_SIZE=0``, ``ALLOW_ANIMATED_GIFS=False``: a GIF's first frame, as pyvips' thumbnail
   takes) answering ``/unsafe/fit-in/256x256/filters:format(jpeg):quality(80)/<file>`` (for a GIF thumbor
   applies no filter and answers a GIF). One httpx client with keep-alive for both, sequential requests,
   ``--preview-runs`` runs alternating, median ms per image. Ratio = thumbor ms / cargohold ms; target > 1
   (cargohold faster). Without the thumbor venv this part prints how to make it and is skipped.

Images: JPEG 12 MP (4000x3000, Q 90), PNG 12 MP (8-bit RGB), TIFF 12 MP (uncompressed), PNG 12 MP 16-bit
RGB, JPEG 12 MP CMYK (with an ICC profile), GIF 480x360 24 frames. Any cargohold part whose code or route
is missing prints "not available" with the reason; the references are measured all the same. It reports,
it never fails on a missed target. ``--quick``: a smoke run of about a minute (1 run of 2 s, 2 preview runs).

    .venv/bin/python bench/cache.py [--runs 3] [--duration 5] [--preview-runs 5] [--quick] [--no-pin]
                                    [--json PATH]
"""

from __future__ import annotations

import os

# libvips reads this when it starts: one worker thread, here and in the cargohold server started below.
os.environ["VIPS_CONCURRENCY"] = "1"

import argparse
import contextlib
import importlib
import json
import math
import random
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import pyvips  # type: ignore[import-untyped,unused-ignore]
from _harness import (
    CONNECTIONS,
    REPO,
    THUMBOR_VENV,
    KiB,
    Row,
    Table,
    Target,
    WrkSide,
    api_client,
    at_least,
    log,
    main,
    minio_env,
    ms,
    nginx_version,
    pin,
    pinnable,
    started,
    static_nginx,
    summarize_wrk,
    timed_ms,
    wrk_figure,
    wrk_rounds,
    wrk_version,
    wrk_warm_up,
)
from PIL import Image as PILImage

from cargohold.sdk.client import Client
from tests.support.api_server import RunningServer
from tests.support.servers import Server, free_port, moto

SERVE_TARGET = 0.5
LIBRARY_TARGET = 0.9
THUMBOR_TARGET = 1.0
PREVIEW: dict[str, str | int] = {"w": 256, "h": 256, "fit": "contain", "format": "jpeg", "q": 80}
MAX_PIXELS = 200_000_000
"""``IMAGE_MAX_PIXELS``'s default: what the server passes to ``make_preview``."""
THUMBOR_PATH = "/unsafe/fit-in/256x256/filters:format(jpeg):quality(80)/{name}"
BUCKET_PREFIX = "cachebench"
CONTENT_FILE = "item-100k.bin"
PREVIEW_FILE = "preview-256.jpg"
GENERATE_SUM = re.compile(r'^cargohold_image_generate_seconds_sum\{what="preview"\} (\S+)$', re.M)


class NotAvailable(Exception):
    """A cargohold part that cannot run yet: its code or route is missing, or it answered an error."""


def answer_error(what: str, answer: httpx.Response) -> NotAvailable:
    return NotAvailable(f"{what} answered {answer.status_code}: {answer.text[:300].strip()}")


# --- the test images ----------------------------------------------------------------------------------------


@dataclass
class TestImage:
    name: str
    label: str
    path: Path
    width: int
    height: int
    item_id: int | None = None

    @property
    def size(self) -> int:
        return self.path.stat().st_size


def photo(width: int, height: int, seed: int) -> Any:
    """A photo-like 8-bit sRGB image: blurred colour noise upscaled (structure), a gradient, fine grain."""
    small = [pyvips.Image.gaussnoise(width // 16, height // 16, sigma=60, mean=128, seed=seed + i).gaussblur(1.2)
             for i in range(3)]
    structure = small[0].bandjoin(small[1:]).resize(16, kernel="linear")
    xy = pyvips.Image.xyz(width, height)
    gradient = xy[0] * (80 / width) - xy[1] * (60 / height)
    grain = pyvips.Image.gaussnoise(width, height, sigma=5, mean=0, seed=seed + 9)
    picture = (structure + gradient + grain - 10).cast("uchar").copy(interpretation="srgb")
    return picture.copy_memory()


def animated_gif(path: Path, width: int, height: int, frames: int, seed: int) -> None:
    """A GIF of ``frames`` frames: smooth noise through a fixed 256-colour palette, shifted per frame.
    Written with Pillow from palette indices: nothing to quantize, so it takes a fraction of a second."""
    index = pyvips.Image.gaussnoise(width // 8, height // 8, sigma=50, mean=128, seed=seed).resize(8, kernel="linear")
    palette = [c for v in range(256) for c in (v, (v * 7) % 256, 255 - v)]
    images = []
    for i in range(frames):
        shifted = ((index.wrap(x=i * 20, y=i * 10) + i * 4) % 256).cast("uchar")
        image = PILImage.frombytes("P", (width, height), shifted.write_to_memory())
        image.putpalette(palette)
        images.append(image)
    images[0].save(path, save_all=True, append_images=images[1:], duration=80, loop=0)


def make_images(folder: Path) -> list[TestImage]:
    folder.mkdir(parents=True, exist_ok=True)
    w, h = 4000, 3000
    rgb = photo(w, h, seed=20261101)
    made = []

    def add(name: str, label: str, write: Callable[[str], None], width: int = w, height: int = h) -> None:
        path = folder / name
        write(str(path))
        made.append(TestImage(name, label, path, width, height))

    add("photo.jpg", "JPEG 12 MP", lambda p: rgb.jpegsave(p, Q=90))
    add("photo.png", "PNG 12 MP", lambda p: rgb.pngsave(p))
    add("photo.tif", "TIFF 12 MP raw", lambda p: rgb.tiffsave(p))
    add("photo16.png", "PNG 12 MP 16-bit", lambda p: (rgb.cast("ushort") * 257).cast("ushort")
        .copy(interpretation="rgb16").pngsave(p))
    add("cmyk.jpg", "JPEG 12 MP CMYK", lambda p: rgb.icc_export(output_profile="cmyk").jpegsave(p, Q=90))
    add("anim.gif", "GIF 480x360 x24", lambda p: animated_gif(Path(p), 480, 360, 24, seed=7), 480, 360)
    return made


def content_bytes() -> bytes:
    return random.Random(20261105).randbytes(100 * KiB)


def decoded(source: Path | bytes) -> Any:
    return pyvips.Image.new_from_buffer(source, "") if isinstance(source, bytes) else pyvips.Image.new_from_file(
        str(source))


def check_preview(data: Path | bytes, what: str, gif_too: bool = False) -> tuple[int, int]:
    """Width and height of a preview; raises if it is not a JPEG (or a GIF, if allowed) within the 256 px box."""
    raw = data.read_bytes() if isinstance(data, Path) else data
    if not raw.startswith(b"\xff\xd8") and not (gif_too and raw.startswith(b"GIF8")):
        raise RuntimeError(f"{what}: not a JPEG: {raw[:40]!r}")
    image = decoded(raw)
    if max(image.width, image.height) > 256 or image.width < 1:
        raise RuntimeError(f"{what}: {image.width}x{image.height}, not within 256x256")
    return int(image.width), int(image.height)


def mean_difference(a: Path | bytes, b: Path | bytes) -> float:
    """Mean |a - b| per pixel and band (0-255) of two 8-bit pictures, over the area both cover."""
    x, y = decoded(a), decoded(b)
    x, y = (i.colourspace("srgb") if i.interpretation != "srgb" else i for i in (x, y))
    x, y = (i[:3] if i.bands > 3 else i for i in (x, y))
    width, height = min(x.width, y.width), min(x.height, y.height)
    return float((x.crop(0, 0, width, height) - y.crop(0, 0, width, height)).abs().avg())


# --- thumbor -----------------------------------------------------------------------------------------------

THUMBOR_CONF = """\
LOADER = "thumbor.loaders.file_loader"
FILE_LOADER_ROOT_PATH = {root!r}
STORAGE = "thumbor.storages.no_storage"
RESULT_STORAGE = None
ALLOW_UNSAFE_URL = True
QUALITY = 80
ENGINE_THREADPOOL_SIZE = 0
ALLOW_ANIMATED_GIFS = False
"""


def thumbor_version() -> str | None:
    python = THUMBOR_VENV / "bin" / "python"
    if not (THUMBOR_VENV / "bin" / "thumbor").exists():
        return None
    code = "import importlib.metadata as m; print(m.version('thumbor'), m.version('pillow'))"
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True)
    if out.returncode != 0:
        return None
    thumbor, pillow = out.stdout.split()
    return f"{thumbor} (Pillow {pillow})"


def thumbor(workdir: Path, root: Path) -> Server:
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "thumbor.conf"
    conf.write_text(THUMBOR_CONF.format(root=str(root)))
    port = free_port()
    command = [str(THUMBOR_VENV / "bin" / "thumbor"), "-i", "127.0.0.1", "-p", str(port), "-c", str(conf),
               "-l", "warning"]
    return Server("thumbor", command, port, "/healthcheck", workdir)


# --- cargohold ---------------------------------------------------------------------------------------------


@dataclass
class Cargohold:
    server: RunningServer
    http: httpx.Client
    items: dict[str, int] = field(default_factory=dict)

    def sign(self, item_id: int, preview: dict[str, Any] | None = None) -> str:
        body: dict[str, Any] = {"expires_in": 3600}
        if preview is not None:
            body["preview"] = preview
        answer = self.http.post(f"/items/{item_id}/sign", json=body)
        if answer.status_code != 200:
            raise answer_error(f"POST /items/{item_id}/sign {json.dumps(body)}", answer)
        return urljoin(self.server.url, str(answer.json()["url"]))

    def tiers(self) -> dict[str, dict[str, Any]] | None:
        answer = self.http.get("/cache")
        if answer.status_code != 200:
            return None
        return {tier["name"]: tier for tier in answer.json()["tiers"]}

    def clear(self, tier: str) -> None:
        answer = self.http.delete(f"/cache/{tier}")
        if answer.status_code != 200:
            raise answer_error(f"DELETE /cache/{tier}", answer)

    def preview(self, item_id: int) -> httpx.Response:
        return self.http.get(f"/items/{item_id}/preview", params=PREVIEW)

    def generate_seconds(self) -> float | None:
        """The server's own total of preview-making time (``/metrics``), or None without it."""
        answer = self.http.get(self.server.url + "/metrics")
        found = GENERATE_SUM.search(answer.text) if answer.status_code == 200 else None
        return float(found.group(1)) if found else None


def counter_delta(before: dict[str, Any] | None, after: dict[str, Any] | None, tier: str, key: str) -> int | None:
    if not before or not after or tier not in before or tier not in after:
        return None
    return int(after[tier][key]) - int(before[tier][key])


def start_cargohold(stack: contextlib.ExitStack[Any], tmp: Path, moto_url: str, images: list[TestImage],
                    content: Path) -> Cargohold:
    server = started(stack, RunningServer(tmp / "home", minio_env(moto_url, BUCKET_PREFIX)))
    assert server.process is not None
    log(f"cargohold pid {server.process.pid} on {server.url}, S3 on moto {moto_url}")
    http = stack.enter_context(api_client(server, 120))
    api = Cargohold(server, http)
    start = time.perf_counter()
    with Client(server.url, server.token, timeout=300) as sdk:
        dataset = sdk.create_dataset(f"cache-bench-{os.getpid()}")
        for name, path in [(CONTENT_FILE, content), *((i.name, i.path) for i in images)]:
            result = sdk.upload(dataset, [(name, path)])[0]
            api.items[name] = int(result["item"]["id"])
    for image in images:
        image.item_id = api.items[image.name]
    total = sum(i.size for i in images) + content.stat().st_size
    log(f"uploaded {len(api.items)} items ({total / 1e6:.0f} MB) in {time.perf_counter() - start:.1f} s")
    return api


# --- part 1: serving cached bytes --------------------------------------------------------------------------


def part_serving(args: argparse.Namespace, tmp: Path, api: Cargohold | None, why_not: str | None,
                 images: list[TestImage], content: Path, moto_pid: int | None) -> dict[str, Any]:
    pin_cpus = not args.no_pin and pinnable()
    www = tmp / "www"
    www.mkdir()
    targets: dict[str, dict[str, Any]] = {}
    urls: dict[str, str | None] = {"content": None, "preview": None}
    notes: dict[str, str] = {}
    reference = {"content": content.read_bytes(), "preview": b""}
    if api is None:
        notes = {"content": why_not or "", "preview": why_not or ""}
    else:
        jpeg = next(i for i in images if i.name == "photo.jpg")
        for what, item_id, preview in (("content", api.items[CONTENT_FILE], None),
                                       ("preview", jpeg.item_id, PREVIEW)):
            assert item_id is not None
            try:
                url = api.sign(item_id, preview)
                warm = httpx.get(url, timeout=120)  # no token: the signature alone opens it
                if warm.status_code != 200:
                    raise answer_error(f"GET signed {what} URL", warm)
                if what == "content" and warm.content != reference["content"]:
                    raise NotAvailable(f"the signed content URL sent {len(warm.content)} bytes, not the item's")
                if what == "preview":
                    check_preview(warm.content, "signed preview")
                    reference["preview"] = warm.content
                urls[what] = url
            except NotAvailable as exc:
                notes[what] = str(exc)
    if not reference["preview"]:
        # No preview from cargohold: nginx serves bare pyvips' preview of the same image instead.
        jpeg_path = next(i.path for i in images if i.name == "photo.jpg")
        reference["preview"] = pyvips.Image.thumbnail(str(jpeg_path), 256, height=256).jpegsave_buffer(Q=80)
    (www / CONTENT_FILE).write_bytes(reference["content"])
    (www / PREVIEW_FILE).write_bytes(reference["preview"])
    tmp.chmod(0o755)  # nginx's worker runs as another user (nobody) when started by root
    web = static_nginx(tmp / "nginx", www).start()
    try:
        assert web.process is not None
        for what, file in (("content", CONTENT_FILE), ("preview", PREVIEW_FILE)):
            answer = httpx.get(f"{web.url}/{file}")
            if answer.status_code != 200 or answer.content != reference[what]:
                raise RuntimeError(f"nginx answered {answer.status_code} with {len(answer.content)} bytes for "
                                   f"{file}, not its {len(reference[what])} bytes: see {tmp / 'nginx'}")
        for what, file in (("content", CONTENT_FILE), ("preview", PREVIEW_FILE)):
            size = len(reference[what])
            log(f"  {what} ({size / KiB:.1f} KiB): wrk 1 thread, {CONNECTIONS} connections, {args.duration:g} s x "
                f"{args.runs} runs per side")
            sides = [WrkSide("nginx", f"{web.url}/{file}", [web.process.pid])]
            signed = urls[what]
            if api is not None and api.server.process is not None and signed is not None:
                sides.insert(0, WrkSide("cargohold", signed, [api.server.process.pid]))
            wrk_warm_up(sides, args.duration, pin_cpus)
            before = api.tiers() if api is not None else None
            results = wrk_rounds(sides, args.runs, args.duration, pin_cpus, moto_pid if len(sides) == 2 else None)
            after = api.tiers() if api is not None else None
            target: dict[str, Any] = {"bytes": size, **{name: summarize_wrk(r) for name, r in results.items()}}
            if "cargohold" in target:
                ours, ref = target["cargohold"], target["nginx"]
                target["ratio"] = ours["rps"] / ref["rps"]
                tier = "storage" if what == "content" else "previews"
                target["tier"] = tier
                target["tier_hits"] = counter_delta(before, after, tier, "hits")
                target["tier_misses"] = counter_delta(before, after, tier, "misses")
            else:
                target["cargohold_not_available"] = notes.get(what, "")
            targets[what] = target
    finally:
        web.stop()
        if api is not None and api.server.process is not None and pin_cpus:
            pin(api.server.process.pid, set(range(os.cpu_count() or 1)))
    return {"pinned": pin_cpus, "connections": CONNECTIONS, "duration_s": args.duration, "runs": args.runs,
            "target": SERVE_TARGET, "targets": targets}


# --- part 2: preview generation in this process ------------------------------------------------------------


def load_make_preview() -> tuple[Callable[[Path, Path], None] | None, str | None]:
    try:
        module = importlib.import_module("cargohold.media.preview")
        spec = module.PreviewSpec(width=256, height=256, fit="contain", format="jpeg", quality=80)
        make_preview = module.make_preview
    except (ImportError, AttributeError, TypeError) as exc:
        return None, f"cargohold.media.preview: {type(exc).__name__}: {exc}"

    def ours(source: Path, dest: Path) -> None:
        make_preview(source, dest, spec, MAX_PIXELS)

    return ours, None


def bare(source: Path, dest: Path) -> None:
    pyvips.Image.thumbnail(str(source), 256, height=256).jpegsave(str(dest), Q=80)


def alternate(sides: dict[str, Callable[[TestImage], float]], images: list[TestImage], rows: dict[str, dict[str, Any]],
              runs: int, label: str) -> None:
    """``runs`` rounds over the images; per image every side once, the order of the sides swapped each round.
    A side whose untimed first try failed on an image (``{side}_error`` in its row) skips that image. Each row
    gets ``{side}_ms`` (the median) and ``{side}_runs_ms``."""
    times: dict[str, dict[str, list[float]]] = {name: {i.name: [] for i in images} for name in sides}
    order = list(sides)
    for run in range(1, runs + 1):
        start = time.perf_counter()
        for image in images:
            for name in order:
                if f"{name}_error" not in rows[image.name]:
                    times[name][image.name].append(sides[name](image))
        order.reverse()
        log(f"    {label} run {run}/{runs}: {time.perf_counter() - start:.1f} s")
    for name, per_image in times.items():
        for image_name, samples in per_image.items():
            if samples:
                rows[image_name][f"{name}_ms"] = statistics.median(samples)
                rows[image_name][f"{name}_runs_ms"] = samples


def geomean(values: list[float]) -> float | None:
    return math.exp(statistics.fmean(math.log(v) for v in values)) if values else None


def part_library(args: argparse.Namespace, tmp: Path, images: list[TestImage]) -> dict[str, Any]:
    out = tmp / "previews"
    out.mkdir()
    ours, why_not = load_make_preview()
    sides: dict[str, Callable[[TestImage], float]] = {
        "bare": lambda i: timed_ms(lambda: bare(i.path, out / f"bare-{i.name}.jpg")),
    }
    if ours is not None:
        make = ours
        sides = {"cargohold": lambda i: timed_ms(lambda: make(i.path, out / f"ours-{i.name}.jpg")), **sides}
    per_image: dict[str, dict[str, Any]] = {}
    for image in images:  # untimed: warms the page cache and libvips; checks both outputs
        row: dict[str, Any] = {}
        for name, run in sides.items():
            try:
                run(image)
                prefix = "ours" if name == "cargohold" else "bare"
                row[f"{name}_px"] = check_preview(out / f"{prefix}-{image.name}.jpg", f"{name} {image.name}")
            except Exception as exc:  # a failing image is reported, the others still measured
                row[f"{name}_error"] = f"{type(exc).__name__}: {exc}"
        if "cargohold_px" in row and "bare_px" in row:
            row["mean_abs_diff"] = mean_difference(out / f"ours-{image.name}.jpg", out / f"bare-{image.name}.jpg")
        per_image[image.name] = row
    alternate(sides, images, per_image, args.preview_runs, "preview generation")
    ratios = []
    for row in per_image.values():
        if "cargohold_ms" in row and "bare_ms" in row:
            row["ratio"] = row["bare_ms"] / row["cargohold_ms"]
            ratios.append(row["ratio"])
    result: dict[str, Any] = {"runs": args.preview_runs, "target": LIBRARY_TARGET, "images": per_image,
                              "vips_concurrency": pyvips.concurrency_get(), "max_pixels": MAX_PIXELS}
    if ours is None:
        result["cargohold_not_available"] = why_not
    else:
        result["geomean_ratio"] = geomean(ratios)
    return result


# --- part 3: previews through HTTP, cargohold (miss) vs thumbor --------------------------------------------


def milliseconds_of(fetch: Callable[[TestImage], tuple[float, bytes]]) -> Callable[[TestImage], float]:
    return lambda image: fetch(image)[0]


def part_thumbor(args: argparse.Namespace, tmp: Path, api: Cargohold | None, why_not: str | None,
                 images: list[TestImage], library: dict[str, Any]) -> dict[str, Any]:
    version = thumbor_version()
    rows: dict[str, dict[str, Any]] = {i.name: {} for i in images}
    result: dict[str, Any] = {"runs": args.preview_runs, "target": THUMBOR_TARGET, "thumbor_version": version,
                              "images": rows}
    http = httpx.Client(timeout=120)
    fetchers: dict[str, Callable[[TestImage], tuple[float, bytes]]] = {}
    server_ms: dict[str, list[float]] = {}  # cargohold's own make_preview time per request (/metrics)
    thumbor_server: Server | None = None
    try:
        if api is None:
            result["cargohold_not_available"] = why_not
        else:
            def via_cargohold(image: TestImage) -> tuple[float, bytes]:
                assert image.item_id is not None and api is not None
                api.clear("previews")  # untimed: this request is a miss
                generated = api.generate_seconds()  # untimed too
                start = time.perf_counter()
                answer = api.preview(image.item_id)
                elapsed = (time.perf_counter() - start) * 1e3
                if answer.status_code != 200:
                    raise RuntimeError(f"GET /items/{image.item_id}/preview answered {answer.status_code}: "
                                       f"{answer.text[:300].strip()}")
                after = api.generate_seconds()
                if generated is not None and after is not None:
                    server_ms.setdefault(image.name, []).append((after - generated) * 1e3)
                return elapsed, answer.content

            try:
                api.clear("previews")
                fetchers["cargohold"] = via_cargohold
            except NotAvailable as exc:
                result["cargohold_not_available"] = str(exc)
        if version is None:
            result["thumbor_not_available"] = (f"no thumbor venv at {THUMBOR_VENV.relative_to(REPO)}: "
                                               "make it with `make bench-tools`")
        else:
            thumbor_server = thumbor(tmp / "thumbor", images[0].path.parent).start()
            base = thumbor_server.url

            def via_thumbor(image: TestImage) -> tuple[float, bytes]:
                start = time.perf_counter()
                answer = http.get(base + THUMBOR_PATH.format(name=image.name))
                elapsed = (time.perf_counter() - start) * 1e3
                if answer.status_code != 200:
                    raise RuntimeError(f"thumbor answered {answer.status_code}: {answer.text[:300].strip()}")
                return elapsed, answer.content

            fetchers["thumbor"] = via_thumbor
        if not fetchers:
            return result
        # Untimed: one request per side and image, its answer checked. For cargohold it also puts the original
        # into the storage tier (fetched from moto once), where the timed misses then read it.
        for image in images:
            row = rows[image.name]
            for name, fetch in fetchers.items():
                try:
                    _, data = fetch(image)
                    # thumbor applies no filter to a GIF, format(jpeg) included: it answers a GIF (first frame).
                    row[f"{name}_px"] = check_preview(data, name, gif_too=name == "thumbor")
                    row[f"{name}_format"] = "gif" if data.startswith(b"GIF8") else "jpeg"
                    bare_file = tmp / "previews" / f"bare-{image.name}.jpg"
                    if bare_file.exists():
                        row[f"{name}_diff_vs_bare"] = mean_difference(data, bare_file)
                except (RuntimeError, pyvips.Error) as exc:
                    row[f"{name}_error"] = str(exc)
        sides = {name: milliseconds_of(fetch) for name, fetch in fetchers.items()}
        before = api.tiers() if api is not None and "cargohold" in sides else None
        server_ms.clear()  # the warm-up's requests also fetched the originals
        alternate(sides, images, rows, args.preview_runs, "previews through HTTP")
        after = api.tiers() if before is not None and api is not None else None
        if before is not None:
            result["tier_counts_during_runs"] = {
                tier: {k: counter_delta(before, after, tier, k) for k in ("hits", "misses")} for tier in before
            }
        ratios = []
        for name, row in rows.items():
            if server_ms.get(name):
                row["cargohold_generate_ms"] = statistics.median(server_ms[name])
            bare_ms = library["images"].get(name, {}).get("bare_ms")
            if bare_ms is not None:
                row["bare_in_process_ms"] = bare_ms
            if "cargohold_ms" in row and "thumbor_ms" in row:
                row["ratio"] = row["thumbor_ms"] / row["cargohold_ms"]
                ratios.append(row["ratio"])
        if ratios:
            result["geomean_ratio"] = geomean(ratios)
    finally:
        http.close()
        if thumbor_server is not None:
            thumbor_server.stop()
    return result


# --- the run -----------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    began = time.perf_counter()
    pyvips.cache_set_max(0)
    pyvips.concurrency_set(1)
    results: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
        "versions": {"nginx": nginx_version(), "wrk": wrk_version(), "thumbor": thumbor_version(),
                     "libvips": f"{pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)}",
                     "pyvips": pyvips.__version__},
    }
    if results["versions"]["thumbor"] is None:
        log(f"thumbor: no venv at {THUMBOR_VENV.relative_to(REPO)} (make it with `make bench-tools`); part 3 "
            "measures cargohold alone")
    if results["load_average_at_start"][0] > 0.5:
        log(f"note: load average {results['load_average_at_start'][0]:.2f} at start: something else is running, "
            "the figures will show it")
    with tempfile.TemporaryDirectory(prefix="cargohold-cache-bench-") as tmp_name, contextlib.ExitStack() as stack:
        tmp = Path(tmp_name)
        made = time.perf_counter()
        images = make_images(tmp / "images")
        content = tmp / CONTENT_FILE
        content.write_bytes(content_bytes())
        log(f"images made in {time.perf_counter() - made:.1f} s: " +
            ", ".join(f"{i.name} {i.size / 1e6:.1f} MB" for i in images))
        results["images"] = {i.name: {"label": i.label, "bytes": i.size, "width": i.width, "height": i.height}
                             for i in images}

        api: Cargohold | None = None
        why_not: str | None = None
        moto_pid: int | None = None
        try:
            s3 = started(stack, moto(tmp / "moto"))
            assert s3.process is not None
            moto_pid = s3.process.pid
            api = start_cargohold(stack, tmp, s3.url, images, content)
        except (RuntimeError, httpx.HTTPError, OSError) as exc:
            why_not = f"cargohold did not start or take the uploads: {type(exc).__name__}: {exc}"[:600]
            log(why_not)

        log("\n1. serving cached bytes: cargohold (signed URL) vs nginx")
        results["serving"] = part_serving(args, tmp, api, why_not, images, content, moto_pid)

        log("\n2. preview generation in this process: cargohold's make_preview vs bare pyvips")
        library = part_library(args, tmp, images)
        results["preview_library"] = library

        log("\n3. previews through HTTP, every request a miss: cargohold vs thumbor")
        results["preview_http"] = part_thumbor(args, tmp, api, why_not, images, library)
        if api is not None:
            results["cache_tiers_at_end"] = api.tiers()
    results["wall_s"] = time.perf_counter() - began
    results["load_average_at_end"] = os.getloadavg()
    return results


# --- the report --------------------------------------------------------------------------------------------


def served(side: dict[str, Any]) -> str:
    return (f"p50 / p99 {side['p50_ms']:.2f} / {side['p99_ms']:.2f} ms, server CPU "
            f"{side['server_cpu_us_per_request']:.0f} µs/request, busy {side['server_cpu_share']:.0%}")


def report(results: dict[str, Any]) -> None:
    v = results["versions"]
    print(f"\n{results['cpus']} CPUs, load average at start {results['load_average_at_start'][0]:.2f} / at end "
          f"{results['load_average_at_end'][0]:.2f} (1 min; other work on the machine shows in the figures), wall time "
          f"{results['wall_s']:.0f} s; nginx {v['nginx']}, wrk {v['wrk']}, libvips {v['libvips']} (pyvips "
          f"{v['pyvips']}), thumbor {v['thumbor'] or 'not installed'}")

    serving = results["serving"]
    print(f"\n1. Serving cached bytes: requests/s, median of {serving['runs']} alternating wrk runs of "
          f"{serving['duration_s']:g} s (1 thread, {serving['connections']} connections); "
          + ("wrk on CPU 0, server on CPU 1" if serving["pinned"] else "no CPU pinning"))
    for what, t in serving["targets"].items():
        size, ref = f"{t['bytes'] / KiB:.1f} KiB", t["nginx"]
        if "cargohold" not in t:
            print(f"  {what} {size}: nginx {served(ref)}; cargohold not available: {t['cargohold_not_available']}")
            continue
        ours, hits = t["cargohold"], t["tier_hits"]
        counted = (f"{t['tier']} tier: {hits:,} hits, {t['tier_misses']} misses counted for {ours['requests']:,} "
                   "timed requests") if hits is not None else "tier counters not available (GET /api/v1/cache)"
        print(f"  {what} {size}: cargohold {served(ours)}; nginx {served(ref)}\n    {counted}; moto CPU during the "
              f"cargohold runs {ours['moto_cpu_s']:.2f} s; errors {ours['errors']} / {ref['errors']}")

    lib = results["preview_library"]
    print(f"\n2. Preview generation in this process, 256x256 contain JPEG q80, median ms of {lib['runs']} alternating "
          f"runs; VIPS_CONCURRENCY={lib['vips_concurrency']}, libvips operation cache off")
    print("   cargohold = make_preview(source, dest, PreviewSpec, max_pixels); bare = Image.thumbnail(path, 256, "
          "height=256).jpegsave(dest, Q=80)")
    header = (f"{'image':<20} {'MB':>6} {'cargohold ms':>12} {'bare ms':>8} {'ratio':>6} {'target':>7}  "
              f"{'output px':>10}  {'mean |diff|':>11}")
    print(header)
    print("-" * len(header))
    images = results["images"]
    for name, row in lib["images"].items():
        info = images[name]
        ours = f"{row['cargohold_ms']:.1f}" if "cargohold_ms" in row else "n/a"
        bare_ms = f"{row['bare_ms']:.1f}" if "bare_ms" in row else "error"
        ratio = f"{row['ratio']:.2f}" if "ratio" in row else ""
        px = row.get("cargohold_px") or row.get("bare_px")
        size = f"{px[0]}x{px[1]}" if px else ""
        if "cargohold_px" in row and "bare_px" in row and tuple(row["cargohold_px"]) != tuple(row["bare_px"]):
            size = f"{size} vs {row['bare_px'][0]}x{row['bare_px'][1]}"
        diff = f"{row['mean_abs_diff']:.2f}" if "mean_abs_diff" in row else ""
        print(f"{info['label']:<20} {info['bytes'] / 1e6:>6.1f} {ours:>12} {bare_ms:>8} {ratio:>6} {'>= 0.9':>7}  "
              f"{size:>10}  {diff:>11}")
        for key in ("cargohold_error", "bare_error"):
            if key in row:
                print(f"  {key.split('_')[0]} failed on {name}: {row[key]}")
    if "cargohold_not_available" in lib:
        print(f"  cargohold not available: {lib['cargohold_not_available']}")
    elif lib.get("geomean_ratio"):
        print(f"  geometric mean of the ratios {lib['geomean_ratio']:.2f}")

    http = results["preview_http"]
    print(f"\n3. Previews through HTTP, every request a miss, median ms of {http['runs']} alternating runs (client: "
          "httpx, keep-alive, sequential)")
    print("   cargohold = GET /api/v1/items/{id}/preview?w=256&h=256&fit=contain&format=jpeg&q=80 after DELETE "
          "/api/v1/cache/previews;")
    print(f"   thumbor {http['thumbor_version'] or '(not installed)'} = GET "
          f"{THUMBOR_PATH.format(name='<file>')}, file loader, no storage")
    print("   (of which make) = the server's own preview-making time, from /metrics; bare = part 2's figure")
    header = (f"{'image':<20} {'cargohold ms':>12} {'(of which make)':>15} {'thumbor ms':>10} {'ratio':>6} "
              f"{'target':>6}  {'bare ms':>7}  {'|diff| vs bare: cargohold / thumbor':>35}")
    print(header)
    print("-" * len(header))
    for name, row in http["images"].items():
        ours = f"{row['cargohold_ms']:.1f}" if "cargohold_ms" in row else "n/a"
        make = f"{row['cargohold_generate_ms']:.1f}" if "cargohold_generate_ms" in row else ""
        theirs = f"{row['thumbor_ms']:.1f}" if "thumbor_ms" in row else "n/a"
        ratio = f"{row['ratio']:.2f}" if "ratio" in row else ""
        bare_ms = f"{row['bare_in_process_ms']:.1f}" if "bare_in_process_ms" in row else ""
        diffs = " / ".join(f"{row[k]:.2f}" if k in row else "-" for k in ("cargohold_diff_vs_bare",
                                                                           "thumbor_diff_vs_bare"))
        print(f"{images[name]['label']:<20} {ours:>12} {make:>15} {theirs:>10} {ratio:>6} {'> 1':>6}  {bare_ms:>7}  "
              f"{diffs:>35}")
        if row.get("thumbor_format") == "gif":
            print("  thumbor answered a GIF (first frame; it applies no filter, format(jpeg) included, to GIFs)")
        for key in ("cargohold_error", "thumbor_error"):
            if key in row:
                print(f"  {key.split('_')[0]} failed on {name}: {row[key]}")
    for key in ("thumbor_not_available", "cargohold_not_available"):
        if http.get(key):
            print(f"  {key.split('_')[0]} not available: {http[key]}")
    if http.get("tier_counts_during_runs"):
        counts = ", ".join(f"{tier} {c['hits']} hits / {c['misses']} misses"
                           for tier, c in http["tier_counts_during_runs"].items())
        print(f"  cache counters during the timed runs: {counts}")
    if http.get("geomean_ratio"):
        print(f"  geometric mean of the ratios {http['geomean_ratio']:.2f}")


def preview_rows(t: Table, part: dict[str, Any], labels: dict[str, Any], how: str, reference: str,
                 target: Target) -> None:
    """One row per image of a preview part; ``reference`` names its figures' keys (``bare``, ``thumbor``)."""
    shown, missing = ("pyvips `thumbnail` + `jpegsave`", "error") if reference == "bare" else \
        (f"thumbor {part['thumbor_version'] or ''}".strip(), "not measured")
    for name, row in part["images"].items():
        ours = ms(row["cargohold_ms"]) if "cargohold_ms" in row else row.get("cargohold_error", "n/a")
        theirs = ms(row[f"{reference}_ms"]) if f"{reference}_ms" in row else row.get(f"{reference}_error", missing)
        gif = " (answers a GIF)" if row.get("thumbor_format") == "gif" else ""
        t.rows.append(Row(f"preview {how}, {labels.get(name, {}).get('label', name)}, ms", ours,
                          f"{theirs}: {shown}{gif}", row.get("ratio"), target))
    ratios = [r["ratio"] for r in part["images"].values() if "ratio" in r]
    if part.get("geomean_ratio") and ratios:
        t.notes.append(f"Previews {how}: geometric mean of the ratios {part['geomean_ratio']:.2f}, lowest "
                       f"{min(ratios):.2f} ({len(ratios)} of {len(part['images'])} images compared).")


def table(f: dict[str, Any]) -> Table:
    serving = f["serving"]
    t = Table(f"One `cargohold up` on S3 (moto), content from its storage tier; wrk 1 thread, "
              f"{serving['connections']} connections, {serving['runs']} × {serving['duration_s']:g} s alternating"
              f"{', wrk on CPU 0 and the server on CPU 1' if serving.get('pinned') else ''}; signed URLs, as a "
              "browser's `<img src>`. Previews: 256 px JPEG q80 of 12 MP images (and a GIF).")
    for what, s in serving["targets"].items():
        label = "cached 100 KiB item" if what == "content" else f"cached 256 px preview ({s['bytes'] / KiB:.1f} KiB)"
        reference = f"{wrk_figure(s['nginx'])}: nginx from disk"
        if "cargohold" not in s:
            t.rows.append(Row(f"{label}, requests/s", f"not available: {s.get('cargohold_not_available', '')}",
                              reference, None, at_least(SERVE_TARGET)))
            continue
        ours = s["cargohold"]
        t.rows.append(Row(f"{label}, requests/s", wrk_figure(ours), reference, s["ratio"], at_least(SERVE_TARGET)))
        if ours["errors"] + s["nginx"]["errors"]:
            t.notes.append(f"{label}: {ours['errors'] + s['nginx']['errors']} requests failed during the runs: that "
                           "row is not valid.")
        if s.get("tier_hits") is not None:
            t.notes.append(f"{label}: {s['tier']} tier {s['tier_hits']:,} hits, {s['tier_misses']} misses "
                           f"for {ours['requests']:,} timed requests.")
    library, http = f["preview_library"], f["preview_http"]
    preview_rows(t, library, f["images"], "made in process", "bare", at_least(LIBRARY_TARGET))
    if "cargohold_not_available" in library:
        t.notes.append(f"Preview generation: cargohold not available: {library['cargohold_not_available']}")
    preview_rows(t, http, f["images"], "over HTTP on a miss", "thumbor", Target(">", THUMBOR_TARGET))
    for key in ("thumbor_not_available", "cargohold_not_available"):
        if http.get(key):
            t.notes.append(f"Previews over HTTP: {key.split('_')[0]} not available: {http[key]}")
    return t


def prepared(args: argparse.Namespace) -> dict[str, Any]:
    if args.quick:
        args.runs, args.duration, args.preview_runs = 1, 2.0, 2
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: run `make bench-tools`")
    return run(args)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="wrk runs per side (median reported)")
    parser.add_argument("--duration", type=float, default=5, help="seconds per wrk run")
    parser.add_argument("--preview-runs", type=int, default=5, help="runs per side and image of parts 2 and 3")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 wrk run of 2 s, 2 preview runs")
    parser.add_argument("--no-pin", action="store_true", help="do not pin wrk and the server to one CPU each")
    main(parser, prepared, table, report)
