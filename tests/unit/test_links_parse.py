from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from cargohold.errors import BadInput
from cargohold.storage.links_file import Entry, Refused, parse_stream
from cargohold.storage.uris import ObjectLink, UrlLink, parse_link


@pytest.mark.parametrize(
    ("text", "provider", "bucket", "key"),
    [
        ("s3://cars/2020/a.jpg", "minio", "cars", "2020/a.jpg"),
        ("azure://box/deep/b c.png", "azure", "box", "deep/b c.png"),
        ("google://g/x%20y+z.tif", "google", "g", "x%20y+z.tif"),
        ("gs://g/日本/x.jpg", "google", "g", "日本/x.jpg"),
        ("fs://local-datasets/persons/1.jpg", "fs", "local-datasets", "persons/1.jpg"),
        ("  S3://cars/a.jpg  ", "minio", "cars", "a.jpg"),
    ],
)
def test_object_links(text: str, provider: str, bucket: str, key: str) -> None:
    link = parse_link(text)
    assert isinstance(link, ObjectLink)
    assert (link.provider, link.bucket, link.key) == (provider, bucket, key)


def test_url_links() -> None:
    link = parse_link("https://images.example.com/a/b.jpg?x=1")
    assert isinstance(link, UrlLink)
    assert link.host == "images.example.com" and link.default_name == "a/b.jpg"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"), ("cars/a.jpg", "not a link"), ("ftp://h/x", "unknown scheme"), ("s3:///a.jpg", "no bucket"),
        ("s3://cars", "no object"), ("s3://cars/", "no object"), ("fs://store/../etc/passwd", "'..'"),
        ("fs://store//etc/passwd", "start"), ("s3://b/a\x00b", "control"), ("https:///x", "no host"),
        ("https://user:pw@h/x", "credentials"), ("http://h/a\r\nSet-Cookie: x=1", "control characters"),
        ("http://h/a\tb.jpg", "control characters"), ("http://h/a b.jpg", "spaces"),
    ],
)
def test_bad_links_say_why(text: str, reason: str) -> None:  # CR/LF in an http link: refused, not a 500 later
    with pytest.raises(BadInput, match=reason):
        parse_link(text)


async def chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for pos in range(0, len(data), size):
        yield data[pos : pos + size]


@pytest.mark.parametrize("size", [1, 5, 64, 100_000])
async def test_links_file_numbers_every_line(size: int) -> None:
    text = ("# my links\r\n\r\ns3://cars/a.jpg\r\nnot a link\r\n   \n"
            "gs://g/b.png\n" + "s3://cars/" + "x" * 20_000 + "\nfs://f/c.jpg").encode()
    parsed = [p async for p in parse_stream(chunks(text, size))]
    assert [(type(p).__name__, p.line) for p in parsed] == [
        ("Entry", 3), ("Refused", 4), ("Entry", 6), ("Refused", 7), ("Entry", 8)]
    assert isinstance(parsed[1], Refused) and parsed[1].url == "not a link" and "not a link" in parsed[1].reason
    assert isinstance(parsed[3], Refused) and "longer than" in parsed[3].reason
    assert isinstance(parsed[4], Entry) and parsed[4].link.uri == "fs://f/c.jpg"


async def test_non_utf8_line_is_refused_by_number() -> None:
    parsed = [p async for p in parse_stream(chunks(b"s3://a/b.jpg\n\xff\xfe\ns3://a/c.jpg\n", 3))]
    assert [(type(p).__name__, p.line) for p in parsed] == [("Entry", 1), ("Refused", 2), ("Entry", 3)]
