"""Real S3 clients, unmodified, against ``cargohold up`` on loopback (issue 15): boto3 (default checksum settings,
and ``request_checksum_calculation="when_required"``), rclone, s3fs (and, through it, fsspec's own abstract test
suite) and obstore's ``S3Store``.

Each client, with the settings its docs give for an S3-compatible endpoint (path-style, SigV4), does the same
things: list with folders, a ranged get, puts, a 100 MB multipart upload, a delete and a presigned GET fetched
with plain httpx, every byte read back compared; it reads a linked item (an object of a moto bucket linked into
a dataset); a read key is refused what changes anything, a dataset-limited key sees and reaches its bucket only;
and every request it makes with a wrong secret is refused with SignatureDoesNotMatch.

s3fs pins its own botocore, so it runs in a venv of its own (``.s3/clients-venv``, ``make s3-tools``) through
tests/s3/clients_s3fs.py and tests/s3/clients_fsspec.py; rclone is Debian's, configured by environment variables
only (no config file, ``$HOME`` a temporary folder).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

from ..support.api import cli
from ..support.api_server import RunningServer
from ..support.servers import REPO, Server

MB = 1024 * 1024
BIG = 100 * MB
PART = 16 * MB
BIG_PARTS = -(-BIG // PART)  # 7: six parts of 16 MB and a last one of 4 MB
CLIENTS_VENV = REPO / ".s3" / "clients-venv"
HERE = Path(__file__).resolve().parent
RCLONE = shutil.which("rclone")

FILES = {
    "top.txt": b"top of the bucket\n",
    "folder/a.txt": b"a, in a folder\n",
    "folder/with space+plus&amp.txt": b"a name S3 clients must encode\n",
    "folder/100% ~=,;@!'()$ üñí 日本.txt": b"and one more\n",
    "folder/sub/deep.bin": random.Random(7).randbytes(200_000),
}
RANGED = "folder/sub/deep.bin"
DELETED = "folder/a.txt"
ROOT = (["top.txt"], ["folder/"])
FOLDER = (["folder/100% ~=,;@!'()$ üñí 日本.txt", "folder/a.txt", "folder/with space+plus&amp.txt"],
          ["folder/sub/"])
LINKED = random.Random(11).randbytes(300_000)
LINK_SOURCE = ("clients-link-src", "photos/2024/linked.bin")
LINKED_KEY = "photos/linked.bin"
SHARED_KEY = "shared.txt"
SHARED = b"every key may read this\n"
WRONG_SECRET = ("every request of a real S3 client (boto3, rclone, s3fs, obstore) signed with a wrong secret: "
                "SignatureDoesNotMatch (a HEAD: 403 alone, its answer has no body)")
SCOPED_KEYS = ("real S3 clients (boto3, rclone, s3fs, obstore) with a read key changing things and a "
               "dataset-limited key reaching another bucket: AccessDenied, nothing changed")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def file_sha(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(PART):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Keys:
    access: str
    secret: str

    def wrong(self) -> Keys:
        return Keys(self.access, "wrong-" + self.secret)


@dataclass
class Lab:
    """One server for the module, the keys the tests use, what every client reads, and the 100 MB file."""

    server: RunningServer
    admin: Keys
    reader: Keys
    """``--read``: reads every dataset, changes nothing."""
    limited: Keys
    """``--write --datasets clients-limited``: writes that one dataset, reaches no other."""
    limited_bucket: str
    shared_bucket: str
    """Holds SHARED_KEY; every key but ``limited`` may read it."""
    empty_bucket: str
    linked_bucket: str
    """Holds LINKED_KEY, a link to LINK_SOURCE in moto."""
    big: Path
    big_sha256: str
    tmp: Path

    def boto3(self, keys: Keys | None = None, **config: Any) -> Any:
        keys = keys or self.admin
        return boto3.client("s3", endpoint_url=self.server.s3_url, aws_access_key_id=keys.access,
                            aws_secret_access_key=keys.secret, region_name="us-east-1",
                            config=Config(s3={"addressing_style": "path"}, signature_version="s3v4",
                                          retries={"max_attempts": 1}, **config))

    def keys_of(self, bucket: str) -> list[str]:
        """Every key of ``bucket``, listed with the admin key (boto3): what a client left there."""
        pages = self.boto3().get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def bucket_exists(self, bucket: str) -> bool:
        try:
            self.boto3().head_bucket(Bucket=bucket)
        except ClientError as exc:
            assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == 404, exc.response
            return False
        return True

    def dataset(self, name: str) -> str:
        """A new dataset made through the HTTP API (for clients that cannot make buckets); its bucket name."""
        with self.server.client() as api:
            answer = api.post("/datasets", json={"name": name})
            assert answer.status_code == 201, answer.text
            return str(answer.json()["bucket"])


def make_keys(server: RunningServer, name: str, *flags: str) -> Keys:
    made = json.loads(cli(server, "token", "create", "--name", name, "--s3", "--json", *flags).stdout)
    return Keys(made["s3_access_key_id"], made["s3_secret_access_key"])


@pytest.fixture(scope="module")
def lab(moto_server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    tmp = tmp_path_factory.mktemp("clients")
    moto = boto3.client("s3", endpoint_url=moto_server.url, aws_access_key_id="AKIACLIENTS",
                        aws_secret_access_key="moto-clients-secret", region_name="us-east-1")
    moto.create_bucket(Bucket=LINK_SOURCE[0])
    moto.put_object(Bucket=LINK_SOURCE[0], Key=LINK_SOURCE[1], Body=LINKED)
    server = RunningServer(tmp / "home", {"LINKS_ALLOW_PRIVATE_NETWORKS": "true"}).start()
    try:
        with server.client() as api:
            assert api.put("/connections/clients-moto", json={
                "provider": "minio", "endpoint": moto_server.url, "access_key": "AKIACLIENTS",
                "secret_key": "moto-clients-secret", "region": "us-east-1",
                "buckets": [LINK_SOURCE[0]]}).status_code == 201
            buckets = {}
            for name in ("clients-linked", "clients-limited", "clients-shared", "clients-empty"):
                made = api.post("/datasets", json={"name": name})
                assert made.status_code == 201, made.text
                buckets[name] = made.json()
            report = api.post(f"/datasets/{buckets['clients-linked']['id']}/links", json={"links": [
                {"url": f"s3://{LINK_SOURCE[0]}/{LINK_SOURCE[1]}", "name": LINKED_KEY}]}).json()
            assert report["added"] == 1, report
            for name, key, data in (("clients-shared", SHARED_KEY, SHARED), ("clients-limited", "only.txt", b"o")):
                stored = api.post(f"/datasets/{buckets[name]['id']}/items", files=[("files", (key, data))])
                assert stored.status_code == 201, stored.text
        big = tmp / "big" / "big.bin"
        big.parent.mkdir()
        data = random.Random(15).randbytes(BIG)
        big.write_bytes(data)
        big_sha256 = sha(data)
        del data
        yield Lab(server, make_keys(server, "clients-admin", "--admin"), make_keys(server, "clients-reader", "--read"),
                  make_keys(server, "clients-limited", "--write", "--datasets", "clients-limited"),
                  buckets["clients-limited"]["bucket"], buckets["clients-shared"]["bucket"],
                  buckets["clients-empty"]["bucket"], buckets["clients-linked"]["bucket"], big, big_sha256, tmp)
    finally:
        server.stop()


def found(request: pytest.FixtureRequest, text: str) -> None:
    """What a reliability-marked test found, for its row of docs/RELIABILITY.md."""
    request.node.user_properties.append(("reliability_result", text))


def unchanged(lab: Lab) -> None:
    """What the refused requests of a test must have left as it was."""
    assert lab.keys_of(lab.shared_bucket) == [SHARED_KEY]
    assert lab.keys_of(lab.empty_bucket) == []
    assert lab.boto3().get_object(Bucket=lab.shared_bucket, Key=SHARED_KEY)["Body"].read() == SHARED


# --- boto3 ---------------------------------------------------------------------------------------------------

BOTO3_MODES: dict[str, dict[str, Any]] = {"default": {},
                                          "when_required": {"request_checksum_calculation": "when_required"}}


@pytest.fixture(params=list(BOTO3_MODES))
def boto3_mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def sent_headers(s3: Any) -> dict[str, list[dict[str, str]]]:
    """The headers of every request ``s3`` sends, by operation, as they went out."""
    sent: dict[str, list[dict[str, str]]] = {}

    def record(request: Any, event_name: str, **_: Any) -> None:
        operation = event_name.rsplit(".", 1)[-1]
        sent.setdefault(operation, []).append({k.lower(): str(v) for k, v in request.headers.items()})

    s3.meta.events.register("before-send.s3", record)
    return sent


def boto3_listing(s3: Any, bucket: str, prefix: str) -> tuple[list[str], list[str]]:
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix, Delimiter="/")
    return ([o["Key"] for o in listed.get("Contents", [])], [p["Prefix"] for p in listed.get("CommonPrefixes", [])])


def sends_checksums(headers: dict[str, str]) -> bool:
    return any(k.startswith("x-amz-checksum-") for k in headers) or "x-amz-trailer" in headers


def test_boto3_lists_reads_writes_and_presigns(lab: Lab, boto3_mode: str) -> None:
    s3 = lab.boto3(**BOTO3_MODES[boto3_mode])
    sent = sent_headers(s3)
    bucket = f"clients-boto3-{boto3_mode.replace('_', '-')}"
    s3.create_bucket(Bucket=bucket)
    for key, data in FILES.items():
        assert s3.put_object(Bucket=bucket, Key=key, Body=data)["ETag"] == f'"{md5(data)}"', key
    # The two settings differ where they should: by default boto3 sends a CRC of every body, else none.
    assert all(sends_checksums(h) for h in sent["PutObject"]) == (boto3_mode == "default"), sent["PutObject"]
    assert boto3_listing(s3, bucket, "") == ROOT
    assert boto3_listing(s3, bucket, "folder/") == FOLDER
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, PaginationConfig={"PageSize": 1})
    assert [o["Key"] for page in pages for o in page.get("Contents", [])] == sorted(FILES)
    for key, data in FILES.items():
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == data, key
    data = FILES[RANGED]
    part = s3.get_object(Bucket=bucket, Key=RANGED, Range="bytes=100-4099")
    assert part["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert part["ContentRange"] == f"bytes 100-4099/{len(data)}"
    assert part["Body"].read() == data[100:4100]
    assert s3.get_object(Bucket=bucket, Key=RANGED, Range="bytes=-1000")["Body"].read() == data[-1000:]
    checked = s3.get_object(Bucket=bucket, Key=RANGED, ChecksumMode="ENABLED")  # boto3 checks what comes back
    if boto3_mode == "default":  # the CRC32 boto3 sent is kept; else the SHA-256 cargohold keeps of every item
        assert checked["ChecksumCRC32"] == base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    else:
        assert checked["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert checked["Body"].read() == data
    assert s3.head_object(Bucket=bucket, Key=RANGED)["ContentLength"] == len(data)
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": RANGED}, ExpiresIn=300)
    assert httpx.get(url, timeout=60).content == data
    ranged = httpx.get(url, headers={"Range": "bytes=10-19"}, timeout=60)
    assert (ranged.status_code, ranged.content) == (206, data[10:20])
    s3.delete_object(Bucket=bucket, Key=DELETED)
    with pytest.raises(ClientError) as gone:
        s3.get_object(Bucket=bucket, Key=DELETED)
    assert gone.value.response["Error"]["Code"] == "NoSuchKey"
    deleted = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "top.txt"}]})
    assert [d["Key"] for d in deleted["Deleted"]] == ["top.txt"]
    assert lab.keys_of(bucket) == sorted(set(FILES) - {DELETED, "top.txt"})


@pytest.mark.timeout(300)
def test_boto3_multipart_upload_of_100_mb(lab: Lab, boto3_mode: str) -> None:
    s3 = lab.boto3(**BOTO3_MODES[boto3_mode])
    sent = sent_headers(s3)
    bucket = f"clients-boto3-big-{boto3_mode.replace('_', '-')}"
    s3.create_bucket(Bucket=bucket)
    transfer = TransferConfig(multipart_threshold=8 * MB, multipart_chunksize=PART, max_concurrency=4)
    s3.upload_file(str(lab.big), bucket, "big.bin", Config=transfer)
    assert len(sent["UploadPart"]) == BIG_PARTS and len(sent["CompleteMultipartUpload"]) == 1
    assert all(sends_checksums(h) for h in sent["UploadPart"]) == (boto3_mode == "default")
    head = s3.head_object(Bucket=bucket, Key="big.bin")
    assert head["ContentLength"] == BIG and head["ETag"].endswith(f'-{BIG_PARTS}"'), head
    down = lab.tmp / f"boto3-{boto3_mode}.bin"
    s3.download_file(bucket, "big.bin", str(down), Config=transfer)  # ranged GETs, 4 at a time
    try:
        assert file_sha(down) == lab.big_sha256
    finally:
        down.unlink()
    streamed = hashlib.sha256()
    for chunk in s3.get_object(Bucket=bucket, Key="big.bin")["Body"].iter_chunks(MB):
        streamed.update(chunk)
    assert streamed.hexdigest() == lab.big_sha256
    s3.delete_object(Bucket=bucket, Key="big.bin")
    assert lab.keys_of(bucket) == []


def test_boto3_reads_a_linked_item(lab: Lab, boto3_mode: str) -> None:
    s3 = lab.boto3(**BOTO3_MODES[boto3_mode])
    got = s3.get_object(Bucket=lab.linked_bucket, Key=LINKED_KEY)
    assert got["Body"].read() == LINKED and got["ETag"] == f'"{md5(LINKED)}"'
    assert s3.get_object(Bucket=lab.linked_bucket, Key=LINKED_KEY, Range="bytes=10-2009")["Body"].read() \
        == LINKED[10:2010]
    assert s3.head_object(Bucket=lab.linked_bucket, Key=LINKED_KEY)["ContentLength"] == len(LINKED)
    assert boto3_listing(s3, lab.linked_bucket, "") == ([], ["photos/"])
    assert boto3_listing(s3, lab.linked_bucket, "photos/") == ([LINKED_KEY], [])
    url = s3.generate_presigned_url("get_object", Params={"Bucket": lab.linked_bucket, "Key": LINKED_KEY})
    assert httpx.get(url, timeout=60).content == LINKED
    down = lab.tmp / f"linked-{boto3_mode}.bin"
    s3.download_file(lab.linked_bucket, LINKED_KEY, str(down))
    assert down.read_bytes() == LINKED


def boto3_code(call: Callable[[], Any]) -> str:
    """The S3 error code of a refused call (a HEAD, which has no body: its status)."""
    with pytest.raises(ClientError) as refused:
        call()
    return str(refused.value.response["Error"]["Code"])


@pytest.mark.reliability(kind="attack", cases=13, what=SCOPED_KEYS)
def test_boto3_read_and_limited_keys(lab: Lab, boto3_mode: str, request: pytest.FixtureRequest) -> None:
    reader = lab.boto3(lab.reader, **BOTO3_MODES[boto3_mode])
    bucket = lab.shared_bucket
    assert reader.get_object(Bucket=bucket, Key=SHARED_KEY)["Body"].read() == SHARED
    upload = lab.boto3().create_multipart_upload(Bucket=bucket, Key="admin-upload.bin")["UploadId"]
    refused = {
        "PutObject": boto3_code(lambda: reader.put_object(Bucket=bucket, Key="reader.txt", Body=b"no")),
        "DeleteObject": boto3_code(lambda: reader.delete_object(Bucket=bucket, Key=SHARED_KEY)),
        "DeleteObjects": boto3_code(lambda: reader.delete_objects(Bucket=bucket,
                                                                  Delete={"Objects": [{"Key": SHARED_KEY}]})),
        "CopyObject": boto3_code(lambda: reader.copy_object(Bucket=bucket, Key="copy.txt",
                                                            CopySource={"Bucket": bucket, "Key": SHARED_KEY})),
        "CreateMultipartUpload": boto3_code(lambda: reader.create_multipart_upload(Bucket=bucket, Key="m.bin")),
        "UploadPart": boto3_code(lambda: reader.upload_part(Bucket=bucket, Key="admin-upload.bin", UploadId=upload,
                                                            PartNumber=1, Body=b"part")),
        "CreateBucket": boto3_code(lambda: reader.create_bucket(Bucket="clients-boto3-reader-new")),
        "DeleteBucket": boto3_code(lambda: reader.delete_bucket(Bucket=lab.empty_bucket)),
    }
    lab.boto3().abort_multipart_upload(Bucket=bucket, Key="admin-upload.bin", UploadId=upload)
    limited = lab.boto3(lab.limited, **BOTO3_MODES[boto3_mode])
    assert [b["Name"] for b in limited.list_buckets()["Buckets"]] == [lab.limited_bucket]
    limited.put_object(Bucket=lab.limited_bucket, Key=f"boto3-{boto3_mode}.txt", Body=b"mine")
    assert limited.get_object(Bucket=lab.limited_bucket, Key=f"boto3-{boto3_mode}.txt")["Body"].read() == b"mine"
    refused |= {
        "limited ListObjectsV2": boto3_code(lambda: limited.list_objects_v2(Bucket=bucket)),
        "limited GetObject": boto3_code(lambda: limited.get_object(Bucket=bucket, Key=SHARED_KEY)),
        "limited HeadObject": boto3_code(lambda: limited.head_object(Bucket=bucket, Key=SHARED_KEY)),
        "limited PutObject": boto3_code(lambda: limited.put_object(Bucket=bucket, Key="limited.txt", Body=b"no")),
        "limited CreateBucket": boto3_code(lambda: limited.create_bucket(Bucket="clients-boto3-limited-new")),
    }
    assert refused == {name: "403" if "Head" in name else "AccessDenied" for name in refused}, refused
    unchanged(lab)
    assert not lab.bucket_exists("clients-boto3-reader-new") and not lab.bucket_exists("clients-boto3-limited-new")
    found(request, f"boto3 ({boto3_mode}): a read key's 8 writes (put, delete, batch delete, copy, multipart create "
                   "and part, create and delete bucket) and a limited key's 5 requests to another bucket: "
                   "AccessDenied (HEAD: 403); ListBuckets shows the limited key its bucket alone")


@pytest.mark.reliability(kind="attack", cases=18, what=WRONG_SECRET)
def test_boto3_wrong_secret_is_refused_on_every_request(lab: Lab, boto3_mode: str,
                                                        request: pytest.FixtureRequest) -> None:
    s3 = lab.boto3(lab.admin.wrong(), **BOTO3_MODES[boto3_mode])
    bucket, key = lab.shared_bucket, SHARED_KEY
    upload = lab.boto3().create_multipart_upload(Bucket=bucket, Key="admin-upload.bin")["UploadId"]
    big = os.urandom(6 * MB)
    calls: dict[str, Callable[[], Any]] = {
        "ListBuckets": lambda: s3.list_buckets(),
        "ListObjectsV2": lambda: s3.list_objects_v2(Bucket=bucket, Delimiter="/"),
        "ListObjects": lambda: s3.list_objects(Bucket=bucket),
        "HeadBucket": lambda: s3.head_bucket(Bucket=bucket),
        "GetBucketLocation": lambda: s3.get_bucket_location(Bucket=bucket),
        "GetObject": lambda: s3.get_object(Bucket=bucket, Key=key),
        "GetObject Range": lambda: s3.get_object(Bucket=bucket, Key=key, Range="bytes=0-3"),
        "HeadObject": lambda: s3.head_object(Bucket=bucket, Key=key),
        "PutObject": lambda: s3.put_object(Bucket=bucket, Key="wrong.txt", Body=b"refused"),
        "CopyObject": lambda: s3.copy_object(Bucket=bucket, Key="copy.txt", CopySource={"Bucket": bucket, "Key": key}),
        "CreateMultipartUpload": lambda: s3.create_multipart_upload(Bucket=bucket, Key="wrong.bin"),
        "UploadPart": lambda: s3.upload_part(Bucket=bucket, Key="admin-upload.bin", UploadId=upload, PartNumber=1,
                                             Body=big),
        "AbortMultipartUpload": lambda: s3.abort_multipart_upload(Bucket=bucket, Key="admin-upload.bin",
                                                                  UploadId=upload),
        "DeleteObject": lambda: s3.delete_object(Bucket=bucket, Key=key),
        "DeleteObjects": lambda: s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": key}]}),
        "CreateBucket": lambda: s3.create_bucket(Bucket="clients-boto3-wrong-new"),
        "DeleteBucket": lambda: s3.delete_bucket(Bucket=lab.empty_bucket),
    }
    refused = {name: boto3_code(call) for name, call in calls.items()}
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=300)
    presigned = httpx.get(url, timeout=60)
    refused["presigned GET"] = s3_code(presigned) if presigned.status_code == 403 else str(presigned.status_code)
    assert refused == {name: "403" if name.startswith("Head") else "SignatureDoesNotMatch" for name in refused}, \
        refused
    admin = lab.boto3()
    assert [p["PartNumber"] for p in admin.list_parts(Bucket=bucket, Key="admin-upload.bin",
                                                      UploadId=upload).get("Parts", [])] == []
    admin.abort_multipart_upload(Bucket=bucket, Key="admin-upload.bin", UploadId=upload)
    unchanged(lab)
    assert not lab.bucket_exists("clients-boto3-wrong-new")
    found(request, f"boto3 ({boto3_mode}): {len(calls)} operations and a presigned GET: SignatureDoesNotMatch "
                   "(HeadBucket, HeadObject: 403)")


def s3_code(answer: httpx.Response) -> str:
    """The ``Code`` of an S3 XML error document."""
    code = ET.fromstring(answer.content).findtext("Code")
    assert code, answer.text
    return code


# --- rclone ----------------------------------------------------------------------------------------------------

REMOTE = "cargohold"


def rclone(lab: Lab, keys: Keys, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    """``rclone ARGS`` with the remote ``cargohold:`` configured from the environment alone: no config file, a
    temporary ``$HOME``, nothing of this machine's environment but ``PATH`` (its ``AWS_CA_BUNDLE`` makes rclone
    refuse a plain-HTTP endpoint)."""
    if RCLONE is None:
        pytest.skip("rclone is not installed: `make s3-tools` installs it from Debian")
    home = lab.tmp / "rclone-home"
    home.mkdir(exist_ok=True)
    prefix = f"RCLONE_CONFIG_{REMOTE.upper()}_"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "TZ": "UTC",
           "RCLONE_CONFIG": str(home / "no-rclone.conf"),
           prefix + "TYPE": "s3", prefix + "PROVIDER": "Other", prefix + "ENDPOINT": lab.server.s3_url,
           prefix + "ACCESS_KEY_ID": keys.access, prefix + "SECRET_ACCESS_KEY": keys.secret,
           prefix + "REGION": "us-east-1", prefix + "FORCE_PATH_STYLE": "true"}
    result = subprocess.run([RCLONE, *args], env=env, capture_output=True, timeout=300)
    if check:
        assert result.returncode == 0, f"rclone {' '.join(args)}:\n{result.stderr.decode(errors='replace')}"
    return result


def lines(result: subprocess.CompletedProcess[bytes]) -> list[str]:
    return sorted(result.stdout.decode().splitlines())


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for key, data in files.items():
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        (root / key).write_bytes(data)
    return root


def rclone_check(lab: Lab, local: Path, remote: str) -> str:
    """``rclone check`` (sizes and MD5s): passes, and its report."""
    return rclone(lab, lab.admin, "check", str(local), remote).stderr.decode()


def lsf_tree(files: dict[str, bytes] | list[str]) -> list[str]:
    """What ``rclone lsf -R`` shows of these keys: each key, and each folder with a trailing ``/``."""
    folders = {key[: i + 1] for key in files for i, c in enumerate(key) if c == "/"}
    return sorted(set(files) | folders)


def test_rclone_copy_sync_check_lsf_and_cat(lab: Lab, tmp_path: Path) -> None:
    remote = f"{REMOTE}:clients-rclone"
    local = write_tree(tmp_path / "src", FILES)
    rclone(lab, lab.admin, "copy", str(local), remote)  # makes the bucket too
    assert lines(rclone(lab, lab.admin, "lsf", "-R", remote)) == lsf_tree(FILES)
    assert lines(rclone(lab, lab.admin, "lsf", remote)) == ["folder/", "top.txt"]
    assert lines(rclone(lab, lab.admin, "lsf", f"{remote}/folder")) == sorted(
        [k.removeprefix("folder/") for k in FOLDER[0]] + ["sub/"])
    assert "clients-rclone/" in lines(rclone(lab, lab.admin, "lsf", f"{REMOTE}:"))
    report = rclone_check(lab, local, remote)
    assert "0 differences found" in report and f"{len(FILES)} matching files" in report, report
    assert "could not be checked" not in report, report  # every MD5 compared
    listed = lines(rclone(lab, lab.admin, "md5sum", remote))  # "<md5>  <key>" each, from the ETags
    md5s = {key: digest for digest, key in (line.split("  ", 1) for line in listed)}
    assert md5s == {key: md5(data) for key, data in FILES.items()}
    data = FILES[RANGED]
    cat = rclone(lab, lab.admin, "cat", "--offset", "100", "--count", "4000", f"{remote}/{RANGED}")
    assert cat.stdout == data[100:4100]
    assert rclone(lab, lab.admin, "cat", "--offset", "-1000", f"{remote}/{RANGED}").stdout == data[-1000:]
    assert rclone(lab, lab.admin, "cat", "--count", "7", f"{remote}/{RANGED}").stdout == data[:7]
    assert rclone(lab, lab.admin, "cat", f"{remote}/{RANGED}").stdout == data

    # sync: a file gone, one changed, one new, the remote made the same.
    (local / "top.txt").unlink()
    (local / "folder" / "a.txt").write_bytes(b"a, changed and longer than before\n")
    write_tree(local, {"new/fresh.txt": b"fresh\n"})
    now = {p.relative_to(local).as_posix(): p.read_bytes() for p in local.rglob("*") if p.is_file()}
    rclone(lab, lab.admin, "sync", str(local), remote)
    assert lines(rclone(lab, lab.admin, "lsf", "-R", remote)) == lsf_tree(now)
    report = rclone_check(lab, local, remote)
    assert "0 differences found" in report and f"{len(now)} matching files" in report, report
    assert rclone(lab, lab.admin, "cat", f"{remote}/folder/a.txt").stdout == now["folder/a.txt"]

    link = rclone(lab, lab.admin, "link", "--expire", "5m", f"{remote}/{RANGED}").stdout.decode().strip()
    assert "X-Amz-Signature=" in link, link
    assert httpx.get(link, timeout=60).content == data
    rclone(lab, lab.admin, "deletefile", f"{remote}/{RANGED}")
    assert lab.keys_of("clients-rclone") == sorted(set(now) - {RANGED})


@pytest.fixture(scope="module")
def rclone_big(lab: Lab) -> str:
    """The 100 MB file copied by rclone in 16 MB parts (its default cut-off for multipart is 200 MB)."""
    remote = f"{REMOTE}:clients-rclone-big"
    rclone(lab, lab.admin, "copy", "--s3-upload-cutoff", "5M", "--s3-chunk-size", "16M", str(lab.big.parent), remote)
    return remote


@pytest.mark.timeout(300)
def test_rclone_multipart_upload_of_100_mb(lab: Lab, rclone_big: str, tmp_path: Path) -> None:
    head = lab.boto3().head_object(Bucket="clients-rclone-big", Key="big.bin")
    assert head["ContentLength"] == BIG and head["ETag"].endswith(f'-{BIG_PARTS}"'), head
    assert sha(rclone(lab, lab.admin, "cat", f"{rclone_big}/big.bin").stdout) == lab.big_sha256
    rclone(lab, lab.admin, "copy", f"{rclone_big}/big.bin", str(tmp_path))
    assert file_sha(tmp_path / "big.bin") == lab.big_sha256
    assert lines(rclone(lab, lab.admin, "lsf", rclone_big)) == ["big.bin"]



def test_rclone_check_compares_the_md5_of_a_multipart_upload(lab: Lab, rclone_big: str) -> None:
    """rclone keeps the MD5 of what it uploads in parts as the object's metadata ``X-Amz-Meta-Md5chksum`` (a
    multipart ETag is no MD5) and ``check`` compares it: a server that drops it leaves the hash unchecked."""
    report = rclone_check(lab, lab.big.parent, rclone_big)
    assert "0 differences found" in report and "1 matching files" in report, report
    assert "could not be checked" not in report, report


def test_rclone_keeps_modification_times(lab: Lab, tmp_path: Path) -> None:
    """rclone keeps a file's modification time as the metadata ``X-Amz-Meta-Mtime`` and shows it back (``lsl``);
    ``sync`` compares it, and when only it differs sets it with a CopyObject onto itself (``REPLACE``)."""
    remote = f"{REMOTE}:clients-rclone-mtime"
    local = write_tree(tmp_path / "src", {"old.txt": b"written long ago\n"})
    then = datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()
    os.utime(local / "old.txt", (then, then))
    rclone(lab, lab.admin, "copy", str(local), remote)
    assert rclone(lab, lab.admin, "lsl", remote).stdout.decode().split()[1:3] == ["2020-01-02", "03:04:05.000000000"]
    later = datetime(2021, 6, 7, 8, 9, 10, tzinfo=UTC).timestamp()
    os.utime(local / "old.txt", (later, later))
    rclone(lab, lab.admin, "sync", str(local), remote)  # only the time differs: set on the remote
    assert rclone(lab, lab.admin, "lsl", remote).stdout.decode().split()[1:3] == ["2021-06-07", "08:09:10.000000000"]


def test_rclone_reads_a_linked_item(lab: Lab, tmp_path: Path) -> None:
    remote = f"{REMOTE}:{lab.linked_bucket}"
    assert rclone(lab, lab.admin, "cat", f"{remote}/{LINKED_KEY}").stdout == LINKED
    assert rclone(lab, lab.admin, "cat", "--offset", "10", "--count", "2000", f"{remote}/{LINKED_KEY}").stdout \
        == LINKED[10:2010]
    assert lines(rclone(lab, lab.admin, "lsf", "-R", remote)) == lsf_tree([LINKED_KEY])
    rclone(lab, lab.admin, "copy", remote, str(tmp_path))  # checks the MD5 of what it got against the ETag
    assert (tmp_path / LINKED_KEY).read_bytes() == LINKED
    report = rclone_check(lab, tmp_path, remote)
    assert "0 differences found" in report and "could not be checked" not in report, report
    link = rclone(lab, lab.admin, "link", f"{remote}/{LINKED_KEY}").stdout.decode().strip()
    assert httpx.get(link, timeout=60).content == LINKED


def refused_by(result: subprocess.CompletedProcess[bytes], code: str) -> bool:
    return result.returncode != 0 and code in result.stderr.decode(errors="replace")


NO_RETRIES = ("--retries", "1", "--low-level-retries", "1")


@pytest.mark.reliability(kind="attack", cases=7, what=SCOPED_KEYS)
def test_rclone_read_and_limited_keys(lab: Lab, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    shared = f"{REMOTE}:{lab.shared_bucket}"
    local = write_tree(tmp_path, {"reader.txt": b"refused\n"})
    assert rclone(lab, lab.reader, "cat", f"{shared}/{SHARED_KEY}").stdout == SHARED
    tries = {
        "copyto": rclone(lab, lab.reader, *NO_RETRIES, "copyto", str(local / "reader.txt"), f"{shared}/reader.txt",
                         check=False),
        "deletefile": rclone(lab, lab.reader, *NO_RETRIES, "deletefile", f"{shared}/{SHARED_KEY}", check=False),
        "mkdir": rclone(lab, lab.reader, *NO_RETRIES, "mkdir", f"{REMOTE}:clients-rclone-reader-new", check=False),
        "rmdir": rclone(lab, lab.reader, *NO_RETRIES, "rmdir", f"{REMOTE}:{lab.empty_bucket}", check=False),
        "limited lsf": rclone(lab, lab.limited, *NO_RETRIES, "lsf", shared, check=False),
        "limited cat": rclone(lab, lab.limited, *NO_RETRIES, "cat", f"{shared}/{SHARED_KEY}", check=False),
        "limited mkdir": rclone(lab, lab.limited, *NO_RETRIES, "mkdir", f"{REMOTE}:clients-rclone-limited-new",
                                check=False),
    }
    wrong = {name: r.stderr.decode(errors="replace")[-400:] for name, r in tries.items()
             if not refused_by(r, "AccessDenied")}
    assert not wrong, wrong
    assert lines(rclone(lab, lab.limited, "lsf", f"{REMOTE}:")) == [f"{lab.limited_bucket}/"]
    unchanged(lab)
    assert not lab.bucket_exists("clients-rclone-reader-new") and not lab.bucket_exists("clients-rclone-limited-new")
    found(request, "rclone: copyto, deletefile, mkdir, rmdir with a read key, lsf, cat, mkdir of another bucket with "
                   "a limited key: AccessDenied; lsd shows the limited key its bucket alone")


@pytest.mark.reliability(kind="attack", cases=11, what=WRONG_SECRET)
def test_rclone_wrong_secret_is_refused_on_every_request(lab: Lab, tmp_path: Path,
                                                         request: pytest.FixtureRequest) -> None:
    shared = f"{REMOTE}:{lab.shared_bucket}"
    local = write_tree(tmp_path, {"small.txt": b"refused\n", "multi.bin": os.urandom(6 * MB)})
    wrong = lab.admin.wrong()
    commands = {
        "lsd": ("lsd", f"{REMOTE}:"),
        "lsf": ("lsf", shared),
        "lsf -R": ("lsf", "-R", shared),
        "cat": ("cat", f"{shared}/{SHARED_KEY}"),
        "cat --offset --count": ("cat", "--offset", "2", "--count", "3", f"{shared}/{SHARED_KEY}"),
        # --no-check-dest: rclone's PUT itself, not the HEAD of the destination it sends first by default
        "copyto": ("copyto", "--no-check-dest", str(local / "small.txt"), f"{shared}/small.txt"),
        "copyto multipart": ("copyto", "--no-check-dest", "--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M",
                             str(local / "multi.bin"), f"{shared}/multi.bin"),
        "sync": ("sync", str(local), f"{REMOTE}:{lab.empty_bucket}"),
        "mkdir": ("mkdir", f"{REMOTE}:clients-rclone-wrong-new"),
        "rmdir": ("rmdir", f"{REMOTE}:{lab.empty_bucket}"),
        # deletefile HEADs the object first and, refused, sends nothing else: the answer to a HEAD has no body,
        # so no code either; its 403 is seen in the dump of the exchange.
        "deletefile": ("deletefile", "-vv", "--dump", "headers", f"{shared}/{SHARED_KEY}"),
    }
    results = {name: rclone(lab, wrong, *NO_RETRIES, *args, check=False) for name, args in commands.items()}
    expected = {name: "HTTP/1.1 403 Forbidden" if name == "deletefile" else "SignatureDoesNotMatch"
                for name in commands}
    not_refused = {name: r.stderr.decode(errors="replace")[-400:] for name, r in results.items()
                   if not refused_by(r, expected[name])}
    assert not not_refused, not_refused
    unchanged(lab)
    assert not lab.bucket_exists("clients-rclone-wrong-new")
    found(request, f"rclone: {len(commands)} commands ({', '.join(commands)}): SignatureDoesNotMatch (deletefile, "
                   "which sends only its HEAD: 403)")


# --- s3fs, and fsspec's abstract suite through it --------------------------------------------------------------


def venv_python() -> Path:
    python = CLIENTS_VENV / "bin" / "python"
    if not (CLIENTS_VENV / ".installed").exists() or not python.exists():
        pytest.skip(f"no s3fs venv at {CLIENTS_VENV}: `make s3-tools` builds it (s3fs pins its own botocore)")
    return python


def venv_env(lab: Lab, keys: Keys, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PYTHON", "VIRTUAL_ENV", "BOTO"))}
    home = lab.tmp / "venv-home"
    home.mkdir(exist_ok=True)
    return env | {"HOME": str(home), "CLIENTS_S3_ENDPOINT": lab.server.s3_url, "CLIENTS_S3_KEY": keys.access,
                  "CLIENTS_S3_SECRET": keys.secret, **extra}


def s3fs_run(lab: Lab, scenario: str, **args: Any) -> dict[str, Any]:
    """One scenario of tests/s3/clients_s3fs.py, run by the s3fs venv's Python: what s3fs saw."""
    result = subprocess.run([str(venv_python()), str(HERE / "clients_s3fs.py"), scenario, json.dumps(args)],
                            env=venv_env(lab, lab.admin), capture_output=True, text=True, timeout=280, cwd=lab.tmp)
    assert result.returncode == 0, f"clients_s3fs.py {scenario}:\n{result.stdout}\n{result.stderr}"
    return dict(json.loads(result.stdout.splitlines()[-1]))


