"""The S3 endpoint against a real ``cargohold up`` (local disk), through boto3 unmodified and through requests
signed with botocore's own signer and then altered: keys carry their token's scope and die with it, tampered
and replayed requests are refused, names that try traversal are refused, and an interrupted multipart upload
leaves nothing visible that gc does not clear (issue 15)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

import boto3
import httpx
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from ..support.api import cli
from ..support.api_server import RunningServer


@dataclass
class Keys:
    access: str
    secret: str
    token: str


@dataclass
class Endpoint:
    server: RunningServer
    admin: Keys

    def keys(self, name: str, *flags: str) -> Keys:
        made = json.loads(cli(self.server, "token", "create", "--name", name, "--s3", "--json", *flags).stdout)
        return Keys(made["s3_access_key_id"], made["s3_secret_access_key"], made["token"])

    def client(self, keys: Keys | None = None, **config: Any) -> Any:
        keys = keys or self.admin
        return boto3.client("s3", endpoint_url=self.server.s3_url, aws_access_key_id=keys.access,
                            aws_secret_access_key=keys.secret, region_name="us-east-1",
                            config=Config(s3={"addressing_style": "path"}, signature_version="s3v4",
                                          retries={"max_attempts": 1}, **config))


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoint]:
    server = RunningServer(tmp_path_factory.mktemp("s3") / "home", {}).start()
    try:
        made = json.loads(cli(server, "token", "create", "--name", "s3-admin", "--admin", "--s3", "--json").stdout)
        yield Endpoint(server, Keys(made["s3_access_key_id"], made["s3_secret_access_key"], made["token"]))
    finally:
        server.stop()


def code_of(error: ClientError) -> str:
    return str(error.response["Error"]["Code"])


def test_boto3_reads_and_writes_a_dataset(endpoint: Endpoint) -> None:
    s3 = endpoint.client()
    s3.create_bucket(Bucket="roundtrip")
    payload = os.urandom(300_000)
    put = s3.put_object(Bucket="roundtrip", Key="frames/2024/a.bin", Body=payload)
    assert put["ETag"] == f'"{hashlib.md5(payload).hexdigest()}"'  # an MD5: rclone and the AWS CLI check it
    s3.put_object(Bucket="roundtrip", Key="frames/b.bin", Body=b"b")
    s3.put_object(Bucket="roundtrip", Key="top.txt", Body=b"top")
    assert s3.get_object(Bucket="roundtrip", Key="frames/2024/a.bin")["Body"].read() == payload
    assert s3.get_object(Bucket="roundtrip", Key="frames/2024/a.bin", Range="bytes=10-19")["Body"].read() \
        == payload[10:20]
    listed = s3.list_objects_v2(Bucket="roundtrip", Delimiter="/")
    assert [c["Key"] for c in listed["Contents"]] == ["top.txt"]
    assert [p["Prefix"] for p in listed["CommonPrefixes"]] == ["frames/"]
    flat = s3.list_objects(Bucket="roundtrip", Prefix="frames/")
    assert [c["Key"] for c in flat["Contents"]] == ["frames/2024/a.bin", "frames/b.bin"]
    head = s3.head_object(Bucket="roundtrip", Key="top.txt")
    assert head["ContentLength"] == 3
    with pytest.raises(ClientError) as missing:
        s3.head_object(Bucket="roundtrip", Key="nothing")
    assert missing.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    # The same dataset, seen through the HTTP API.
    with endpoint.server.client() as api:
        datasets = {d["name"]: d for d in api.get("/datasets").json()["datasets"]}
        assert datasets["roundtrip"]["bucket"] == "roundtrip" and datasets["roundtrip"]["item_count"] == 3
    s3.copy_object(Bucket="roundtrip", Key="copy.bin", CopySource={"Bucket": "roundtrip", "Key": "frames/2024/a.bin"})
    assert s3.get_object(Bucket="roundtrip", Key="copy.bin")["Body"].read() == payload
    deleted = s3.delete_objects(Bucket="roundtrip", Delete={"Objects": [{"Key": "copy.bin"}, {"Key": "never"}]})
    assert sorted(d["Key"] for d in deleted["Deleted"]) == ["copy.bin", "never"]
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "roundtrip", "Key": "top.txt"}, ExpiresIn=60)
    assert httpx.get(url).content == b"top"
    with pytest.raises(ClientError) as not_empty:
        s3.delete_bucket(Bucket="roundtrip")
    assert code_of(not_empty.value) == "BucketNotEmpty"


@pytest.mark.reliability(kind="attack", cases=5, what="S3 multipart completions: parts out of order, too small, "
                         "missing, a 10,000-part manifest, 10,001 parts")
def test_a_multipart_upload_is_one_item_with_s3s_etag(endpoint: Endpoint) -> None:
    s3 = endpoint.client()
    s3.create_bucket(Bucket="multipart")
    parts = [os.urandom(5 * 1024 * 1024), os.urandom(5 * 1024 * 1024), os.urandom(1000)]
    upload = s3.create_multipart_upload(Bucket="multipart", Key="big.bin")["UploadId"]
    etags = [s3.upload_part(Bucket="multipart", Key="big.bin", UploadId=upload, PartNumber=n + 1, Body=part)["ETag"]
             for n, part in enumerate(parts)]
    listed = s3.list_parts(Bucket="multipart", Key="big.bin", UploadId=upload)["Parts"]
    assert [p["Size"] for p in listed] == [len(p) for p in parts]
    assert [u["UploadId"] for u in s3.list_multipart_uploads(Bucket="multipart")["Uploads"]] == [upload]
    done = s3.complete_multipart_upload(Bucket="multipart", Key="big.bin", UploadId=upload, MultipartUpload={
        "Parts": [{"PartNumber": n + 1, "ETag": etag} for n, etag in enumerate(etags)]})
    together = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest()
    assert done["ETag"] == f'"{together}-3"'
    assert s3.get_object(Bucket="multipart", Key="big.bin")["Body"].read() == b"".join(parts)
    assert s3.list_multipart_uploads(Bucket="multipart").get("Uploads", []) == []
    # Parts out of order, a part too small, a part that is not there.
    second = s3.create_multipart_upload(Bucket="multipart", Key="bad.bin")["UploadId"]
    small = s3.upload_part(Bucket="multipart", Key="bad.bin", UploadId=second, PartNumber=1, Body=b"x")["ETag"]
    other = s3.upload_part(Bucket="multipart", Key="bad.bin", UploadId=second, PartNumber=2, Body=b"y")["ETag"]
    for parts_given, code in (([(2, other), (1, small)], "InvalidPartOrder"), ([(1, small), (2, other)],
                                                                                 "EntityTooSmall"),
                              ([(1, small), (3, other)], "InvalidPart")):
        with pytest.raises(ClientError) as refused:
            s3.complete_multipart_upload(Bucket="multipart", Key="bad.bin", UploadId=second, MultipartUpload={
                "Parts": [{"PartNumber": n, "ETag": e} for n, e in parts_given]})
        assert code_of(refused.value) == code
    # A manifest of 10,000 parts (S3's most), none of them there but the first two: refused at once.
    manifest = [{"PartNumber": n, "ETag": small if n == 1 else '"' + "0" * 32 + '"'} for n in range(1, 10_001)]
    started = time.monotonic()
    with pytest.raises(ClientError) as huge:
        s3.complete_multipart_upload(Bucket="multipart", Key="bad.bin", UploadId=second,
                                     MultipartUpload={"Parts": manifest})
    assert code_of(huge.value) == "InvalidPart" and time.monotonic() - started < 30
    with pytest.raises(ClientError) as over:
        s3.complete_multipart_upload(Bucket="multipart", Key="bad.bin", UploadId=second, MultipartUpload={
            "Parts": [*manifest, {"PartNumber": 10_001, "ETag": small}]})
    assert over.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    s3.abort_multipart_upload(Bucket="multipart", Key="bad.bin", UploadId=second)
    with pytest.raises(ClientError) as gone:
        s3.list_parts(Bucket="multipart", Key="bad.bin", UploadId=second)
    assert code_of(gone.value) == "NoSuchUpload"


@pytest.mark.reliability(kind="attack", cases=7, what="S3 keys carry their token's scope: a read key writing, a "
                         "dataset-limited key on another bucket, a revoked token's key")
def test_keys_do_what_their_token_may(endpoint: Endpoint, request: pytest.FixtureRequest) -> None:
    admin = endpoint.client()
    for bucket in ("scoped-cars", "scoped-boats"):
        admin.create_bucket(Bucket=bucket)
        admin.put_object(Bucket=bucket, Key="a.txt", Body=bucket.encode())
    reader = endpoint.client(endpoint.keys("s3-reader", "--read", "--datasets", "scoped-cars"))
    assert reader.get_object(Bucket="scoped-cars", Key="a.txt")["Body"].read() == b"scoped-cars"
    assert [b["Name"] for b in reader.list_buckets()["Buckets"]] == ["scoped-cars"]
    refused = []
    for call in (lambda: reader.put_object(Bucket="scoped-cars", Key="b.txt", Body=b"x"),
                 lambda: reader.delete_object(Bucket="scoped-cars", Key="a.txt"),
                 lambda: reader.get_object(Bucket="scoped-boats", Key="a.txt"),
                 lambda: reader.create_bucket(Bucket="scoped-new"),
                 lambda: reader.list_objects_v2(Bucket="scoped-boats")):
        with pytest.raises(ClientError) as denied:
            call()
        refused.append(code_of(denied.value))
    assert refused == ["AccessDenied"] * 5, refused
    assert admin.get_object(Bucket="scoped-cars", Key="a.txt")["Body"].read() == b"scoped-cars"
    # Revoked: the key is refused on every request from then on (within the token check's second), its
    # presigned URLs too, although the server remembers their signatures.
    short = endpoint.keys("s3-short", "--read")
    assert endpoint.client(short).list_buckets()["Buckets"]
    url = endpoint.client(short).generate_presigned_url("get_object", Params={"Bucket": "scoped-cars",
                                                                             "Key": "a.txt"})
    assert httpx.get(url).status_code == 200 and httpx.get(url).status_code == 200
    cli(endpoint.server, "token", "revoke", "s3-short")
    time.sleep(1.2)
    with pytest.raises(ClientError) as revoked:
        endpoint.client(short).list_buckets()
    assert code_of(revoked.value) == "InvalidAccessKeyId"
    assert httpx.get(url).status_code == 403
    request.node.user_properties.append(("reliability_result", (
        "a read key limited to one bucket: 5 x AccessDenied (put, delete, other bucket's get and list, create); "
        "a revoked token's key: InvalidAccessKeyId")))


def signed(endpoint: Endpoint, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None,
           when: datetime | None = None) -> AWSRequest:
    """A request signed by botocore's own signer, as a client would send it (then the test alters it)."""
    request = AWSRequest(method=method, url=endpoint.server.s3_url + path, data=body, headers=dict(headers or {}))
    request.headers["x-amz-content-sha256"] = hashlib.sha256(body).hexdigest()
    signer = S3SigV4Auth(Credentials(endpoint.admin.access, endpoint.admin.secret), "s3", "us-east-1")
    if when is None:
        signer.add_auth(request)
    else:  # a request signed at ``when``: botocore reads the clock through get_current_datetime
        with mock.patch("botocore.auth.get_current_datetime", return_value=when):
            signer.add_auth(request)
    return request


