"""The package's public face: ``from cargohold import Client`` is the SDK, and the SDK side (client and
workspace sync) is httpx only: no CLI library, nothing of the server."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

SDK = Path(__file__).resolve().parents[2] / "src" / "cargohold" / "sdk"
ALLOWED = ("cargohold", "cargohold.errors", "cargohold.units", "cargohold.ranged")  # the version, the exceptions,
# size formats, a file over ranged reads
OPTIONAL = ("av", "cargohold.media.video")
"""Imported inside the one method that needs them (``Client.iter_frames`` decodes with PyAV, and finds the GOP of
its first frame as the server does), never at import."""


def test_client_is_importable_from_the_package_root() -> None:
    import cargohold
    from cargohold.sdk.client import Client

    assert cargohold.Client is Client


def test_the_sdk_imports_httpx_and_no_cli_or_server_code() -> None:
    stdlib = sys.stdlib_module_names
    for path in sorted(SDK.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level == 1:
                    continue  # a module of sdk/
                names = [".".join(filter(None, ["cargohold" if node.level == 2 else "", node.module]))]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                allowed = top in stdlib or top == "httpx" or name in ALLOWED or name in OPTIONAL
                assert allowed, f"{path.name} imports {name}"


def test_the_sdk_loads_nothing_of_the_server() -> None:
    # httpx itself loads click and rich when they are installed (its command line): those are not asked here.
    code = ("import sys; import cargohold.sdk.sync, cargohold.sdk.client; "
            "print(sorted(m for m in ('fastapi', 'starlette', 'sqlalchemy', 'obstore', 'pyvips', 'boto3', 'av') "
            "if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]", f"the SDK loaded {loaded}"
