"""Hostile input against the real ``cargohold up`` on local disk: path traversal (fs:// links, team-file
paths, item names), SSRF through http(s):// links, decompression bombs, malformed multipart, oversized
headers, a links file of a million garbage lines, a bad ``remote_links.yml``, and numbers no parser
expected. Each gets a clear 4xx (or an exit code and a message), and after each the server still
answers ``/healthz`` and an ordinary request, and has logged no traceback.

Covered elsewhere and not repeated here: a plain ``..`` and a symbolic link to a file outside the folder
in ``fs://`` links (tests/http/test_links.py, every scheme, SQLite and PostgreSQL), the percent-encoded
``%2E%2E`` team-file paths and ``.staging/`` (tests/http/test_api.py), every refusal of ``remote_links.yml``
in-process (tests/http/test_connections.py, 26 files).

Nothing here sends a byte beyond this machine: every address an SSRF case names is first shown to be
refused by the in-process check, which resolves but never connects, before the server is given it;
the server's own test web server (``canary``) is on 127.0.0.1 and counts every request it gets.
"""

from __future__ import annotations

import asyncio
import http.client
import io
import json
import os
import random
import secrets
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import psutil
import pytest
from PIL import Image

from cargohold.errors import BadGateway, BadInput, ConnectionsFileError, Forbidden, NotFound
from cargohold.storage.connections import load_file
from cargohold.storage.http_links import HttpLinks

from ..support.api import assert_error, png_declaring
from ..support.api_server import RunningServer

SECRET = "outside-the-mount-" + secrets.token_hex(8)
MARKER = "cargohold-hostile-" + secrets.token_hex(6)  # a file name that must never appear outside the data


def jpeg_declaring(width: int, height: int) -> bytes:
    """A small, well-formed JPEG whose frame header (SOF0) declares ``width`` x ``height``."""
    out = io.BytesIO()
    Image.new("RGB", (16, 16), "red").save(out, "JPEG")
    data = bytearray(out.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(data)


def small_png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 6), "blue").save(out, "PNG")
    return out.getvalue()


class Canary(BaseHTTPRequestHandler):
    """A web server on loopback that SSRF cases point at: every request it gets is a failure."""

    hits: list[str]
    redirects: dict[str, str]

    def do_GET(self) -> None:
        self.hits.append(self.path)
        target = self.redirects.get(self.path.split("?")[0])
        if target is not None:
            self.send_response(302)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = b"canary: " + self.path.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_HEAD = do_GET

    def log_message(self, *args: Any) -> None:
        pass


@dataclass
class Hostile:
    server: RunningServer
    root: Path
    mount: Path
    dataset: int
    normal_id: int
    normal: bytes
    canary_port: int
    hits: list[str]
    redirects: dict[str, str]
    responses: list[bytes] = field(default_factory=list)

    def client(self, **kwargs: Any) -> httpx.Client:
        return self.server.client(**kwargs)

    def seen(self, response: httpx.Response) -> httpx.Response:
        """Keeps every answer: none may ever hold the file outside the mount."""
        self.responses.append(response.content)
        assert SECRET.encode() not in response.content, response.request.url
        assert response.status_code < 500, f"{response.request.method} {response.request.url}: {response.text[:300]}"
        return response

    def still_serving(self) -> None:
        assert httpx.get(self.server.url + "/healthz", timeout=10).status_code == 200
        with self.client() as client:
            assert client.get("/datasets").status_code == 200
            assert client.get(f"/items/{self.normal_id}/content").content == self.normal
        assert self.server.process is not None and self.server.process.poll() is None
        assert "Traceback" not in self.server.log.read_text(), self.server.log.read_text()[-3000:]

    def links(self, urls: list[str], verify: bool = True) -> dict[str, Any]:
        with self.client() as client:
            answer = self.seen(client.post(f"/datasets/{self.dataset}/links", params={"verify": str(verify).lower()},
                                           json={"links": urls}))
        assert answer.status_code == 200, answer.text
        return dict(answer.json())


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hostile]:
    root = tmp_path_factory.mktemp("hostile")
    outside = root / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(SECRET)
    mount = root / "mount"
    (mount / "img").mkdir(parents=True)
    (mount / "ok.txt").write_text("inside the mount")
    (mount / "later.txt").write_text("inside, for now")
    (mount / "img" / "ok.png").write_bytes(small_png())
    (mount / "img" / "bomb.png").write_bytes(png_declaring(50_000, 50_000))
    (mount / "img" / "bomb.jpg").write_bytes(jpeg_declaring(65_000, 65_000))
    os.symlink(outside, mount / "evil")  # a folder leading out
    os.symlink(mount / "ok.txt", mount / "inner.txt")  # a link that stays inside: fine
    home = root / "home"
    home.mkdir()
    (home / "remote_links.yml").write_text(f"mount:\n  provider: fs\n  path: {mount}\n  storage_id: mount\n")

    hits: list[str] = []
    redirects: dict[str, str] = {}
    handler = type("Handler", (Canary,), {"hits": hits, "redirects": redirects})
    canary = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=canary.serve_forever, daemon=True).start()

    server = RunningServer(home, {}).start()
    try:
        with server.client() as client:
            dataset = client.post("/datasets", json={"name": "hostile"}).json()["id"]
            normal = b"an ordinary file"
            item = client.post(f"/datasets/{dataset}/items", files=[("files", ("normal.txt", normal))]).json()
        yield Hostile(server, root, mount, dataset, item["results"][0]["item"]["id"], normal,
                      canary.server_address[1], hits, redirects)
    finally:
        server.stop()
        canary.shutdown()
        canary.server_close()


