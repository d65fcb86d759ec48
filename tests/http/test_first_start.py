from __future__ import annotations

import stat
from pathlib import Path

import httpx

from ..support.api_server import RunningServer


def test_first_start_makes_one_admin_token_printed_once(tmp_path: Path) -> None:
    server = RunningServer(tmp_path / "home", {}).start()
    try:
        token_file = tmp_path / "home" / "admin.token"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        token = server.token
        assert token.startswith("chd_")
        with server.client() as client:
            assert client.get("/storage").status_code == 200
    finally:
        server.stop()
    assert server.log.read_text().count(token) == 1
    secret = tmp_path / "home" / "secret.key"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600

    server.start()  # the second start keeps the token and prints nothing new
    try:
        assert server.token == token
        assert httpx.get(server.api + "/datasets", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    finally:
        server.stop()
    assert server.log.read_text().count(token) == 1
    assert "admin token created" in server.log.read_text()
    assert server.log.read_text().count("admin token created") == 1