def test_s3fs_lists_reads_writes_and_presigns(lab: Lab, tmp_path: Path) -> None:
    bucket = "clients-s3fs"
    local = write_tree(tmp_path, FILES)
    seen = s3fs_run(lab, "round_trip", bucket=bucket, ranged=RANGED, delete=DELETED,
                    files={key: str(local / key) for key in FILES})
    assert seen["buckets"] == [bucket]
    assert seen["root"] == [[f"{bucket}/folder", "directory"], [f"{bucket}/put-file", "directory"],
                            [f"{bucket}/top.txt", "file"]]
    assert seen["folder"] == sorted([[f"{bucket}/{k}", "file"] for k in FOLDER[0]]
                                    + [[f"{bucket}/{p.rstrip('/')}", "directory"] for p in FOLDER[1]])
    assert seen["find"] == sorted([f"{bucket}/{k}" for k in FILES] + [f"{bucket}/put-file/{RANGED}"])
    assert seen["cat"] == {key: sha(data) for key, data in FILES.items()}
    data = FILES[RANGED]
    assert seen["range"] == sha(data[100:4100]) and seen["seeked"] == sha(data[5000:15000])
    assert seen["size"] == len(data)
    assert seen["presigned"]["status"] == 200 and seen["presigned"]["sha256"] == sha(data), seen["presigned"]
    assert not seen["deleted_exists"]
    assert seen["after_delete"] == sorted(f"{bucket}/{k}" for k in set(FILES) - {DELETED})
    assert lab.keys_of(bucket) == sorted(set(FILES) - {DELETED})


