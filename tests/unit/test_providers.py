"""The provider table (``storage/providers.py``) drives everything that names a provider: the type aliases,
``STORAGE_PROVIDER``, link schemes, the fields ``make_connection`` takes, the API's connection body and
``GET /providers``, the stores opened, and the web UI (which keeps no list of its own)."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

import pytest

from cargohold.catalog.connections import SECRET_FIELDS
from cargohold.errors import BadInput, FieldProblem
from cargohold.settings import PROVIDERS as SETTING_PROVIDERS
from cargohold.settings import declarations
from cargohold.storage import Connection, open_store
from cargohold.storage.connections import PROVIDERS as CONNECTION_NAMES
from cargohold.storage.connections import fields_of, make_connection
from cargohold.storage.providers import (
    CONNECTION_PROVIDERS,
    OWN_STORAGE,
    PROVIDERS,
    SCHEMES,
    ConnectionProviderName,
    FieldSpec,
    Origin,
    OwnStorageName,
    ProviderName,
    ProviderSpec,
)
from cargohold.storage.uris import URL_SCHEMES, ObjectLink, parse_link, parse_prefix
from cargohold.web import STATIC

from ..support.servers import service_account_file

ORIGINS: tuple[Origin, ...] = typing.get_args(Origin)


def test_the_type_aliases_are_the_table() -> None:
    assert typing.get_args(ProviderName) == tuple(PROVIDERS)
    assert typing.get_args(OwnStorageName) == OWN_STORAGE == tuple(n for n, p in PROVIDERS.items() if p.own_storage)
    assert typing.get_args(ConnectionProviderName) == CONNECTION_PROVIDERS == CONNECTION_NAMES
    assert tuple(n for n, p in PROVIDERS.items() if p.connection) == CONNECTION_PROVIDERS
    assert all(name == p.name for name, p in PROVIDERS.items())
    assert all(p.own_storage or p.connection for p in PROVIDERS.values()), "a provider nothing can use"


def test_storage_provider_takes_the_own_storage_providers_and_no_other() -> None:
    assert SETTING_PROVIDERS == OWN_STORAGE
    decl = next(d for d in declarations() if d.key == "STORAGE_PROVIDER")
    for name in PROVIDERS:
        if name in OWN_STORAGE:
            assert decl.parse(f" {name.upper()} ") == name
            assert f"`{name}`" in decl.help, f"STORAGE_PROVIDER's help does not name {name}"
        else:
            with pytest.raises(ValueError, match="not a storage provider"):
                decl.parse(name)
    assert decl.default in OWN_STORAGE


@pytest.mark.parametrize("scheme", sorted(SCHEMES))
def test_each_scheme_parses_to_its_provider(scheme: str) -> None:
    name = SCHEMES[scheme]
    assert PROVIDERS[name].connection, "links are read through connections"
    assert parse_link(f"{scheme.upper()}://bucket/a/b.jpg") == ObjectLink(scheme, name, "bucket", "a/b.jpg")
    assert parse_prefix(f"{scheme}://bucket/a/").provider == name


def test_the_schemes_are_the_tables_and_the_messages_list_them() -> None:
    assert {s: p.name for p in PROVIDERS.values() for s in p.schemes} == SCHEMES
    assert not set(SCHEMES) & set(URL_SCHEMES)
    for p in PROVIDERS.values():
        assert p.scheme == (p.schemes[0] if p.schemes else "")
        assert bool(p.schemes) == p.connection, f"{p.name}: a connection provider serves links, and only it"
    messages = []
    for text, parse in (("ftp://b/k", parse_link), ("no link", parse_link), ("ftp://b/", parse_prefix)):
        with pytest.raises(BadInput) as refused:
            parse(text)
        messages.append(refused.value.message)
    for scheme in SCHEMES:
        assert all(re.search(rf"\b{scheme}\b", m) for m in messages), (scheme, messages)
    assert all(s in messages[0] for s in URL_SCHEMES)


def _value(field: FieldSpec, tmp_path: Path) -> str | list[str]:
    """A value ``make_connection`` takes for the field."""
    if field.kind == "list":
        return ["first-bucket", "second-bucket"]
    if field.name == "credentials_path":
        return str(service_account_file(tmp_path / "key.json"))
    if field.kind == "json":
        return service_account_file(tmp_path / "key-for-json.json").read_text()
    if field.name == "path":
        (tmp_path / "folder").mkdir(exist_ok=True)
        return str(tmp_path / "folder")
    return {"endpoint": "http://127.0.0.1:9000", "secret_key": "a2V5LWtleS1rZXk=", "storage_id": "ids"}.get(
        field.name, f"{field.name}-value")


def _make(name: str, values: dict[str, Any], origin: Origin, tmp_path: Path) -> Any:
    return make_connection("c", {"provider": name, **values}, origin, fs_roots=(tmp_path,),
                           fs_protected=(tmp_path / "home",))


def _choices(p: ProviderSpec, origin: Origin) -> list[str]:
    return [c for c in dict.fromkeys(f.choice for f in p.fields_of(origin)) if c] or [""]


@pytest.mark.parametrize("origin", ORIGINS)
@pytest.mark.parametrize("name", CONNECTION_PROVIDERS)
def test_make_connection_takes_exactly_the_fields_of_the_table(name: str, origin: Origin, tmp_path: Path) -> None:
    p = PROVIDERS[name]
    assert fields_of(name, origin) == p.field_names(origin)
    everything = {f.name: _value(f, tmp_path) for f in p.fields_of(origin)}
    for choice in _choices(p, origin):
        # the fields outside any choice, and one choice's: accepted
        given = {f.name: everything[f.name] for f in p.fields_of(origin) if f.choice in ("", choice)}
        named = _make(name, given, origin, tmp_path)
        assert named.provider == name
        # leave out a required one: refused, naming it (or, in a choice, a field of the choices)
        in_choices = {f.name for f in p.fields_of(origin) if f.choice}
        for f in p.fields_of(origin):
            if f.required and f.name in given:
                with pytest.raises(FieldProblem) as refused:
                    _make(name, {k: v for k, v in given.items() if k != f.name}, origin, tmp_path)
                assert refused.value.field in (in_choices if f.choice else {f.name}), (name, origin, f.name,
                                                                                      refused.value)
    if len(_choices(p, origin)) > 1:  # two choices at once: refused
        with pytest.raises(FieldProblem):
            _make(name, everything, origin, tmp_path)
    # a field of another origin or provider: refused, with the fields it takes in the message
    others = {f.name for q in PROVIDERS.values() for f in q.fields} - set(p.field_names(origin))
    for field in sorted(others):
        with pytest.raises(FieldProblem) as refused:
            _make(name, {**everything, field: "x"}, origin, tmp_path)
        assert refused.value.field == field and ", ".join(p.field_names(origin)) in refused.value.fix


def test_an_unknown_provider_is_refused_naming_the_tables() -> None:
    for values in ({"provider": "ftp"}, {}):
        with pytest.raises(FieldProblem) as refused:
            make_connection("c", values, "file")
        assert all(name in refused.value.fix for name in CONNECTION_PROVIDERS), refused.value.fix


def test_secrets_are_the_secret_fields_of_the_table() -> None:
    secret = {f.name for p in PROVIDERS.values() for f in p.fields if f.secret}
    assert set(SECRET_FIELDS) == secret
    for p in PROVIDERS.values():
        for f in p.fields:
            assert f.origins and set(f.origins) <= set(ORIGINS), (p.name, f.name)
            assert not (f.secret and f.kind == "list"), (p.name, f.name)
            assert f.label and not f.label.endswith("."), (p.name, f.name)


def test_the_api_body_takes_the_fields_of_the_table() -> None:
    from cargohold.http.routes.connections import ConnectionIn

    catalog_fields = {f.name for name in CONNECTION_PROVIDERS for f in PROVIDERS[name].fields_of("catalog")}
    assert set(ConnectionIn.model_fields) == {"provider"} | catalog_fields
    assert typing.get_args(ConnectionIn.model_fields["provider"].annotation) == CONNECTION_PROVIDERS


def test_get_providers_answers_the_table() -> None:
    from cargohold.http.routes.connections import list_providers

    answer = asyncio.run(list_providers()).model_dump()
    assert [p["name"] for p in answer["providers"]] == list(PROVIDERS)
    for out in answer["providers"]:
        p = PROVIDERS[out["name"]]
        assert (out["label"], out["title"], out["bucket"], out["schemes"]) == (p.label, p.title, p.bucket,
                                                                             list(p.schemes))
        assert (out["own_storage"], out["connection"], out["server_folder"]) == (p.own_storage, p.connection,
                                                                                 p.server_folder)
        assert [f["name"] for f in out["fields"]] == list(p.field_names("catalog"))
        for f in out["fields"]:
            spec = next(s for s in p.fields if s.name == f["name"])
            assert f == {"name": spec.name, "label": spec.label, "help": spec.help, "example": spec.example,
                         "required": spec.required, "secret": spec.secret, "kind": spec.kind,
                         "choice": spec.choice or None}


@pytest.mark.parametrize("name", list(PROVIDERS))
def test_each_provider_opens_through_its_module(name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from cargohold.storage import azure, gcs, local, s3

    opened: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def recorder(what: str) -> Any:
        def record(*args: Any, **kwargs: Any) -> str:
            opened.append((what, args, kwargs))
            return what
        return record

    monkeypatch.setattr(s3, "open_s3", recorder("s3.open_s3"))
    monkeypatch.setattr(azure, "open_azure", recorder("azure.open_azure"))
    monkeypatch.setattr(gcs, "GcsStore", recorder("gcs.GcsStore"))
    monkeypatch.setattr(local, "LocalStore", recorder("local.LocalStore"))
    conn = Connection(name, root=tmp_path)  # type: ignore[arg-type]  # every name of the table
    assert open_store(conn, "bucket") == PROVIDERS[name].open(conn, "bucket")
    (what, args, kwargs), _ = opened
    expected = {"http": ("local.LocalStore", (tmp_path / "bucket",), {}),
                "fs": ("local.LocalStore", (tmp_path,), {"read_only": True})}
    assert (what, args, kwargs) == expected.get(name, (what, (conn, "bucket"), {}))
    assert what.split(".")[0] in {"minio": "s3", "azure": "azure", "google": "gcs"}.get(name, "local")


def test_settings_can_be_imported_before_storage() -> None:
    """settings.py reads the table from storage/, whose own.py reads settings.py: either may come first."""
    for first in ("cargohold.settings", "cargohold.storage", "cargohold.storage.own", "cargohold.storage.providers"):
        subprocess.run([sys.executable, "-c", f"import {first}; import cargohold.http.app"], check=True)


def test_the_web_ui_keeps_no_provider_list_of_its_own() -> None:
    """The views read GET /providers; a provider's name in a script (`'minio'`, `azure:`) is a copy of the table."""
    names = "|".join(re.escape(n) for n in PROVIDERS)
    copy = re.compile(rf"""['"`]({names})['"`]|\b({names})\s*:(?!//)""")
    found = [(path.name, m.group(0)) for path in sorted((STATIC / "js").rglob("*.js"))
             for m in copy.finditer(path.read_text())]
    assert not found, found
