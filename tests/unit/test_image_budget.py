"""services/serving/budget.py: image work admitted by memory (queued, admitted, refused, given back on
error and on cancellation); the costs media/ estimates from headers; preview boxes and qualities snapped to a
few."""

from __future__ import annotations

import asyncio
import io
import struct
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from cargohold.errors import Overloaded, Unprocessable
from cargohold.media.convert import conversion_cost
from cargohold.media.preview import (
    FITS,
    FORMATS,
    MAX_SIDE,
    PNG_QUALITY,
    QUALITIES,
    STEP_PARTS,
    STEPS,
    PreviewSpec,
    preview_cost,
    read_header,
)
from cargohold.services.serving import budget as budget_mod
from cargohold.services.serving.budget import MemoryBudget

MB = 1024 * 1024


def hold(event: threading.Event, seconds: float = 5.0) -> str:
    assert event.wait(seconds), "the test never let the work end"
    return "done"


async def test_work_that_fits_is_admitted_at_once_and_runs_side_by_side() -> None:
    budget = MemoryBudget(100 * MB)
    go = threading.Event()
    first = asyncio.create_task(budget.run(40 * MB, hold, go))
    second = asyncio.create_task(budget.run(60 * MB, hold, go))
    await asyncio.sleep(0.05)
    assert budget.in_use == 100 * MB and budget.running == 2 and not budget.waiting
    go.set()
    assert await asyncio.gather(first, second) == ["done", "done"]
    assert budget.in_use == 0 and budget.running == 0 and budget.peak == 100 * MB


async def test_work_over_what_is_left_waits_and_runs_when_bytes_come_back() -> None:
    budget = MemoryBudget(100 * MB)
    first_go, second_go = threading.Event(), threading.Event()
    first = asyncio.create_task(budget.run(70 * MB, hold, first_go))
    await asyncio.sleep(0.05)
    queued = asyncio.create_task(budget.run(50 * MB, hold, second_go))
    small = asyncio.create_task(budget.run(20 * MB, hold, second_go))  # fits beside the first: not held behind
    await asyncio.sleep(0.05)
    assert [w.cost for w in budget.waiting] == [50 * MB] and budget.in_use == 90 * MB
    first_go.set()
    await first
    await asyncio.sleep(0.05)
    assert not budget.waiting and budget.in_use == 70 * MB  # the queued one got in
    second_go.set()
    assert await asyncio.gather(queued, small) == ["done", "done"]
    assert budget.peak <= 100 * MB and budget.in_use == 0


async def test_one_image_over_the_whole_budget_is_refused_at_once() -> None:
    budget = MemoryBudget(100 * MB)
    with pytest.raises(Unprocessable, match="above IMAGE_MEMORY_BUDGET"):
        await budget.run(101 * MB, hold, threading.Event())
    assert budget.in_use == 0 and budget.running == 0


async def test_a_wait_past_max_wait_is_refused_with_retry_after() -> None:
    budget = MemoryBudget(100 * MB, max_wait=0.2)
    go = threading.Event()
    running = asyncio.create_task(budget.run(80 * MB, hold, go))
    await asyncio.sleep(0.05)
    started = time.monotonic()
    with pytest.raises(Overloaded) as refused:
        await budget.run(30 * MB, hold, go)
    assert 0.15 < time.monotonic() - started < 1.0
    assert refused.value.http_status == 503 and refused.value.retry_after >= 1
    assert refused.value.headers == {"Retry-After": str(refused.value.retry_after)}
    assert "IMAGE_MEMORY_BUDGET" in refused.value.message and not budget.waiting
    go.set()
    await running
    assert budget.in_use == 0


async def test_a_queue_already_long_refuses_the_next_at_once() -> None:
    budget = MemoryBudget(100 * MB, max_wait=5)
    go = threading.Event()
    running = asyncio.create_task(budget.run(100 * MB, hold, go))
    await asyncio.sleep(0.05)
    waiting = [asyncio.create_task(budget.run(100 * MB, hold, go)) for _ in range(budget_mod.QUEUE_BUDGETS)]
    await asyncio.sleep(0.05)
    started = time.monotonic()
    with pytest.raises(Overloaded):
        await budget.run(10 * MB, hold, go)
    assert time.monotonic() - started < 0.1
    go.set()
    assert await asyncio.gather(running, *waiting) == ["done"] * (1 + budget_mod.QUEUE_BUDGETS)
    assert budget.in_use == 0


