"""The real ``cargohold up`` process, for tests that go over HTTP as a client would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from .servers import free_port, stop_process


@dataclass
class RunningServer:
    home: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    s3_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def s3_url(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    @property
    def api(self) -> str:
        return self.url + "/api/v1"

    @property
    def token(self) -> str:
        return (self.home / "admin.token").read_text().strip()

    @property
    def log(self) -> Path:
        return self.home / "server.log"

    def client(self, token: str | None = None, **kwargs: object) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token or self.token}"}
        return httpx.Client(base_url=self.api, headers=headers, timeout=60, **kwargs)  # type: ignore[arg-type]

    def start(self, timeout: float = 30) -> RunningServer:
        self.home.mkdir(parents=True, exist_ok=True)
        settings = {"SERVER_S3_PORT": str(self.s3_port), **self.env, "SERVER_PORT": str(self.port)}
        (self.home / ".env").write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("STORAGE_", "CACHE_", "DATA_PATH", "SERVER_"))}
        env["CARGOHOLD_HOME"] = str(self.home)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(self.command(), env=env, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"cargohold exited with {self.process.returncode}:\n{self.log.read_text()}")
            try:
                httpx.get(self.url + "/healthz", timeout=2)
                return self
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"cargohold did not answer within {timeout}s:\n{self.log.read_text()}")

    def command(self) -> list[str]:
        """What starts the server (a subclass may wrap it)."""
        return [sys.executable, "-m", "cargohold", "up"]

    def kill(self) -> None:
        """``kill -9``: no shutdown, no cleanup, as a crash or a power cut."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        stop_process(self.process, 15)