def no_marker_outside(hostile: Hostile) -> None:
    """No file named MARKER anywhere but in the server's own storage, nor in /tmp."""
    data = hostile.server.home / "data"
    stray = [p for p in hostile.root.rglob(f"*{MARKER}*") if not p.is_relative_to(data)]
    stray += list(Path("/tmp").glob(f"*{MARKER}*"))
    assert not stray, stray


# --- path traversal -----------------------------------------------------------------------------------------------

FS_TRAVERSALS = [
    "fs://mount/%2e%2e/outside/secret.txt",  # percent-encoded: taken literally, so a name that is not there
    "fs://mount/..%2foutside%2fsecret.txt",
    "fs://mount/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
    "fs://mount/%2Fetc%2Fpasswd",
    "fs://mount//etc/passwd",  # absolute
    "fs://mount/img/../../outside/secret.txt",  # '..' further in
    "fs://mount/ok.txt/..",
    "fs://mount/./ok.txt",
    "fs://mount/ok.txt\x00/../../outside/secret.txt",  # NUL
    "fs://mount/%00",
    "fs://mount/..\\outside\\secret.txt",  # backslashes
    "fs://mount/evil/secret.txt",  # a symbolic link to a folder outside
    "fs://mount/\uff0e\uff0e/outside/secret.txt",  # fullwidth dots: only a strange name
]


@pytest.mark.reliability(kind="attack", cases=len(FS_TRAVERSALS) + 8, what="path traversal in `fs://` links: "
                         "percent-encoded, absolute, NUL, backslash, `..` further in, a symlinked folder leading "
                         "out, a file swapped for a symlink after it was added (read, preview)")
def test_path_traversal_in_fs_links_encoded_absolute_nul_backslash_and_symlinks(hostile: Hostile) -> None:
    report = hostile.links([*FS_TRAVERSALS, "fs://mount/ok.txt", "fs://mount/inner.txt"])
    refused = {r["line"]: r["reason"] for r in report["refused"]}
    assert sorted(refused) == list(range(1, len(FS_TRAVERSALS) + 1)), report
    assert all(reason.strip() for reason in refused.values())
    assert report["added"] == 2, "the mount itself works: a file and a link that stays inside"

    # Without verification nothing is read when a link is added; every read then checks again.
    unverified = hostile.links(["fs://mount/%2e%2e/outside/secret.txt", "fs://mount/evil/secret.txt"], verify=False)
    assert unverified["added"] == 2, unverified
    with hostile.client() as client:
        items = {i["uri"]: i["id"] for i in client.get(f"/datasets/{hostile.dataset}/items").json()["items"]}
        for uri in ("fs://mount/%2e%2e/outside/secret.txt", "fs://mount/evil/secret.txt"):
            assert_error(hostile.seen(client.get(f"/items/{items[uri]}/content")), 404)
            # A preview of a .txt is refused before anything is read (422); a read would be 404.
            assert hostile.seen(client.get(f"/items/{items[uri]}/preview")).status_code in (404, 422)

        # Checked on every read, not only when added: a file swapped for a link to outside is not served.
        assert hostile.links(["fs://mount/later.txt"])["added"] == 1
        later = client.get(f"/datasets/{hostile.dataset}/items", params={"name": "later"}).json()["items"][0]["id"]
        assert hostile.seen(client.get(f"/items/{later}/content")).content == b"inside, for now"
        (hostile.mount / "later.txt").unlink()
        os.symlink(hostile.root / "outside" / "secret.txt", hostile.mount / "later.txt")
        assert_error(hostile.seen(client.get(f"/items/{later}/content")), 404)
        assert_error(hostile.seen(client.get(f"/items/{later}/content", headers={"Range": "bytes=0-3"})), 404)
    hostile.still_serving()