async def test_bytes_come_back_when_the_work_fails() -> None:
    budget = MemoryBudget(100 * MB)

    def broken() -> None:
        raise Unprocessable("cannot read this file as an image: broken")

    with pytest.raises(Unprocessable, match="broken"):
        await budget.run(90 * MB, broken)
    await asyncio.sleep(0.01)
    assert budget.in_use == 0 and budget.running == 0
    assert await budget.run(100 * MB, lambda: "next") == "next"


async def test_a_cancelled_request_holds_its_bytes_until_the_thread_ends() -> None:
    budget = MemoryBudget(100 * MB)
    go = threading.Event()
    task = asyncio.create_task(budget.run(60 * MB, hold, go))
    waiter = asyncio.create_task(budget.run(60 * MB, hold, go))
    await asyncio.sleep(0.05)
    task.cancel()
    waiter.cancel()  # a waiter that goes away leaves the queue
    await asyncio.sleep(0.05)
    assert budget.in_use == 60 * MB and not budget.waiting  # libvips still works in its thread
    go.set()
    for gone in (task, waiter):
        with pytest.raises(asyncio.CancelledError):
            await gone
    await asyncio.sleep(0.05)
    assert budget.in_use == 0 and budget.running == 0


def test_one_budget_per_process() -> None:
    assert budget_mod.shared(123 * MB) is budget_mod.shared(123 * MB)


# -- costs, from the header alone -----------------------------------------------------------------------


def rle8_bmp_declaring(width: int, height: int, rows: int = 1) -> bytes:
    """An 8-bit RLE BMP of ``width`` x ``height`` whose first ``rows`` rows are coded, the rest skipped by an
    end-of-bitmap: a few bytes that decode to width x height pixels."""
    row = b""
    left = width
    while left:
        n = min(255, left)
        row += bytes([n, 1])
        left -= n
    line = (row + b"\x00\x00") * rows  # each row ends with an end of line
    pixels = line + b"\x00\x01"  # end of bitmap
    palette = b"".join(bytes([i, i, 255 - i, 0]) for i in range(256))
    offset = 14 + 40 + len(palette)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 8, 1, len(pixels), 2835, 2835, 256, 0)
    return b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset) + info + palette + pixels


def test_costs_from_the_header(tmp_path: Path) -> None:
    bmp = tmp_path / "bomb.bmp"
    bmp.write_bytes(rle8_bmp_declaring(15000, 13000))
    header = read_header(bmp)
    assert header.pillow and (header.width, header.height, header.bands, header.copies) == (15000, 13000, 1, 3)
    # Pillow's RLE decoder holds the palette image (1 byte a pixel) three times; the rest is reduced as read.
    assert 3 * 195_000_000 <= preview_cost(header, PreviewSpec(64, 64)) < 3 * 195_000_000 + 5_000_000
    assert conversion_cost(header) == 15000 * 13000 * (3 + 4)

    jpeg = tmp_path / "turned.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    Image.new("RGB", (4000, 3000)).save(buffer, "JPEG", exif=exif)
    jpeg.write_bytes(buffer.getvalue())
    header = read_header(jpeg)
    assert header.orientation == 6 and not header.interlaced
    # Full size: the 8-bit copy held to rotate it, beside a window of decoded rows.
    assert 4000 * 3000 * 3 < conversion_cost(header) < 4000 * 3000 * 3 + 4000 * 3 * 600
    # A 64 px preview: the JPEG decoded at 1/8 (shrink-on-load), streamed.
    assert preview_cost(header, PreviewSpec(64, 64)) < 500 * 375 * 3 + 64 * 64 * 4 + 1
    Image.new("RGB", (4000, 3000)).save(buffer := io.BytesIO(), "JPEG", progressive=True)
    jpeg.write_bytes(buffer.getvalue())
    header = read_header(jpeg)
    assert header.interlaced and preview_cost(header, PreviewSpec(64, 64)) >= 4000 * 3000 * 3 * 2


