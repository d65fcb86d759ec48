"""Endpoints of own storage and of connections: a strange one is refused with its key and the fix, before
an object-store library sees it (obstore panicked on `<img ...>`, answering 500 on every read)."""

from __future__ import annotations

import pytest

from cargohold.errors import ConfigError, FieldProblem
from cargohold.storage.connection import Connection
from cargohold.storage.connections import make_connection


@pytest.mark.parametrize(("endpoint", "url"), [
    ("s3.amazonaws.com", "https://s3.amazonaws.com"),
    ("http://127.0.0.1:9000", "http://127.0.0.1:9000"),
    ("10.0.0.5:9000", "http://10.0.0.5:9000"),
    ("http://127.0.0.1:10000/devstoreaccount1", "http://127.0.0.1:10000/devstoreaccount1"),
    ("https://[::1]:9000", "https://[::1]:9000"),
    ("minio.internal.example", "https://minio.internal.example"),
])
def test_plain_endpoints_become_urls(endpoint: str, url: str) -> None:
    assert Connection("minio", endpoint=endpoint).endpoint_url() == url


@pytest.mark.parametrize("endpoint", [
    "http://<img src=x onerror=alert(1)>", "<img src=x>", "http://host name", "http://host\r\nX: y",
    "http://host/?q=1", "http://host/#top", "http://user:pass@host", "http://ho\"st", "http://host/`x`",
    "http://exa_mple{}.com", "http://\u202ehost",
])
def test_strange_endpoints_are_refused_with_the_key_and_the_fix(endpoint: str) -> None:
    with pytest.raises(ConfigError) as refused:
        Connection("minio", endpoint=endpoint, setting_prefix="STORAGE_").endpoint_url()
    assert refused.value.key == "STORAGE_ENDPOINT" and "http://host:port" in refused.value.fix


@pytest.mark.reliability(kind="attack", cases=1, what="an admin connection whose endpoint holds `<img ...>`: "
                         "refused as a field problem of `endpoint` (400 from the API) before obstore sees it")
def test_a_connection_with_a_strange_endpoint_names_the_field() -> None:
    fields = {"provider": "minio", "endpoint": "http://<img src=x>", "access_key": "k", "secret_key": "s",
              "buckets": ["b"]}
    with pytest.raises(FieldProblem) as refused:
        make_connection("strange", fields, "api")
    assert refused.value.field == "endpoint"
