"""The checksums S3 clients send and ask for (``x-amz-checksum-crc32``, ``-crc32c``, ``-crc64nvme``, ``-sha1``,
``-sha256``): the algorithms, and what an object keeps of them (``items.s3``).

An object written in one piece keeps the checksum its client sent (a FULL_OBJECT one, checked as the body was
read: s3/body.py). A multipart upload begun with ``x-amz-checksum-algorithm`` keeps each part's checksum and,
at completion, the object's: COMPOSITE, the checksum of the parts' checksums followed by ``-N`` (S3's form for
SHA-1, SHA-256, CRC32 and CRC32C), or FULL_OBJECT, the checksum of every byte (CRC64NVME always; CRC32 and
CRC32C when asked), computed as the parts are put together. An object that kept none answers the SHA-256
cargohold keeps of every stored item.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import struct
import zlib
from collections.abc import Callable
from typing import Any

from ..errors import BadInput


class _Crc:
    slow = False

    def __init__(self, update: Callable[[bytes, int], int], width: int) -> None:
        self._update, self._width, self._value = update, width, 0

    def update(self, data: bytes) -> None:
        self._value = self._update(data, self._value)

    def digest(self) -> bytes:
        return self._value.to_bytes(self._width, "big")


def _crc32c() -> Any:
    import google_crc32c  # google-cloud-storage's own dependency: C, with a pure-Python fallback

    return _Crc(lambda data, value: int(google_crc32c.extend(value, data)), 4)


_CRC64NVME_REFLECTED = 0x9A6C9329AC4BC9B5
"""CRC-64/NVME's polynomial 0xAD93D23594C93659, bit-reversed (the CRC is reflected; init and xorout all ones)."""
_MASK64 = (1 << 64) - 1


@functools.cache
def _crc64_tables() -> tuple[list[int], ...]:
    """Slicing-by-8: ``tables[k][b]`` is byte ``b``'s CRC followed by ``k`` zero bytes."""
    first = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (_CRC64NVME_REFLECTED if crc & 1 else 0)
        first.append(crc)
    tables = [first]
    for _ in range(7):
        tables.append([(crc >> 8) ^ first[crc & 0xFF] for crc in tables[-1]])
    return tuple(tables)


def _crc64nvme_python(data: bytes, value: int) -> int:
    """CRC-64/NVME in Python, 8 bytes a step (about 10 MB/s): for a server without awscrt."""
    t0, t1, t2, t3, t4, t5, t6, t7 = _crc64_tables()
    crc = value ^ _MASK64
    whole = len(data) // 8 * 8
    for (word,) in struct.iter_unpack("<Q", memoryview(data)[:whole]):
        x = crc ^ word
        crc = (t7[x & 0xFF] ^ t6[(x >> 8) & 0xFF] ^ t5[(x >> 16) & 0xFF] ^ t4[(x >> 24) & 0xFF]
               ^ t3[(x >> 32) & 0xFF] ^ t2[(x >> 40) & 0xFF] ^ t1[(x >> 48) & 0xFF] ^ t0[x >> 56])
    for byte in data[whole:]:
        crc = t0[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ _MASK64


def _crc64nvme() -> Any:
    try:
        from awscrt import checksums
    except ImportError:
        slow = _Crc(_crc64nvme_python, 8)
        slow.slow = True  # blobs.Digests updates it in a thread whatever the block size: the event loop goes on
        return slow
    return _Crc(lambda data, value: checksums.crc64nvme(data, value), 8)


CHECKSUMS: dict[str, Callable[[], Any]] = {
    "crc32": lambda: _Crc(zlib.crc32, 4),
    "crc32c": _crc32c,
    "crc64nvme": _crc64nvme,
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
}


COMPOSITE = "COMPOSITE"
FULL_OBJECT = "FULL_OBJECT"
TYPES_OF: dict[str, tuple[str, ...]] = {
    "crc32": (COMPOSITE, FULL_OBJECT), "crc32c": (COMPOSITE, FULL_OBJECT), "crc64nvme": (FULL_OBJECT,),
    "sha1": (COMPOSITE,), "sha256": (COMPOSITE,),
}
"""The checksum types S3 allows per algorithm, the default first."""


def element(algorithm: str) -> str:
    """The name S3's XML and botocore give it: ``ChecksumCRC64NVME``."""
    return "Checksum" + algorithm.upper()


def header(algorithm: str) -> bytes:
    return f"x-amz-checksum-{algorithm}".encode()


def requested(headers: dict[str, str]) -> tuple[str, str] | None:
    """``(algorithm, type)`` a CreateMultipartUpload asks for (``x-amz-checksum-algorithm`` and
    ``x-amz-checksum-type``); None when it asks for none."""
    algorithm = headers.get("x-amz-checksum-algorithm", "").strip().lower()
    if not algorithm:
        if headers.get("x-amz-checksum-type"):
            raise BadInput("x-amz-checksum-type needs an x-amz-checksum-algorithm")
        return None
    if algorithm not in TYPES_OF:
        raise BadInput(f"x-amz-checksum-algorithm {algorithm.upper()!r} is not one of "
                       f"{', '.join(a.upper() for a in TYPES_OF)}")
    kind = headers.get("x-amz-checksum-type", "").strip().upper() or TYPES_OF[algorithm][0]
    if kind not in TYPES_OF[algorithm]:
        raise BadInput(f"The {algorithm.upper()} checksum cannot be of type {kind}: it may be "
                       f"{' or '.join(TYPES_OF[algorithm])}")
    return algorithm, kind


def composite(algorithm: str, parts: list[str]) -> str:
    """S3's COMPOSITE checksum: the checksum of the parts' checksums (their bytes, in order), then ``-N``."""
    checksum = CHECKSUMS[algorithm]()
    for value in parts:
        checksum.update(base64.b64decode(value))
    return f"{base64.b64encode(checksum.digest()).decode()}-{len(parts)}"


def digest(checksum: Any) -> str:
    return base64.b64encode(checksum.digest()).decode()


def kept(s3: dict[str, Any] | None) -> dict[str, str] | None:
    """The checksum an object kept (``algorithm``, ``type``, ``value``), if any."""
    return (s3 or {}).get("checksum")


def parts(s3: dict[str, Any] | None) -> list[list[Any]]:
    """A multipart object's parts, ``[size, checksum or None]`` each, in order; [] for one written in one piece."""
    return list((s3 or {}).get("parts") or [])