def send(request: AWSRequest, **changes: Any) -> httpx.Response:
    changed = changes.pop("headers", {})
    headers = {k: v for k, v in request.headers.items() if k.lower() not in changed}
    headers.update(changed)
    body = changes.pop("body", request.body)
    return httpx.request(request.method, changes.pop("url", request.url), headers=headers, content=body or b"",
                         timeout=30)


def s3_code(answer: httpx.Response) -> str:
    assert answer.headers.get("content-type", "").startswith("application/xml"), answer.text
    start = answer.text.index("<Code>") + len("<Code>")
    return answer.text[start:answer.text.index("</Code>")]


@pytest.mark.reliability(kind="attack", cases=9, what="S3 requests tampered after signing (a signed header, the "
                         "path, the query, the payload hash, the body), replayed past the 15-minute window, "
                         "presigned URLs expired or dated in the future")
def test_tampered_and_replayed_requests_are_refused(endpoint: Endpoint, request: pytest.FixtureRequest) -> None:
    s3 = endpoint.client()
    s3.create_bucket(Bucket="tamper")
    s3.put_object(Bucket="tamper", Key="a.txt", Body=b"original")
    good = signed(endpoint, "PUT", "/tamper/b.txt", b"payload", {"content-type": "text/plain"})
    assert send(good).status_code == 200
    answers = {
        "a signed header changed": send(good, headers={"content-type": "text/html"}),
        "the path changed": send(good, url=endpoint.server.s3_url + "/tamper/c.txt"),
        "the query changed": send(signed(endpoint, "GET", "/tamper?prefix=a"),
                                  url=endpoint.server.s3_url + "/tamper?prefix=b"),
        "the body changed, its hash kept": send(good, body=b"PAYLOAD"),
        "a wrong secret": send(good, headers={"authorization": good.headers["Authorization"][:-4] + "0000"}),
        "two Authorization headers": httpx.request("PUT", good.url, content=b"payload", headers=[
            *good.headers.items(), ("Authorization", good.headers["Authorization"][:-4] + "0000")]),
    }
    codes = {what: (answer.status_code, s3_code(answer) if answer.status_code != 200 else "")
             for what, answer in answers.items()}
    assert codes == {
        "a signed header changed": (403, "SignatureDoesNotMatch"),
        "the path changed": (403, "SignatureDoesNotMatch"),
        "the query changed": (403, "SignatureDoesNotMatch"),
        "the body changed, its hash kept": (400, "XAmzContentSHA256Mismatch"),
        "a wrong secret": (403, "SignatureDoesNotMatch"),
        "two Authorization headers": (403, "AccessDenied"),
    }, codes
    assert s3.list_objects_v2(Bucket="tamper", Prefix="c")["KeyCount"] == 0
    assert s3.get_object(Bucket="tamper", Key="b.txt")["Body"].read() == b"payload"  # the first, untampered PUT
    old = signed(endpoint, "GET", "/tamper/a.txt", when=datetime.now(UTC) - timedelta(minutes=20))
    assert (send(old).status_code, s3_code(send(old))) == (403, "RequestTimeTooSkewed")
    presign = endpoint.client().generate_presigned_url
    expired = presign("get_object", Params={"Bucket": "tamper", "Key": "a.txt"}, ExpiresIn=2)
    assert httpx.get(expired).content == b"original"  # its signature is now remembered: its expiry still counts
    assert httpx.get(expired.replace("X-Amz-Signature=", "X-Amz-Signature=0")).status_code == 403
    time.sleep(2.1)
    answer = httpx.get(expired)
    assert answer.status_code == 403 and "expired" in answer.text
    longer = presign("get_object", Params={"Bucket": "tamper", "Key": "a.txt"}, ExpiresIn=8 * 24 * 3600)
    assert httpx.get(longer).status_code == 403
    request.node.user_properties.append(("reliability_result", (
        "a changed header, path, query or secret: 403 SignatureDoesNotMatch; a changed body: 400 "
        "XAmzContentSHA256Mismatch and nothing stored; 20 minutes old: RequestTimeTooSkewed; a presigned URL "
        "past its expiry or asking for more than 7 days: 403")))