# -- preview boxes and qualities snapped to a few ----------------------------------------------------------


def test_371_distinct_sizes_collapse_to_a_few_boxes() -> None:
    asked = [(w, h) for w in range(1, MAX_SIDE + 1, 53) for h in range(1, MAX_SIDE + 1, 211)][:371]
    assert len(set(asked)) == 371
    boxes = {(s.width, s.height) for s in (PreviewSpec(w, h).snapped() for w, h in asked)}
    assert len(boxes) <= 60, len(boxes)
    every = {(s.width, s.height) for s in (PreviewSpec(w, h).snapped() for w in range(1, 2049, 7)
                                           for h in range(1, 2049, 5))}
    assert len(every) <= len(STEPS) * (2 * STEP_PARTS - 1)


@pytest.mark.parametrize(("asked", "box"), [((256, 256), (256, 256)), ((100, 60), (128, 80)), ((1, 1), (32, 32)),
                                            ((2048, 1), (2048, 256)), ((300, 256), (512, 448)),
                                            ((64, 2000), (256, 2048)), ((32, 256), (32, 256))])
def test_a_box_snaps_up_keeping_its_aspect(asked: tuple[int, int], box: tuple[int, int]) -> None:
    spec = PreviewSpec(*asked, fit="cover", format="webp", quality=70).snapped()
    assert (spec.width, spec.height) == box and (spec.fit, spec.format, spec.quality) == ("cover", "webp", 70)


@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
def test_qualities_1_to_100_make_7_previews_never_below_what_was_asked(fmt: str) -> None:
    snapped = {q: PreviewSpec(format=fmt, quality=q).snapped() for q in range(1, 101)}  # type: ignore[arg-type]
    assert {s.quality for s in snapped.values()} == set(QUALITIES) and len(QUALITIES) == 7
    assert len({s.name for s in snapped.values()}) == len(QUALITIES)
    for asked, s in snapped.items():
        assert s.quality >= asked and s.snapped() == s
        assert not any(asked <= q < s.quality for q in QUALITIES), "the next one up, not any one up"
        assert (s.width, s.height, s.fit, s.format) == (256, 256, "contain", fmt)
    assert PreviewSpec().snapped() == PreviewSpec(), "the default box and quality are among them"
    assert [snapped[q].quality for q in (1, 30, 31, 75, 80, 81, 94, 96)] == [30, 30, 50, 80, 80, 90, 95, 100]


def test_a_png_is_made_once_per_box_whatever_q_asks() -> None:
    names = {PreviewSpec(100, 60, format="png", quality=q).snapped().name for q in range(1, 101)}
    assert names == {f"128x80-contain-q{PNG_QUALITY}.png"}


def test_an_item_has_a_bounded_number_of_previews() -> None:
    """Every box, fit, format and quality a query may name: at most 105 boxes x 7 qualities per fit and format
    for JPEG and WebP, 105 for PNG; the parameters alone name 2048 x 2048 x 3 x 3 x 100."""
    boxes = {(s.width, s.height) for s in (PreviewSpec(w, h).snapped() for w in range(1, 2049, 7)
                                           for h in range(1, 2049, 5))}
    names = {PreviewSpec(w, h, fit, fmt, q).snapped().name for w, h in boxes for fit in FITS for fmt in FORMATS
             for q in range(1, 101, 3)}
    per_fit = len(STEPS) * (2 * STEP_PARTS - 1) * (2 * len(QUALITIES) + 1)
    assert len(names) <= len(FITS) * per_fit == 4725, len(names)


def test_a_snapped_box_is_never_smaller_than_asked_and_keeps_its_shape() -> None:
    for w in range(1, MAX_SIDE + 1, 13):
        for h in range(1, MAX_SIDE + 1, 17):
            s = PreviewSpec(w, h).snapped()
            assert s.width >= w and s.height >= h and max(s.width, s.height) in STEPS
            long = max(s.width, s.height)
            scale = long / max(w, h)
            assert abs(min(s.width, s.height) - min(w, h) * scale) <= long / STEP_PARTS
            assert s.snapped() == s