@pytest.mark.timeout(300)
def test_s3fs_multipart_upload_of_100_mb(lab: Lab) -> None:
    bucket = lab.dataset("clients-s3fs-big")
    seen = s3fs_run(lab, "multipart", bucket=bucket, key="big.bin", path=str(lab.big),
                    download=str(lab.tmp / "s3fs-big.bin"))
    assert seen["size"] == BIG and seen["etag"].endswith(f'-{BIG_PARTS}"'), seen
    assert seen["sha256"] == lab.big_sha256 and seen["get_file_sha256"] == lab.big_sha256


def test_s3fs_reads_a_linked_item(lab: Lab) -> None:
    seen = s3fs_run(lab, "linked", bucket=lab.linked_bucket, key=LINKED_KEY)
    assert seen["cat"] == sha(LINKED) and seen["range"] == sha(LINKED[10:2010])
    assert seen["seeked"] == sha(LINKED[1000:6000]) and seen["size"] == len(LINKED)
    assert seen["folder"] == [[f"{lab.linked_bucket}/{LINKED_KEY}", "file"]]
    assert seen["presigned"]["status"] == 200 and seen["presigned"]["sha256"] == sha(LINKED)


@pytest.mark.reliability(kind="attack", cases=7, what=SCOPED_KEYS)
def test_s3fs_read_and_limited_keys(lab: Lab, request: pytest.FixtureRequest) -> None:
    seen = s3fs_run(lab, "scoped", bucket=lab.shared_bucket, key=SHARED_KEY, new_bucket="clients-s3fs-new",
                    empty_bucket=lab.empty_bucket, reader=vars(lab.reader), limited=vars(lab.limited))
    assert seen["reader_get"] == {"ok": sha(SHARED)}
    assert seen["limited_buckets"] == {"ok": [lab.limited_bucket]}
    refused = {name: seen[name].get("error") for name in ("reader_put", "reader_delete", "reader_mkdir",
                                                          "reader_rmdir", "limited_other_ls", "limited_other_get",
                                                          "limited_mkdir")}
    assert refused == dict.fromkeys(refused, "AccessDenied"), {name: seen[name] for name in refused}
    assert seen["still_there"] == sha(SHARED) and seen["after"] == [f"{lab.shared_bucket}/{SHARED_KEY}"]
    unchanged(lab)
    assert not lab.bucket_exists("clients-s3fs-new")
    found(request, "s3fs: pipe_file, rm_file, mkdir and rmdir of a bucket with a read key, ls, cat_file, mkdir with a "
                   "limited key: AccessDenied; ls('') shows the limited key its bucket alone")


