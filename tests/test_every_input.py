"""Every input the OpenAPI document describes refuses text no database can store.

The test walks every parameter (query, path) and every body field (nested ones too) of
``app.openapi()``, and sends a NUL and a lone surrogate in each, the rest of the request
valid: the answer is ``400 invalid_request`` naming exactly that input (the token
endpoint's RFC 6749 ``invalid_request``), never a 500 or a 503. A lone surrogate travels
only in JSON (``\\ud800``): a query string, a path or a form carries UTF-8, where the
same bytes arrive as U+FFFD, which is ordinary text; those must still never be a 5xx.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI

from tests.factories import Client, Directory

ACCOUNT = "F50091"
NUL = "\x00"
SURROGATE = "\ud800"
#: A lone surrogate as it would be written in UTF-8, were that allowed (CESU-8).
SURROGATE_BYTES = "%ED%A0%80"


@pytest.fixture
async def caller(directory: Directory) -> Client:
    await directory.account(ACCOUNT)
    # admin too: erasure's input is checked once the caller may erase.
    return await directory.client([ACCOUNT], scopes=("read", "write", "admin"))


def _resolved(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[1]]
    if "anyOf" in schema:  # X | None: the X
        return _resolved(next(s for s in schema["anyOf"] if s.get("type") != "null"), components)
    return schema


def example(schema: dict[str, Any], components: dict[str, Any]) -> Any:
    """A value the schema describes (the OpenAPI document's own rules, nothing else)."""
    schema = _resolved(schema, components)
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object":
        return {
            name: example(schema["properties"][name], components)
            for name in schema.get("required", [])
        }
    if kind == "array":
        return [example(schema["items"], components)] * max(1, schema.get("minItems", 0))
    if kind in ("integer", "number"):
        return schema.get("minimum", 1)
    if kind == "boolean":
        return True
    formats = {"uuid": str(uuid.uuid4()), "date": "1990-01-31", "email": "ann@example.com"}
    if schema.get("format") in formats:
        return formats[schema["format"]]
    pattern = schema.get("pattern", "")
    if "A-Za-z0-9_-" in pattern:
        return ACCOUNT
    if "[Gg][Bb]" in pattern:  # the country codes
        return "GB"
    return "x" * max(1, schema.get("minLength", 1))


@dataclass(frozen=True)
class Input:
    """One input of one operation, and how the answer names it."""

    method: str
    path: str
    where: str  # query, path, body (JSON) or form
    route: tuple[str | int, ...]  # the input's place: a parameter, or a body field's path

    @property
    def name(self) -> str:
        """``persons[0].first_name``, as an error names it."""
        written = ""
        for part in self.route:
            written += f"[{part}]" if isinstance(part, int) else ("." if written else "") + part
        return written

    def __str__(self) -> str:
        return f"{self.method} {self.path} {self.where}:{self.name}"


def _fields(
    schema: dict[str, Any], components: dict[str, Any], route: tuple[str | int, ...]
) -> Iterator[tuple[str | int, ...]]:
    """Every field of a body schema, and the items and fields of those that hold more."""
    schema = _resolved(schema, components)
    for name, field in schema.get("properties", {}).items():
        yield (*route, name)
        held = _resolved(field, components)
        if held.get("type") == "array":
            items = _resolved(held["items"], components)
            yield (*route, name, 0)
            if items.get("type") == "object":
                yield from _fields(items, components, (*route, name, 0))


def inputs(app: FastAPI) -> list[Input]:
    described = app.openapi()
    components = described["components"]["schemas"]
    found: list[Input] = []
    for path, methods in described["paths"].items():
        for method, operation in methods.items():
            for parameter in operation.get("parameters", []):
                found.append(Input(method, path, parameter["in"], (parameter["name"],)))
            for media, content in operation.get("requestBody", {}).get("content", {}).items():
                where = "body" if media == "application/json" else "form"
                for route in _fields(content["schema"], components, ()):
                    found.append(Input(method, path, where, route))
    return found


def _placed(body: Any, route: tuple[str | int, ...], value: Any) -> Any:
    """The body with ``value`` at ``route`` (a list or object on the way is made)."""
    if not route:
        return value
    head, rest = route[0], route[1:]
    if isinstance(head, int):
        items = list(body) if isinstance(body, list) and body else [{}]
        items[0] = _placed(items[0], rest, value)
        return items
    fields = dict(body) if isinstance(body, dict) else {}
    fields[head] = _placed(fields.get(head), rest, value)
    return fields


def _written(value: Any) -> str:
    """A value as a URL or a form writes it."""
    return quote(str(value).lower() if isinstance(value, bool) else str(value), safe="")


async def send(
    client: httpx.AsyncClient, app: FastAPI, caller: Client, target: Input, value: str
) -> httpx.Response:
    """The input's operation, valid but for ``value`` in the input; in a URL or a form,
    ``value`` is written as it travels (percent-encoded)."""
    described = app.openapi()
    components = described["components"]["schemas"]
    operation = described["paths"][target.path][target.method]
    path, query = target.path, []
    for parameter in operation.get("parameters", []):
        name, where = parameter["name"], parameter["in"]
        if (where, (name,)) == (target.where, target.route):
            written = value
        elif where == "path" or parameter.get("required"):
            written = _written(example(parameter["schema"], components))
        else:
            continue
        if where == "path":
            path = path.replace("{" + name + "}", written)
        else:
            query.append(f"{_written(name)}={written}")
    url = f"{path}?{'&'.join(query)}" if query else path
    headers = dict(caller.headers)
    content = operation.get("requestBody", {}).get("content", {})
    if target.where == "form":  # the token endpoint's: the caller's own credentials
        form = {
            "grant_type": "client_credentials",
            "client_id": caller.client_id,
            "client_secret": caller.secret,
        }
        written_form = {k: _written(v) for k, v in form.items()}
        written_form[str(target.route[0])] = value
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        encoded = "&".join(f"{k}={v}" for k, v in written_form.items())
        return await client.request(target.method.upper(), url, content=encoded, headers=headers)
    if "application/json" in content:
        body = example(content["application/json"]["schema"], components)
        if target.where == "body":
            body = _placed(body, target.route, value)
        headers["Content-Type"] = "application/json"
        # json.dumps writes a lone surrogate as the escape \ud800, as JSON carries it.
        return await client.request(
            target.method.upper(), url, content=json.dumps(body), headers=headers
        )
    return await client.request(target.method.upper(), url, headers=headers)


#: What each input is sent: as JSON carries them, and as a URL or a form writes them.
IN_JSON = {"NUL": NUL, "a NUL inside": f"a{NUL}b", "a lone surrogate": SURROGATE}
IN_URL = {"NUL": "%00", "a NUL inside": "a%00b", "a lone surrogate": SURROGATE_BYTES}


def refused_naming(response: httpx.Response, target: Input) -> None:
    """400 invalid_request naming exactly the input (RFC 6749's shape at the token endpoint)."""
    assert response.status_code == 400, (str(target), response.text)
    body = response.json()
    if target.path == "/oauth2/token":
        assert body["error"] == "invalid_request", (str(target), body)
        assert body["error_description"].startswith(target.name), (str(target), body)
        return
    assert body["error"]["type"] == "invalid_request", (str(target), body)
    assert [d["field"] for d in body["error"]["details"]] == [target.name], (str(target), body)


async def test_every_input_refuses_text_no_database_stores(
    client: httpx.AsyncClient, app: FastAPI, caller: Client
) -> None:
    walked = inputs(app)
    # The walk reaches every kind of input, nested ones too.
    names = {str(target) for target in walked}
    for expected in (
        "get /people query:search",
        "get /people query:roleNames",
        "patch /people/{personId} path:personId",
        "post /persons/find/ body:first_name",
        "post /persons/multiple/ body:persons[0].email_address",
        "post /persons/multiple/ body:persons[0].group_ids[0]",
        "post /oauth2/token form:client_id",
        "post /addresses body:country",
    ):
        assert expected in names, sorted(names)
    assert len(walked) > 100
    for target in walked:
        for label, value in IN_JSON.items() if target.where == "body" else IN_URL.items():
            response = await send(client, app, caller, target, value)
            assert response.status_code < 500, (str(target), label, response.text)
            if target.where == "body" or label != "a lone surrogate":
                refused_naming(response, target)
            elif target.path == "/oauth2/token":
                # U+FFFD: not the grant type; credentials that match no client.
                grant = target.name == "grant_type"
                assert response.status_code == (400 if grant else 401), response.text
                error = "unsupported_grant_type" if grant else "invalid_client"
                assert response.json()["error"] == error
            elif response.status_code == 400:
                # U+FFFD: ordinary text, refused only by the input's own rules.
                fields = [d["field"] for d in response.json()["error"]["details"]]
                assert fields == [target.name], (str(target), response.text)
