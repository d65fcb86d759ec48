"""The Python SDK and the upload/download commands, against the real server on local disk and on S3."""

from __future__ import annotations

import filecmp
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import cargohold
from cargohold.errors import AlreadyExists, BadInput, NotFound, Unauthenticated
from cargohold.sdk.client import Client

from ..support.api_server import RunningServer

MB = 1024 * 1024


def write_random(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        for start in range(0, size, 4 * MB):
            fh.write(os.urandom(min(4 * MB, size - start)))
    return path


class Counter:
    """A progress callback that adds up what it is told."""

    def __init__(self) -> None:
        self.total = 0

    def __call__(self, n: int) -> None:
        self.total += n


@pytest.fixture
def client(api_server: RunningServer) -> Iterator[Client]:
    with cargohold.Client(api_server.url, api_server.token) as sdk:
        yield sdk


def test_upload_list_and_download_a_dataset(client: Client, tmp_path: Path) -> None:
    src = tmp_path / "src"
    big = write_random(src / "big.bin", 30 * MB)
    small = [write_random(src / f"s{i}.bin", 1000 + i) for i in range(4)]
    nested = write_random(src / "sub" / "c.bin", 5000)
    created = client.create_dataset("cars")
    assert client.dataset("cars")["id"] == created["id"] == client.dataset(created["id"])["id"]
    assert [d["name"] for d in client.datasets()] == ["cars"]

    sent = Counter()
    results = client.upload("cars", [big, *small, ("sub/c.bin", nested)], progress=sent)
    assert [r["status"] for r in results] == ["created"] * 6
    assert [r["item"]["name"] for r in results] == ["big.bin", "s0.bin", "s1.bin", "s2.bin", "s3.bin", "sub/c.bin"]
    assert sent.total == 30 * MB + sum(1000 + i for i in range(4)) + 5000

    again = client.upload(created["id"], [small[0]])  # conflict="rename" is the default
    assert again[0]["status"] == "renamed" and again[0]["item"]["name"] == "s0 (1).bin"
    assert client.upload(created, [small[0]], conflict="skip")[0]["status"] == "skipped"

    items = list(client.list_items("cars", page_size=2))  # four pages
    assert [i["name"] for i in items] == [r["item"]["name"] for r in results] + ["s0 (1).bin"]
    assert client.dataset("cars")["item_count"] == 7

    for item, local in zip(items, [big, *small, nested], strict=False):
        dest = tmp_path / "out" / item["name"]
        dest.parent.mkdir(parents=True, exist_ok=True)
        assert client.download(item, dest) == dest
        assert filecmp.cmp(dest, local, shallow=False), item["name"]
        assert not dest.with_name(dest.name + ".part").exists()

    client.delete_item(items[-1]["id"])
    with pytest.raises(NotFound):
        client.item(items[-1]["id"])
    client.delete_dataset("cars")
    assert client.datasets() == []


def test_download_resumes_from_a_part_file_and_restarts_a_corrupt_one(client: Client, tmp_path: Path) -> None:
    size, head = 3 * MB + 17, 1 * MB + 5
    local = write_random(tmp_path / "video.bin", size)
    client.create_dataset("clips")
    item = client.upload("clips", [local])[0]["item"]
    dest = tmp_path / "dest.bin"
    part = tmp_path / "dest.bin.part"

    # An interrupted download left its first bytes: only the rest travels (a Range request).
    part.write_bytes(local.read_bytes()[:head])
    received = Counter()
    client.download(item["id"], dest, progress=received)
    assert received.total == size - head
    assert filecmp.cmp(dest, local, shallow=False) and not part.exists()

    # A .part with wrong bytes fails the SHA-256 check after the resume, and is fetched again whole.
    dest.unlink()
    part.write_bytes(os.urandom(head))
    received = Counter()
    client.download(item, dest, progress=received)
    assert received.total == (size - head) + size
    assert filecmp.cmp(dest, local, shallow=False) and not part.exists()

    # A .part longer than the item (not this item's bytes) is dropped before any request.
    part.write_bytes(os.urandom(size + 10))
    received = Counter()
    client.download(item, dest, progress=received)
    assert received.total == size
    assert filecmp.cmp(dest, local, shallow=False)

    # A complete .part is checked and kept: nothing travels.
    part.write_bytes(local.read_bytes())
    received = Counter()
    client.download(item, dest, progress=received)
    assert received.total == 0 and filecmp.cmp(dest, local, shallow=False)

    # The item was replaced after it was listed: the stale SHA-256 fails, the retry reads the item anew.
    replacement = write_random(tmp_path / "new" / "video.bin", 1000)
    assert client.upload("clips", [replacement], conflict="replace")[0]["item"]["id"] == item["id"]
    client.download(item, dest)
    assert filecmp.cmp(dest, replacement, shallow=False)


def test_signed_url_needs_no_token(client: Client, tmp_path: Path) -> None:
    local = write_random(tmp_path / "a.bin", 4096)
    client.create_dataset("signed")
    item = client.upload("signed", [local])[0]["item"]
    url = client.sign(item, expires_in=60)
    answer = httpx.get(url)
    assert answer.status_code == 200 and answer.content == local.read_bytes()
    assert httpx.get(url.replace("signature=", "signature=x")).status_code == 401


def test_previews_conversions_and_cache_counters(client: Client, tmp_path: Path) -> None:
    from PIL import Image

    photo = tmp_path / "scan.tiff"
    Image.new("RGB", (400, 200), (20, 40, 220)).save(photo, "TIFF")
    client.create_dataset("pictures")
    item = client.upload("pictures", [photo])[0]["item"]
    thumb = Image.open(io.BytesIO(client.preview(item, w=128, h=128, fit="cover", format="png")))
    assert thumb.format == "PNG" and thumb.size == (128, 128)
    signed = httpx.get(client.sign(item, expires_in=60, preview={"w": 64, "format": "webp"}))
    assert signed.headers["content-type"] == "image/webp" and Image.open(io.BytesIO(signed.content)).size == (64, 32)
    converted = httpx.get(client.sign(item, expires_in=60, format="jpeg"))
    assert Image.open(io.BytesIO(converted.content)).format == "JPEG"
    tiers = {t["name"]: t for t in client.cache_stats()}
    assert tiers["previews"]["entries"] == 2 and tiers["image-converter"]["entries"] == 1
    assert client.clear_cache("previews") == 2
    assert {t["name"]: t for t in client.cache_stats()}["previews"]["entries"] == 0


def test_video_frames(client: Client, tmp_path: Path) -> None:
    from PIL import Image

    from ..support.videos import frame_number, make_video

    clip = tmp_path / "clip.mp4"
    clip.write_bytes(make_video(40))
    client.create_dataset("clips")
    item = client.upload("clips", [clip])[0]["item"]
    assert item["video"]["frame_count"] == 40
    assert [frame_number(Image.open(io.BytesIO(client.frame(item, n)))) for n in (0, 13, 39)] == [0, 13, 39]
    at = Image.open(io.BytesIO(client.frame(item, t=1.0 + 0.01)))  # 25 fps: frame 25 is shown from 1 s
    assert at.format == "PNG" and at.size == (64, 48) and frame_number(at) == 25
    with pytest.raises(ValueError, match="one of them"):
        client.frame(item, 3, t=1.0)
    decoded = [frame_number(f.to_image()) for f in client.iter_frames(item, 5, 20, 5)]  # here, from ranges
    assert decoded == [5, 10, 15]
    late = [frame_number(f.to_image()) for f in client.iter_frames(item, 25, 32, 3)]  # from the GOP of 25
    assert late == [25, 28, 31]
    assert len(list(client.iter_frames(item))) == 40


def test_team_files(client: Client, tmp_path: Path) -> None:
    weights = write_random(tmp_path / "yolo.pt", 2 * MB + 3)
    stored = client.put_file("models/yolo.pt", weights)
    assert stored["path"] == "models/yolo.pt" and stored["size"] == 2 * MB + 3
    client.put_file("models/notes v1.txt", b"hello")
    client.put_file("other/readme.md", b"# other")

    assert client.get_file("models/yolo.pt", tmp_path / "got.pt") == tmp_path / "got.pt"
    assert filecmp.cmp(tmp_path / "got.pt", weights, shallow=False)
    client.get_file("models/notes v1.txt", tmp_path / "notes.txt")
    assert (tmp_path / "notes.txt").read_bytes() == b"hello"

    assert sorted(f["path"] for f in client.files("models/", page_size=1)) == ["models/notes v1.txt",
                                                                                "models/yolo.pt"]
    assert len(list(client.files())) == 3
    client.delete_file("models/yolo.pt")
    with pytest.raises(NotFound):
        client.get_file("models/yolo.pt", tmp_path / "gone.pt")
    assert not (tmp_path / "gone.pt").exists()
    assert [f["path"] for f in client.files("models/")] == ["models/notes v1.txt"]


def test_errors_map_to_their_exception_classes(api_server: RunningServer, client: Client, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="no item with id 999"):
        client.item(999)
    with pytest.raises(NotFound):
        client.dataset("nope")
    client.create_dataset("dup")
    with pytest.raises(AlreadyExists, match="'dup' exists") as caught:
        client.create_dataset("dup")
    assert caught.value.http_status == 409
    with pytest.raises(BadInput):
        client.create_dataset("a/b")
    with cargohold.Client(api_server.url, "not-a-token") as stranger, pytest.raises(Unauthenticated):
        stranger.datasets()
    with pytest.raises(NotFound):
        client.upload(12345, [write_random(tmp_path / "x.bin", 10)])


def test_importing_the_package_does_not_load_the_sdk() -> None:
    code = "import sys, cargohold; assert 'httpx' not in sys.modules; assert cargohold.Client.__name__ == 'Client'"
    subprocess.run([sys.executable, "-c", code], check=True)


def run_cli(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("STORAGE_", "SERVER_", "CARGOHOLD_"))}
    clean.update({"CARGOHOLD_HOME": str(home), "COLUMNS": "200", **(env or {})})
    return subprocess.run([sys.executable, "-m", "cargohold", *args], env=clean, capture_output=True, text=True,
                          timeout=120)


