"""The ``cargohold`` command as a user runs it: a real process, a real instance home."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from ..support.servers import AZURITE_ACCOUNT, AZURITE_KEY, Server, free_port


def cargohold(home: Path, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STORAGE_", "CACHE_", "DATA_PATH", "SERVER_"))}
    env["CARGOHOLD_HOME"] = str(home)
    env["COLUMNS"] = "200"
    return subprocess.run([sys.executable, "-m", "cargohold", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def write_env(home: Path, **values: object) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / ".env").write_text("".join(f"{k}={v}\n" for k, v in values.items()))


def test_where_prints_the_home(tmp_path: Path) -> None:
    result = cargohold(tmp_path / "home", "where")
    assert result.returncode == 0
    assert result.stdout.strip() == str(tmp_path / "home")


def test_check_on_local_disk(tmp_path: Path) -> None:
    home = tmp_path / "home"
    result = cargohold(home, "check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("ok  ") == 8  # bucket, write, read, delete in each of the two buckets
    assert "storage check passed on http" in result.stdout
    for bucket in ("cargohold-public", "cargohold-private"):
        folder = home / "data" / "storage" / bucket
        assert folder.is_dir()
        assert list(folder.iterdir()) == [], "the probe must clean up after itself"


def test_check_against_moto(tmp_path: Path, moto_server: Server) -> None:
    write_env(tmp_path, STORAGE_PROVIDER="minio", STORAGE_ENDPOINT="127.0.0.1", STORAGE_PORT=moto_server.port,
              STORAGE_ACCESS_KEY="testing", STORAGE_SECRET_KEY="s3cr3t-value", STORAGE_BUCKET_PREFIX="cli-moto")
    result = cargohold(tmp_path, "check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "storage check passed on minio" in result.stdout
    assert "cli-moto-public" in result.stdout and "cli-moto-private" in result.stdout
    assert "s3cr3t-value" not in result.stdout + result.stderr


def test_check_against_azurite(tmp_path: Path, azurite_server: Server) -> None:
    write_env(tmp_path, STORAGE_PROVIDER="azure", STORAGE_ENDPOINT="127.0.0.1", STORAGE_PORT=azurite_server.port,
              STORAGE_ACCESS_KEY=AZURITE_ACCOUNT, STORAGE_SECRET_KEY=AZURITE_KEY, STORAGE_BUCKET_PREFIX="cli-azure")
    result = cargohold(tmp_path, "check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "storage check passed on azure" in result.stdout
    assert AZURITE_KEY not in result.stdout


def test_check_against_fake_gcs(tmp_path: Path, gcs_server: Server, gcs_credentials: Path) -> None:
    write_env(tmp_path, STORAGE_PROVIDER="google", STORAGE_ENDPOINT=gcs_server.url,
              STORAGE_CREDENTIALS_PATH=gcs_credentials, STORAGE_BUCKET_PREFIX="cli-gcs")
    result = cargohold(tmp_path, "check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "storage check passed on google" in result.stdout


def test_check_fails_on_a_wrong_azure_key(tmp_path: Path, azurite_server: Server) -> None:
    wrong = "A" * 86 + "=="  # well-formed base64, not the account's key: Azurite checks signatures
    write_env(tmp_path, STORAGE_PROVIDER="azure", STORAGE_ENDPOINT="127.0.0.1", STORAGE_PORT=azurite_server.port,
              STORAGE_ACCESS_KEY=AZURITE_ACCOUNT, STORAGE_SECRET_KEY=wrong, STORAGE_BUCKET_PREFIX="cli-wrongkey")
    result = cargohold(tmp_path, "check")
    assert result.returncode == 1
    assert "FAIL" in result.stdout and "Forbidden" in result.stdout
    assert "storage check failed" in result.stdout
    assert wrong not in result.stdout


def test_check_fails_when_the_store_is_down(tmp_path: Path) -> None:
    write_env(tmp_path, STORAGE_PROVIDER="minio", STORAGE_ENDPOINT="127.0.0.1", STORAGE_PORT=free_port(),
              STORAGE_ACCESS_KEY="k", STORAGE_SECRET_KEY="s")
    result = cargohold(tmp_path, "check")
    assert result.returncode == 1
    assert "BackendUnavailable" in result.stdout


def test_up_detached_status_restart_down(tmp_path: Path) -> None:
    port = free_port()
    write_env(tmp_path, SERVER_PORT=port, STORAGE_BUCKET_PREFIX="first")
    try:
        started = cargohold(tmp_path, "up", "-d")
        assert started.returncode == 0, started.stdout + started.stderr
        pid = int((tmp_path / "cargohold.pid").read_text())
        health = httpx.get(f"http://127.0.0.1:{port}/healthz").json()
        assert health["status"] == "ok" and health["provider"] == "http"
        assert [b["name"] for b in health["buckets"]] == ["first-public", "first-private"]

        status = cargohold(tmp_path, "status")
        assert status.returncode == 0 and f"pid {pid}" in status.stdout

        write_env(tmp_path, SERVER_PORT=port, STORAGE_BUCKET_PREFIX="second")
        restarted = cargohold(tmp_path, "up", "-d")
        assert restarted.returncode == 0 and "restarting" in restarted.stdout
        assert int((tmp_path / "cargohold.pid").read_text()) != pid
        health = httpx.get(f"http://127.0.0.1:{port}/healthz").json()
        assert [b["name"] for b in health["buckets"]] == ["second-public", "second-private"]
    finally:
        stopped = cargohold(tmp_path, "down")
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert not (tmp_path / "cargohold.pid").exists()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/healthz")
    assert cargohold(tmp_path, "status").returncode == 1
    assert "Application startup complete" in (tmp_path / "cargohold.log").read_text()


def test_up_detached_reports_a_server_that_cannot_start(tmp_path: Path) -> None:
    busy = free_port()
    write_env(tmp_path, SERVER_PORT=busy)
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", busy))
        holder.listen()
        result = cargohold(tmp_path, "up", "-d")
    assert result.returncode == 1
    assert "exited" in result.stderr and "address already in use" in result.stderr
    assert not (tmp_path / "cargohold.pid").exists()
