"""Access, against the real ``cargohold up`` on local disk: every route of the OpenAPI document (read from
the server, not listed here) needs a token; the few public pages hold no data; a ``user`` token gets 403
on every admin route (found from the code: the routes that depend on ``require_admin``); a signed URL
cannot be altered, reused past its expiry, or used for another item or route; and no secret reaches an
answer or the log.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import pytest

from cargohold.http.auth import require_admin
from cargohold.instance import SECRET_FILE
from cargohold.web import STATIC

from ..support.api import assert_error, cli, make_image
from ..support.api_server import RunningServer
from ..support.servers import free_port
from ..support.videos import make_video

CONNECTION_SECRET = "s3-secret-" + secrets.token_hex(12)
AZURE_KEY = base64.b64encode(b"azure-account-key-" + secrets.token_bytes(16)).decode()
FAKE_KEY = "-----BEGIN PRIVATE KEY-----\nMIIEv" + secrets.token_hex(24) + "\n-----END PRIVATE KEY-----\n"


def rsa_key() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


GOOGLE_KEY = rsa_key()


@dataclass
class Access:
    server: RunningServer
    user_token: str
    dataset: int
    image: int
    text: int
    image_bytes: bytes
    answers: list[httpx.Response] = field(default_factory=list)

    def keep(self, response: httpx.Response) -> httpx.Response:
        """Every answer is kept, to be searched for secrets at the end of the module."""
        self.answers.append(response)
        # 502-504: a connection's store (a closed port here) cannot be reached; never a server fault.
        assert response.status_code < 500 or response.status_code in (502, 503, 504), \
            f"{response.request.method} {response.request.url}: {response.text[:300]}"
        return response


@pytest.fixture(scope="module")
def access(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Access]:
    umask = os.umask(0o022)  # a shell's usual umask, as `make run` gets it: the server must not keep it
    try:
        server = RunningServer(tmp_path_factory.mktemp("access") / "home", {}).start()
    finally:
        os.umask(umask)
    try:
        user_token = cli(server, "token", "create", "--name", "user").stdout.strip()
        image = make_image("PNG", (64, 48))
        with server.client() as client:
            dataset = client.post("/datasets", json={"name": "access-dataset"}).json()["id"]
            results = client.post(f"/datasets/{dataset}/items", files=[
                ("files", ("access-image.png", image)), ("files", ("access-text.txt", b"access text"))]).json()
            ids = [r["item"]["id"] for r in results["results"]]
            assert client.put("/files/access/team.bin", content=b"team bytes").status_code == 201
            assert client.put("/connections/access-conn", json={
                "provider": "minio", "endpoint": "http://127.0.0.1:9", "access_key": "AKIAACCESS",
                "secret_key": CONNECTION_SECRET, "buckets": ["access-bucket"]}).status_code == 201
        yield Access(server, user_token, dataset, ids[0], ids[1], image)
    finally:
        server.stop()


def documented_operations(server: RunningServer) -> list[tuple[str, str]]:
    schema = httpx.get(server.url + "/api/openapi.json", timeout=10).json()
    return [(method.upper(), path) for path, ops in schema["paths"].items() for method in ops]


def concrete(access: Access, path: str) -> str:
    values = {"dataset_id": access.dataset, "item_id": access.image, "path": "access/team.bin",
              "name": "access-conn", "tier": "previews", "n": "0"}
    filled = re.sub(r"\{(\w+)\}", lambda m: str(values[m[1]]), path)
    assert "{" not in filled, path
    return filled


def app_routes() -> list[tuple[str, str, Any]]:
    """(method, path, route) of every route of the application, walked in-process."""
    from cargohold.http.app import create_app
    from cargohold.settings import load_settings

    with tempfile.TemporaryDirectory() as home:
        app = create_app(load_settings(home=Path(home)), ensure_buckets=False)

    def walk(routes: list[Any]) -> Iterator[Any]:
        for route in routes:
            # FastAPI 0.16x keeps an included router whole; its routes come out of effective_candidates().
            if hasattr(route, "effective_candidates"):
                yield from walk(route.effective_candidates())
            else:
                yield route

    found = []
    for route in walk(app.routes):
        path = getattr(route, "path_format", None) or getattr(route, "path", "")
        for method in sorted(getattr(route, "methods", None) or {"GET"}):
            found.append((method, path, route))
    return found


def needs_admin(dependant: Any) -> bool:
    return dependant.call is require_admin or any(needs_admin(d) for d in dependant.dependencies)


@pytest.mark.reliability(kind="attack", cases=0, what="every route of the OpenAPI document without a token, "
                         "with bad tokens, with a signature instead of a token: 401; public pages hold no data")
def test_every_documented_route_needs_a_token(access: Access, request: pytest.FixtureRequest) -> None:
    operations = documented_operations(access.server)
    assert len(operations) >= 28
    tried = 0
    bad_tokens = [None, "Bearer chd_not-a-token", "Bearer", "Bearer " + access.server.token[:-1] + "x",
                  "Basic " + base64.b64encode(b"admin:" + access.server.token.encode()).decode(),
                  access.server.token]  # the token without its scheme
    with httpx.Client(base_url=access.server.url, timeout=30) as anonymous:
        for method, path in operations:
            url = concrete(access, path)
            for authorization in bad_tokens:
                headers = {"Authorization": authorization} if authorization else {}
                answer = access.keep(anonymous.request(method, url, headers=headers, content=b"{}"))
                tried += 1
                if path == "/healthz":
                    assert answer.status_code == 200
                    continue
                if method == "HEAD":  # the same answer without its body
                    assert answer.status_code == 401 and not answer.content, (method, url)
                else:
                    assert_error(answer, 401, "unauthenticated")
                assert answer.headers["www-authenticate"].lower().startswith("bearer"), (method, url)
            if path != "/healthz":  # a signature opens content and previews only, and only when it is right
                forged = access.keep(anonymous.request(method, url, params={"expires": "9999999999",
                                                                            "signature": "x" * 43}))
                tried += 1
                if method == "HEAD":
                    assert forged.status_code == 401 and not forged.content, (method, url)
                else:
                    assert_error(forged, 401, "unauthenticated")

        # Outside the OpenAPI document: the routes the app has besides (found in-process), each public and
        # holding no data, and nothing else opens without a token.
        undocumented = {(m, p) for m, p, _ in app_routes()} - {(m, p) for m, p in operations}
        public_pages = {("GET", "/api/openapi.json"), ("HEAD", "/api/openapi.json"), ("GET", "/api/docs"),
                        ("HEAD", "/api/docs"), ("GET", "/"), ("HEAD", "/"), ("GET", "/static/{path}")}
        assert undocumented == public_pages, undocumented ^ public_pages
        statics = [p.relative_to(STATIC).as_posix() for p in STATIC.rglob("*") if p.is_file()]
        pages = ["/api/openapi.json", "/api/docs", "/", *(f"/static/{s}" for s in statics)]
        data = ["access-dataset", "access-image.png", "access-text.txt", "access/team.bin",
                "access-conn", "AKIAACCESS", "access-bucket"]
        for page in pages:
            answer = access.keep(anonymous.get(page))
            tried += 1
            assert answer.status_code == 200, page
            leaked = [d for d in data if d in answer.text]
            assert not leaked, (page, leaked)
        for path in ("/api/v1/", "/api/v1/nothing", "/metrics/x", "/api/v1/items/1/content/x"):
            assert_error(access.keep(anonymous.get(path)), 401)
            tried += 1
        for path in ("/docs", "/redoc", "/docs/oauth2-redirect", "/api/redoc", "/admin.token",
                     "/static/../admin.token"):
            assert access.keep(anonymous.get(path)).status_code == 404, path
            tried += 1
    request.node.user_properties.append(("reliability_cases", tried))


@pytest.mark.reliability(kind="attack", cases=0, what="a user token on every admin route (found from the code: "
                         "`require_admin` dependencies): 403")
def test_a_user_token_gets_403_on_every_admin_route(access: Access, request: pytest.FixtureRequest) -> None:
    admin_routes = sorted({(m, p) for m, p, route in app_routes()
                           if getattr(route, "dependant", None) is not None and needs_admin(route.dependant)})
    assert {("GET", "/api/v1/storage"), ("GET", "/metrics"), ("DELETE", "/api/v1/cache/{tier}"),
            ("PUT", "/api/v1/connections/{name}")} <= set(admin_routes), admin_routes
    documented = set(documented_operations(access.server))
    assert set(admin_routes) <= documented
    with httpx.Client(base_url=access.server.url, timeout=30,
                      headers={"Authorization": f"Bearer {access.user_token}"}) as user:
        for method, path in admin_routes:
            body = {"provider": "minio", "access_key": "k", "secret_key": "s", "buckets": ["b"]}
            answer = access.keep(user.request(method, concrete(access, path), json=body if method == "PUT" else None))
            error = assert_error(answer, 403, "forbidden")
            assert "admin" in error["message"], (method, path)
        # The same user token opens the routes that are not admin only.
        assert access.keep(user.get("/api/v1/datasets")).status_code == 200
        assert access.keep(user.get(f"/api/v1/items/{access.image}/content")).content == access.image_bytes
    with access.server.client() as admin:
        assert admin.get("/connections/access-conn/browse").status_code != 403, "the admin token is not refused"
        listed = admin.get("/connections").json()["connections"]
        assert [c["name"] for c in listed] == ["access-conn"], "the user's PUT changed nothing"
    request.node.user_properties.append(("reliability_cases", len(admin_routes)))


HOSTILE_HTML = b"<!doctype html><script>fetch('/api/v1/datasets').then(r => r.text()).then(alert)</script>"


def content_routes(server: RunningServer) -> list[str]:
    """GET routes of the OpenAPI document whose 200 answer is bytes (a file's), not JSON."""
    schema = httpx.get(server.url + "/api/openapi.json", timeout=10).json()
    return sorted(path for path, ops in schema["paths"].items() if "get" in ops and any(
        c.get("schema", {}).get("format") == "binary" for c in ops["get"]["responses"].get("200", {})
        .get("content", {}).values()))


@pytest.mark.reliability(kind="attack", cases=0, what="an uploaded HTML file (item and team file, the latter "
                         "declared `text/html; charset=utf-7`) opened from every content-bearing route (found from "
                         "the OpenAPI document): never run as cargohold's origin (`nosniff`, `CSP: sandbox` on 200, "
                         "206, 304, 416 and HEAD; active types as attachments, typed by cargohold)")
def test_every_content_route_sends_nosniff_and_sandbox(access: Access, request: pytest.FixtureRequest) -> None:
    routes = content_routes(access.server)
    assert {"/api/v1/files/{path}", "/api/v1/items/{item_id}/content", "/api/v1/items/{item_id}/preview"} \
        <= set(routes), routes
    with access.server.client() as client:
        uploaded = client.post(f"/datasets/{access.dataset}/items",
                               files=[("files", ("hostile.html", HOSTILE_HTML, "text/html"))]).json()
        html_item = uploaded["results"][0]["item"]["id"]
        # The uploader's type is not what is served: cargohold reads it from the name (finding of issue 18).
        assert client.put("/files/access/hostile.html", content=HOSTILE_HTML,
                          headers={"content-type": "text/html; charset=utf-7"}).status_code == 201
        signed = client.post(f"/items/{html_item}/sign", json={}).json()["url"]
        videos = client.post("/datasets", json={"name": "access-videos"}).json()["id"]
        video_item = client.post(f"/datasets/{videos}/items", files=[
            ("files", ("access-video.mp4", make_video(10)))]).json()["results"][0]["item"]["id"]
    values = {"item_id": html_item, "path": "access/hostile.html", "n": "3"}
    tried = 0
    with access.server.client() as client, httpx.Client(timeout=30) as anonymous:
        for route in routes:
            is_frame = "/frames" in route
            is_preview = route.endswith("/preview") or is_frame  # a picture cargohold made: shown inline
            filled = {**values, "item_id": video_item if is_frame else access.image} if is_preview else values
            url = re.sub(r"\{(\w+)\}", lambda m, filled=filled: str(filled[m[1]]), route.removeprefix("/api/v1"))
            if route.endswith("/frames"):
                url += "?t=0.1"
            whole = access.keep(client.get(url))
            assert whole.status_code == 200, (route, whole.text[:200])
            if is_preview:
                assert whole.headers["content-disposition"].startswith("inline;")
            else:  # an active type: saved, never shown, whatever the route
                assert whole.content == HOSTILE_HTML and whole.headers["content-type"] == "text/html"
                assert whole.headers["content-disposition"].startswith("attachment;"), route
            answers = [whole, access.keep(client.head(url)),
                       access.keep(client.get(url, headers={"Range": "bytes=0-3"})),
                       access.keep(client.get(url, headers={"If-None-Match": whole.headers["etag"]})),
                       access.keep(client.get(url, headers={"Range": "bytes=999999-"}))]
            assert [a.status_code for a in answers] == [200, 200, 206, 304, 416], (route, answers)
            for answer in answers:
                tried += 1
                assert answer.headers.get("x-content-type-options") == "nosniff", (route, answer.status_code)
                assert answer.headers.get("content-security-policy") == "sandbox", (route, answer.status_code)
        by_signature = access.keep(anonymous.get(signed))  # the hot route without a token
        tried += 1
        assert by_signature.content == HOSTILE_HTML
        assert by_signature.headers["content-disposition"].startswith("attachment;")
        assert by_signature.headers["x-content-type-options"] == "nosniff"
        assert by_signature.headers["content-security-policy"] == "sandbox"
    request.node.user_properties.append(("reliability_cases", tried))


def alter(url: str, **changes: str | None) -> str:
    """``url`` with query parameters changed (None: removed), in the order they had."""
    parts = urlsplit(url)
    query = [(k, changes.pop(k) if k in changes else v) for k, v in parse_qsl(parts.query)]
    query = [(k, v) for k, v in query if v is not None] + [(k, v) for k, v in changes.items() if v is not None]
    return f"{parts.scheme}://{parts.netloc}{parts.path}?{urlencode(query)}"


def with_path(url: str, path: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{path}?{parts.query}"


@pytest.mark.reliability(kind="attack", cases=0, what="signed URLs altered (path, each parameter, expiry, "
                         "signature), reused past expiry, used for another item, route or method")
def test_a_signed_url_cannot_be_altered_reused_or_used_elsewhere(access: Access,
                                                                   request: pytest.FixtureRequest) -> None:
    with access.server.client() as client:
        def sign(item: int, **body: Any) -> str:
            answer = access.keep(client.post(f"/items/{item}/sign", json={"expires_in": 600, **body}))
            assert answer.status_code == 200, answer.text
            return str(answer.json()["url"])

        content = sign(access.image)
        preview = sign(access.image, preview={"w": 32, "h": 32, "fit": "cover", "format": "png", "q": 50})
        converted = sign(access.image, format="jpeg")
    image_path = f"/api/v1/items/{access.image}"
    expires = dict(parse_qsl(urlsplit(content).query))["expires"]
    signature = dict(parse_qsl(urlsplit(content).query))["signature"]
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]

    bad = [
        # the path
        with_path(content, f"/api/v1/items/{access.text}/content"),  # another item
        with_path(content, f"/api/v1/items/0{access.image}/content"),
        with_path(content, f"{image_path}/content/"),
        with_path(content, f"/api/v1//items/{access.image}/content"),
        with_path(content, f"{image_path}/preview"),  # another route
        with_path(preview, f"{image_path}/content"),
        with_path(converted, f"{image_path}/preview"),
        with_path(content, f"{image_path}"),
        with_path(content, "/api/v1/files/access/team.bin"),
        with_path(content, "/api/v1/datasets"),
        # each parameter
        *(alter(preview, **{name: value}) for name, value in (
            ("w", "2048"), ("w", "032"), ("h", "31"), ("fit", "fill"), ("format", "webp"), ("q", "100"),
            ("q", None), ("fit", None))),
        alter(preview, W="32"), alter(content, format="png"), alter(converted, format="png"),
        alter(converted, format=None), alter(content, w="64"),
        content + "&w=64", preview + "&w=2048",  # a parameter twice
        # the expiry, as a number and as other spellings of the same number
        *(alter(content, expires=e) for e in (str(int(expires) + 1), str(int(expires) - 1), "+" + expires,
                                               " " + expires, expires[:2] + "_" + expires[2:], "0" + expires,
                                               "".join(chr(0xFF10 + int(d)) for d in expires), "9" * 5000, "")),
        alter(content, expires=None),
        # the signature
        *(alter(content, signature=s) for s in (flipped, signature[:-1], signature + "=", signature.upper(), "",
                                                "é" * 43, sign_other(access, client_token=access.server.token))),
        alter(content, signature=None),
    ]
    with httpx.Client(timeout=30) as anonymous:
        for url in (content, preview, converted):
            assert access.keep(anonymous.get(url)).status_code == 200, url
            assert access.keep(anonymous.head(url)).status_code == 200, url
        for url in bad:
            answer = access.keep(anonymous.get(url))
            assert answer.status_code in (401, 404), (url[:200], answer.status_code, answer.text[:200])
            assert answer.content != access.image_bytes
        # Other methods on the signed URLs themselves, and a signed URL with a bad token beside it.
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            for url in (content, preview):
                assert_error(access.keep(anonymous.request(method, url, content=b"x")), 401)
        assert_error(access.keep(anonymous.get(content, headers={"Authorization": "Bearer chd_wrong"})), 401)
        assert_error(access.keep(anonymous.post(with_path(content, f"{image_path}/sign"), json={})), 401)
        # Past its expiry, the same URL no longer opens.
        with access.server.client() as client:
            short = sign(access.text, expires_in=2)
        assert access.keep(anonymous.get(short)).status_code == 200
        time.sleep(max(0.0, int(dict(parse_qsl(urlsplit(short).query))["expires"]) + 1.05 - time.time()))
        error = assert_error(access.keep(anonymous.get(short)), 401)
        assert "expired" in error["message"]
    with access.server.client() as client:
        assert client.get(f"/items/{access.image}").status_code == 200, "the DELETE with a signature did nothing"
    request.node.user_properties.append(("reliability_cases", len(bad) + 6 + 8 + 4))


def sign_other(access: Access, client_token: str) -> str:
    """The signature of another item's content URL, with the same expiry or not: it opens that item only."""
    with httpx.Client(base_url=access.server.api, headers={"Authorization": f"Bearer {client_token}"}) as client:
        url = client.post(f"/items/{access.text}/sign", json={"expires_in": 600}).json()["url"]
    return dict(parse_qsl(urlsplit(url).query))["signature"]


@pytest.mark.reliability(kind="attack", cases=0, what="secrets (connection keys, tokens, the instance secret key) "
                         "searched for in every answer of this module and in the server log")
def test_secrets_never_appear_in_answers_or_the_log(access: Access, request: pytest.FixtureRequest) -> None:
    google = {"type": "service_account", "project_id": "p", "private_key_id": "k1", "private_key": GOOGLE_KEY,
              "client_email": "x@p.iam.gserviceaccount.com", "token_uri": "http://127.0.0.1:9/token"}
    with access.server.client() as client:
        made = [
            client.put("/connections/secret-s3", json={"provider": "minio", "endpoint": "http://127.0.0.1:9",
                                                       "access_key": "AKIASECRET", "secret_key": CONNECTION_SECRET,
                                                       "buckets": ["secret-s3"]}),
            client.put("/connections/secret-azure", json={"provider": "azure", "endpoint": "http://127.0.0.1:9",
                                                          "access_key": "acct", "secret_key": AZURE_KEY,
                                                          "buckets": ["secret-az"]}),
            client.put("/connections/secret-gcs", json={"provider": "google", "endpoint": "http://127.0.0.1:9",
                                                        "credentials_json": google, "buckets": ["secret-gcs"]}),
        ]
        assert [access.keep(m).status_code for m in made] == [201, 201, 201], [m.text for m in made]
        # Refused bodies that carry a secret: the message names the field, never the value.
        for body in ({"provider": "azure", "access_key": "a", "secret_key": "not base64 " + CONNECTION_SECRET,
                      "buckets": ["z"]},
                     {"provider": "minio", "access_key": "k", "secret_key": CONNECTION_SECRET,
                      "buckets": ["secret-s3"]},
                     {"provider": "google", "credentials_json": "{not json " + GOOGLE_KEY, "buckets": ["g"]},
                     {"provider": "google", "credentials_json": {**google, "private_key": FAKE_KEY}, "buckets": ["g"]},
                     {"provider": "minio", "secret_key": CONNECTION_SECRET, "buckets": ["q"], "bucket": "x"}):
            assert access.keep(client.put("/connections/secret-bad", json=body)).status_code in (400, 409)
        access.keep(client.get("/connections"))
        # Errors from a store carry its own words: the S3 ones, masked, are searched. (Azure's and Google's
        # clients retry a closed port for minutes: a fault, for the fault tests, not an access one.)
        for name in ("secret-s3", "access-conn"):
            access.keep(client.post(f"/connections/{name}/test"))
            access.keep(client.get(f"/connections/{name}/browse"))
        for name in ("secret-s3", "secret-azure", "secret-gcs", "access-conn"):
            access.keep(client.put(f"/connections/{name}", json={"provider": "minio", "access_key": "k2",
                                                                  "iam_role": "r", "buckets": [f"{name}-b"]}))
        dataset = access.keep(client.post("/datasets", json={"name": "secrets"})).json()["id"]
        access.keep(client.post(f"/datasets/{dataset}/items", files=[("files", ("s.txt", b"s"))]))
        access.keep(client.post(f"/datasets/{dataset}/links", json={"links": ["s3://secret-s3-b/a.jpg"]}))
        access.keep(client.post(f"/items/{access.image}/sign", json={"expires_in": 60}))
        access.keep(client.post("/sign", json={"items": [access.image, access.text]}))
        access.keep(client.get("/storage"))
        access.keep(client.get("/metrics"))
    with httpx.Client(base_url=access.server.api, timeout=30) as anonymous:
        for token in (access.server.token[:-2] + "zz", access.user_token[:-2] + "zz", CONNECTION_SECRET,
                      "chd_" + "a" * 40):
            access.keep(anonymous.get("/datasets", headers={"Authorization": f"Bearer {token}"}))
    cli(access.server, "token", "list")

    instance_secret = (access.server.home / SECRET_FILE).read_text().strip()
    found_secrets = {
        "the S3 secret key": CONNECTION_SECRET, "the Azure key": AZURE_KEY,
        "the Google private key": GOOGLE_KEY.splitlines()[5], "a refused private key": FAKE_KEY.splitlines()[1],
        "the admin token": access.server.token,
        "the user token": access.user_token, "the instance secret key": instance_secret,
    }
    assert len(instance_secret) >= 32
    answers = [r.content + json.dumps(dict(r.headers)).encode() for r in access.answers]
    # The one place the admin token is shown by design (docs/API.md): the first start prints it once.
    first_start = f"admin token created: {access.server.token}".encode()
    log = access.server.log.read_bytes()
    assert log.count(first_start) == 1
    log = log.replace(first_start, b"")
    for what, secret in found_secrets.items():
        pieces = {secret, secret[: len(secret) // 2], secret[len(secret) // 2:]}  # halves too: a cut secret leaks
        for piece in pieces:
            assert not [a for a in answers if piece.encode() in a], f"{what} in an answer"
            assert piece.encode() not in log, f"{what} in the server log"
    assert len(access.answers) > 100
    request.node.user_properties.append(("reliability_cases", len(access.answers) * len(found_secrets)))


@pytest.mark.reliability(kind="attack", cases=2, what="the log of `cargohold up -d`, which holds the first admin "
                         "token: readable by its owner only")
def test_the_detached_servers_log_is_private(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    log = home / "cargohold.log"
    log.write_text("an old log, made with the umask\n")
    os.chmod(log, 0o644)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STORAGE_", "DATA_PATH", "SERVER_", "CACHE_"))}
    env = {**env, "CARGOHOLD_HOME": str(home), "SERVER_PORT": str(port)}
    started = subprocess.run([sys.executable, "-m", "cargohold", "up", "-d"], env=env, capture_output=True, text=True,
                             timeout=60)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        assert stat.S_IMODE(log.stat().st_mode) == 0o600
        token = (home / "admin.token").read_text().strip()
        assert log.read_text().count(token) == 1 and token not in started.stdout + started.stderr
    finally:
        subprocess.run([sys.executable, "-m", "cargohold", "down"], env=env, capture_output=True, timeout=60)


@pytest.mark.reliability(kind="attack", cases=0, what="files and folders cargohold made under `make run`'s "
                         "umask (022): the catalog, uploads, team files, caches, DATA_PATH: 0600 files, 0700 folders")
def test_everything_cargohold_writes_is_private(access: Access, request: pytest.FixtureRequest) -> None:

    with access.server.client() as client:  # a preview: the cache tiers write too
        assert client.get(f"/items/{access.image}/preview", params={"w": 32, "h": 32}).status_code == 200
    data = access.server.home / "data"
    made = [data, *data.rglob("*"), access.server.home / "admin.token", access.server.home / SECRET_FILE]
    loose = [f"{p.relative_to(access.server.home)} {stat.S_IMODE(p.lstat().st_mode):o}" for p in made
             if stat.S_IMODE(p.lstat().st_mode) & 0o077]
    assert not loose, loose
    kinds = {"catalog": (data / "catalog.sqlite3") in made, "folders": any(p.is_dir() for p in made)}
    assert all(kinds.values()), kinds
    request.node.user_properties.append(("reliability_cases", len(made)))
    request.node.user_properties.append(("reliability_result", f"{len(made)} paths, none readable by others"))
