from __future__ import annotations

from ..support.api_server import RunningServer


def test_server_answers_with_its_admin_token(api_server: RunningServer) -> None:
    with api_server.client() as client:
        created = client.post("/datasets", json={"name": "smoke"})
        assert created.status_code == 201, created.text
        upload = client.post(f"/datasets/{created.json()['id']}/items", files={"files": ("a.bin", b"abc" * 1000)})
        assert upload.status_code == 201, upload.text
        item = upload.json()["results"][0]["item"]
        assert client.get(f"/items/{item['id']}/content").content == b"abc" * 1000