@pytest.mark.reliability(kind="attack", cases=8, what="S3 bucket and key names that are not valid or try "
                         "traversal (`..`, `%2F`, NUL, control characters); ListObjects with max-keys=0 and 100000")
def test_bad_names_and_listing_bounds(endpoint: Endpoint, request: pytest.FixtureRequest) -> None:
    s3 = endpoint.client()
    s3.create_bucket(Bucket="names")
    s3.put_object(Bucket="names", Key="ok.txt", Body=b"ok")
    data = endpoint.server.home / "data"
    before = sorted(p.relative_to(data).as_posix() for p in data.rglob("*"))
    statuses = {}
    for path in ("/names/../../etc/passwd", "/names/%2E%2E/%2E%2E/x", "/names/a%00b", "/names/a%0Ab",
                 "/names/%2Fabs", "/names/a//b", "/NAMES/x", "/na/x"):
        answer = send(signed(endpoint, "PUT", path, b"x"))
        statuses[path] = answer.status_code
        assert answer.status_code in (400, 403, 404), (path, answer.status_code, answer.text)
    after = sorted(p.relative_to(data).as_posix() for p in data.rglob("*"))
    assert [p for p in after if p not in before and "sha256" not in p and ".staging" not in p] == []
    assert [c["Key"] for c in s3.list_objects_v2(Bucket="names")["Contents"]] == ["ok.txt"]
    for bucket in ("ab", "UPPER", "a" * 64, "bad_name", "192.168.1.1"):
        with pytest.raises(ClientError) as invalid:
            s3.create_bucket(Bucket=bucket)
        assert code_of(invalid.value) == "InvalidBucketName", bucket
    none = s3.list_objects_v2(Bucket="names", MaxKeys=0)
    assert none["KeyCount"] == 0 and "Contents" not in none
    many = s3.list_objects_v2(Bucket="names", MaxKeys=100000)
    assert many["MaxKeys"] == 1000 and [c["Key"] for c in many["Contents"]] == ["ok.txt"]
    request.node.user_properties.append(("reliability_result", (
        f"traversal and control-character keys: {sorted(set(statuses.values()))}, nothing written outside the "
        "content store; 5 invalid bucket names: InvalidBucketName; max-keys=0: no key; max-keys=100000: capped "
        "at 1000")))


