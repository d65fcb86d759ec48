"""Bucket names for the S3 endpoint: a dataset whose name is a valid bucket name has it as its bucket;
another gets a valid, unique one derived from its name, kept in ``datasets.bucket``. Pure: the catalog's
migration 0008 derives the names of datasets made before it with this module."""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Container

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def is_bucket_name(name: str) -> bool:
    """S3's rules for new buckets: 3-63 characters of lowercase letters, digits, ``.`` and ``-``, starting and
    ending with a letter or digit, no ``..``, no ``.-`` or ``-.``, not an IPv4 address."""
    if not _BUCKET.fullmatch(name) or ".." in name or ".-" in name or "-." in name:
        return False
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        return True
    return False


def bucket_for(name: str, taken: Container[str]) -> str:
    """The bucket name of a dataset named ``name``: itself when valid and free, else the closest valid name
    (accents dropped, lowercase, other characters as ``-``) with ``-2``, ``-3``... until it is free."""
    if is_bucket_name(name) and name not in taken:
        return name
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    base = re.sub(r"[^a-z0-9.]+", "-", ascii_name)
    base = re.sub(r"\.{2,}", ".", base).replace(".-", "-").replace("-.", "-").strip(".-")[:56].strip(".-")
    if len(base) < 3:
        base = (base + "-dataset").strip("-")
    if not is_bucket_name(base):  # an IPv4-like name
        base = f"ds-{base}".replace(".", "-")
    candidate, n = base, 2
    while candidate in taken or not is_bucket_name(candidate):
        candidate = f"{base}-{n}"
        n += 1
    return candidate
