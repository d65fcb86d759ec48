"""S3 request bodies (s3/body.py) against AWS's own worked example of a signed ``aws-chunked`` upload
(the "Example: PUT Object" of "Signature Calculations for the Authorization Header: Transferring Payload in
Multiple Chunks", S3 API reference: its key, date, seed and chunk signatures), and tampered bodies: a chunk,
a chunk's signature, the trailer's checksum, the framing."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import zlib
from collections.abc import AsyncIterator

import pytest
from botocore.awsrequest import AWSRequest

from cargohold.errors import BadDigest, BadInput, ContentSha256Mismatch, SignatureMismatch
from cargohold.s3.auth import Verified, _Signed
from cargohold.s3.body import BodyReader

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SEED = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
CHUNKS = [(b"a" * 65536, "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648"),
          (b"a" * 1024, "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497"),
          (b"", "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9")]


def verified(payload: str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD") -> Verified:
    request = AWSRequest(method="PUT", url="http://s3.amazonaws.com/examplebucket/chunkObject.txt")
    request.context["timestamp"] = "20130524T000000Z"
    return Verified(None, payload, SEED, _Signed(False, SECRET, "us-east-1"), request)  # type: ignore[arg-type]


def framed(chunks: list[tuple[bytes, str]]) -> bytes:
    return b"".join(f"{len(data):x};chunk-signature={sig}\r\n".encode() + data + (b"\r\n" if data else b"")
                    for data, sig in chunks) + b"\r\n"


async def pieces(body: bytes, size: int = 7000) -> AsyncIterator[bytes]:
    for at in range(0, len(body), size):  # split anywhere: the framing must not care where
        yield body[at:at + size]


def read(body: bytes, headers: dict[str, str], payload: str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD") -> bytes:
    reader = BodyReader(pieces(body), verified(payload), headers)

    async def run() -> bytes:
        return b"".join([chunk async for chunk in reader.chunks()])

    return asyncio.run(run())


def test_awss_worked_example_of_a_signed_chunked_upload_is_read() -> None:
    assert read(framed(CHUNKS), {"x-amz-decoded-content-length": "66560"}) == b"a" * 66560


@pytest.mark.reliability(kind="attack", cases=5, what="S3 aws-chunked bodies tampered: a chunk's bytes, a chunk's "
                         "signature, a chunk dropped, the trailer's checksum, the framing")
def test_a_tampered_chunked_body_is_refused(request: pytest.FixtureRequest) -> None:
    (first, s1), second, last = CHUNKS
    cases = {
        "a chunk's bytes": ([(b"b" + first[1:], s1), second, last], SignatureMismatch),
        "a chunk's signature": ([(first, "0" * 64), second, last], SignatureMismatch),
        "a chunk dropped": ([second, last], SignatureMismatch),
    }
    for what, (chunks, error) in cases.items():
        with pytest.raises(error):
            read(framed(chunks), {})
        assert what
    with pytest.raises(BadInput):
        read(b"zz;chunk-signature=x\r\n", {})  # not a hex size
    # The unsigned form with a CRC32 trailer (boto3's default over HTTPS): the trailer is checked.
    data = b"trailer checked"
    crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    body = f"{len(data):x}\r\n".encode() + data + b"\r\n0\r\n" + f"x-amz-checksum-crc32:{crc}\r\n\r\n".encode()
    headers = {"x-amz-trailer": "x-amz-checksum-crc32", "x-amz-decoded-content-length": str(len(data))}
    assert read(body, headers, "STREAMING-UNSIGNED-PAYLOAD-TRAILER") == data
    with pytest.raises(BadDigest):
        read(body.replace(crc.encode(), b"AAAAAA=="), headers, "STREAMING-UNSIGNED-PAYLOAD-TRAILER")
    request.node.user_properties.append(("reliability_result", (
        "AWS's worked example read back; a changed chunk, signature or a dropped chunk: SignatureDoesNotMatch; "
        "a wrong CRC32 trailer: BadDigest; a bad chunk header: InvalidArgument")))


def test_a_plain_body_is_checked_against_its_hash_and_content_md5() -> None:
    data = b"plain body"
    sha = hashlib.sha256(data).hexdigest()
    assert read(data, {}, sha) == data
    with pytest.raises(ContentSha256Mismatch):
        read(data + b"!", {}, sha)
    md5 = base64.b64encode(hashlib.md5(data).digest()).decode()
    assert read(data, {"content-md5": md5}, "UNSIGNED-PAYLOAD") == data
    with pytest.raises(BadDigest):
        read(data, {"content-md5": base64.b64encode(b"\0" * 16).decode()}, "UNSIGNED-PAYLOAD")
