"""Issue 18, finding 6, against the real ``cargohold up``: a connected bucket holding a key with a tab (or
another control character, a bidi or line-separator character, an empty segment) beside good keys. The
sync adds the good keys and reports each bad one as a refused entry, as a links file's refused lines
are reported; it had answered 400 for the whole prefix (obstore could not parse the page holding the key)."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from PIL import Image

from ..support.api import cli
from ..support.api_server import RunningServer
from ..support.servers import Server

BUCKET = "sync-keys"
GOOD = ["photos/0-first.jpg", "photos/notes.txt", "photos/" + "a" * 300 + ".jpg", "photos/zz-last.jpg"]
"""Keys that are good item names; a 300-byte segment too (item names are stored by content, not by name)."""
BAD = {
    "photos/tab\there.jpg": "a control character (U+0009)",
    "photos/bell\x07.jpg": "a control character (U+0007)",
    "photos/del\x7f.jpg": "a control character (U+007F)",
    "photos/invoice\u202efdp.exe": "U+202E (RIGHT-TO-LEFT OVERRIDE)",
    "photos/line\u2028break.txt": "U+2028 (LINE SEPARATOR)",
    "photos/double//slash.jpg": "an empty, '.' or '..' path segment",
    "photos/back\\slash.jpg": "a backslash",
}
"""Keys that cannot be item names, and what each refusal names."""


def jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (12, 8), "red").save(out, "JPEG")
    return out.getvalue()


@dataclass
class Synced:
    server: RunningServer
    folder: Path


@pytest.fixture(scope="module")
def synced(moto_server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synced]:
    """A server with a connection to a moto bucket holding GOOD and BAD under ``photos/``, and an ``fs://``
    folder holding file names of the same kinds."""
    s3 = boto3.client("s3", endpoint_url=moto_server.url, aws_access_key_id="AKIAEXAMPLE",
                      aws_secret_access_key="moto-secret", region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    for key in [*GOOD, *BAD]:
        s3.put_object(Bucket=BUCKET, Key=key, Body=jpeg() if key.endswith(".jpg") else b"text")
    root = tmp_path_factory.mktemp("sync-keys")
    folder = root / "nas"
    (folder / "photos").mkdir(parents=True)
    for name in ["good.jpg", "tab\there.jpg", "invoice\u202efdp.exe"]:
        (folder / "photos" / name).write_bytes(jpeg())
    # A file name of bytes that are no UTF-8, as another program may leave one.
    with open(os.path.join(os.fsencode(folder / "photos"), b"latin1-\xe9t\xe9.jpg"), "wb") as fh:
        fh.write(jpeg())
    home = root / "home"
    home.mkdir()
    (home / "remote_links.yml").write_text(f"""
my-s3:
  provider: minio
  endpoint: {moto_server.url}
  access_key: AKIAEXAMPLE
  secret_key: moto-secret
  region: us-east-1
  buckets: [{BUCKET}]
nas:
  provider: fs
  path: {folder}
  storage_id: nas
