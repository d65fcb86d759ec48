"""The docs say what the code does: the README's settings table matches the declarations, the README
opens with the two set-up commands, CI runs the README's test command."""

from __future__ import annotations

import re
from pathlib import Path

from cargohold.settings import declarations

REPO = Path(__file__).resolve().parents[2]


def documented_settings() -> dict[str, tuple[str, str]]:
    text = (REPO / "README.md").read_text()
    rows = re.findall(r"^\| `([A-Z0-9_]+)` \| (.*?) \| (.*) \|$", text, re.MULTILINE)
    return {key: (default.strip("`") if default != "—" else "", meaning) for key, default, meaning in rows}


def test_every_setting_is_documented_with_its_default_and_help() -> None:
    documented = documented_settings()
    declared = {d.key: d for d in declarations()}
    assert sorted(documented) == sorted(declared), "README.md and settings.py list different keys"
    for key, decl in declared.items():
        default, meaning = documented[key]
        assert default == decl.default, f"{key}: docs say default {default!r}, code says {decl.default!r}"
        assert meaning.startswith(decl.help), f"{key}: docs say {meaning!r}, code says {decl.help!r}"


def test_secrets_are_marked_in_the_docs() -> None:
    documented = documented_settings()
    for decl in declarations():
        assert ("secret" in documented[decl.key][1]) == decl.secret, decl.key


def test_readme_opens_with_the_two_commands() -> None:
    blocks = re.findall(r"```(?:sh|bash|console)?\n(.*?)```", (REPO / "README.md").read_text(), re.DOTALL)
    assert blocks, "README has no command block"
    first = [line.split("#")[0].strip() for line in blocks[0].splitlines()]
    assert [line for line in first if line][:2] == ["make run", "make test"]


def test_ci_runs_the_readme_test_command() -> None:
    ci = (REPO / ".ci" / "run").read_text()
    assert re.search(r"^\s*(exec\s+)?make test\s*$", ci, re.MULTILINE)
