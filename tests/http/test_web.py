"""The web UI, driven in Debian's Chromium by Playwright, against a real ``cargohold up`` process whose own
storage is on the S3 server (moto), with a ``remote_links.yml`` connection to a moto bucket and a server
folder. Each step asserts on what the page shows. Screenshots of every page go to docs/screenshots/
(overwritten each run; docs/WEB.md shows them).

Chromium comes from Debian (``/usr/bin/chromium``, installed by ``make test``); Playwright only drives it
(``playwright install`` is never run).
"""

from __future__ import annotations

import io
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from PIL import Image
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright

from cargohold.web import STATIC

from ..support.api_server import RunningServer
from ..support.servers import Server
from ..support.videos import frame_number, make_video

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "docs" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
WAIT = 15_000  # ms: generous, bounded
expect.set_options(timeout=WAIT)

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's Chromium is not installed (/usr/bin/chromium): "
                       "`make test` installs it (apt-get install chromium)"),
    pytest.mark.timeout(120),
]

RUN = secrets.token_hex(3)
LINKS_BUCKET = f"web-links-{RUN}"  # read through the remote_links.yml connection
FORM_BUCKET = f"web-form-{RUN}"  # read through the connection made in the form
FILE_SECRET = f"file-secret-{secrets.token_hex(8)}"  # the S3 server takes any key; these must never reach a page
FORM_SECRET = f"form-secret-{secrets.token_hex(8)}"


# -- fixtures ---------------------------------------------------------------------------------------------