def raw_request(server: RunningServer, method: str, target: str, body: bytes = b"",
                headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """One request with ``target`` sent exactly as written (httpx would resolve '..' and encode the rest)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection.putrequest(method, target, skip_accept_encoding=True)
        for name, value in {"Authorization": f"Bearer {server.token}", "Content-Length": str(len(body)),
                            **(headers or {})}.items():
            connection.putheader(name, value)
        connection.endheaders(body)
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


TEAM_FILE_TRAVERSALS = [
    f"../../../../../../tmp/{MARKER}",  # '..' as sent, not resolved by the client
    f"a/../../{MARKER}",
    f"..%2f..%2f{MARKER}",  # an encoded slash
    f"%2e%2e%2f%2e%2e%2f{MARKER}",
    f"/tmp/{MARKER}",  # absolute: /api/v1/files//tmp/...
    f"%2Ftmp%2F{MARKER}",
    f"{MARKER}%00.txt",  # NUL
    f"..%5c..%5c{MARKER}",  # backslashes
    f"a%5c..%5c{MARKER}",
    f"{MARKER}/%0a/x",  # a line feed
]


@pytest.mark.reliability(kind="attack", cases=len(TEAM_FILE_TRAVERSALS) * 3 + 2, what="path traversal in team-file "
                         "paths (`PUT`/`GET`/`DELETE /api/v1/files/{path}`): raw and encoded `..`, encoded "
                         "slashes, absolute, NUL, backslashes, line feed, overlong UTF-8 dots")
def test_path_traversal_in_team_file_paths(hostile: Hostile) -> None:
    for path in TEAM_FILE_TRAVERSALS:
        for method in ("PUT", "GET", "DELETE"):
            status, body = raw_request(hostile.server, method, f"/api/v1/files/{path}", b"planted" * 10)
            assert status in (400, 404), (method, path, status, body[:300])
            assert json.loads(body)["error"]["message"], body
    # Overlong UTF-8 for '.' is not a dot to anything here: a strange but harmless name, kept in the bucket.
    status, body = raw_request(hostile.server, "PUT", f"/api/v1/files/%c0%ae%c0%ae/{MARKER}", b"x")
    assert status in (201, 400), (status, body)
    status, body = raw_request(hostile.server, "GET", "/api/v1/files/..%2f..%2fadmin.token")
    assert status == 400 and hostile.server.token.encode() not in body
    with hostile.client() as client:
        listed = [f["path"] for f in client.get("/files", params={"limit": 1000}).json()["files"]]
    assert not [p for p in listed if ".." in p.split("/") or p.startswith("/") or "\\" in p], listed
    no_marker_outside(hostile)
    hostile.still_serving()


ITEM_NAMES_REFUSED = [
    f"../{MARKER}", f"../../../../../../tmp/{MARKER}", f"/tmp/{MARKER}", f"a/../../{MARKER}", f"{MARKER}\x00.txt",
    f"..\\..\\{MARKER}", f"a\\..\\{MARKER}", ".", "..", "", "a//b", f"{MARKER}\n.txt",
]
ITEM_NAMES_TAKEN = [f"C:\\Users\\x\\{MARKER}.txt", f"%2e%2e/{MARKER}"]  # a browser's path: its last part; literal %


def multipart(filename: str, data: bytes = b"planted", boundary: str = "hostile-boundary") -> tuple[bytes, dict[str,
                                                                                                               str]]:
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{filename}"\r\n\r\n'
    body = head.encode("utf-8", "surrogateescape") + data + f"\r\n--{boundary}--\r\n".encode()
    return body, {"content-type": f"multipart/form-data; boundary={boundary}"}


@pytest.mark.reliability(kind="attack", cases=len(ITEM_NAMES_REFUSED) + len(ITEM_NAMES_TAKEN), what="path traversal "
                         "in item names (multipart filename): `../`, absolute, NUL, backslashes, `.`, empty, line feed")
def test_path_traversal_in_item_names(hostile: Hostile) -> None:
    with hostile.client() as client:
        before = len(client.get(f"/datasets/{hostile.dataset}/items", params={"limit": 1000}).json()["items"])
        for name in ITEM_NAMES_REFUSED:
            body, headers = multipart(name)
            assert_error(hostile.seen(client.post(f"/datasets/{hostile.dataset}/items", content=body,
                                                  headers=headers)), 400, "bad_input")
        for name in ITEM_NAMES_TAKEN:
            body, headers = multipart(name)
            answer = hostile.seen(client.post(f"/datasets/{hostile.dataset}/items", content=body, headers=headers))
            assert answer.status_code == 201, answer.text
            stored = answer.json()["results"][0]["item"]["name"]
            assert ".." not in stored.split("/") and not stored.startswith("/") and "\\" not in stored, stored
        after = len(client.get(f"/datasets/{hostile.dataset}/items", params={"limit": 1000}).json()["items"])
    assert after == before + len(ITEM_NAMES_TAKEN)
    bucket = hostile.server.home / "data" / "storage" / "cargohold-public"
    assert {p.relative_to(bucket).parts[0] for p in bucket.rglob("*") if p.is_file()} <= {"sha256"}, \
        "stored bytes are named by their hash, never by the item's name"
    no_marker_outside(hostile)
    hostile.still_serving()


# --- SSRF ---------------------------------------------------------------------------------------------------------


def ssrf_urls(port: int) -> list[str]:
    loopback = [
        "127.0.0.1", "localhost", "LOCALHOST", "127.1", "0177.0.0.1", "2130706433", "0x7f000001", "0x7f.0x0.0x0.0x1",
        "017700000001", "[::1]", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "[0:0:0:0:0:ffff:127.0.0.1]",
        "[::127.0.0.1]", "0.0.0.0", "0", "[::]",
    ]
    elsewhere = [
        "10.0.0.1", "172.16.0.1", "192.168.0.1", "169.254.169.254", "[::ffff:169.254.169.254]", "2852039166",
        "0251.0376.0251.0376", "100.100.100.200", "[fe80::1]", "[fe80::1%lo]", "[fd00::1]", "[fec0::1]",
        "[2002:7f00:1::]", "[64:ff9b::7f00:1]", "224.0.0.1", "255.255.255.255", "192.0.2.2",
    ]
    return ([f"http://{host}:{port}/ssrf.jpg" for host in loopback] + [f"https://127.0.0.1:{port}/ssrf.jpg"]
            + [f"http://{host}/latest/meta-data/" for host in elsewhere])


async def refused_in_process(urls: list[str]) -> dict[str, str]:
    """Each URL's refusal by the server's own check (which resolves, and never connects)."""
    links = HttpLinks(allow_private=False)
    reasons: dict[str, str] = {}
    try:
        for url in urls:
            try:
                await links.check_address(url)
            except (Forbidden, NotFound, BadInput) as exc:
                reasons[url] = exc.message
            else:
                pytest.fail(f"{url} passed the public-address check; not sending it to the server")
    finally:
        await links.close()
    return reasons


@pytest.mark.reliability(kind="attack", cases=2 * 35, what="SSRF through `http(s)://` links: loopback, private "
                         "ranges, 169.254.169.254, 100.100.100.200, IPv6 forms (::1, ::ffff:127.0.0.1, fe80::, 6to4, "
                         "NAT64), decimal/octal/hex IPv4 (added, and read after adding unverified)")
def test_ssrf_to_loopback_private_link_local_and_metadata_addresses(hostile: Hostile) -> None:
    urls = ssrf_urls(hostile.canary_port)
    assert len(urls) == 35
    hits = len(hostile.hits)
    reasons = asyncio.run(refused_in_process(urls))
    assert all("public addresses" in r for r in reasons.values()), reasons

    report = hostile.links(urls)
    assert report["added"] == 0 and report["refused_count"] == len(urls), report
    assert all("public addresses" in r["reason"] for r in report["refused"]), report["refused"]
    unverified = hostile.links(urls, verify=False)  # registered without a fetch; reading one is checked again
    assert unverified["added"] + unverified["renamed"] == len(urls), unverified
    with hostile.client() as client:
        items = [i for i in client.get(f"/datasets/{hostile.dataset}/items", params={"limit": 1000}).json()["items"]
                 if i["uri"] in urls]
        assert len(items) == len(urls)
        for item in items:
            error = assert_error(hostile.seen(client.get(f"/items/{item['id']}/content")), 403)
            assert "public addresses" in error["message"]
        for item in items:
            assert client.delete(f"/items/{item['id']}").status_code == 204
    assert hostile.hits[hits:] == [], "the canary on loopback was reached"
    hostile.still_serving()


def loopback_names_in_etc_hosts() -> list[str]:
    """Names other than localhost that this machine's /etc/hosts maps to a loopback address."""
    names: list[str] = []
    for line in Path("/etc/hosts").read_text().splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) >= 2 and (fields[0].startswith("127.") or fields[0] == "::1"):
            names += [n for n in fields[1:] if n.lower() not in ("localhost", "localhost.localdomain")]
    return sorted(set(names))