def test_cli_upload_and_download(api_server: RunningServer, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    files = {
        "a.bin": write_random(photos / "a.bin", 2 * MB),
        "red/b.bin": write_random(photos / "red" / "b.bin", 3000),
        "red/dark/c.bin": write_random(photos / "red" / "dark" / "c.bin", 10),
        "d.bin": write_random(tmp_path / "d.bin", 5 * MB + 1),
    }
    elsewhere = tmp_path / "client-home"  # no settings, no token there: --url and --token say it all
    flags = ("--url", api_server.url, "--token", api_server.token)

    missing = run_cli(elsewhere, "upload", "cars", str(photos), *flags)
    assert missing.returncode == 1 and "add --create" in missing.stderr

    up = run_cli(elsewhere, "upload", "cars", str(photos), str(tmp_path / "d.bin"), "--create", *flags)
    assert up.returncode == 0, up.stdout + up.stderr
    assert "4 created" in up.stdout

    again = run_cli(elsewhere, "upload", "cars", str(photos), "--conflict", "skip", *flags)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "uploaded 0 bytes" in again.stdout and "0 created" in again.stdout and "3 skipped" in again.stdout

    dest = tmp_path / "dest"
    down = run_cli(elsewhere, "download", "cars", str(dest), *flags)
    assert down.returncode == 0, down.stdout + down.stderr
    assert "downloaded 4 files" in down.stdout
    for name, local in files.items():
        assert filecmp.cmp(dest / name, local, shallow=False), name

    # An interrupted file resumes from its .part; the others are complete and skipped.
    (dest / "d.bin").unlink()
    (dest / "d.bin.part").write_bytes(files["d.bin"].read_bytes()[: 4 * MB])
    resumed = run_cli(elsewhere, "download", "cars", str(dest), env={"CARGOHOLD_TOKEN": api_server.token,
                                                                     "CARGOHOLD_URL": api_server.url})
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "downloaded 1 files (1.0 MB transferred)" in resumed.stdout and "3 already complete" in resumed.stdout
    assert filecmp.cmp(dest / "d.bin", files["d.bin"], shallow=False)

    # On the server's machine the URL and the admin token come from its instance home.
    idle = run_cli(api_server.home, "download", "cars", str(dest))
    assert idle.returncode == 0, idle.stdout + idle.stderr
    assert "downloaded 0 files (0 bytes transferred)" in idle.stdout and "4 already complete" in idle.stdout

    refused = run_cli(elsewhere, "download", "cars", str(dest), "--url", api_server.url, "--token", "wrong")
    assert refused.returncode == 1 and refused.stderr.startswith("cargohold: ")