@pytest.mark.reliability(kind="attack", cases=12, what=WRONG_SECRET)
def test_s3fs_wrong_secret_is_refused_on_every_request(lab: Lab, request: pytest.FixtureRequest) -> None:
    seen = s3fs_run(lab, "wrong_secret", bucket=lab.shared_bucket, key=SHARED_KEY, new_bucket="clients-s3fs-wrong")
    presigned = seen.pop("presigned")
    after = seen.pop("after")
    refused = {name: result.get("error") for name, result in seen.items()}
    # info is a HEAD: its answer has no body, so s3fs sees the 403 alone.
    assert refused == {name: "403" if name == "info" else "SignatureDoesNotMatch" for name in refused}, seen
    assert presigned["status"] == 403 and "<Code>SignatureDoesNotMatch</Code>" in presigned["body"], presigned
    assert after == [f"{lab.shared_bucket}/{SHARED_KEY}"]
    unchanged(lab)
    assert not lab.bucket_exists("clients-s3fs-wrong")
    found(request, f"s3fs: {len(refused)} calls ({', '.join(refused)}) and a presigned GET: SignatureDoesNotMatch "
                   "(info, a HEAD: 403)")


def fsspec_suite(lab: Lab, bucket: str, select: str) -> dict[str, Any]:
    """fsspec.tests.abstract's mixins ``select`` (a ``-k`` expression) on s3fs, in the venv: its JUnit counts."""
    python = venv_python()
    run = lab.tmp / f"fsspec-{bucket}"
    run.mkdir()
    (run / "pytest.ini").write_text("[pytest]\n")
    report = run / "junit.xml"
    result = subprocess.run([str(python), "-m", "pytest", "--noconftest", "-p", "no:cacheprovider",
                             "--import-mode=importlib", "-c", str(run / "pytest.ini"), "--rootdir", str(run),
                             "-q", "-rfE", "-k", select, f"--junitxml={report}", str(HERE / "clients_fsspec.py")],
                            env=venv_env(lab, lab.admin, CLIENTS_S3_BUCKET=bucket), capture_output=True, text=True,
                            timeout=580, cwd=run)
    suite = ET.parse(report).getroot()
    suite = suite if suite.tag == "testsuite" else suite[0]
    counts = {name: int(suite.get(name, "0")) for name in ("tests", "failures", "errors", "skipped")}
    failed = [f"{case.get('classname')}::{case.get('name')}: {(case[0].get('message') or '')[:200]}"
              for case in suite.iter("testcase") if len(case) and case[0].tag in ("failure", "error")]
    return {"counts": counts, "failed": failed, "rc": result.returncode, "tail": result.stdout[-2000:]}


