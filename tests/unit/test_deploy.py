"""The deployment files stay in step with the code: compose's services and settings, the nginx
configuration it rewrites, and the systemd unit (checked by systemd-analyze where it exists)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from dotenv import dotenv_values

from cargohold.settings import declarations

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_compose_runs_two_replicas_behind_nginx_on_postgres_and_minio() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"postgres", "minio", "r1", "r2", "nginx"}
    for name in ("r1", "r2"):
        assert services[name]["environment"]["SERVER_ACCEL_REDIRECT"] == f"/_cargohold/{name}/"
        assert services[name]["env_file"] == "compose.env"
    # nginx runs the shipped nginx.conf with three substitutions: each must find its text.
    command = " ".join(services["nginx"]["command"])
    conf = (DEPLOY / "nginx.conf").read_text()
    for old in ("127.0.0.1:8081", "127.0.0.1:8082", "user cargohold;"):
        assert old in command, f"compose no longer rewrites {old!r}"
        assert old in conf, f"nginx.conf no longer holds {old!r}, which compose rewrites"
    for name in ("r1", "r2"):
        assert f"alias /var/lib/cargohold/{name}/data/;" in conf
        assert f"r{name[-1]}:/var/lib/cargohold/{name}:ro" in services["nginx"]["volumes"]


def test_the_example_env_names_only_real_settings() -> None:
    known = {d.key for d in declarations()} | {"POSTGRES_PASSWORD"}
    example = dotenv_values(DEPLOY / "compose.env.example")
    assert set(example) <= known, set(example) - known


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not on this machine")
def test_the_systemd_unit_is_valid(tmp_path: Path) -> None:
    unit = (DEPLOY / "cargohold@.service").read_text().replace("/opt/cargohold/.venv/bin/cargohold",
                                                                 shutil.which("true") or "/bin/true")
    path = tmp_path / "cargohold@r1.service"
    path.write_text(unit)
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", str(path)], capture_output=True, text=True)
    problems = [line for line in result.stderr.splitlines() if "cargohold@r1.service" in line]
    assert problems == [], result.stderr
