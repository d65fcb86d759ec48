"""S3's XML: answers built with ElementTree, request bodies read with defusedxml (no entity expansion, no
external entities: a body is data from anyone holding a key)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from typing import Any

from defusedxml import ElementTree as SafeET

from ..errors import MalformedXml

NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"
Value = str | int | bool | None | Mapping[str, Any] | list[Any]


def _add(parent: ET.Element, name: str, value: Value) -> None:
    if isinstance(value, list):  # repeated elements of one name
        for each in value:
            _add(parent, name, each)
        return
    child = ET.SubElement(parent, name)
    if isinstance(value, Mapping):
        for key, inner in value.items():
            if inner is not None:
                _add(child, key, inner)
    elif isinstance(value, bool):
        child.text = "true" if value else "false"
    elif value is not None:
        child.text = str(value)


def document(root: str, fields: Mapping[str, Value], namespace: bool = False) -> bytes:
    element = ET.Element(root, {"xmlns": NAMESPACE} if namespace else {})
    for key, value in fields.items():
        if value is not None:
            _add(element, key, value)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + bytes(ET.tostring(element, encoding="utf-8"))


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