@pytest.mark.timeout(600)
def test_fsspec_abstract_copy_get_put_suite_on_s3fs(lab: Lab) -> None:
    """fsspec's own abstract tests (AbstractCopyTests, AbstractGetTests, AbstractPutTests) with s3fs's fixtures
    pointed at cargohold, as s3fs's repository runs them against moto."""
    bucket = lab.dataset("clients-fsspec")
    outcome = fsspec_suite(lab, bucket, "Copy or Get or Put")
    assert outcome["failed"] == [] and outcome["rc"] == 0, outcome
    assert outcome["counts"]["tests"] >= 100 and outcome["counts"]["skipped"] == 0, outcome


@pytest.mark.timeout(300)
def test_fsspec_abstract_exclusive_create_on_s3fs(lab: Lab) -> None:
    """fsspec's AbstractPipeTests: ``pipe_file(mode="create")`` on an existing file raises FileExistsError. s3fs
    sends ``If-None-Match: *`` with the PutObject and maps S3's answer, ``412 PreconditionFailed`` with
    ``<Condition>If-None-Match</Condition>``, to FileExistsError. (AbstractOpenTests' ``open("xb")`` expects the
    open itself to raise; s3fs checks "x" only when the file is committed, so it is left out: s3fs's side.)"""
    bucket = lab.dataset("clients-fsspec-exclusive")
    outcome = fsspec_suite(lab, bucket, "Pipe")
    assert outcome["failed"] == [] and outcome["rc"] == 0, outcome
    assert outcome["counts"]["tests"] == 1, outcome


