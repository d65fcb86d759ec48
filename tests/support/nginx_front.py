"""Debian's nginx started on loopback with deploy/nginx.conf, its example values replaced by the test's
replicas, ports and folders; everything else in the file is what ships."""

from __future__ import annotations

import getpass
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from .servers import free_port, stop_process

DEPLOYED = Path(__file__).resolve().parents[2] / "deploy" / "nginx.conf"


def nginx_binary() -> str | None:
    """Debian's nginx; it lives in /usr/sbin, which is not on every user's PATH."""
    return shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)


NGINX = nginx_binary() or "/usr/sbin/nginx"


@dataclass
class Replica:
    name: str  # as in SERVER_ACCEL_REDIRECT=/_cargohold/<name>/
    port: int
    data_path: Path
    s3_port: int | None = None  # its SERVER_S3_PORT, for nginx's S3 server block


@dataclass
class NginxFront:
    workdir: Path
    replicas: list[Replica]
    port: int = field(default_factory=free_port)
    s3_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def s3_url(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def render(self) -> str:
        text = DEPLOYED.read_text()
        text = text.replace("user cargohold;", f"user {getpass.getuser()};")  # the user the test's cargohold runs as
        text = text.replace("listen 80;", f"listen 127.0.0.1:{self.port};")
        servers = "".join(f"        server 127.0.0.1:{r.port};\n" for r in self.replicas)
        text = re.sub(r"(?m)^        server 127\.0\.0\.1:808[12];.*\n", "", text)
        text = text.replace("        keepalive 64;\n", servers + "        keepalive 64;\n", 1)
        s3 = [r for r in self.replicas if r.s3_port is not None]
        if s3:  # the S3 server block, in front of the replicas' S3 endpoints
            text = re.sub(r"(?m)^        server 127\.0\.0\.1:908[12];.*\n", "", text)
            upstream = "    upstream cargohold_s3 {\n        hash $uri consistent;    # /<bucket>/<key>\n"
            text = text.replace(upstream, upstream + "".join(f"        server 127.0.0.1:{r.s3_port};\n" for r in s3))
            text = text.replace("listen 9000;", f"listen 127.0.0.1:{self.s3_port};")
        else:
            text = re.sub(r"(?s)    upstream cargohold_s3 \{.*?\n    \}\n", "", text)
            text = re.sub(r"(?s)\n    server \{\n        listen 9000;.*?\n    \}\n", "\n", text)
        text = text.replace("/var/cache/nginx/cargohold", str(self.workdir / "cache"))
        blocks = "".join(
            f"        location /_cargohold/{r.name}/ {{\n            internal;\n"
            f"            alias {r.data_path.resolve()}/;\n            include cargohold-files.conf;\n        }}\n"
            for r in self.replicas
        )
        example = (r"(?s)        location /_cargohold/r1/ \{.*?\n        \}\n"
                   r"        location /_cargohold/r2/ .*?\n        \}\n")
        text = re.sub(example, blocks, text)
        head = f"daemon off;\npid {self.workdir / 'nginx.pid'};\nerror_log {self.workdir / 'error.log'} warn;\n"
        return head + text

    def start(self, timeout: float = 15) -> NginxFront:
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "cache").mkdir(exist_ok=True)
        (self.workdir / "logs").mkdir(exist_ok=True)
        conf = self.workdir / "nginx.conf"
        conf.write_text(self.render())
        shutil.copy(DEPLOYED.parent / "cargohold-files.conf", self.workdir / "cargohold-files.conf")
        check = subprocess.run([NGINX, "-t", "-p", str(self.workdir), "-c", str(conf)], capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"nginx refused the configuration:\n{check.stderr}")
        self.process = subprocess.Popen([NGINX, "-p", str(self.workdir), "-c", str(conf)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                httpx.get(self.url + "/healthz", timeout=2)
                return self
            except httpx.HTTPError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nginx did not answer:\n{(self.workdir / 'error.log').read_text()}")

    def stop(self) -> None:
        stop_process(self.process)