MiB = 1024 * 1024


def _files_of(endpoint: Endpoint, upload: str) -> list[str]:
    return sorted(p.name for p in (endpoint.server.home / "data").rglob(f".multipart/{upload}/*"))


def test_parts_are_written_in_place_and_the_file_becomes_the_object(endpoint: Endpoint) -> None:
    """Parts of one size land in one file at their offsets, whatever order they come in, and completing links
    that file as the object; a part that does not fit there (sent again, larger than the stride, a stride broken
    by a smaller part in the middle) is a file of its own, and the upload is then put together by copying: the
    object is the bytes of the parts named, every way."""
    s3 = endpoint.client()
    s3.create_bucket(Bucket="inplace")

    def upload(key: str, sends: list[tuple[int, bytes]]) -> tuple[str, list[str], dict[int, str]]:
        made = s3.create_multipart_upload(Bucket="inplace", Key=key)["UploadId"]
        etags = {n: s3.upload_part(Bucket="inplace", Key=key, UploadId=made, PartNumber=n, Body=body)["ETag"]
                 for n, body in sends}  # the last send of a number counts, as in S3
        return made, _files_of(endpoint, made), etags

    def complete(key: str, made: str, etags: dict[int, str]) -> None:
        s3.complete_multipart_upload(Bucket="inplace", Key=key, UploadId=made, MultipartUpload={
            "Parts": [{"PartNumber": n, "ETag": etags[n]} for n in sorted(etags)]})
        assert _files_of(endpoint, made) == []

    a, b, c = os.urandom(5 * MiB), os.urandom(5 * MiB), os.urandom(MiB)
    made, files, etags = upload("ordered.bin", [(2, b), (3, c), (1, a)])  # out of order, as 10 threads send
    assert files == ["data"]
    data = next((endpoint.server.home / "data").rglob(f".multipart/{made}/data"))
    assert data.stat().st_size == 11 * MiB
    complete("ordered.bin", made, etags)
    assert s3.get_object(Bucket="inplace", Key="ordered.bin")["Body"].read() == a + b + c
    with endpoint.server.client() as api:
        dataset = next(d for d in api.get("/datasets").json()["datasets"] if d["name"] == "inplace")
        item = next(i for i in api.get(f"/datasets/{dataset['id']}/items").json()["items"]
                    if i["name"] == "ordered.bin")
    assert item["sha256"] == hashlib.sha256(a + b + c).hexdigest() and item["size"] == 11 * MiB
    content = next((endpoint.server.home / "data").rglob(f"sha256/*/*/{item['sha256']}"))
    assert content.stat().st_nlink == 1  # the parts' file name is gone; the object keeps the bytes

    again = os.urandom(5 * MiB)
    made, files, etags = upload("resent.bin", [(1, a), (2, b), (1, again)])
    assert files[0].startswith("1-") and files[1:] == ["data"]  # the resent part: a file of its own
    complete("resent.bin", made, etags)
    assert s3.get_object(Bucket="inplace", Key="resent.bin")["Body"].read() == again + b

    bigger = os.urandom(6 * MiB)
    made, files, etags = upload("bigger.bin", [(1, a), (2, bigger), (3, c)])
    assert len(files) == 2 and "data" in files  # the 6 MiB part does not fit a 5 MiB stride
    complete("bigger.bin", made, etags)
    assert s3.get_object(Bucket="inplace", Key="bigger.bin")["Body"].read() == a + bigger + c

    made, files, etags = upload("uneven.bin", [(1, bigger), (2, a), (3, bigger)])  # in place, not back to back
    assert files == ["data"]
    complete("uneven.bin", made, etags)
    assert s3.get_object(Bucket="inplace", Key="uneven.bin")["Body"].read() == bigger + a + bigger

    made, files, _ = upload("aborted.bin", [(1, a), (2, c)])
    assert files == ["data"]
    s3.abort_multipart_upload(Bucket="inplace", Key="aborted.bin", UploadId=made)
    assert _files_of(endpoint, made) == []