def jpeg(width: int, height: int, colour: tuple[int, int, int]) -> bytes:
    image = Image.new("RGB", (width, height), colour)
    for x in range(0, width, 8):  # a stripe, so previews are not one flat colour
        for y in range(height // 3, height // 3 + 6):
            image.putpixel((x, y), (255, 255, 255))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


def png(width: int, height: int, colour: tuple[int, int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", (width, height), colour).save(out, "PNG")
    return out.getvalue()


def tiff(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (40, 120, 200)).save(out, "TIFF")
    return out.getvalue()


@pytest.fixture(scope="module")
def buckets(moto_server: Server) -> dict[str, str]:
    s3 = boto3.client("s3", endpoint_url=moto_server.url, aws_access_key_id="testing",
                      aws_secret_access_key="testing", region_name="us-east-1")
    s3.create_bucket(Bucket=LINKS_BUCKET)
    for key, data in {"cars/1.jpg": jpeg(320, 200, (200, 60, 50)), "cars/2.jpg": jpeg(300, 300, (50, 160, 90)),
                      "cars/sub/3.jpg": jpeg(240, 320, (60, 90, 200)), "other/x.png": png(64, 64, (0, 0, 0, 255))
                      }.items():
        s3.put_object(Bucket=LINKS_BUCKET, Key=key, Body=data)
    s3.create_bucket(Bucket=FORM_BUCKET)
    s3.put_object(Bucket=FORM_BUCKET, Key="probe.jpg", Body=jpeg(32, 32, (10, 10, 10)))
    return {"links": LINKS_BUCKET, "form": FORM_BUCKET}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, moto_server: Server, buckets: dict[str, str]
           ) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("web")
    folder = root / "shared"
    (folder / "persons").mkdir(parents=True)
    (folder / "persons" / "1.jpg").write_bytes(jpeg(64, 64, (120, 120, 120)))
    nas = root / "nas"
    (nas / "cameras").mkdir(parents=True)
    (nas / "cameras" / "cam-1.jpg").write_bytes(jpeg(48, 32, (30, 30, 200)))
    home = root / "home"
    home.mkdir()
    (home / "remote_links.yml").write_text(
        f"photos-file:\n  provider: minio\n  endpoint: {moto_server.url}\n  access_key: testing\n"
        f"  secret_key: {FILE_SECRET}\n  region: us-east-1\n  buckets: [{LINKS_BUCKET}]\n"
        f"server-folder:\n  provider: fs\n  path: {folder}\n  storage_id: web-local\n")
    env = {"STORAGE_PROVIDER": "minio", "STORAGE_ENDPOINT": moto_server.url, "STORAGE_ACCESS_KEY": "testing",
           "STORAGE_SECRET_KEY": "testing", "STORAGE_BUCKET_PREFIX": f"web-{RUN}", "UPLOAD_MAX_SIZE": "1m",
           "LINKS_FS_ROOTS": str(nas)}
    running = RunningServer(home, env).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield launched
        finally:
            launched.close()


class PageProblems:
    """What the page itself reported: uncaught exceptions and Content-Security-Policy refusals."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))
        page.on("console", self._console)

    def _console(self, message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or "Uncaught" in message.text:
            self.errors.append(f"console: {message.text}")


def new_page(browser: Browser, width: int = 1280, height: int = 860) -> tuple[Page, PageProblems]:
    context = browser.new_context(viewport={"width": width, "height": height}, accept_downloads=True)
    context.set_default_timeout(WAIT)
    page = context.new_page()
    return page, PageProblems(page)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    opened, problems = new_page(browser)
    yield opened
    opened.context.close()
    assert not problems.errors, problems.errors


@pytest.fixture
def api(server: RunningServer) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def shot(page: Page, name: str, full_page: bool = True) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.evaluate("document.getElementById('status').replaceChildren()")  # a passing toast is not part of the page
    page.evaluate("window.scrollTo(0, 0)")  # the sticky header belongs at the top of a full-page picture
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page, animations="disabled")


def sign_in(page: Page, server: RunningServer, token: str | None = None, route: str = "") -> None:
    page.goto(f"{server.url}/{route}")
    page.get_by_label("Access token").fill(token or server.token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#token")).to_have_count(0)
    expect(page.locator("body.signed-in")).to_have_count(1)


def create_dataset(api: httpx.Client, name: str) -> int:
    answer = api.post("/datasets", json={"name": name})
    assert answer.status_code == 201, answer.text
    return int(answer.json()["id"])


def upload(api: httpx.Client, dataset: int, name: str, data: bytes) -> dict[str, Any]:
    answer = api.post(f"/datasets/{dataset}/items", files=[("files", (name, data))])
    assert answer.status_code == 201, answer.text
    item: dict[str, Any] = answer.json()["results"][0]["item"]
    return item


def loaded_images(page: Page, selector: str) -> int:
    count: int = page.evaluate(
        "(s) => [...document.querySelectorAll(s)].filter((i) => i.complete && i.naturalWidth > 0).length", selector)
    return count


def wait_for_images(page: Page, selector: str, count: int) -> None:
    page.wait_for_function(
        "([s, n]) => [...document.querySelectorAll(s)].filter((i) => i.complete && i.naturalWidth > 0).length >= n",
        arg=[selector, count], timeout=WAIT)


def cli(server: RunningServer, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STORAGE_", "CACHE_", "DATA_PATH", "SERVER_"))}
    env["CARGOHOLD_HOME"] = str(server.home)
    result = subprocess.run([sys.executable, "-m", "cargohold", *args], env=env, capture_output=True, text=True,
                            timeout=60, check=True)
    return result.stdout.strip()


# -- no token, no secret in what the server sends as the UI -------------------------------------------------


def test_no_token_and_no_secret_in_any_html_js_or_css(server: RunningServer) -> None:
    files = sorted(p for p in STATIC.rglob("*") if p.is_file())
    assert {"index.html", "app.css", "app.js", "api.js"} <= {p.name for p in files}
    forbidden = [server.token, FILE_SECRET, FORM_SECRET, (server.home / "secret.key").read_text().strip()]
    bearer_with_value = re.compile(r"Bearer\s+[A-Za-z0-9_\-.]{8,}")
    secret_value = re.compile(r"""(secret_key|credentials_json)["']?\s*[:=]\s*["'][^"']+["']""")
    external = re.compile(r"""(src|href)=["']?(https?:)?//|url\(\s*["']?(https?:)?//"""
                          r"""|from\s+["'](https?:)?//|import\(\s*["'](https?:)?//""")
    paths = ["/"] + [f"/static/{p.relative_to(STATIC).as_posix()}" for p in files]
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for path in paths:
            answer = client.get(path)  # no token: the UI's files open without one
            assert answer.status_code == 200, path
            assert "script-src 'self'" in answer.headers["content-security-policy"], path
            text = answer.text
            for value in forbidden:
                assert value not in text, f"{path} holds a token or a secret"
            assert not bearer_with_value.search(text), f"{path} holds a bearer token"
            assert not secret_value.search(text), f"{path} holds a secret value"
            assert not external.search(text), f"{path} loads something from another host"
            if path.endswith(".html") or path == "/":
                assert "<script>" not in text and " style=" not in text, f"{path} has inline script or style"


def test_the_api_docs_render_from_this_server_alone(page: Page, server: RunningServer) -> None:
    """/api/docs: Swagger UI from the package, under the UI's CSP; the page asks nothing of another host."""
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    answer = page.goto(server.url + "/api/docs")
    assert answer is not None and answer.ok
    assert "script-src 'self'" in answer.headers["content-security-policy"]
    expect(page.locator(".opblock-summary-path", has_text="/api/v1/datasets").first).to_be_visible()
    elsewhere = [url for url in asked if not url.startswith(server.url)]
    assert not elsewhere, elsewhere
    assert any(url.endswith("/static/swagger-ui-bundle.js") for url in asked), asked


# -- sign in and out -----------------------------------------------------------------------------------------


def test_sign_in_with_the_keyboard_and_sign_out(page: Page, server: RunningServer) -> None:
    page.goto(server.url + "/")
    expect(page.get_by_role("heading", name="Sign in to cargohold")).to_be_visible()
    token_input = page.get_by_label("Access token")
    expect(token_input).to_have_attribute("type", "password")
    shot(page, "signin")

    token_input.fill("chd_not-a-token-at-all")
    token_input.press("Enter")
    expect(page.get_by_role("alert")).to_contain_text("This token was not accepted")

    page.reload()
    for _ in range(8):  # keyboard only: Tab to the field, type, Enter
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement && document.activeElement.id") == "token":
            break
    assert page.evaluate("document.activeElement.id") == "token", "Tab never reached the token field"
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") == "solid"  # focus is visible
    page.keyboard.type(server.token)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Datasets", exact=True)).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('cargohold.token')") == server.token
    assert page.evaluate("localStorage.length") == 0
    assert server.token not in page.url

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("Access token")).to_be_visible()
    expect(page.get_by_text("You are signed out")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('cargohold.token')") is None

    # A 401 on any call (a revoked token) returns to the sign-in page with the reason.
    page.evaluate("sessionStorage.setItem('cargohold.token', 'chd_revoked-token-value')")
    page.goto(server.url + "/#/settings/cache")
    expect(page.get_by_label("Access token")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("The server refused the token")
    page.get_by_label("Access token").fill(server.token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Cache", exact=True)).to_be_visible()  # back where it was


# -- datasets, upload, grid, item ----------------------------------------------------------------------------


def test_create_a_dataset_upload_three_images_see_previews_and_open_one(
        page: Page, server: RunningServer, api: httpx.Client, tmp_path: Path) -> None:
    sign_in(page, server)
    expect(page.get_by_role("heading", name="Datasets", exact=True)).to_be_visible()

    # create, and delete another after a confirmation dialog
    table = page.locator(".datasets-table")
    for name in ("web-photos", "scratch"):
        page.get_by_label("New dataset").fill(name)
        page.get_by_role("button", name="Create dataset").click()
        expect(page.locator(".notice.success")).to_contain_text(f"Created dataset {name}")
        expect(table.get_by_role("link", name=name, exact=True)).to_be_visible()
    page.get_by_role("button", name="Delete dataset scratch").click()
    dialog = page.locator("dialog#confirm")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Delete dataset “scratch”?")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    expect(table.get_by_role("link", name="scratch", exact=True)).to_be_visible()
    page.get_by_role("button", name="Delete dataset scratch").click()
    dialog.get_by_role("button", name="Delete dataset").click()
    expect(table.get_by_role("link", name="scratch", exact=True)).to_have_count(0)
    row = table.locator("tr", has=page.get_by_role("link", name="web-photos", exact=True))
    expect(row.locator("td").first).to_have_text("0")

    # upload three images, a text file and one over UPLOAD_MAX_SIZE, from disk
    files = {"alpha.jpg": jpeg(320, 240, (210, 80, 40)), "beta.png": png(200, 100, (30, 140, 220, 255)),
             "gamma.jpg": jpeg(150, 300, (90, 170, 60)), "notes.txt": b"not an image\n",
             "too-big.bin": secrets.token_bytes(1_100_000)}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    table.get_by_role("link", name="web-photos", exact=True).click()
    expect(page.get_by_text("This dataset is empty")).to_be_visible()
    expect(page.locator(".subtitle")).to_contain_text("S3 bucket web-photos")  # its name on the S3 endpoint
    page.locator(".page-header").get_by_role("link", name="Upload files").click()
    expect(page.get_by_role("heading", name="Upload files to web-photos")).to_be_visible()
    expect(page.get_by_label("When a name is already taken")).to_have_value("rename")
    page.get_by_label("Choose files").set_input_files([str(tmp_path / n) for n in files])
    rows = page.locator(".upload-row")
    expect(rows).to_have_count(5)
    for name in ("alpha.jpg", "beta.png", "gamma.jpg", "notes.txt"):
        expect(page.locator(f".upload-row[data-name='{name}']")).to_have_attribute("data-status", "created")
        expect(page.locator(f".upload-row[data-name='{name}'] .upload-status")).to_contain_text("Uploaded")
    too_big = page.locator(".upload-row[data-name='too-big.bin']")
    expect(too_big).to_have_attribute("data-status", "error")
    expect(too_big).to_contain_text("over the upload limit")  # the API's own message, per file
    expect(page.locator("#total-text")).to_contain_text("5 of 5 files done (1 failed)")
    assert page.evaluate("document.getElementById('total-progress').value"
                         " === document.getElementById('total-progress').max")
    shot(page, "upload")

    # the same name again with "skip": reported per file
    page.get_by_label("When a name is already taken").select_option("skip")
    page.get_by_label("Choose files").set_input_files(str(tmp_path / "alpha.jpg"))
    expect(rows).to_have_count(6)
    expect(rows.nth(5)).to_have_attribute("data-status", "skipped")
    expect(rows.nth(5)).to_contain_text("Skipped")

    # the grid: three previews through signed URLs, an icon tile for the text file
    page.get_by_role("link", name="Back to the dataset").click()
    expect(page.get_by_role("heading", name="web-photos")).to_be_visible()
    tiles = page.locator(".tile")
    expect(tiles).to_have_count(4)
    wait_for_images(page, ".tile img", 3)
    assert loaded_images(page, ".tile img") == 3
    for src in page.eval_on_selector_all(".tile img", "(imgs) => imgs.map((i) => i.src)"):
        assert "signature=" in src and "/preview?" in src and server.token not in src
    alpha = tiles.filter(has_text="alpha.jpg")
    expect(alpha).to_contain_text("320 × 240")
    expect(alpha.locator(".badge")).to_have_text("stored")
    expect(tiles.filter(has_text="notes.txt").locator(".thumb.icon")).to_be_visible()
    expect(page.locator(".count-line")).to_have_text("4 items")
    shot(page, "dataset")

    # the name filter is the server's
    page.get_by_label("Filter by name").fill("BETA")
    expect(tiles).to_have_count(1)
    expect(tiles.first).to_contain_text("beta.png")
    expect(page.locator(".count-line")).to_contain_text("1 item whose name contains “BETA”")
    assert "name=BETA" in page.url
    page.get_by_label("Filter by name").fill("")
    expect(tiles).to_have_count(4)

    # an item: metadata, the full image, download under its own name
    alpha.get_by_role("link").click()
    expect(page.get_by_role("heading", name="alpha.jpg")).to_be_visible()
    details = page.locator("aside.details")
    for text in ("image/jpeg", "320 × 240", "SHA-256", "stored"):
        expect(details).to_contain_text(text)
    item_id = page.url.rsplit("/", 1)[-1]
    sha = api.get(f"/items/{item_id}").json()["sha256"]
    expect(details).to_contain_text(sha)
    wait_for_images(page, "#full-image", 1)
    assert page.evaluate("document.getElementById('full-image').naturalWidth") == 320
    assert "signature=" in page.evaluate("document.getElementById('full-image').src")
    shot(page, "item")
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Download").click()
    assert download_info.value.suggested_filename == "alpha.jpg"

    # the dataset list counts and sizes
    page.get_by_role("link", name="Datasets", exact=True).first.click()
    row = page.locator(".datasets-table tr", has=page.get_by_role("link", name="web-photos", exact=True))
    expect(row.locator("td").first).to_have_text("4")
    shot(page, "datasets")


def test_an_image_the_browser_cannot_show_is_converted(page: Page, server: RunningServer, api: httpx.Client) -> None:
    dataset = create_dataset(api, "web-scans")
    item = upload(api, dataset, "scan.tif", tiff(180, 120))
    assert item["mime_type"] == "image/tiff"
    sign_in(page, server, route=f"#/items/{item['id']}")
    expect(page.get_by_role("heading", name="scan.tif")).to_be_visible()
    expect(page.locator(".viewer figcaption")).to_contain_text("converted to JPEG")
    wait_for_images(page, "#full-image", 1)
    src = page.evaluate("document.getElementById('full-image').src")
    assert "format=jpeg" in src and "signature=" in src
    assert page.evaluate("document.getElementById('full-image').naturalWidth") == 180


def test_a_grid_of_videos_shows_posters_and_durations(page: Page, server: RunningServer, api: httpx.Client) -> None:
    dataset = create_dataset(api, "web-videos")
    for name, frames in (("short.mp4", 50), ("longer.mkv", 130)):
        upload(api, dataset, name, make_video(frames, size=(96, 64), container="matroska" if name.endswith("mkv")
                                              else "mp4"))
    sign_in(page, server, route=f"#/datasets/{dataset}")
    wait_for_images(page, ".grid .thumb img", 2)  # each tile: its poster, not a file icon
    expect(page.locator(".thumb-note.duration")).to_have_text(["0:02", "0:05"])
    expect(page.locator(".thumb.icon")).to_have_count(0)
    shot(page, "dataset-videos")


def test_a_video_plays_in_the_item_view_and_steps_frame_by_frame(page: Page, server: RunningServer,
                                                                  api: httpx.Client) -> None:
    dataset = create_dataset(api, "web-player")
    item = upload(api, dataset, "clip.webm", make_video(75, size=(96, 64), container="webm", codec="libvpx-vp9"))
    sign_in(page, server, route=f"#/items/{item['id']}")
    expect(page.get_by_role("heading", name="clip.webm")).to_be_visible()
    expect(page.locator("#video-duration")).to_have_text("0:03")
    player = page.locator("#player")
    page.wait_for_function("() => document.getElementById('player').readyState >= 1", timeout=WAIT)
    page.evaluate("document.getElementById('player').play()")
    page.wait_for_function("() => document.getElementById('player').currentTime > 0.3", timeout=WAIT)  # it plays
    expect(player).to_have_attribute("src", re.compile(r"/api/v1/items/\d+/content\?.*signature="))
    page.evaluate("document.getElementById('player').pause(); document.getElementById('player').currentTime = 0")
    page.wait_for_function("() => document.getElementById('player').currentTime === 0", timeout=WAIT)
    page.locator("body").press("ArrowRight")
    page.locator("body").press("ArrowRight")
    status = page.locator("#frame-status")
    expect(status).to_contain_text("Frame 2 of 75")
    wait_for_images(page, "#frame-image", 1)
    src = page.evaluate("document.getElementById('frame-image').src")
    assert "/frames/2?" in src
    assert frame_number(Image.open(io.BytesIO(httpx.get(src).content))) == 2  # the exact frame, by its pixels
    page.locator("body").press("ArrowLeft")
    expect(status).to_contain_text("Frame 1 of 75")
    shot(page, "item-video")


def test_a_video_the_browser_cannot_play_is_prepared_then_plays(page: Page, server: RunningServer,
                                                                 api: httpx.Client) -> None:
    dataset = create_dataset(api, "web-hevc")
    item = upload(api, dataset, "phone.mkv", make_video(75, size=(96, 64), container="matroska", codec="libx265"))
    sign_in(page, server, route=f"#/items/{item['id']}")
    note = page.locator("#player-note")
    expect(note).to_contain_text("Converted for playback", timeout=WAIT)  # after "Preparing for playback: n%"
    expect(page.locator("#player")).to_have_attribute("src", re.compile(r"format=mp4"))
    page.wait_for_function("() => document.getElementById('player').readyState >= 1", timeout=WAIT)
    page.evaluate("document.getElementById('player').play()")
    page.wait_for_function("() => document.getElementById('player').currentTime > 0.3", timeout=WAIT)


# -- links -------------------------------------------------------------------------------------------------


def test_import_a_links_file_with_a_bad_line_and_add_a_bucket_folder(
        page: Page, server: RunningServer, api: httpx.Client, tmp_path: Path) -> None:
    dataset = create_dataset(api, "web-links")
    links = tmp_path / "links.txt"
    links.write_text(f"# links for the web test\ns3://{LINKS_BUCKET}/cars/1.jpg\ns3://no-such-bucket/missing.jpg\n"
                     f"s3://{LINKS_BUCKET}/cars/2.jpg\n")
    sign_in(page, server, route=f"#/datasets/{dataset}/links")
    expect(page.get_by_role("heading", name="Import links into web-links")).to_be_visible()
    page.get_by_label("Links file (.txt)").set_input_files(str(links))
    expect(page.get_by_label("Or paste links")).to_be_disabled()
    expect(page.get_by_label("Verify each link")).to_be_checked()
    page.get_by_role("button", name="Import links").click()
    report = page.locator("#links-report")
    expect(report.locator("[data-stat='added'] .stat-value")).to_have_text("2")
    expect(report.locator("[data-stat='refused'] .stat-value")).to_have_text("1")
    refused = report.locator(".refused-table tbody tr")
    expect(refused).to_have_count(1)
    expect(refused.locator("td").nth(0)).to_have_text("3")
    expect(refused.locator("td").nth(1)).to_have_text("s3://no-such-bucket/missing.jpg")
    expect(refused.locator("td").nth(2)).to_contain_text("no connection lists bucket 'no-such-bucket'")
    shot(page, "links-import")

    # pasted links, verify off
    page.get_by_role("button", name="Remove the file").click()
    page.get_by_label("Or paste links").fill(f"s3://{LINKS_BUCKET}/other/x.png\nnot a link\n")
    page.get_by_label("Verify each link").uncheck()
    page.get_by_role("button", name="Import links").click()
    expect(report.locator("[data-stat='added'] .stat-value")).to_have_text("1")
    expect(refused.locator("td").nth(0)).to_have_text("2")

    # browse the file connection's bucket folder by folder, add a folder, sync it again
    expect(page.get_by_label("Connection", exact=True)).to_have_value("photos-file")
    expect(page.get_by_label("Bucket", exact=True)).to_have_value(LINKS_BUCKET)
    page.get_by_role("button", name="cars", exact=True).click()
    listing = page.locator(".listing")
    expect(listing.get_by_role("button", name="sub")).to_be_visible()
    expect(listing.locator(".objects tbody tr")).to_have_count(2)
    expect(page.locator("#sync-source")).to_have_text(f"s3://{LINKS_BUCKET}/cars/")
    assert "prefix=cars%2F" in page.url
    page.get_by_role("button", name="Add this folder as links").click()
    sync = page.locator("#sync-report")
    expect(sync.locator("[data-stat='listed'] .stat-value")).to_have_text("3")
    expect(sync.locator("[data-stat='added'] .stat-value")).to_have_text("1")  # cars/sub/3.jpg
    expect(sync.locator("[data-stat='unchanged'] .stat-value")).to_have_text("2")
    page.get_by_role("button", name=f"Sync s3://{LINKS_BUCKET}/cars/ again").click()
    expect(sync.locator("[data-stat='added'] .stat-value")).to_have_text("0")
    expect(sync.locator("[data-stat='unchanged'] .stat-value")).to_have_text("3")
    shot(page, "links-browse")

    # the server folder connection (remote_links.yml) browses too
    page.get_by_label("Connection", exact=True).select_option("server-folder")
    expect(page.locator("#sync-source")).to_have_text("fs://web-local/")
    expect(listing.get_by_role("button", name="persons")).to_be_visible()

    # the linked items are in the grid with previews read from the bucket
    page.get_by_role("link", name="Open the dataset").first.click()
    tiles = page.locator(".tile")
    expect(tiles).to_have_count(4)
    wait_for_images(page, ".tile img", 4)
    expect(tiles.filter(has_text="cars/1.jpg").locator(".badge")).to_have_text("linked")
    expect(tiles.filter(has_text="cars/1.jpg")).to_contain_text("320 × 200")  # verified: size read from the header


# -- connections ------------------------------------------------------------------------------------------------


def test_add_an_s3_connection_in_the_form_test_edit_and_delete_it(
        page: Page, server: RunningServer, moto_server: Server) -> None:
    sign_in(page, server, route="#/settings/connections")
    expect(page.get_by_role("heading", name="Cloud connections")).to_be_visible()
    from_file = page.locator("article.connection[data-name='photos-file']")
    expect(from_file).to_contain_text("read-only")
    expect(from_file).to_contain_text(f"s3://{LINKS_BUCKET}")
    expect(from_file.get_by_role("link", name="Edit connection photos-file")).to_have_count(0)
    expect(from_file.get_by_role("button", name="Delete connection photos-file")).to_have_count(0)
    folder = page.locator("article.connection[data-name='server-folder']")
    expect(folder).to_contain_text("Server folder")
    expect(folder).to_contain_text("read-only")
    expect(folder).to_contain_text("fs://web-local")

    page.get_by_role("link", name="Add connection").click()
    expect(page.get_by_role("heading", name="Add a connection")).to_be_visible()
    # the fields follow the provider
    provider = page.get_by_label("Provider")
    provider.select_option("azure")
    expect(page.get_by_label("Storage account")).to_be_visible()
    expect(page.get_by_label("Account key", exact=True)).to_have_attribute("type", "password")
    expect(page.get_by_label("Containers", exact=True)).to_be_visible()
    provider.select_option("google")
    expect(page.get_by_label("Service-account key (JSON file)")).to_have_attribute("type", "file")
    provider.select_option("minio")
    expect(page.get_by_label("Secret key", exact=True)).to_be_visible()
    page.get_by_label("Use an IAM role").check()
    expect(page.get_by_label("Secret key", exact=True)).to_be_hidden()
    page.get_by_label("Use an access key and secret key").check()

    page.get_by_label("Name", exact=True).fill("moto-form")
    page.get_by_label("Endpoint", exact=True).fill(moto_server.url)
    page.get_by_label("Region", exact=True).fill("us-east-1")
    page.get_by_label("Access key", exact=True).fill("testing")
    page.get_by_label("Secret key", exact=True).fill(FORM_SECRET)
    page.get_by_label("Buckets", exact=True).fill(FORM_BUCKET)
    page.get_by_role("button", name="Add and test").click()

    result = page.locator(".test-result")
    expect(result).to_contain_text("Connection moto-form works")
    bucket_row = result.locator(f"tr[data-bucket='{FORM_BUCKET}']")
    expect(bucket_row.locator("td").nth(1)).to_have_text("OK")
    expect(bucket_row.locator("td").nth(2)).to_have_text("OK")
    # the secret is write-only: not shown back, and the form says how to keep it
    expect(page.get_by_role("heading", name="Edit connection moto-form")).to_be_visible()
    expect(page.get_by_label("Secret key", exact=True)).to_have_value("")
    expect(page.locator("#s3-secret-key-hint")).to_have_text("Leave empty to keep the stored secret.")
    assert FORM_SECRET not in page.content()
    shot(page, "connection-test")

    # edit without the secret: kept
    page.get_by_label("Region", exact=True).fill("eu-central-1")
    page.get_by_role("button", name="Save changes").click()
    card = page.locator("article.connection[data-name='moto-form']")
    expect(card).to_contain_text("eu-central-1")
    expect(card).to_contain_text("made here")
    expect(card).to_contain_text("stored, write-only")
    card.get_by_role("button", name="Test connection moto-form").click()
    expect(card.locator(f"tr[data-bucket='{FORM_BUCKET}'] td").nth(1)).to_have_text("OK")
    assert FORM_SECRET not in page.content() and FILE_SECRET not in page.content()
    shot(page, "connections")

    # an error from the API is shown: a bucket another connection lists
    page.goto(f"{server.url}/#/settings/connections/new")
    page.get_by_label("Name", exact=True).fill("dupe")
    page.get_by_label("Access key", exact=True).fill("testing")
    page.get_by_label("Secret key", exact=True).fill("x")
    page.get_by_label("Buckets", exact=True).fill(LINKS_BUCKET)
    page.get_by_role("button", name="Add connection").click()
    expect(page.get_by_role("alert")).to_contain_text("is listed by connection 'photos-file'")

    # delete, after confirming
    page.goto(f"{server.url}/#/settings/connections")
    card.get_by_role("button", name="Delete connection moto-form").click()
    page.locator("dialog#confirm").get_by_role("button", name="Delete connection").click()
    expect(card).to_have_count(0)


def test_add_a_server_folder_connection_under_links_fs_roots(page: Page, server: RunningServer) -> None:
    nas = server.home.parent / "nas"
    sign_in(page, server, route="#/settings/connections/new")
    expect(page.get_by_role("heading", name="Add a connection")).to_be_visible()
    page.get_by_label("Provider").select_option("fs")
    expect(page.get_by_label("Buckets", exact=True)).to_be_hidden()
    expect(page.locator("#fs-path-hint")).to_have_text(f"An absolute path under {nas}.")
    page.get_by_label("Name", exact=True).fill("nas-cameras")
    page.get_by_label("Storage id", exact=True).fill("web-nas")

    # a folder outside LINKS_FS_ROOTS (the one remote_links.yml mounts) is refused, and the page says why
    page.get_by_label("Folder on the server", exact=True).fill(str(server.home.parent / "shared"))
    page.get_by_role("button", name="Add connection").click()
    expect(page.get_by_role("alert")).to_contain_text("is not under a folder this server allows")
    expect(page.get_by_role("alert")).to_contain_text("LINKS_FS_ROOTS")

    page.get_by_label("Folder on the server", exact=True).fill(str(nas / "cameras"))
    page.get_by_role("button", name="Add and test").click()
    result = page.locator(".test-result")
    expect(result).to_contain_text("Connection nas-cameras works: 1 folder listed and read.")
    row = result.locator("tr[data-bucket='web-nas']")
    expect(row.locator("td").nth(1)).to_have_text("OK")
    expect(row.locator("td").nth(2)).to_have_text("OK")
    expect(page.get_by_label("Folder on the server", exact=True)).to_have_value(str(nas / "cameras"))
    shot(page, "connection-folder")

    page.goto(f"{server.url}/#/settings/connections")
    card = page.locator("article.connection[data-name='nas-cameras']")
    expect(card).to_contain_text("Server folder")
    expect(card).to_contain_text("made here")
    expect(card).to_contain_text("fs://web-nas")
    expect(card).to_contain_text(str(nas / "cameras"))
    card.get_by_role("button", name="Delete connection nas-cameras").click()
    page.locator("dialog#confirm").get_by_role("button", name="Delete connection").click()
    expect(card).to_have_count(0)
    assert (nas / "cameras" / "cam-1.jpg").exists(), "deleting the connection leaves the folder alone"


# -- settings: storage and cache; a user token --------------------------------------------------------------


def test_storage_and_cache_pages_and_what_a_user_token_sees(
        browser: Browser, page: Page, server: RunningServer, api: httpx.Client) -> None:
    dataset = create_dataset(api, "web-cache")
    item = upload(api, dataset, "c.jpg", jpeg(100, 100, (1, 2, 3)))
    assert api.get(f"/items/{item['id']}/preview").status_code == 200

    sign_in(page, server, route="#/settings/storage")
    expect(page.get_by_role("heading", name="S3-compatible (AWS S3, MinIO…)")).to_be_visible()
    expect(page.locator("#storage-provider-id")).to_have_text("minio")
    buckets = page.locator("#storage-buckets tbody tr")
    expect(buckets).to_have_count(2)
    for i in range(2):
        expect(buckets.nth(i)).to_contain_text("healthy")
    assert "testing" not in page.inner_text("main")  # the storage keys are not shown
    shot(page, "storage")

    page.get_by_role("link", name="Cache").click()
    previews = page.locator("section.tier[data-tier='previews']")
    expect(previews).to_contain_text("Hit rate")
    expect(page.locator("section.tier")).to_have_count(3)
    assert float(previews.locator("meter").get_attribute("value") or 0) > 0
    shot(page, "cache")
    previews.get_by_role("button", name="Clear the Previews tier").click()
    page.locator("dialog#confirm").get_by_role("button", name="Clear tier").click()
    expect(page.locator("#status")).to_contain_text("Cleared the previews tier")
    expect(previews.locator("meter")).to_have_attribute("value", "0")

    user_token = cli(server, "token", "create", "--name", f"web-user-{RUN}")
    user_page, problems = new_page(browser)
    try:
        # The Settings entries are not offered to it (test_a_write_token_sees_no_settings); typed addresses say why.
        sign_in(user_page, server, token=user_token, route="#/settings/storage")
        expect(user_page.get_by_text("Admin only.")).to_be_visible()
        expect(user_page.locator("main")).to_contain_text("a write token")
        user_page.goto(f"{server.url}/#/settings/connections")
        expect(user_page.get_by_text("Admin only.")).to_be_visible()
        user_page.goto(f"{server.url}/#/settings/cache")
        expect(user_page.locator("section.tier")).to_have_count(3)
        expect(user_page.get_by_role("button", name="Clear the Previews tier")).to_have_count(0)
        assert not problems.errors, problems.errors
    finally:
        user_page.context.close()


# -- a narrow window -------------------------------------------------------------------------------------------


def test_a_narrow_window(browser: Browser, server: RunningServer, api: httpx.Client) -> None:
    dataset = create_dataset(api, "web-narrow")
    colours = [(200, 50, 50), (50, 200, 50), (50, 50, 200), (200, 200, 50)]
    for n, colour in enumerate(colours):
        upload(api, dataset, f"photo-{n}.jpg", jpeg(400, 300, colour))
    upload(api, dataset, "labels.csv", b"a,b\n")
    page, problems = new_page(browser, 375, 800)
    try:
        sign_in(page, server, route=f"#/datasets/{dataset}")
        expect(page.get_by_role("heading", name="web-narrow")).to_be_visible()
        wait_for_images(page, ".tile img", 4)
        menu = page.get_by_role("button", name="Menu")
        expect(menu).to_be_visible()
        expect(page.get_by_role("link", name="Cloud connections")).to_be_hidden()  # the nav is collapsed
        assert page.evaluate("document.documentElement.scrollWidth") <= 375, "the page scrolls sideways"
        columns = page.evaluate("getComputedStyle(document.getElementById('item-grid')).gridTemplateColumns")
        assert len(columns.split()) == 2, columns
        shot(page, "narrow", full_page=False)
        menu.click()
        expect(menu).to_have_attribute("aria-expanded", "true")
        expect(page.get_by_role("link", name="Cloud connections")).to_be_visible()
        page.keyboard.press("Escape")
        expect(page.get_by_role("link", name="Cloud connections")).to_be_hidden()
        assert not problems.errors, problems.errors
    finally:
        page.context.close()


# -- tokens, and what each role is offered -------------------------------------------------------------------


def wait_until_refused(server: RunningServer, token: str) -> None:
    """A revoked token is refused within a second on every replica: wait for it (bounded)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if httpx.get(f"{server.api}/me", headers={"Authorization": f"Bearer {token}"}, timeout=10).status_code == 401:
            return
        time.sleep(0.2)
    raise AssertionError("the revoked token is still accepted")


def test_an_admin_makes_a_read_token_for_one_dataset_and_revokes_it(
        browser: Browser, page: Page, server: RunningServer, api: httpx.Client) -> None:
    cars = create_dataset(api, "web-tok-cars")
    other = create_dataset(api, "web-tok-other")
    upload(api, cars, "car.jpg", jpeg(120, 80, (200, 30, 30)))
    upload(api, other, "other.jpg", jpeg(80, 80, (30, 30, 200)))
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    name = f"web-reader-{RUN}"

    sign_in(page, server)
    page.locator("#main-nav").get_by_role("link", name="Tokens").click()
    expect(page.get_by_role("heading", name="Tokens", exact=True)).to_be_visible()
    page.get_by_label("Name", exact=True).fill(name)
    expect(page.get_by_label("Read", exact=True)).to_be_checked()
    page.get_by_label("Limit to datasets").select_option("web-tok-cars")
    reach = page.locator("#token-reach")
    expect(reach).to_have_text("It reaches only the 1 dataset web-tok-cars and no team file.")
    page.get_by_label("Admin", exact=True).check()  # an admin token takes no limits
    expect(page.get_by_label("Limit to datasets")).to_be_disabled()
    expect(page.get_by_label("Limit to team-file folders")).to_be_disabled()
    expect(reach).to_contain_text("An admin token reaches every dataset")
    page.get_by_label("Read", exact=True).check()
    expect(page.get_by_label("Limit to datasets")).to_be_enabled()
    page.get_by_label("Also an S3 key pair").check()
    page.get_by_role("button", name="Make token").click()

    made = page.locator(".new-token")
    expect(made).to_contain_text(f"Token {name} made.")
    expect(made).to_contain_text("it is shown this once")
    field = page.get_by_label("The new token")
    expect(field).to_have_attribute("readonly", "")
    token = field.input_value()
    assert token.startswith("chd_"), token
    access_key = page.get_by_label("S3 access key id").input_value()  # shown this once too, with its secret
    assert access_key.startswith("CHK") and len(access_key) == 20, access_key
    assert len(page.get_by_label("S3 secret access key").input_value()) == 40
    made.get_by_role("button", name="Copy").click()
    expect(page.locator("#status")).to_contain_text(f"Copied the token {name}")
    assert page.evaluate("navigator.clipboard.readText()") == token
    assert token not in page.url and page.evaluate("sessionStorage.getItem('cargohold.token')") == server.token

    row = page.locator(f"#tokens tr[data-name='{name}']")
    cells = row.locator("td")
    expect(cells.nth(0)).to_have_text("read")
    expect(cells.nth(1)).to_have_text("web-tok-cars")
    expect(cells.nth(2)).to_have_text("none")  # limited by dataset: no team file
    expect(cells.nth(3)).to_have_text("none")
    expect(cells.nth(5)).to_have_text("never")
    admin_row = page.locator("#tokens tr", has=page.locator(".own"))
    expect(admin_row.locator("td").nth(0)).to_have_text("admin")
    expect(admin_row.locator("td").nth(1)).to_have_text("all")
    # The picture shows a stand-in: the real token is the test server's, but a token in the docs teaches
    # nothing and would look like a leak.
    page.evaluate("document.getElementById('new-token').value = 'chd_' + 'x'.repeat(43)")
    page.evaluate("document.getElementById('new-s3-key').value = 'CHK' + 'X'.repeat(17)")
    page.evaluate("document.getElementById('new-s3-secret').value = 'x'.repeat(40)")
    shot(page, "tokens")

    # the copied token, in another browser: one dataset, nothing to change, no Settings
    reader, problems = new_page(browser)
    try:
        sign_in(reader, server, token=page.evaluate("navigator.clipboard.readText()"))
        table = reader.locator(".datasets-table")
        expect(table.get_by_role("link", name="web-tok-cars", exact=True)).to_be_visible()
        expect(table.locator("tbody tr")).to_have_count(1)
        expect(reader.get_by_label("New dataset")).to_be_hidden()
        expect(reader.get_by_role("button", name="Delete dataset web-tok-cars")).to_have_count(0)
        expect(reader.locator("#main-nav li[data-needs='admin']:visible")).to_have_count(0)
        expect(reader.locator("#main-nav").get_by_role("link", name="Datasets")).to_be_visible()
        table.get_by_role("link", name="web-tok-cars", exact=True).click()
        expect(reader.get_by_role("heading", name="web-tok-cars")).to_be_visible()
        wait_for_images(reader, ".tile img", 1)  # it may read and sign previews
        for action in ("Upload files", "Import links"):
            expect(reader.get_by_role("link", name=action)).to_have_count(0)
        expect(reader.get_by_role("button", name="Delete dataset")).to_have_count(0)
        reader.goto(f"{server.url}/#/datasets/{cars}/upload")  # typed in: said, not offered
        expect(reader.get_by_text("Read only.")).to_be_visible()
        expect(reader.get_by_label("Choose files")).to_have_count(0)
        reader.goto(f"{server.url}/#/settings/tokens")
        expect(reader.get_by_text("Admin only.")).to_be_visible()
        expect(reader.locator("main")).to_contain_text("a read token")
        reader.goto(f"{server.url}/#/datasets/{other}")
        expect(reader.get_by_role("alert")).to_contain_text("does not reach dataset")

        # revoked in the admin's page: gone from the list, and the reader's tab is sent to sign in
        page.get_by_role("button", name="Hide it").click()
        expect(page.get_by_label("The new token")).to_have_count(0)
        row.get_by_role("button", name=f"Revoke token {name}").click()
        dialog = page.locator("dialog#confirm")
        expect(dialog).to_contain_text(f"Revoke token “{name}”?")
        dialog.get_by_role("button", name="Revoke token").click()
        expect(row).to_have_count(0)
        expect(page.locator("#status")).to_contain_text(f"Revoked token {name}")
        wait_until_refused(server, token)
        reader.reload()
        expect(reader.get_by_label("Access token")).to_be_visible()
        expect(reader.get_by_role("alert")).to_contain_text("The server refused the token")
        assert not problems.errors, problems.errors
    finally:
        reader.context.close()


def test_a_write_token_sees_no_settings(browser: Browser, server: RunningServer, api: httpx.Client) -> None:
    dataset = create_dataset(api, "web-tok-write")
    token = cli(server, "token", "create", "--name", f"web-writer-{RUN}", "--write", "--connections", "photos-file")
    writer, problems = new_page(browser)
    try:
        sign_in(writer, server, token=token, route=f"#/datasets/{dataset}")
        expect(writer.get_by_role("heading", name="web-tok-write")).to_be_visible()
        expect(writer.locator(".page-header").get_by_role("link", name="Upload files")).to_be_visible()
        expect(writer.locator(".page-header").get_by_role("link", name="Import links")).to_be_visible()
        expect(writer.get_by_role("button", name="Delete dataset")).to_be_visible()
        expect(writer.locator("#main-nav li[data-needs='admin']:visible")).to_have_count(0)
        for entry in ("Storage", "Cloud connections", "Cache", "Tokens"):
            expect(writer.get_by_role("link", name=entry, exact=True)).to_have_count(0)

        # issue 17: no Clear button that answers 403 after the confirm
        writer.goto(f"{server.url}/#/settings/cache")
        expect(writer.locator("section.tier")).to_have_count(3)
        expect(writer.locator("section.tier button")).to_have_count(0)

        # it may sync the connection it was made for: it cannot browse it (admin only), so it types the folder
        writer.goto(f"{server.url}/#/datasets/{dataset}/links")
        expect(writer.get_by_label("Connection", exact=True)).to_have_count(0)
        expect(writer.locator("#sync-address-hint")).to_contain_text("may sync the buckets of photos-file")
        writer.get_by_label("Folder address").fill(f"s3://{LINKS_BUCKET}/other/")
        writer.get_by_role("button", name="Add this folder as links").click()
        report = writer.locator("#sync-report")
        expect(report.locator("[data-stat='listed'] .stat-value")).to_have_text("1")
        expect(report.locator("[data-stat='added'] .stat-value")).to_have_text("1")
        writer.get_by_label("Folder address").fill("fs://web-local/persons/")  # server-folder: not granted
        writer.get_by_role("button", name="Add this folder as links").click()
        expect(writer.get_by_role("alert")).to_contain_text("--connections server-folder")
        assert not problems.errors, problems.errors
    finally:
        writer.context.close()
