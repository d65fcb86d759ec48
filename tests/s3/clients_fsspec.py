"""fsspec's own abstract test suite (``fsspec.tests.abstract``) on s3fs pointed at cargohold's S3 endpoint.

Run by tests/s3/test_clients.py inside the s3fs venv (``.s3/clients-venv``: s3fs pins its own botocore), never
collected by the project's pytest (the name does not start with ``test_``). The mixins are subclassed as s3fs's
own repository does (``s3fs/tests/derived/s3fs_test.py``): only the fixtures ``fs`` and ``fs_path`` are given,
plus ``supports_empty_directories`` (False: S3 has no directories, s3fs writes no folder markers).

Settings come from the environment: ``CLIENTS_S3_ENDPOINT``, ``CLIENTS_S3_KEY``, ``CLIENTS_S3_SECRET`` and
``CLIENTS_S3_BUCKET`` (a bucket the key may write, made by the caller).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import fsspec.tests.abstract as abstract
import pytest
import s3fs


def filesystem() -> Any:
    s3fs.S3FileSystem.clear_instance_cache()
    return s3fs.S3FileSystem(key=os.environ["CLIENTS_S3_KEY"], secret=os.environ["CLIENTS_S3_SECRET"],
                             endpoint_url=os.environ["CLIENTS_S3_ENDPOINT"],
                             client_kwargs={"region_name": "us-east-1"},
                             config_kwargs={"signature_version": "s3v4", "s3": {"addressing_style": "path"}})


class CargoholdFixtures(abstract.AbstractFixtures):  # type: ignore[misc]
    @pytest.fixture(scope="class")
    @classmethod
    def fs(cls) -> Iterator[Any]:
        fs = filesystem()
        fs.invalidate_cache()
        yield fs

    @pytest.fixture
    def fs_path(self) -> str:
        return os.environ["CLIENTS_S3_BUCKET"]

    @pytest.fixture
    def supports_empty_directories(self) -> bool:
        return False


class TestCargoholdCopy(abstract.AbstractCopyTests, CargoholdFixtures):  # type: ignore[misc]
    pass


class TestCargoholdGet(abstract.AbstractGetTests, CargoholdFixtures):  # type: ignore[misc]
    pass


class TestCargoholdPut(abstract.AbstractPutTests, CargoholdFixtures):  # type: ignore[misc]
    pass


class TestCargoholdPipe(abstract.AbstractPipeTests, CargoholdFixtures):  # type: ignore[misc]
    pass


class TestCargoholdOpen(abstract.AbstractOpenTests, CargoholdFixtures):  # type: ignore[misc]
    pass
