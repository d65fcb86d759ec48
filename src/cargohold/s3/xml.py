"""S3's XML: answers written as text with the standard library's escaping (a listing of 1,000 keys built as an
ElementTree tree was a third of the request: bench/s3.py's profile), request bodies read with defusedxml (no
entity expansion, no external entities: a body is data from anyone holding a key)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from typing import Any
from xml.sax.saxutils import escape

from defusedxml import ElementTree as SafeET

from ..errors import MalformedXml

NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"
Value = str | int | bool | None | Mapping[str, Any] | list[Any]


def _add(out: list[str], name: str, value: Value) -> None:
    if isinstance(value, list):  # repeated elements of one name
        for each in value:
            _add(out, name, each)
        return
    if isinstance(value, Mapping):
        out.append(f"<{name}>")
        for key, inner in value.items():
            if inner is not None:
                _add(out, key, inner)
        out.append(f"</{name}>")
    elif isinstance(value, bool):
        out.append(f"<{name}>{'true' if value else 'false'}</{name}>")
    elif value == "":
        out.append(f"<{name}/>")
    elif value is not None:
        out.append(f"<{name}>{escape(str(value))}</{name}>")


def document(root: str, fields: Mapping[str, Value], namespace: bool = False, inner: str = "") -> bytes:
    """``<root>`` with an element per field (names are ours, constant; values escaped), ``None`` left out;
    ``inner``: the root's own text (GetBucketLocation's answer is one)."""
    out = ['<?xml version="1.0" encoding="UTF-8"?>\n', f'<{root} xmlns="{NAMESPACE}">' if namespace else f"<{root}>",
           escape(inner)]
    for key, value in fields.items():
        if value is not None:
            _add(out, key, value)
    out.append(f"</{root}>")
    return "".join(out).encode()


def parse(body: bytes, root: str) -> ET.Element:
    """The root element of a request body, which must be ``root`` (namespace or not)."""
    try:
        element: ET.Element = SafeET.fromstring(body)
    except Exception as exc:  # defusedxml's refusals and ElementTree's ParseError alike
        raise MalformedXml("The XML you provided was not well-formed or did not validate against our "
                           f"published schema ({type(exc).__name__})") from None
    if _local(element.tag) != root:
        raise MalformedXml(f"the body's root element is {_local(element.tag)}, not {root}")
    return element


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def children(element: ET.Element, name: str) -> Iterable[ET.Element]:
    return (child for child in element if _local(child.tag) == name)


def text(element: ET.Element, name: str) -> str | None:
    for child in children(element, name):
        return child.text or ""
    return None