""")
    server = RunningServer(home, {}).start()
    try:
        yield Synced(server, folder)
    finally:
        server.stop()


@pytest.mark.reliability(kind="attack", cases=len(BAD) + 3, what="keys in a synced bucket that cannot be item names "
                         "(issue 18, finding 6): a tab, BEL, DEL, U+202E, U+2028, an empty segment, a backslash beside "
                         "good keys on S3; a tab, U+202E and a name that is no UTF-8 in an `fs://` folder")
def test_bad_keys_are_refused_entries_and_the_good_keys_are_added(synced: Synced,
                                                                   request: pytest.FixtureRequest) -> None:
    server = synced.server
    with server.client() as client:
        dataset = client.post("/datasets", json={"name": "sync-keys"}).json()["id"]
        # The request, as it was sent.
        answer = client.post(f"/datasets/{dataset}/sync", json={"source": f"s3://{BUCKET}/photos/"})
        assert answer.status_code == 200, answer.text
        report = answer.json()
        assert (report["listed"], report["added"], report["refused_count"]) == (len(GOOD) + len(BAD), len(GOOD),
                                                                               len(BAD)), report
        refused = {r["url"]: r for r in report["refused"]}
        assert sorted(refused) == sorted(f"s3://{BUCKET}/{key}" for key in BAD), "each bad key, exactly as listed"
        for key, why in BAD.items():
            entry = refused[f"s3://{BUCKET}/{key}"]
            assert set(entry) == {"line", "url", "reason"} and entry["line"] >= 1, entry
            # Named as every name is in messages: repr-escaped, nothing that hides or reorders text.
            assert repr(key) in entry["reason"] and why in entry["reason"], entry
            assert entry["reason"].isprintable(), entry
        items = client.get(f"/datasets/{dataset}/items").json()["items"]
        assert sorted(i["name"] for i in items) == sorted(GOOD)
        first = next(i for i in items if i["name"] == "photos/0-first.jpg")
        assert client.get(f"/items/{first['id']}/content").content == jpeg()

        again = client.post(f"/datasets/{dataset}/sync", json={"source": f"s3://{BUCKET}/photos/", "verify": True,
                                                                "filter": r"\.(jpg|exe)$"}).json()
        jpgs = sum(1 for key in GOOD if key.endswith(".jpg"))
        bad_matched = sum(1 for key in BAD if key.endswith((".jpg", ".exe")))
        assert (again["added"], again["unchanged"], again["refused_count"]) == (0, jpgs, bad_matched), again

        # A links file naming a bidi key is refused the same way; given a name of its own, the object is linked.
        bidi = f"s3://{BUCKET}/photos/invoice\u202efdp.exe"
        lines = client.post(f"/datasets/{dataset}/links", content=f"{bidi}\n".encode(),
                            headers={"Content-Type": "text/plain"}).json()
        assert lines["added"] == 0 and lines["refused"][0]["line"] == 1, lines
        assert "U+202E" in lines["refused"][0]["reason"], lines
        named = client.post(f"/datasets/{dataset}/links", json={"links": [{"url": bidi, "name": "invoice.exe"}]})
        assert named.json()["added"] == 1, named.text

        mounted = client.post("/datasets", json={"name": "sync-keys-fs"}).json()["id"]
        folder = client.post(f"/datasets/{mounted}/sync", json={"source": "fs://nas/photos/", "filter": "."})
        assert folder.status_code == 200, folder.text
        on_disk = folder.json()
        assert (on_disk["listed"], on_disk["added"], on_disk["refused_count"]) == (4, 1, 3), on_disk
        reasons = " ".join(r["reason"] for r in on_disk["refused"])
        assert "'photos/tab\\there.jpg'" in reasons and "U+202E" in reasons and "is not UTF-8 text" in reasons
        assert "fs://nas/photos/latin1-\ufffdt\ufffd.jpg" in {r["url"] for r in on_disk["refused"]}, on_disk

    # The CLI prints each refused key with what would hide or reorder it escaped, and no markup read from keys.
    shown = cli(server, "links", "sync", "sync-keys", f"s3://{BUCKET}/photos/").stdout
    assert f"refused s3://{BUCKET}/photos/tab\\there.jpg: " in shown, shown
    assert f"refused s3://{BUCKET}/photos/invoice\\u202efdp.exe: " in shown, shown
    assert all(c.isprintable() or c == "\n" for c in shown), repr(shown)
    assert "Traceback" not in server.log.read_text()
    request.node.user_properties.append(("reliability_result", (
        f"`POST /datasets/{{id}}/sync` of a prefix holding {len(GOOD)} good and {len(BAD)} bad keys: 200, "
        f"{len(GOOD)} added, each bad key a refused entry `{{line, url, reason}}` naming it repr-escaped "
        f"(e.g. {json.dumps(refused[f's3://{BUCKET}/photos/tab' + chr(9) + 'here.jpg']['reason'])}); "
        "`fs://`: 1 added, 3 refused (a name that is no UTF-8 shown with U+FFFD); `cargohold links sync` prints "
        "them escaped")))
