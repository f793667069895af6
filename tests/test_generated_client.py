"""A client generated from Roster's own OpenAPI description (openapi-python-client) works:
it authenticates, finds a person and searches an account's people."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from roster.api.app import create_app
from roster.settings import Settings
from tests.factories import Directory, bearer_token

GENERATOR = str(Path(sys.executable).with_name("openapi-python-client"))
PACKAGE = "roster_generated_client"


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    """The generated client package, imported (the description needs no database)."""
    folder = tmp_path_factory.mktemp("generated")
    settings = Settings(_env_file=None, database_url=f"sqlite:///{folder / 'unused.db'}")
    spec = folder / "openapi.json"
    spec.write_text(json.dumps(create_app(settings).openapi()))
    done = subprocess.run(
        [
            GENERATOR,
            "generate",
            "--path",
            str(spec),
            "--output-path",
            str(folder / PACKAGE),
            "--meta",
            "none",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Warning" not in done.stdout, done.stdout
    sys.path.insert(0, str(folder))
    try:
        return importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(folder))


def _module(name: str) -> ModuleType:
    return importlib.import_module(f"{PACKAGE}.{name}")


async def test_a_generated_client_finds_and_searches(
    generated: ModuleType, app: object, client: httpx.AsyncClient, directory: Directory
) -> None:
    await directory.account("F50091")
    ada = await directory.person(
        ["F50091"], first_name="Ada", last_name="Lovelace", email_address="ada@example.com"
    )
    await directory.person(["F50091"], first_name="Alan", last_name="Turing")
    caller = await directory.client(["F50091"])
    token = await bearer_token(client, caller)

    models = _module("models")
    find_persons = _module("api.persons_api.find_persons")
    list_people = _module("api.people_api.list_people")
    for credential in (token, caller.api_key):  # a bearer token, and a key sent as one
        async with generated.AuthenticatedClient(
            base_url="http://roster.test",
            token=credential,
            httpx_args={"transport": httpx.ASGITransport(app=app)},  # type: ignore[arg-type]
            raise_on_unexpected_status=True,
        ) as api:
            found = await find_persons.asyncio(
                client=api, body=models.FindPersonsRequest(email_address="ADA@example.com")
            )
            assert isinstance(found, models.FindPersonsResponse), found
            assert [(p.identifier, p.first_name) for p in found.persons] == [(str(ada), "Ada")]

            page = await list_people.asyncio(client=api, account_id="F50091", search="lovel")
            assert isinstance(page, models.PeoplePage), page
            assert page.count == 1
            assert [(r.first_name, r.last_name) for r in page.rows] == [("Ada", "Lovelace")]

    async with generated.AuthenticatedClient(
        base_url="http://roster.test",
        token="not a token",
        httpx_args={"transport": httpx.ASGITransport(app=app)},  # type: ignore[arg-type]
    ) as stranger:
        refused = await find_persons.asyncio(client=stranger, body=models.FindPersonsRequest())
    assert isinstance(refused, models.ErrorBody)
    assert refused.error.type_ == "invalid_authorization"
