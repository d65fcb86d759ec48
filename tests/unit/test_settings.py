from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cargohold.errors import ConfigError
from cargohold.settings import load_settings

from ..support.servers import service_account_file


def load(home: Path, env: dict[str, str] | None = None, dotenv: str | None = None):  # type: ignore[no-untyped-def]
    home.mkdir(parents=True, exist_ok=True)
    if dotenv is not None:
        (home / ".env").write_text(dotenv)
    return load_settings(home=home, environ=env or {})


def test_defaults(tmp_path: Path) -> None:
    s = load(tmp_path)
    assert s.storage_provider == "http"
    assert s.data_path == tmp_path / "data"
    assert s.storage_root == tmp_path / "data" / "storage"
    assert (s.bucket("public"), s.bucket("private")) == ("cargohold-public", "cargohold-private")
    assert s.cache_storage_size == 10 * 1024**3
    assert s.cache_previews_expires == 12 * 3600
    assert (s.server_host, s.server_port) == ("127.0.0.1", 8080)
    assert (s.server_header_timeout, s.server_body_timeout) == (10, 60)
    assert s.remote_links_path == tmp_path / "remote_links.yml"


def test_env_file_then_environment(tmp_path: Path) -> None:
    s = load(tmp_path, {"CACHE_PREVIEWS_SIZE": "2g"}, "CACHE_PREVIEWS_SIZE=512m\nDATA_PATH=relative/data\n"
             "STORAGE_BUCKET_PREFIX=team-a\n")
    assert s.cache_previews_size == 2 * 1024**3
    assert s.data_path == tmp_path / "relative" / "data"
    assert s.bucket("private") == "team-a-private"
    origins = {key: origin for key, _, origin in s.summary()}
    assert origins["CACHE_PREVIEWS_SIZE"] == "environment"
    assert origins["STORAGE_BUCKET_PREFIX"] == ".env"
    assert origins["SERVER_PORT"] == "default"


def test_summary_masks_secrets(tmp_path: Path) -> None:
    s = load(tmp_path, dotenv="STORAGE_PROVIDER=minio\nSTORAGE_ACCESS_KEY=AKIAVISIBLE\nSTORAGE_SECRET_KEY=hunter2\n"
             "DATABASE_URL=postgresql://u:pw@db/x\n")
    shown = {key: value for key, value, _ in s.summary()}
    assert shown["STORAGE_ACCESS_KEY"] == "AKIAVISIBLE"
    assert shown["STORAGE_SECRET_KEY"] == "****"
    assert shown["DATABASE_URL"] == "****"
    assert "hunter2" not in repr(s.summary())


BAD = [
    ({"STORAGE_PROVIDER": "s3"}, "STORAGE_PROVIDER", "not a storage provider"),
    ({"CACHE_STORAGE_SIZE": "10x"}, "CACHE_STORAGE_SIZE", "not a size"),
    ({"CACHE_PREVIEWS_EXPIRES": "soon"}, "CACHE_PREVIEWS_EXPIRES", "not a duration"),
    ({"STORAGE_PORT": "nine"}, "STORAGE_PORT", "not a TCP port"),
    ({"SERVER_PORT": "70000"}, "SERVER_PORT", "not a TCP port"),
    ({"SERVER_HEADER_TIMEOUT": "0"}, "SERVER_HEADER_TIMEOUT", "would wait no time at all"),
    ({"SERVER_BODY_TIMEOUT": "soon"}, "SERVER_BODY_TIMEOUT", "not a duration"),
    ({"SERVER_BODY_TIMEOUT": "-1"}, "SERVER_BODY_TIMEOUT", "not a duration"),
    ({"STORAGE_BUCKET_PREFIX": "My_Bucket"}, "STORAGE_BUCKET_PREFIX", "cannot name a bucket"),
    ({"STORAGE_JUPYTER_SYNC": "maybe"}, "STORAGE_JUPYTER_SYNC", "not true or false"),
    ({"LINKS_FS_ROOTS": "/data/datasets, relative/folder"}, "LINKS_FS_ROOTS", "'relative/folder' is not an absolute"),
    ({"STORAGE_PROVIDER": "minio"}, "STORAGE_ACCESS_KEY", "needs static keys or an IAM role"),
    ({"STORAGE_PROVIDER": "minio", "STORAGE_ACCESS_KEY": "a"}, "STORAGE_SECRET_KEY", "needs static keys"),
    ({"STORAGE_PROVIDER": "minio", "STORAGE_ACCESS_KEY": "a", "STORAGE_SECRET_KEY": "b", "STORAGE_IAM_ROLE": "r"},
     "STORAGE_IAM_ROLE", "both static keys and an IAM role"),
    ({"STORAGE_PROVIDER": "azure", "STORAGE_ACCESS_KEY": "acct"}, "STORAGE_SECRET_KEY", "account name and key"),
    ({"STORAGE_PROVIDER": "google"}, "STORAGE_CREDENTIALS_PATH", "needs a service-account JSON"),
    ({"STORAGE_PROVIDER": "google", "STORAGE_CREDENTIALS_PATH": "/nonexistent/sa.json"}, "STORAGE_CREDENTIALS_PATH",
     "cannot read /nonexistent/sa.json"),
]


@pytest.mark.parametrize(("env", "key", "problem"), BAD, ids=[b[1] + ":" + b[2][:16] for b in BAD])
def test_bad_values_name_the_key_and_the_fix(tmp_path: Path, env: dict[str, str], key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, env)
    assert caught.value.key == key
    assert problem in caught.value.problem
    assert caught.value.fix


def test_google_credentials_file_is_checked(tmp_path: Path) -> None:
    not_json = tmp_path / "a.json"
    not_json.write_text("{nope")
    other_json = tmp_path / "b.json"
    other_json.write_text(json.dumps({"type": "authorized_user", "client_id": "x"}))
    for path, problem in ((not_json, "is not JSON"), (other_json, "lacks project_id, private_key, client_email")):
        with pytest.raises(ConfigError, match=problem):
            load(tmp_path, {"STORAGE_PROVIDER": "google", "STORAGE_CREDENTIALS_PATH": str(path)})
    good = service_account_file(tmp_path / "sa.json")
    s = load(tmp_path, {"STORAGE_PROVIDER": "google", "STORAGE_CREDENTIALS_PATH": str(good)})
    assert s.storage_credentials_path == good


def test_unknown_key_in_env_file_suggests_the_right_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, dotenv="STORAGE_PROVDER=minio\n")
    assert caught.value.key == "STORAGE_PROVDER"
    assert "did you mean STORAGE_PROVIDER?" in caught.value.fix


@pytest.mark.parametrize(
    ("env", "key"),
    [({"STORAGE_PROVIDER": "s3"}, "STORAGE_PROVIDER"), ({"CACHE_STORAGE_SIZE": "10x"}, "CACHE_STORAGE_SIZE"),
     ({"STORAGE_PROVIDER": "minio"}, "STORAGE_ACCESS_KEY"),
     ({"STORAGE_PROVIDER": "google", "STORAGE_CREDENTIALS_PATH": "/nonexistent.json"}, "STORAGE_CREDENTIALS_PATH")],
)
@pytest.mark.parametrize("command", ["check", "up"])
def test_cli_exits_2_naming_the_key(tmp_path: Path, env: dict[str, str], key: str, command: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cargohold", command], env={"CARGOHOLD_HOME": str(tmp_path), **env, "PATH": ""},
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert f"bad setting {key}:" in result.stderr
    assert "fix:" in result.stderr
    assert "Traceback" not in result.stderr
