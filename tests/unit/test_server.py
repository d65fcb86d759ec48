from __future__ import annotations

from pathlib import Path

from starlette.testclient import TestClient

from cargohold.http.app import create_app
from cargohold.settings import load_settings

from ..support.servers import free_port


def test_healthz_reports_provider_and_buckets(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path, environ={"STORAGE_BUCKET_PREFIX": "health"})
    with TestClient(create_app(settings)) as client:
        answer = client.get("/healthz")
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "ok" and body["provider"] == "http"
    assert [(b["name"], b["status"]) for b in body["buckets"]] == [("health-public", "ok"), ("health-private", "ok")]
    assert (tmp_path / "data" / "storage" / "health-public").is_dir(), "start-up creates missing buckets"


def test_healthz_is_503_with_the_reason_when_storage_is_down(tmp_path: Path) -> None:
    env = {"STORAGE_PROVIDER": "minio", "STORAGE_ENDPOINT": f"http://127.0.0.1:{free_port()}",
           "STORAGE_ACCESS_KEY": "k", "STORAGE_SECRET_KEY": "do-not-show-me"}
    settings = load_settings(home=tmp_path, environ=env)
    with TestClient(create_app(settings, ensure_buckets=False)) as client:
        answer = client.get("/healthz")
    assert answer.status_code == 503
    body = answer.json()
    assert body["status"] == "degraded" and body["provider"] == "minio"
    assert all(b["status"] == "backend_unavailable" and "error" in b for b in body["buckets"])
    assert "do-not-show-me" not in answer.text