# --- obstore ---------------------------------------------------------------------------------------------------


def obstore(lab: Lab, bucket: str, keys: Keys | None = None) -> Any:
    from obstore.store import S3Store

    keys = keys or lab.admin
    return S3Store(bucket, endpoint=lab.server.s3_url, access_key_id=keys.access, secret_access_key=keys.secret,
                   region="us-east-1", virtual_hosted_style_request=False, client_options={"allow_http": True},
                   retry_config={"max_retries": 0, "retry_timeout": timedelta(seconds=5),
                                 "backoff": {"init_backoff": timedelta(milliseconds=10),
                                             "max_backoff": timedelta(milliseconds=100), "base": 2}})


def obstore_listing(store: Any, prefix: str | None) -> tuple[list[str], list[str]]:
    import obstore as obs

    listed = obs.list_with_delimiter(store, prefix)
    return sorted(o["path"] for o in listed["objects"]), sorted(listed["common_prefixes"])


def obstore_code(call: Callable[[], Any]) -> str:
    """The S3 ``<Code>`` in what obstore raised (it quotes the response body), else the exception's type."""
    with pytest.raises(Exception) as refused:  # obstore's error classes differ by operation
        call()
    found = re.search(r"<Code>(\w+)</Code>", str(refused.value))
    return found[1] if found else type(refused.value).__name__


