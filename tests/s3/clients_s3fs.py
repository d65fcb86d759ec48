"""s3fs, unmodified, against cargohold's S3 endpoint: run by tests/s3/test_clients.py inside the s3fs venv
(``.s3/clients-venv``: s3fs pins its own botocore), as ``python clients_s3fs.py SCENARIO ARGS_JSON``.

It only drives s3fs and reports what s3fs saw, as one JSON object on stdout (byte contents as SHA-256, errors
as the S3 code of the ClientError s3fs translated, or the exception's type); the test decides what is right.
The endpoint and the key pair come from ``CLIENTS_S3_ENDPOINT``, ``CLIENTS_S3_KEY`` and ``CLIENTS_S3_SECRET``.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import s3fs

MB = 1024 * 1024


def filesystem(key: str | None = None, secret: str | None = None) -> Any:
    """An S3FileSystem as its docs configure one for an S3-compatible endpoint: path-style, SigV4 (s3fs's
    presigned URLs are otherwise botocore's Signature Version 2 ones), no retries of refusals."""
    return s3fs.S3FileSystem(key=key or os.environ["CLIENTS_S3_KEY"], secret=secret or os.environ["CLIENTS_S3_SECRET"],
                             endpoint_url=os.environ["CLIENTS_S3_ENDPOINT"], skip_instance_cache=True,
                             use_listings_cache=False, client_kwargs={"region_name": "us-east-1"},
                             config_kwargs={"signature_version": "s3v4", "s3": {"addressing_style": "path"},
                                            "retries": {"max_attempts": 1}})


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def s3_code(exc: BaseException) -> str:
    """The S3 error code behind what s3fs raised (its ClientError, kept as the cause), else the type's name."""
    seen: BaseException | None = exc
    while seen is not None:
        response = getattr(seen, "response", None)
        if isinstance(response, dict) and response.get("Error", {}).get("Code"):
            return str(response["Error"]["Code"])
        seen = seen.__cause__ or seen.__context__
    return type(exc).__name__


def attempt(call: Callable[[], Any]) -> dict[str, Any]:
    """``{"ok": what it gave}`` or ``{"error": S3 code, "type": exception type}``."""
    try:
        return {"ok": call()}
    except Exception as exc:
        return {"error": s3_code(exc), "type": type(exc).__name__, "message": str(exc)[:300]}


def listing(fs: Any, path: str) -> list[list[str]]:
    return sorted([entry["name"], entry["type"]] for entry in fs.ls(path, detail=True))


def presigned(fs: Any, path: str) -> dict[str, Any]:
    answer = httpx.get(fs.url(path, expires=300), timeout=60)
    return {"status": answer.status_code, "sha256": sha(answer.content), "body": answer.text[:300]}


def round_trip(args: dict[str, Any]) -> dict[str, Any]:
    """Makes the bucket, puts every file of ``args["files"]`` (key -> local path), then reads back."""
    fs = filesystem()
    bucket = args["bucket"]
    fs.mkdir(bucket)
    for key, path in args["files"].items():
        fs.pipe_file(f"{bucket}/{key}", Path(path).read_bytes())
    fs.put_file(args["files"][args["ranged"]], f"{bucket}/put-file/{args['ranged']}")  # s3fs's own upload path
    ranged = f"{bucket}/{args['ranged']}"
    with fs.open(ranged, "rb", block_size=4096) as f:  # s3fs's buffered file: ranged GETs as it seeks
        f.seek(5000)
        seeked = f.read(10_000)
    out: dict[str, Any] = {
        "buckets": [b for b in fs.ls("", detail=False) if b == bucket],
        "root": listing(fs, bucket),
        "folder": listing(fs, f"{bucket}/folder"),
        "find": sorted(fs.find(bucket)),
        "cat": {key: sha(fs.cat_file(f"{bucket}/{key}")) for key in args["files"]},
        "range": sha(fs.cat_file(ranged, start=100, end=4100)),
        "seeked": sha(seeked),
        "size": fs.info(ranged)["size"],
        "presigned": presigned(fs, ranged),
    }
    fs.rm(f"{bucket}/{args['delete']}")
    fs.rm(f"{bucket}/put-file", recursive=True)
    out["after_delete"] = sorted(fs.find(bucket))
    out["deleted_exists"] = fs.exists(f"{bucket}/{args['delete']}")
    return out


def multipart(args: dict[str, Any]) -> dict[str, Any]:
    """Writes the file at ``args["path"]`` through ``open("wb")`` in 16 MB blocks (a multipart upload), then
    streams it back."""
    fs = filesystem()
    target = f"{args['bucket']}/{args['key']}"
    with open(args["path"], "rb") as source, fs.open(target, "wb", block_size=16 * MB) as f:
        while block := source.read(16 * MB):
            f.write(block)
    back = hashlib.sha256()
    with fs.open(target, "rb", block_size=16 * MB) as f:
        while block := f.read(16 * MB):
            back.update(block)
    info = fs.info(target)
    return {"etag": info["ETag"], "size": info["size"], "sha256": back.hexdigest(),
            "get_file_sha256": _get_file(fs, target, args["download"])}


def _get_file(fs: Any, target: str, local: str) -> str:
    fs.get_file(target, local)
    digest = hashlib.sha256()
    with open(local, "rb") as f:
        while block := f.read(16 * MB):
            digest.update(block)
    os.unlink(local)
    return digest.hexdigest()


def linked(args: dict[str, Any]) -> dict[str, Any]:
    fs = filesystem()
    path = f"{args['bucket']}/{args['key']}"
    with fs.open(path, "rb", block_size=4096) as f:
        f.seek(1000)
        seeked = f.read(5000)
    folder = path.rsplit("/", 1)[0]
    return {"cat": sha(fs.cat_file(path)), "range": sha(fs.cat_file(path, start=10, end=2010)),
            "seeked": sha(seeked), "size": fs.info(path)["size"], "folder": listing(fs, folder),
            "presigned": presigned(fs, path)}


def scoped(args: dict[str, Any]) -> dict[str, Any]:
    """What a read key and a dataset-limited key may do in ``args["bucket"]`` (which holds ``args["key"]``)."""
    bucket, key = args["bucket"], args["key"]
    reader = filesystem(args["reader"]["access"], args["reader"]["secret"])
    limited = filesystem(args["limited"]["access"], args["limited"]["secret"])
    return {
        "reader_get": attempt(lambda: sha(reader.cat_file(f"{bucket}/{key}"))),
        "reader_put": attempt(lambda: reader.pipe_file(f"{bucket}/reader.txt", b"refused")),
        "reader_delete": attempt(lambda: reader.rm_file(f"{bucket}/{key}")),
        "reader_mkdir": attempt(lambda: reader.mkdir(args["new_bucket"])),
        "reader_rmdir": attempt(lambda: reader.rmdir(args["empty_bucket"])),
        "limited_buckets": attempt(lambda: limited.ls("", detail=False)),
        "limited_other_ls": attempt(lambda: limited.ls(bucket, detail=False)),
        "limited_other_get": attempt(lambda: sha(limited.cat_file(f"{bucket}/{key}", max_concurrency=1))),
        "limited_mkdir": attempt(lambda: limited.mkdir(args["new_bucket"])),
        "still_there": sha(filesystem().cat_file(f"{bucket}/{key}")),
        "after": sorted(filesystem().find(bucket)),
    }


def wrong_secret(args: dict[str, Any]) -> dict[str, Any]:
    """Every kind of request s3fs makes, signed with a wrong secret."""
    bucket, key = args["bucket"], args["key"]
    fs = filesystem(os.environ["CLIENTS_S3_KEY"], "wrong-" + os.environ["CLIENTS_S3_SECRET"])
    big = os.urandom(6 * MB)

    def write_multipart() -> None:
        with fs.open(f"{bucket}/wrong-multipart.bin", "wb", block_size=5 * MB) as f:
            f.write(big)

    return {
        "list_buckets": attempt(lambda: fs.ls("", detail=False)),
        "list": attempt(lambda: fs.ls(bucket, detail=False)),
        "find": attempt(lambda: fs.find(bucket)),
        "info": attempt(lambda: fs.info(f"{bucket}/{key}")),  # a HEAD
        # max_concurrency=1: the GET itself (else s3fs HEADs first, for the size, and stops at its 403)
        "cat": attempt(lambda: sha(fs.cat_file(f"{bucket}/{key}", max_concurrency=1))),
        "range": attempt(lambda: sha(fs.cat_file(f"{bucket}/{key}", start=1, end=3))),
        "put": attempt(lambda: fs.pipe_file(f"{bucket}/wrong.txt", b"refused")),
        "multipart": attempt(write_multipart),
        "copy": attempt(lambda: fs.copy(f"{bucket}/{key}", f"{bucket}/wrong-copy.txt")),
        "delete": attempt(lambda: fs.rm_file(f"{bucket}/{key}")),
        "mkdir": attempt(lambda: fs.mkdir(args["new_bucket"])),
        "presigned": presigned(fs, f"{bucket}/{key}"),
        "after": sorted(filesystem().find(bucket)),
    }


SCENARIOS = {"round_trip": round_trip, "multipart": multipart, "linked": linked, "scoped": scoped,
             "wrong_secret": wrong_secret}

if __name__ == "__main__":
    print(json.dumps(SCENARIOS[sys.argv[1]](json.loads(sys.argv[2]))))
