"""``STORAGE_IAM_ROLE`` end to end: keys from an instance metadata service (IMDSv2) sign the S3 requests.

The metadata service is the tests' own (``FakeImds``). moto checks no signatures, so a recording
proxy in front of it (``RecordingProxy``) shows which key id signed each request and which
session token it carried.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from cargohold.errors import BackendUnavailable, Forbidden
from cargohold.storage import Connection
from cargohold.storage.imds import ImdsCredentials
from cargohold.storage.s3 import open_s3

from ..support.fake_services import (
    CREDENTIALS_PATH,
    TOKEN_HEADER,
    TOKEN_PATH,
    TOKEN_TTL_HEADER,
    FakeImds,
    RecordingProxy,
)
from ..support.servers import Server, free_port

ROLE = "cargohold-test"


@pytest.fixture
def imds() -> Iterator[FakeImds]:
    with FakeImds(ROLE) as server:
        yield server


@pytest.fixture
def proxy(moto_server: Server) -> Iterator[RecordingProxy]:
    with RecordingProxy(moto_server.url) as server:
        yield server


def role_connection(proxy: RecordingProxy, metadata_endpoint: str, role: str = ROLE) -> Connection:
    return Connection("minio", endpoint=proxy.url, iam_role=role, metadata_endpoint=metadata_endpoint)


async def make_bucket(moto_server: Server, bucket: str) -> None:
    """Straight to moto with static keys, so a test sees only its own requests on the proxy."""
    await open_s3(Connection("minio", endpoint=moto_server.url, access_key="testing", secret_key="testing"),
                  bucket).ensure_bucket()


async def test_role_keys_sign_every_request(
    moto_server: Server, proxy: RecordingProxy, imds: FakeImds, bucket_name: str
) -> None:
    store = open_s3(role_connection(proxy, imds.url), bucket_name)
    await store.ensure_bucket()  # list (no bucket), create it with boto3, list again
    await store.put("role/hello.txt", b"hello from a role")
    assert await (await store.get("role/hello.txt")).read() == b"hello from a role"

    # One IMDSv2 handshake and one fetch: the keys are cached, not fetched per request.
    assert imds.token_requests == 1
    assert [keys.access_key_id for keys in imds.issued] == ["ASIATEST0001"]
    assert imds.refused == []  # every metadata GET carried the session token
    keys = imds.issued[0]

    seen = proxy.requests
    assert {("PUT", f"/{bucket_name}"), ("PUT", f"/{bucket_name}/role/hello.txt"),
            ("GET", f"/{bucket_name}/role/hello.txt")} <= {(s.method, s.path) for s in seen}
    assert [(s.method, s.path) for s in seen if (s.access_key_id, s.session_token) != (keys.access_key_id,
                                                                                         keys.token)] == []

    # The proxy forwarded for real: the object is in moto.
    direct = open_s3(Connection("minio", endpoint=moto_server.url, access_key="testing", secret_key="testing"),
                     bucket_name)
    assert await (await direct.get("role/hello.txt")).read() == b"hello from a role"


async def test_keys_are_fetched_again_a_margin_before_they_expire(
    moto_server: Server, proxy: RecordingProxy, imds: FakeImds, bucket_name: str
) -> None:
    await make_bucket(moto_server, bucket_name)
    margin = timedelta(seconds=2)
    imds.lifetime = timedelta(seconds=4)  # served in whole seconds: expires 3 to 4 s after issue
    credentials = ImdsCredentials(ROLE, imds.url, refresh_margin=margin)
    store = open_s3(role_connection(proxy, imds.url), bucket_name, credentials=credentials)

    await store.put("k", b"one")
    await asyncio.sleep(0.2)  # past obstore's own 100 ms re-ask backoff: it asks the provider again
    await store.put("k", b"one again")
    assert [keys.access_key_id for keys in imds.issued] == ["ASIATEST0001"]  # still fresh: cached
    first = imds.issued[0]
    before = len(proxy.requests)
    assert before >= 2
    assert {(s.access_key_id, s.session_token) for s in proxy.requests} == {(first.access_key_id, first.token)}

    wait = (first.expiration - margin - datetime.now(UTC)).total_seconds()
    assert wait > 0, "the first requests took longer than the keys' fresh time; the test cannot tell"
    await asyncio.sleep(wait + 0.1)
    await store.put("k", b"two")
    finished = datetime.now(UTC)

    assert [keys.access_key_id for keys in imds.issued] == ["ASIATEST0001", "ASIATEST0002"]
    assert imds.token_requests == 2
    assert credentials.fetches == 2
    assert finished < first.expiration  # refreshed inside the margin, not after the old keys lapsed
    second = imds.issued[1]
    later = proxy.requests[before:]
    assert later
    assert {(s.access_key_id, s.session_token) for s in later} == {(second.access_key_id, second.token)}
    assert await (await store.get("k")).read() == b"two"
    assert proxy.requests[-1].access_key_id == "ASIATEST0002"


async def test_unknown_role_is_forbidden(proxy: RecordingProxy, imds: FakeImds, bucket_name: str) -> None:
    with pytest.raises(Forbidden, match="no-such-role"):
        await ImdsCredentials("no-such-role", imds.url)()

    store = open_s3(role_connection(proxy, imds.url, role="no-such-role"), bucket_name)
    with pytest.raises(Forbidden, match="no-such-role"):
        await store.ensure_bucket()

    assert imds.issued == []
    assert ("GET", CREDENTIALS_PATH + "no-such-role", 404) in imds.refused
    assert proxy.requests == []  # nothing went to S3 unsigned or half-signed


async def test_unreachable_metadata_service_is_backend_unavailable() -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(BackendUnavailable, match="did not answer"):
        await ImdsCredentials(ROLE, closed)()


async def test_unreachable_metadata_service_through_the_store(proxy: RecordingProxy, bucket_name: str) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    store = open_s3(role_connection(proxy, closed), bucket_name)
    try:
        with pytest.raises(BackendUnavailable, match="did not answer"):
            await store.ensure_bucket()
    finally:
        assert proxy.requests == []


def test_fake_imds_speaks_only_imdsv2(imds: FakeImds) -> None:
    with httpx.Client(base_url=imds.url) as client:
        # IMDSv1 style (no session token), or a token it never gave: refused.
        assert client.get(CREDENTIALS_PATH).status_code == 401
        assert client.get(CREDENTIALS_PATH + ROLE).status_code == 401
        assert client.get(CREDENTIALS_PATH + ROLE, headers={TOKEN_HEADER: "made-up"}).status_code == 401
        # A token needs a lifetime.
        assert client.put(TOKEN_PATH).status_code == 400
        assert imds.token_requests == 0

        token = client.put(TOKEN_PATH, headers={TOKEN_TTL_HEADER: "60"})
        assert token.status_code == 200
        session = {TOKEN_HEADER: token.text}
        listing = client.get(CREDENTIALS_PATH, headers=session)
        assert (listing.status_code, listing.text) == (200, ROLE)
        assert client.get(CREDENTIALS_PATH + "other-role", headers=session).status_code == 404
        keys = client.get(CREDENTIALS_PATH + ROLE, headers=session).json()
        again = client.get(CREDENTIALS_PATH + ROLE, headers=session).json()

    assert keys["Code"] == "Success"
    assert (keys["AccessKeyId"], again["AccessKeyId"]) == ("ASIATEST0001", "ASIATEST0002")
    assert keys["Token"] != again["Token"]
    expires = datetime.strptime(keys["Expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert timedelta(hours=5) < expires - datetime.now(UTC) <= timedelta(hours=6)
    assert [status for _, _, status in imds.refused] == [401, 401, 401, 400, 404]


async def test_a_links_connection_with_an_iam_role(
    moto_server: Server, proxy: RecordingProxy, imds: FakeImds, bucket_name: str, tmp_path: Path
) -> None:
    """remote_links.yml's ``iam_role`` works as own storage's: keys from the metadata service sign the reads."""
    from cargohold.storage.connections import ConnectionRegistry

    await make_bucket(moto_server, bucket_name)
    seed = open_s3(Connection("minio", endpoint=moto_server.url, access_key="testing", secret_key="testing"),
                   bucket_name)
    await seed.put("linked/a.txt", b"linked bytes")
    path = tmp_path / "remote_links.yml"
    path.write_text(f"cars:\n  provider: minio\n  endpoint: {proxy.url}\n  iam_role: {ROLE}\n"
                    f"  buckets: [{bucket_name}]\n")
    registry = await ConnectionRegistry(path, metadata_endpoint=imds.url).open()
    try:
        named, store = await registry.store_for("minio", bucket_name)
        assert named.name == "cars"
        assert await (await store.get("linked/a.txt")).read() == b"linked bytes"
    finally:
        await registry.close()
    keys = imds.issued[-1]
    reads = [s for s in proxy.requests if s.path.endswith("/linked/a.txt")]
    assert reads and all((s.access_key_id, s.session_token) == (keys.access_key_id, keys.token) for s in reads)