def test_obstore_lists_reads_writes_and_presigns(lab: Lab) -> None:
    import obstore as obs

    bucket = lab.dataset("clients-obstore")
    store = obstore(lab, bucket)
    for key, data in FILES.items():
        put = obs.put(store, key, data)
        assert put["e_tag"] == f'"{md5(data)}"', put
    assert obstore_listing(store, None) == (ROOT[0], [p.rstrip("/") for p in ROOT[1]])
    assert obstore_listing(store, "folder") == (FOLDER[0], [p.rstrip("/") for p in FOLDER[1]])
    assert sorted(m["path"] for chunk in obs.list(store) for m in chunk) == sorted(FILES)
    for key, data in FILES.items():
        assert bytes(obs.get(store, key).bytes()) == data, key
    data = FILES[RANGED]
    assert bytes(obs.get_range(store, RANGED, start=100, end=4100)) == data[100:4100]
    assert [bytes(r) for r in obs.get_ranges(store, RANGED, starts=[0, 5000], ends=[10, 9000])] \
        == [data[:10], data[5000:9000]]
    assert obs.head(store, RANGED)["size"] == len(data)
    obs.copy(store, RANGED, "copied.bin")
    assert bytes(obs.get(store, "copied.bin").bytes()) == data
    url = obs.sign(store, "GET", RANGED, timedelta(minutes=5))
    assert httpx.get(url, timeout=60).content == data
    obs.delete(store, DELETED)
    with pytest.raises(FileNotFoundError):
        obs.head(store, DELETED)
    assert lab.keys_of(bucket) == sorted((set(FILES) | {"copied.bin"}) - {DELETED})


