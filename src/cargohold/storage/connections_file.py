"""Reading ``remote_links.yml`` into entries that remember where each value was written.

Only the shape is checked here (a mapping of names to mappings of text or lists of text); what the
fields mean is checked by ``connections.make_connection``. Scalars are taken as written, never
converted by YAML's rules: a secret ``0123`` stays the text ``0123``, a bucket ``2020`` the name
``2020``. Error messages never quote the file's text, since a line may hold a secret key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..errors import ConnectionsFileError

NULL_TAG = "tag:yaml.org,2002:null"
_TOP_LEVEL_KEY = re.compile(r"^([^\s#:][^:#]*?)\s*:")

FieldValue = str | list[str]


@dataclass
class FileEntry:
    """One connection as written: its fields, and the line of the name, of each field and of each bucket."""

    name: str
    line: int
    fields: dict[str, FieldValue] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)
    bucket_lines: list[int] = field(default_factory=list)

    def line_of(self, name: str | None) -> int:
        return self.lines.get(name or "", self.line)


def read_entries(path: Path) -> list[FileEntry]:
    """The file's entries in the order written; an empty or comment-only file has none.

    Raises ConnectionsFileError for a file that is not YAML, or not a mapping of names to mappings."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConnectionsFileError(path, None, None, f"cannot read it: {exc.strerror}",
                                   "make it readable by the user cargohold runs as") from None
    except UnicodeDecodeError:
        raise ConnectionsFileError(path, None, None, "it is not UTF-8 text", "save it as UTF-8") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        # exc's own text quotes the offending line, which may hold a secret: only its problem is kept.
        mark, context = exc.problem_mark or exc.context_mark, exc.context_mark
        line = mark.line + 1 if mark else None
        started = context.line + 1 if context else line
        problem = exc.problem or "it is not valid YAML"
        if exc.context:
            problem = f"{exc.context}" + (f" begun at line {started}" if started != line else "") + f": {problem}"
        raise ConnectionsFileError(path, line, _connection_at(text, started), f"not valid YAML: {problem}",
                                   "fix the YAML syntax there (indent with spaces, write `key: value`)") from None
    except yaml.YAMLError:
        raise ConnectionsFileError(path, None, None, "it is not valid YAML", "fix the YAML syntax") from None
    if root is None or (isinstance(root, yaml.ScalarNode) and root.tag == NULL_TAG):
        return []
    if not isinstance(root, yaml.MappingNode):
        raise ConnectionsFileError(path, _line(root), None, "the file is not a mapping of connection names",
                                   "write `name:` at the start of a line, and its fields indented below it")
    entries: list[FileEntry] = []
    seen: dict[str, int] = {}
    for key_node, value_node in root.value:
        name = _text(key_node)
        if name is None:
            raise ConnectionsFileError(path, _line(key_node), None, "a connection name must be plain text",
                                       "write the name as `my-connection:`")
        if name in seen:
            raise ConnectionsFileError(path, _line(key_node), name, f"the name is used already at line {seen[name]}",
                                       "give each connection a name of its own")
        seen[name] = _line(key_node)
        if not isinstance(value_node, yaml.MappingNode):
            raise ConnectionsFileError(path, _line(key_node), name, "a connection must be a mapping of fields",
                                       "indent its fields below the name: `provider: minio`, `buckets: [...]`...")
        entries.append(_entry(path, name, key_node, value_node))
    return entries


def _entry(path: Path, name: str, key_node: yaml.Node, mapping: yaml.MappingNode) -> FileEntry:
    entry = FileEntry(name, _line(key_node))
    for field_node, value_node in mapping.value:
        field_name = _text(field_node)
        if field_name is None:
            raise ConnectionsFileError(path, _line(field_node), name, "a field name must be plain text",
                                       "write fields as `provider: minio`")
        if field_name in entry.fields:
            raise ConnectionsFileError(path, _line(field_node), name, f"{field_name!r} is given twice",
                                       "keep one of them")
        entry.lines[field_name] = _line(field_node)
        if isinstance(value_node, yaml.SequenceNode):
            items = []
            for item in value_node.value:
                # An alias (*name) is the node it names, with that node's line: then the field's line is the one.
                line = max(_line(item), _line(field_node))
                text = _text(item)
                if text is None:
                    raise ConnectionsFileError(path, line, name, f"each entry of {field_name!r} must be text",
                                               f"write {field_name}: [first, second]")
                items.append(text)
                if field_name == "buckets":
                    entry.bucket_lines.append(line)
            entry.fields[field_name] = items
        else:
            text = _text(value_node)
            if text is None:
                raise ConnectionsFileError(path, _line(field_node), name, f"{field_name!r} must be text or a list",
                                           f"write `{field_name}: value`")
            entry.fields[field_name] = text
    return entry


def _text(node: yaml.Node) -> str | None:
    """A scalar's text as written (empty for YAML's null); None for a mapping or a list."""
    if not isinstance(node, yaml.ScalarNode):
        return None
    return "" if node.tag == NULL_TAG and node.value in ("", "~", "null", "Null", "NULL") else str(node.value)


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _connection_at(text: str, line: int | None) -> str | None:
    """The connection whose block holds ``line``: the last name written at the start of a line before it."""
    if line is None:
        return None
    name = None
    for raw in text.splitlines()[:line]:
        match = _TOP_LEVEL_KEY.match(raw)
        if match:
            name = match.group(1).strip("'\"")
    return name