@pytest.mark.reliability(kind="crash", cases=1, what="an S3 multipart upload killed midway (`kill -9` of the "
                         "server): no visible object; `cargohold gc` clears the parts")
def test_a_multipart_upload_killed_midway(tmp_path: Any, request: pytest.FixtureRequest) -> None:
    server = RunningServer(tmp_path / "home", {}).start()
    try:
        made = json.loads(cli(server, "token", "create", "--name", "k", "--admin", "--s3", "--json").stdout)
        endpoint = Endpoint(server, Keys(made["s3_access_key_id"], made["s3_secret_access_key"], made["token"]))
        s3 = endpoint.client()
        s3.create_bucket(Bucket="killed")
        upload = s3.create_multipart_upload(Bucket="killed", Key="half.bin")["UploadId"]
        s3.upload_part(Bucket="killed", Key="half.bin", UploadId=upload, PartNumber=1,
                       Body=os.urandom(5 * 1024 * 1024))
        assert server.process is not None
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait(timeout=30)
        server.start()
        s3 = endpoint.client()
        assert s3.list_objects_v2(Bucket="killed")["KeyCount"] == 0
        parts = list((server.home / "data").rglob(".multipart/*/*"))
        assert parts, "the part was kept while the upload was open"
        found = cli(server, "gc", "--older-than", "0s")
        assert "s3 multipart upload" in found.stdout, found.stdout
        cleared = cli(server, "gc", "--older-than", "0s", "--yes")
        assert "deleted" in cleared.stdout
        assert not list((server.home / "data").rglob(".multipart/*/*"))
        with pytest.raises(ClientError) as gone:
            s3.list_parts(Bucket="killed", Key="half.bin", UploadId=upload)
        assert code_of(gone.value) == "NoSuchUpload"
    finally:
        server.stop()
    request.node.user_properties.append(("reliability_result", (
        "kill -9 with one 5 MiB part written: no object listed after the restart; gc found the upload and "
        "cleared its part; the upload then answers NoSuchUpload")))