@pytest.mark.timeout(300)
def test_obstore_multipart_upload_of_100_mb(lab: Lab) -> None:
    import obstore as obs

    bucket = lab.dataset("clients-obstore-big")
    store = obstore(lab, bucket)
    obs.put(store, "big.bin", lab.big, use_multipart=True, chunk_size=PART, max_concurrency=4)
    meta = obs.head(store, "big.bin")
    assert meta["size"] == BIG and (meta["e_tag"] or "").endswith(f'-{BIG_PARTS}"'), meta
    streamed = hashlib.sha256()
    for chunk in obs.get(store, "big.bin").stream(min_chunk_size=4 * MB):
        streamed.update(chunk)
    assert streamed.hexdigest() == lab.big_sha256
    middle = bytes(obs.get_range(store, "big.bin", start=50 * MB - 10, end=50 * MB + 10))
    with lab.big.open("rb") as f:
        f.seek(50 * MB - 10)
        assert middle == f.read(20)
    obs.delete(store, "big.bin")
    assert lab.keys_of(bucket) == []


def test_obstore_reads_a_linked_item(lab: Lab) -> None:
    import obstore as obs

    store = obstore(lab, lab.linked_bucket)
    got = obs.get(store, LINKED_KEY)
    assert got.meta["e_tag"] == f'"{md5(LINKED)}"' and bytes(got.bytes()) == LINKED
    assert bytes(obs.get_range(store, LINKED_KEY, start=10, end=2010)) == LINKED[10:2010]
    assert obstore_listing(store, None) == ([], ["photos"])
    assert obstore_listing(store, "photos") == ([LINKED_KEY], [])
    assert httpx.get(obs.sign(store, "GET", LINKED_KEY, timedelta(minutes=5)), timeout=60).content == LINKED


@pytest.mark.reliability(kind="attack", cases=6, what=SCOPED_KEYS)
def test_obstore_read_and_limited_keys(lab: Lab, request: pytest.FixtureRequest) -> None:
    """obstore has no CreateBucket nor ListBuckets: what it can do, in a bucket it may not change or reach."""
    import obstore as obs

    reader = obstore(lab, lab.shared_bucket, lab.reader)
    assert bytes(obs.get(reader, SHARED_KEY).bytes()) == SHARED
    limited = obstore(lab, lab.shared_bucket, lab.limited)
    refused = {
        "reader put": obstore_code(lambda: obs.put(reader, "reader.txt", b"refused")),
        "reader multipart put": obstore_code(lambda: obs.put(reader, "reader.bin", os.urandom(6 * MB),
                                                             use_multipart=True, chunk_size=5 * MB)),
        "reader delete": obstore_code(lambda: obs.delete(reader, SHARED_KEY)),
        "reader copy": obstore_code(lambda: obs.copy(reader, SHARED_KEY, "copy.txt")),
        "limited list": obstore_code(lambda: obs.list_with_delimiter(limited, None)),
        "limited get": obstore_code(lambda: obs.get(limited, SHARED_KEY).bytes()),
    }
    assert refused == dict.fromkeys(refused, "AccessDenied"), refused
    mine = obstore(lab, lab.limited_bucket, lab.limited)
    obs.put(mine, "obstore.txt", b"mine")
    assert bytes(obs.get(mine, "obstore.txt").bytes()) == b"mine"
    unchanged(lab)
    found(request, f"obstore: {', '.join(refused)}: AccessDenied (it has no CreateBucket nor ListBuckets)")


@pytest.mark.reliability(kind="attack", cases=11, what=WRONG_SECRET)
def test_obstore_wrong_secret_is_refused_on_every_request(lab: Lab, request: pytest.FixtureRequest) -> None:
    import obstore as obs

    store = obstore(lab, lab.shared_bucket, lab.admin.wrong())
    calls: dict[str, Callable[[], Any]] = {
        "list": lambda: [m for chunk in obs.list(store) for m in chunk],
        "list_with_delimiter": lambda: obs.list_with_delimiter(store, None),
        "head": lambda: obs.head(store, SHARED_KEY),
        "get": lambda: obs.get(store, SHARED_KEY).bytes(),
        "get_range": lambda: obs.get_range(store, SHARED_KEY, start=0, end=3),
        "put": lambda: obs.put(store, "wrong.txt", b"refused"),
        "multipart put": lambda: obs.put(store, "wrong.bin", os.urandom(6 * MB), use_multipart=True,
                                         chunk_size=5 * MB),
        "copy": lambda: obs.copy(store, SHARED_KEY, "copy.txt"),
        "rename": lambda: obs.rename(store, SHARED_KEY, "renamed.txt"),
        "delete": lambda: obs.delete(store, SHARED_KEY),
    }
    refused = {name: obstore_code(call) for name, call in calls.items()}
    presigned = httpx.get(obs.sign(store, "GET", SHARED_KEY, timedelta(minutes=5)), timeout=60)
    refused["presigned GET"] = s3_code(presigned) if presigned.status_code == 403 else str(presigned.status_code)
    # A HEAD's answer has no body: obstore sees the 403 alone.
    assert refused == {name: "PermissionDeniedError" if name == "head" else "SignatureDoesNotMatch"
                       for name in refused}, refused
    unchanged(lab)
    found(request, f"obstore: {len(calls)} calls ({', '.join(calls)}) and a presigned GET: SignatureDoesNotMatch "
                   "(head: 403)")
