"""Files in the instance home that cargohold writes itself: the secret key, the admin token, and `.env`
when a command switches it (``migrate --switch``, ``catalog copy --switch``).

All are written atomically with mode 0600: a reader sees the old file or the new one, and no other
user of the machine can read either.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path

from .settings import Settings

SECRET_FILE = "secret.key"
ADMIN_TOKEN_FILE = "admin.token"


def write_private_file(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def instance_secret(settings: Settings) -> bytes:
    """``SECRET_KEY``, or the key made once into ``secret.key`` in the instance home."""
    if settings.secret_key:
        return settings.secret_key.encode()
    path = settings.home / SECRET_FILE
    if not path.exists():
        write_private_file(path, secrets.token_urlsafe(48) + "\n")
    return path.read_text().strip().encode()


def update_env(home: Path, values: dict[str, str], drop_prefix: str = "") -> None:
    """Set ``values`` in the instance's ``.env``: their old lines, and every key starting with ``drop_prefix``
    (when given), go; other lines stay as written. The file before is kept as ``.env.bak``."""
    env_path = home / ".env"
    old_text = env_path.read_text() if env_path.is_file() else ""
    kept = [line for line in old_text.splitlines()
            if _line_key(line) not in values and not (drop_prefix and _line_key(line).startswith(drop_prefix))]
    if old_text:
        write_private_file(home / ".env.bak", old_text)
    write_private_file(env_path, "\n".join(kept + [f"{key}={value}" for key, value in values.items()]) + "\n")


def _line_key(line: str) -> str:
    text = line.strip()
    if not text or text.startswith("#") or "=" not in text:
        return ""
    return text.split("=", 1)[0].removeprefix("export ").strip()