def test_folder_markers_are_empty_folders_and_bytes_under_them_objects(endpoint: Endpoint) -> None:
    s3 = endpoint.client()
    s3.create_bucket(Bucket="markers")
    s3.put_object(Bucket="markers", Key="empty/", Body=b"")  # what consoles, rclone and PyArrow write
    s3.put_object(Bucket="markers", Key="full/a.txt", Body=b"a")
    s3.put_object(Bucket="markers", Key="full/", Body=b"")
    root = s3.list_objects_v2(Bucket="markers", Delimiter="/")
    assert [p["Prefix"] for p in root["CommonPrefixes"]] == ["empty/", "full/"] and "Contents" not in root
    inside = s3.list_objects_v2(Bucket="markers", Prefix="empty/", Delimiter="/")
    assert [(c["Key"], c["Size"]) for c in inside["Contents"]] == [("empty/", 0)]
    assert [c["Key"] for c in s3.list_objects_v2(Bucket="markers")["Contents"]] == ["empty/", "full/", "full/a.txt"]
    assert s3.head_object(Bucket="markers", Key="empty/")["ContentLength"] == 0
    assert s3.get_object(Bucket="markers", Key="empty/")["Body"].read() == b""
    with endpoint.server.client() as api:  # not items: the API lists and counts only the file
        dataset = next(d for d in api.get("/datasets").json()["datasets"] if d["name"] == "markers")
        assert dataset["item_count"] == 1
        assert [i["name"] for i in api.get(f"/datasets/{dataset['id']}/items").json()["items"]] == ["full/a.txt"]
    s3.delete_object(Bucket="markers", Key="empty/")
    assert [p["Prefix"] for p in s3.list_objects_v2(Bucket="markers", Delimiter="/")["CommonPrefixes"]] == ["full/"]
    # Bytes under a key ending in '/' are an object, as in S3 (an item of that name); an empty put over it
    # makes it an empty folder again.
    s3.put_object(Bucket="markers", Key="full/", Body=b"bytes")
    assert s3.get_object(Bucket="markers", Key="full/")["Body"].read() == b"bytes"
    inside = s3.list_objects_v2(Bucket="markers", Prefix="full/", Delimiter="/")
    assert [(c["Key"], c["Size"]) for c in inside["Contents"]] == [("full/", 5), ("full/a.txt", 1)]
    with endpoint.server.client() as api:
        assert dataset["id"] in [d["id"] for d in api.get("/datasets").json()["datasets"]]
        names = [i["name"] for i in api.get(f"/datasets/{dataset['id']}/items").json()["items"]]
        assert sorted(names) == ["full/", "full/a.txt"]
    s3.put_object(Bucket="markers", Key="full/", Body=b"")
    assert s3.head_object(Bucket="markers", Key="full/")["ContentLength"] == 0
    with endpoint.server.client() as api:
        assert [i["name"] for i in api.get(f"/datasets/{dataset['id']}/items").json()["items"]] == ["full/a.txt"]


