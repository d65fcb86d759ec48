"""http/bodies.py without a server: the nesting check, the JSON links parser; services/links.key_filter."""

from __future__ import annotations

import json
import re
import time

import pytest

from cargohold.errors import BadInput
from cargohold.http.bodies import JSON_MAX_DEPTH, _links_json, check_json, nesting
from cargohold.services.links import FILTER_MAX_LENGTH, key_filter, matching


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize(("body", "deep"), [
    (nested(JSON_MAX_DEPTH), 0),
    (nested(JSON_MAX_DEPTH + 1), JSON_MAX_DEPTH + 1),
    (b'{"a": ' * 200_000 + b"1" + b"}" * 200_000, 200_000),
    (b'{"a": [{"b": [1, 2, {"c": "x"}]}], "d": {}}', 0),
    (b'{"name": "' + b"[" * 5000 + b'"}', 0),  # brackets in a string are text
    (b'{"name": "\\"' + b"[" * 5000 + b'\\\\"}', 0),  # escaped quotes and backslashes around them
    (b'["\\\\", "' + b"{" * 100 + b'"]', 0),
    (b'[[[}', 0),  # not JSON, but not deep: left to the JSON parser
    (b"", 0),
])
def test_nesting(body: bytes, deep: int) -> None:
    assert nesting(body) == deep


def test_nesting_is_linear_and_fast() -> None:
    start = time.perf_counter()
    for body in (b"[" * 2**20, b'"\\"' * 2**19, b"[]," * 2**20, b'"' * 2**20):
        nesting(body)
    assert time.perf_counter() - start < 1.0


def test_check_json_names_the_depth() -> None:
    with pytest.raises(BadInput, match=f"33 deep; at most {JSON_MAX_DEPTH}"):
        check_json(nested(33))


def test_links_json_reads_urls_and_named_entries() -> None:
    body = (b' {"links" : [ "s3://a/b" , "s3://a/\\"q\\"", {"name": "n", "url": "gs://x/y"}, '
            b'{"url": "u", "name": null} ] } \n')
    assert _links_json(body) == ["s3://a/b", 's3://a/"q"', ("gs://x/y", "n"), ("u", None)]
    assert _links_json(b'{"links": []}') == []
    urls = [f"s3://bucket/{i}.jpg" for i in range(1000)]
    assert _links_json(json.dumps({"links": urls}).encode()) == urls


@pytest.mark.parametrize(("body", "words"), [
    (b"", "expected '{'"),
    (b"[]", "expected '{'"),
    (b"{}", "a key of the body must be text"),
    (b'{"links": {}}', "expected '['"),
    (b'{"links": [[]]}', "links[0] must be a URL"),
    (b'{"links": ["a", 1]}', "links[1] must be a URL"),
    (b'{"links": [' + b"[" * 400_000 + b"]}", "links[0] must be a URL"),
    (b'{"links": [' + b"[]," * 100_000 + b"[]]}", "links[0] must be a URL"),
    (b'{"links": [{}]}', 'links[0] has no "url"'),
    (b'{"links": [{"name": "n"}]}', 'links[0] has no "url"'),
    (b'{"links": [{"url": "u", "x": "y"}]}', "unknown key 'x'"),
    (b'{"links": [{"url": ["u"]}]}', "links[0].url must be text"),
    (b'{"links": ["a",]}', "links[1] must be a URL"),
    (b'{"links": ["a"], "more": 1}', "'more' as a key"),
    (b'{"links": ["a"], "links": ["b"]}', "'links' twice"),
    (b'{"links": ["a"]} []', "text after the JSON body"),
    (b'{"links": ["a"', "expected ','"),
    (b'{"links": ["\\x"]}', "not JSON text"),
    (b'{"links": ["\xff"]}', "not UTF-8"),
])
def test_links_json_refuses_other_shapes(body: bytes, words: str) -> None:
    with pytest.raises(BadInput, match=words.replace("[", r"\[").replace("(", r"\(")):
        _links_json(body)


async def test_key_filter_is_linear_and_refuses_what_re2_cannot_run() -> None:
    wanted = key_filter("^(.+)+X$")
    assert wanted is not None
    start = time.perf_counter()
    assert await matching(wanted, ["a" * 28, "a" * 32, "a" * 1024] * 100) == [False] * 300
    assert time.perf_counter() - start < 0.5
    assert await matching(key_filter(r"\.jpe?g$"), ["a.jpg", "b.png", "c.JPG"]) == [True, False, False]
    assert await matching(None, ["x"]) == [True]
    assert key_filter("") is None
    refused = ((r"(a)\1", "backreferences"), ("(?=a)b", "invalid perl operator"), ("(", "missing )"),
               ("x" * (FILTER_MAX_LENGTH + 1), "longer than"), ("((a{1000}){1000}){1000}", "invalid repetition size"))
    for pattern, words in refused:
        with pytest.raises(BadInput, match=re.escape(words)):
            key_filter(pattern)
