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


def architecture_entries() -> set[str]:
    """Every path named in the first column of the table under docs/ARCHITECTURE.md's "## Modules"."""
    text = (REPO / "docs" / "ARCHITECTURE.md").read_text().split("\n## Modules\n", 1)[1].split("\n## ", 1)[0]
    cells = re.findall(r"^\| ((?:`[^`]+`(?:, )?)+) \|", text, re.MULTILINE)
    return {name for cell in cells for name in re.findall(r"`([^`]+)`", cell)}


def holds_code(path: Path) -> bool:
    """A package ``__init__.py`` that is only a docstring needs no row of its own."""
    import ast

    body = ast.parse(path.read_text()).body
    return any(not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)) for node in body)


def test_the_module_table_names_every_module_and_only_modules_that_exist() -> None:
    package = REPO / "src" / "cargohold"
    listed = architecture_entries()
    missing = []
    for path in sorted(package.rglob("*.py")):
        name = path.relative_to(package).as_posix()
        if name.startswith("catalog/migrations/"):
            continue  # Alembic's environment and versions: the table names the folder
        if path.name == "__init__.py" and not holds_code(path):
            continue
        if name not in listed:
            missing.append(name)
    assert not missing, f"docs/ARCHITECTURE.md's module table does not name {missing}"
    gone = sorted(n for n in listed if not (package / n.rstrip("/")).exists())
    assert not gone, f"docs/ARCHITECTURE.md's module table names what is not in the tree: {gone}"