def test_metadata_is_kept_and_writes_honour_their_conditions(endpoint: Endpoint) -> None:
    s3 = endpoint.client()
    s3.create_bucket(Bucket="meta")
    s3.put_object(Bucket="meta", Key="a.csv", Body=b"x,y\n", ContentType="text/csv", CacheControl="max-age=60",
                  Metadata={"mtime": "1700000000", "label": "cars"})
    head = s3.head_object(Bucket="meta", Key="a.csv")
    assert head["ContentType"] == "text/csv" and head["CacheControl"] == "max-age=60"
    assert head["Metadata"] == {"mtime": "1700000000", "label": "cars"}
    s3.copy_object(Bucket="meta", Key="b.csv", CopySource={"Bucket": "meta", "Key": "a.csv"})
    assert s3.head_object(Bucket="meta", Key="b.csv")["Metadata"]["label"] == "cars"  # COPY: the source's
    s3.copy_object(Bucket="meta", Key="a.csv", CopySource={"Bucket": "meta", "Key": "a.csv"},
                   MetadataDirective="REPLACE", Metadata={"mtime": "1800000000"}, ContentType="text/plain")
    replaced = s3.head_object(Bucket="meta", Key="a.csv")
    assert replaced["Metadata"] == {"mtime": "1800000000"} and replaced["ContentType"] == "text/plain"
    with pytest.raises(ClientError) as itself:
        s3.copy_object(Bucket="meta", Key="a.csv", CopySource={"Bucket": "meta", "Key": "a.csv"})
    assert code_of(itself.value) == "InvalidRequest"
    # Conditional writes: If-None-Match: * writes only what is not there; If-Match only over that version.
    with pytest.raises(ClientError) as exists:
        s3.put_object(Bucket="meta", Key="a.csv", Body=b"other", IfNoneMatch="*")
    assert code_of(exists.value) == "PreconditionFailed"
    s3.put_object(Bucket="meta", Key="new.csv", Body=b"new", IfNoneMatch="*")
    with pytest.raises(ClientError) as stale:
        s3.put_object(Bucket="meta", Key="a.csv", Body=b"other", IfMatch='"' + "0" * 32 + '"')
    assert code_of(stale.value) == "PreconditionFailed"
    etag = s3.head_object(Bucket="meta", Key="a.csv")["ETag"]
    s3.put_object(Bucket="meta", Key="a.csv", Body=b"other", IfMatch=etag)
    assert s3.get_object(Bucket="meta", Key="a.csv")["Body"].read() == b"other"
    with pytest.raises(ClientError) as copy_condition:
        s3.copy_object(Bucket="meta", Key="c.csv", CopySource={"Bucket": "meta", "Key": "a.csv"},
                       CopySourceIfMatch='"' + "0" * 32 + '"')
    assert code_of(copy_condition.value) == "PreconditionFailed"