@pytest.mark.reliability(kind="attack", cases=0, what="SSRF through DNS names that resolve to loopback "
                         "(`localhost`, names in /etc/hosts) and, with a stub resolver, to private, link-local and "
                         "mixed public+private answers")
def test_ssrf_through_dns_names_that_resolve_to_private_addresses(hostile: Hostile, monkeypatch: pytest.MonkeyPatch,
                                                                  request: pytest.FixtureRequest) -> None:
    port = hostile.canary_port
    hits = len(hostile.hits)
    names = ["localhost", *loopback_names_in_etc_hosts()[:3]]
    urls = [f"http://{name}:{port}/by-name.jpg" for name in names]
    asyncio.run(refused_in_process(urls))
    report = hostile.links(urls)
    assert report["added"] == 0 and all("public addresses" in r["reason"] for r in report["refused"]), report

    # Names this machine cannot resolve (no DNS here), answered by a stub resolver: the check refuses a name
    # when any of its addresses is not public.
    answers = {
        "internal.example": ["10.1.2.3"], "metadata.example": ["169.254.169.254"], "v6.example": ["::ffff:10.0.0.1"],
        "link-local.example": ["fe80::1"], "mixed.example": ["93.184.216.34", "127.0.0.1"],
        "cgnat.example": ["100.100.100.200"],
    }

    async def stub(host: str, port: int | None, **kwargs: Any) -> list[tuple[Any, ...]]:
        family = socket.AF_INET6
        return [(family if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in answers[host]]

    async def check_all() -> None:
        monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", stub)
        links = HttpLinks(allow_private=False)
        try:
            for name in answers:
                with pytest.raises(Forbidden, match="public addresses"):
                    await links.check_address(f"https://{name}/a.jpg")
        finally:
            await links.close()

    asyncio.run(check_all())
    assert hostile.hits[hits:] == []
    request.node.user_properties.append(("reliability_cases", len(urls) + len(answers)))
    hostile.still_serving()


@pytest.mark.reliability(kind="attack", cases=1, what="SSRF through wildcard DNS names (`127.0.0.1.nip.io`)")
def test_ssrf_through_wildcard_dns_names(hostile: Hostile) -> None:
    try:
        socket.getaddrinfo("127.0.0.1.nip.io", 80)
    except OSError:
        pytest.skip("wildcard DNS names (127.0.0.1.nip.io) do not resolve on this machine (no DNS); the stub "
                    "resolver test covers names that resolve to private addresses")
    hits = len(hostile.hits)
    report = hostile.links([f"http://127.0.0.1.nip.io:{hostile.canary_port}/a.jpg"])
    assert report["added"] == 0 and "public addresses" in report["refused"][0]["reason"], report
    assert hostile.hits[hits:] == []


class FirstHopPublic(HttpLinks):
    """The server's link reader, with one change: the first URL counts as public. The test web server can
    only be on loopback here (no other address of this machine may be used), so this stands for a public
    site; every later URL, each redirect, goes through the real check."""

    def __init__(self, first: str) -> None:
        super().__init__(allow_private=False)
        self.first = first
        self.checked: list[str] = []

    async def check_address(self, url: str) -> None:
        self.checked.append(url)
        if url != self.first:
            await super().check_address(url)


@pytest.mark.reliability(kind="attack", cases=8, what="SSRF via redirects: a public first hop redirecting to "
                         "127.0.0.1, ::1, 169.254.169.254, a decimal IPv4, localhost, file://, a bad port, in a loop")
def test_ssrf_via_redirects_is_refused_at_every_hop(hostile: Hostile) -> None:
    port = hostile.canary_port
    base = f"http://127.0.0.1:{port}"
    targets = {
        "/to-loopback": f"{base}/secret", "/to-v6": f"http://[::1]:{port}/secret",
        "/to-metadata": "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "/to-decimal": f"http://2130706433:{port}/secret", "/to-localhost": f"http://localhost:{port}/secret",
        "/to-relative": "/secret", "/to-file": "file:///etc/passwd", "/to-bad-port": "http://example.com:99999/",
        "/loop": "/loop",
    }
    hostile.redirects.update(targets)
    hits = len(hostile.hits)

    async def follow(path: str) -> tuple[Exception, list[str]]:
        links = FirstHopPublic(base + path)
        try:
            with pytest.raises((Forbidden, BadInput, BadGateway)) as caught:
                await links.get(base + path)
            return caught.value, links.checked
        finally:
            await links.close()

    for path in ("/to-loopback", "/to-v6", "/to-metadata", "/to-decimal", "/to-localhost", "/to-relative"):
        error, checked = asyncio.run(follow(path))
        assert isinstance(error, Forbidden) and "public addresses" in error.message, (path, error)
        assert len(checked) == 2, checked
    for path in ("/to-file", "/to-bad-port"):
        error, checked = asyncio.run(follow(path))
        assert isinstance(error, BadInput), (path, error)
    error, checked = asyncio.run(follow("/loop"))
    assert isinstance(error, BadGateway) and "redirects" in error.message and len(checked) == 6
    assert "/secret" not in hostile.hits[hits:], "a redirect target was fetched"
    assert hostile.hits[hits:].count("/loop") == 6
    hostile.still_serving()


# --- decompression bombs ------------------------------------------------------------------------------------------


@pytest.mark.reliability(kind="attack", cases=10, what="decompression bombs: PNG (50,000²) and JPEG (65,000²) "
                         "headers, uploaded and linked: upload, link verification, preview, conversion")
def test_decompression_bombs_png_and_jpeg_are_refused_without_decoding(hostile: Hostile) -> None:
    process = psutil.Process(hostile.server.process.pid)  # type: ignore[union-attr]
    rss = process.memory_info().rss
    bombs = {"bomb.png": png_declaring(50_000, 50_000), "bomb.jpg": jpeg_declaring(65_000, 65_000)}
    with hostile.client() as client:
        for name, data in bombs.items():
            error = assert_error(hostile.seen(client.post(f"/datasets/{hostile.dataset}/items",
                                                          files=[("files", (name, data))])), 422, "unprocessable")
            assert "IMAGE_MAX_PIXELS" in error["message"]
        assert not client.get(f"/datasets/{hostile.dataset}/items", params={"name": "bomb"}).json()["items"]

        verified = hostile.links(["fs://mount/img/bomb.png", "fs://mount/img/bomb.jpg"])
        assert verified["added"] == 0 and len(verified["refused"]) == 2, verified
        assert all("IMAGE_MAX_PIXELS" in r["reason"] for r in verified["refused"]), verified
        assert hostile.links(["fs://mount/img/bomb.png", "fs://mount/img/bomb.jpg"], verify=False)["added"] == 2
        linked = client.get(f"/datasets/{hostile.dataset}/items", params={"name": "bomb"}).json()["items"]
        assert len(linked) == 2
        for item in linked:
            for params in ({}, {"w": "2048", "h": "2048"}, {"format": "webp"}):  # preview, preview, conversion
                path = f"/items/{item['id']}/preview" if "format" not in params else f"/items/{item['id']}/content"
                error = assert_error(hostile.seen(client.get(path, params=params)), 422, "unprocessable")
                assert "not decoded" in error["message"], error
            raw = hostile.seen(client.get(f"/items/{item['id']}/content"))
            assert raw.status_code == 200 and raw.content == bombs[item["name"].rsplit("/", 1)[-1]]
            assert client.delete(f"/items/{item['id']}").status_code == 204
    assert process.memory_info().rss - rss < 100 * 2**20, "no pixel was decoded"
    hostile.still_serving()


# --- malformed requests -------------------------------------------------------------------------------------------

B = "hostile-boundary"
MALFORMED_MULTIPART: list[tuple[str, bytes, str]] = [
    # (what, body, content type)
    ("no boundary", b"--x\r\n", "multipart/form-data"),
    ("not multipart", b"{}", "application/json"),
    ("truncated", f'--{B}\r\nContent-Disposition: form-data; name="files"; filename="a.txt"\r\n\r\nhello'.encode(),
     f"multipart/form-data; boundary={B}"),
    ("a 100 KB part header", f'--{B}\r\nContent-Disposition: form-data; name="files"; filename="a.txt"\r\n'
     f'X-Pad: {"p" * 100_000}\r\n\r\nhello\r\n--{B}--\r\n'.encode(), f"multipart/form-data; boundary={B}"),
    ("a part without a filename", f'--{B}\r\nContent-Disposition: form-data; name="files"\r\n\r\nhello\r\n--{B}--\r\n'
     .encode(), f"multipart/form-data; boundary={B}"),
    ("2,000 parts without a filename", "".join(
        f'--{B}\r\nContent-Disposition: form-data; name="f{i}"\r\n\r\nv\r\n' for i in range(2000)).encode()
     + f"--{B}--\r\n".encode(), f"multipart/form-data; boundary={B}"),
    ("random bytes", random.Random(8).randbytes(20_000), f"multipart/form-data; boundary={B}"),
    ("a header line without a colon", f"--{B}\r\nContent-Disposition form-data\r\n\r\nx\r\n--{B}--\r\n".encode(),
     f"multipart/form-data; boundary={B}"),
    ("a 5,000-character boundary", b"--" + b"b" * 5000 + b"\r\n", "multipart/form-data; boundary=" + "b" * 5000),
    ("an empty body", b"", f"multipart/form-data; boundary={B}"),
    ("only the closing boundary", f"--{B}--\r\n".encode(), f"multipart/form-data; boundary={B}"),
]


@pytest.mark.reliability(kind="bad input", cases=len(MALFORMED_MULTIPART), what="malformed multipart uploads: no "
                         "boundary, truncated body, 100 KB part headers, parts without a filename, random bytes, a "
                         "5,000-character boundary, empty")
def test_malformed_multipart_is_refused(hostile: Hostile) -> None:
    with hostile.client() as client:
        before = client.get(f"/datasets/{hostile.dataset}/items", params={"limit": 1000}).json()["items"]
        for what, body, content_type in MALFORMED_MULTIPART:
            answer = hostile.seen(client.post(f"/datasets/{hostile.dataset}/items", content=body,
                                              headers={"content-type": content_type}))
            error = assert_error(answer, 400, "bad_input")
            assert error["message"], what
        after = client.get(f"/datasets/{hostile.dataset}/items", params={"limit": 1000}).json()["items"]
    assert after == before, "no item from a refused upload"
    staging = hostile.server.home / "data" / "storage" / "cargohold-public" / ".staging"
    assert not (staging.is_dir() and any(staging.iterdir())), "nothing left half-written"
    hostile.still_serving()


BAD_BODIES: list[tuple[str, str, Any]] = [
    # JSON a schema would refuse, each 400 (the fuzzer found the first two)
    ("/datasets/{ds}/links", "links", {"links": [{"url": None, "name": 3.5}]}),
    ("/sign", "items", {"items": [True, True], "preview": {"w": True}}),
    ("/datasets/{ds}/links", "links", {"links": [["s3://a/b"]]}),
    ("/datasets/{ds}/links", "links", {"links": "s3://a/b"}),
    ("/items/{item}/sign", "expires", {"expires_in": 1.5}),
    ("/datasets", "name", {"name": ["x"]}),
]


@pytest.mark.reliability(kind="bad input", cases=27, what="numbers no parser expected (`²`, `٣`, 5,000 digits) "
                         "in `Range`, preview parameters, item ids and signed-URL expiries; JSON bodies of the wrong "
                         "types")
def test_odd_numbers_and_wrong_json_types_get_a_4xx(hostile: Hostile) -> None:
    huge = "9" * 5000
    item = hostile.normal_id
    with hostile.client() as client:
        assert client.put("/files/hostile/odd.bin", content=b"0123456789").status_code == 201
        for header in ("bytes=\u00b2-", "bytes=0-\u00b2", f"bytes={huge}-", f"bytes=0-{huge}", f"bytes=-{huge}",
                       "bytes=\u0663-"):
            for path in (f"/items/{item}/content", "/files/hostile/odd.bin"):
                answer = hostile.seen(client.get(path, headers={"Range": header.encode("utf-8")}))
                assert answer.status_code in (200, 206, 416), (path, header, answer.status_code)
        for query in ("w=\u00b2", f"w={huge}", "q=\u0663", "h=-1"):
            assert_error(hostile.seen(client.get(f"/items/{item}/preview?{query}")), 400)
        for path in (f"/items/{huge}/content", "/items/\u0661/content", f"/items/{huge}"):
            assert hostile.seen(client.get(path)).status_code in (400, 404), path
        signed = urlsplit(client.post(f"/items/{item}/sign", json={"expires_in": 60}).json()["url"])
        for bad in ("\u0663", huge):
            query = urlencode({**dict(parse_qsl(signed.query)), "expires": bad})
            assert_error(hostile.seen(httpx.get(f"{hostile.server.url}{signed.path}?{query}", timeout=10)), 401)
        for path, _, body in BAD_BODIES:
            target = path.format(ds=hostile.dataset, item=item)
            assert_error(hostile.seen(client.post(target, json=body)), 400)
    hostile.still_serving()


def raw_exchange(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(request)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
        return answer


@pytest.mark.reliability(kind="attack", cases=5, what="oversized headers: one of 100 KB, one of 1 MB, 10,000 "
                         "headers, a 60 KB bearer token, a 100 KB query string")
def test_oversized_headers_are_refused(hostile: Hostile) -> None:
    token = hostile.server.token.encode()
    port = hostile.server.port

    def request(target: bytes = b"/api/v1/datasets", extra: bytes = b"", auth: bytes = b"Bearer " + token) -> bytes:
        return (b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: " + auth + b"\r\n" + extra
                + b"Connection: close\r\n\r\n")

    def status(answer: bytes) -> int:
        return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0

    for extra in (b"X-Big: " + b"a" * 100_000 + b"\r\n", b"X-Big: " + b"a" * 1_000_000 + b"\r\n",
                  b"".join(b"X-%d: value\r\n" % i for i in range(10_000))):
        answer = raw_exchange(port, request(extra=extra))
        assert status(answer) in (400, 431), answer[:200]
        hostile.still_serving()
    assert status(raw_exchange(port, request(auth=b"Bearer " + b"a" * 60_000))) in (400, 401, 431)
    assert status(raw_exchange(port, request(target=b"/api/v1/datasets?" + b"q" * 100_000))) in (400, 414, 431)
    hostile.still_serving()


# --- a million garbage lines --------------------------------------------------------------------------------------

LINES = 1_000_000


def garbage_links_file(seed: int) -> bytes:
    """A million lines of random bytes: each starts with a byte that makes it neither blank nor a comment."""
    rnd = random.Random(seed)
    starts = b"ABCXYZabcxyz0123456789\x80\xc3\xe2\xff"
    blob = rnd.randbytes(LINES * 9).replace(b"\n", b"?")
    lines = [bytes([starts[blob[i * 9] % len(starts)]]) + blob[i * 9 + 1:i * 9 + 1 + 1 + blob[i * 9] % 8]
             for i in range(LINES)]
    return b"\n".join(lines) + b"\n"


@pytest.mark.reliability(kind="attack", cases=LINES, what="a links file of a million lines of random bytes: every "
                         "line refused with its number, in bounded time and memory")
def test_a_links_file_of_a_million_garbage_lines(hostile: Hostile) -> None:
    body = garbage_links_file(seed=11)
    process = psutil.Process(hostile.server.process.pid)  # type: ignore[union-attr]
    rss = process.memory_info().rss
    with hostile.client() as client:
        answer = hostile.seen(client.post(f"/datasets/{hostile.dataset}/links", content=body,
                                          headers={"content-type": "text/plain"}))
    assert answer.status_code == 200, answer.text[:500]
    report = answer.json()
    assert report["added"] == 0 and report["refused_count"] == LINES, {k: report[k] for k in report if k != "refused"}
    assert [r["line"] for r in report["refused"]] == list(range(1, 10_001)), "the first 10,000, each with its number"
    assert all(r["reason"] in ("not UTF-8 text",) or r["reason"].startswith(("not a link", "unknown scheme"))
               for r in report["refused"]), {r["reason"] for r in report["refused"]}
    assert process.memory_info().rss - rss < 200 * 2**20, "the file is streamed, not held"
    hostile.still_serving()


# --- remote_links.yml ---------------------------------------------------------------------------------------------

BAD_REMOTE_LINKS = [
    # (file text, line, what the message names, words); the first four through `cargohold up`, the others
    # through the function it calls (a process each costs 2 s of CPU)
    ("ok:\n  provider: fs\n  path: /tmp\n  storage_id: t\nbad:\n\tprovider: minio\n", 6, "'bad'", "not valid YAML"),
    ("a:\n  provider: minio\n  access_key: k\n  secret_key: {SECRET}\n  buckets: {x: 1}\n", 5, "'buckets'",
     "must be text or a list"),
    ("a:\n  provider: ftp\n  secret_key: {SECRET}\n  buckets: [x]\n", 2, "'a'", "unknown provider 'ftp'"),
    ("a:\n  provider: minio\n  access_key: !!python/object/apply:os.system ['touch /tmp/{MARKER}']\n"
     "  secret_key: {SECRET}\n  buckets: [x]\n", 3, "'access_key'", "must be text"),
    ("a:\n  provider: minio\n  access_key: k\n  secret_key: {nested: {SECRET}}\n  buckets: [x]\n", 4, "'secret_key'",
     "must be text or a list"),
    ("- a\n- b\n", 1, "remote_links.yml", "not a mapping of connection names"),
    ("a:\n  provider: [minio]\n  buckets: [x]\n", 2, "'a'", "unknown provider"),
    ("e:\n  provider: minio\n  a: &a [l, l, l, l, l, l, l, l, l]\n  b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
     "  c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n  buckets: *c\n", 4, "'b'", "must be text"),
]
UP_CASES = 4


@pytest.mark.reliability(kind="bad input", cases=len(BAD_REMOTE_LINKS), what="an invalid `remote_links.yml` (bad "
                         "YAML, wrong types, unknown provider, a python tag, an alias bomb): `cargohold up` exits 2 "
                         "naming file, line and key")
def test_an_invalid_remote_links_yml_stops_cargohold_up(tmp_path: Path) -> None:
    secret = "sEcReT-" + secrets.token_hex(8)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STORAGE_", "DATA_PATH", "SERVER_", "CACHE_"))}
    runs = []
    for number, (text, line, names, words) in enumerate(BAD_REMOTE_LINKS):
        home = tmp_path / f"home-{number}"
        home.mkdir()
        path = home / "remote_links.yml"
        path.write_text(text.replace("{SECRET}", secret).replace("{MARKER}", MARKER))
        expected = (f"{path}, line {line}", names, words)
        if number < UP_CASES:
            process = subprocess.Popen([sys.executable, "-m", "cargohold", "up"], stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True,
                                       env={**env, "CARGOHOLD_HOME": str(home), "SERVER_PORT": "9"})
            runs.append((process, expected))
            continue
        with pytest.raises(ConnectionsFileError) as caught:
            load_file(path)
        assert all(part in str(caught.value) for part in expected) and secret not in str(caught.value), caught.value
    for process, expected in runs:
        out, err = process.communicate(timeout=60)
        assert process.returncode == 2, (expected, out, err)
        assert all(part in err for part in expected), (expected, err)
        assert secret not in out + err
    assert not Path(f"/tmp/{MARKER}").exists(), "a YAML tag ran code"