def test_checksums_parts_and_attributes_are_kept(endpoint: Endpoint) -> None:
    """What S3 keeps beside an object's bytes: the checksum its client asked for (a PutObject's, a multipart
    upload's COMPOSITE or FULL_OBJECT one), its parts (GetObject by partNumber, GetObjectAttributes), and a
    completed upload's answer (a repeated CompleteMultipartUpload gets it again)."""
    s3 = endpoint.client()
    s3.create_bucket(Bucket="checksums")
    one = s3.put_object(Bucket="checksums", Key="one.bin", Body=b"x" * 1000, ChecksumAlgorithm="SHA1")
    head = s3.head_object(Bucket="checksums", Key="one.bin", ChecksumMode="ENABLED")
    assert head["ChecksumSHA1"] == one["ChecksumSHA1"] and head["ChecksumType"] == "FULL_OBJECT"
    parts = [os.urandom(5 * 1024 * 1024), os.urandom(3000)]
    for algorithm, kind in (("SHA256", "COMPOSITE"), ("CRC32", "FULL_OBJECT")):
        key = f"{algorithm}.bin"
        created = s3.create_multipart_upload(Bucket="checksums", Key=key, ChecksumAlgorithm=algorithm,
                                             ChecksumType=kind)
        assert (created["ChecksumAlgorithm"], created["ChecksumType"]) == (algorithm, kind)
        upload = created["UploadId"]
        sent = [s3.upload_part(Bucket="checksums", Key=key, UploadId=upload, PartNumber=n + 1, Body=part,
                               ChecksumAlgorithm=algorithm) for n, part in enumerate(parts)]
        field = f"Checksum{algorithm}"
        manifest = {"Parts": [{"PartNumber": n + 1, "ETag": r["ETag"], field: r[field]} for n, r in enumerate(sent)]}
        done = s3.complete_multipart_upload(Bucket="checksums", Key=key, UploadId=upload, MultipartUpload=manifest)
        again = s3.complete_multipart_upload(Bucket="checksums", Key=key, UploadId=upload, MultipartUpload=manifest)
        assert (again["ETag"], again[f"Checksum{algorithm}"]) == (done["ETag"], done[f"Checksum{algorithm}"])
        assert done["ChecksumType"] == kind
        whole = s3.head_object(Bucket="checksums", Key=key, ChecksumMode="ENABLED")
        assert whole[f"Checksum{algorithm}"] == done[f"Checksum{algorithm}"]
        assert whole[f"Checksum{algorithm}"].endswith("-2") == (kind == "COMPOSITE")
        second = s3.get_object(Bucket="checksums", Key=key, PartNumber=2, ChecksumMode="ENABLED")
        assert second["Body"].read() == parts[1] and second["PartsCount"] == 2
        assert second[f"Checksum{algorithm}"] == sent[1][f"Checksum{algorithm}"]
        attributes = s3.get_object_attributes(Bucket="checksums", Key=key, MaxParts=1, PartNumberMarker=1,
                                              ObjectAttributes=["ETag", "Checksum", "ObjectParts", "ObjectSize"])
        assert attributes["ObjectSize"] == sum(map(len, parts)) and attributes["ETag"] == done["ETag"].strip('"')
        assert attributes["ObjectParts"]["TotalPartsCount"] == 2
        assert [p["Size"] for p in attributes["ObjectParts"]["Parts"]] == [len(parts[1])]
        with pytest.raises(ClientError) as beyond:
            s3.get_object(Bucket="checksums", Key=key, PartNumber=3)
        assert code_of(beyond.value) == "InvalidPart"
    # A wrong whole-object checksum on completion: BadDigest, and no object.
    upload = s3.create_multipart_upload(Bucket="checksums", Key="bad.bin", ChecksumAlgorithm="SHA256")["UploadId"]
    sent_one = s3.upload_part(Bucket="checksums", Key="bad.bin", UploadId=upload, PartNumber=1, Body=b"tiny",
                              ChecksumAlgorithm="SHA256")
    with pytest.raises(ClientError) as digest:
        s3.complete_multipart_upload(Bucket="checksums", Key="bad.bin", UploadId=upload, ChecksumSHA256="bad",
                                     MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": sent_one["ETag"]}]})
    assert code_of(digest.value) == "BadDigest"
    assert s3.list_objects_v2(Bucket="checksums", Prefix="bad")["KeyCount"] == 0
    # UploadPartCopy ranges: not of the form bytes=first-last, or past the source's end.
    for wrong, code in (("0-2", "InvalidArgument"), ("bytes=0-", "InvalidArgument"), ("bytes=0-5000", "InvalidRange")):
        with pytest.raises(ClientError) as refused:
            s3.upload_part_copy(Bucket="checksums", Key="bad.bin", UploadId=upload, PartNumber=2,
                                CopySource={"Bucket": "checksums", "Key": "one.bin"}, CopySourceRange=wrong)
        assert code_of(refused.value) == code, wrong
