"""The OpenAPI description is complete: every operation documents its answers and errors."""

from __future__ import annotations

import re
from typing import Any

import httpx

#: Health and metrics need no credentials and answer no client errors.
OPEN = {"/healthz", "/readyz", "/metrics"}
#: What every authenticated operation can answer whatever it does.
COMMON = {"401", "403", "413", "429", "500", "503"}


def _ref(response: dict[str, Any]) -> str:
    return str(response.get("content", {}).get("application/json", {}).get("schema", {}))


async def test_every_operation_documents_success_and_every_error(client: httpx.AsyncClient) -> None:
    described = (await client.get("/openapi.json")).json()
    operations = [
        (path, method, operation)
        for path, methods in described["paths"].items()
        for method, operation in methods.items()
    ]
    assert {"/persons/find/", "/persons/multiple/", "/oauth2/token"} <= {
        p for p, _, _ in operations
    }
    for path, method, operation in operations:
        responses = operation["responses"]
        assert any(code.startswith("2") for code in responses), (method, path)
        assert operation.get("summary") or operation.get("description"), (method, path)
        if path in OPEN or path == "/oauth2/token":
            continue
        assert set(responses) >= COMMON, (method, path, sorted(responses))
        assert "400" in responses, (method, path)
        for code, response in responses.items():
            if code[0] in "45":
                assert "ErrorBody" in _ref(response), (method, path, code)
        for parameter in operation.get("parameters", []):
            assert parameter.get("schema"), (method, path, parameter["name"])
    assert "HTTPValidationError" not in str(described)


async def test_the_token_endpoint_documents_its_rfc_6749_errors(client: httpx.AsyncClient) -> None:
    described = (await client.get("/openapi.json")).json()
    responses = described["paths"]["/oauth2/token"]["post"]["responses"]
    assert {"200", "400", "401"} <= set(responses)
    assert "422" not in responses


async def _described(client: httpx.AsyncClient) -> dict[str, Any]:
    described: dict[str, Any] = (await client.get("/openapi.json")).json()
    return described


async def test_operations_have_ids_a_generated_client_can_use(client: httpx.AsyncClient) -> None:
    described = await _described(client)
    ids = {
        (method.upper(), path): operation["operationId"]
        for path, methods in described["paths"].items()
        for method, operation in methods.items()
    }
    assert len(set(ids.values())) == len(ids)
    assert all(re.fullmatch(r"[a-z]+(?:[A-Z][a-z]*)*", i) for i in ids.values()), ids
    assert ids[("POST", "/persons/find/")] == "findPersons"
    assert ids[("POST", "/persons/multiple/")] == "upsertPersons"
    assert ids[("GET", "/people")] == "listPeople"
    assert ids[("POST", "/oauth2/token")] == "issueToken"


async def test_authenticated_operations_declare_their_credentials(
    client: httpx.AsyncClient,
) -> None:
    described = await _described(client)
    schemes = described["components"]["securitySchemes"]
    assert schemes["bearerToken"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schemes["bearerToken"]["description"],
    }
    assert (schemes["apiKey"]["type"], schemes["apiKey"]["in"], schemes["apiKey"]["name"]) == (
        "apiKey",
        "header",
        "Authorization",
    )
    for path, methods in described["paths"].items():
        for method, operation in methods.items():
            security = operation.get("security")
            if path in OPEN or path == "/oauth2/token":
                assert path == "/metrics" or security is None, (method, path)
                continue
            assert security == [{"bearerToken": []}, {"apiKey": []}], (method, path)
    # The metrics token is optional: it is needed only when the operator sets one.
    assert described["paths"]["/metrics"]["get"]["security"] == [{"metricsToken": []}, {}]


async def test_health_readiness_and_metrics_answers_have_schemas(
    client: httpx.AsyncClient,
) -> None:
    described = await _described(client)
    schemas = described["components"]["schemas"]
    metrics = described["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert metrics == {"text/plain": {"schema": {"type": "string"}}}
    ready = described["paths"]["/readyz"]["get"]["responses"]
    for status in ("200", "503"):
        assert _ref(ready[status]) == str({"$ref": "#/components/schemas/Readiness"})
    assert schemas["Readiness"]["properties"]["status"]["enum"] == ["ok", "unavailable"]
    assert schemas["Readiness"]["properties"]["database"]["enum"] == ["ok", "unreachable"]
    assert set(schemas["Readiness"]["required"]) == {"status", "database"}
    health = described["paths"]["/healthz"]["get"]["responses"]["200"]
    assert _ref(health) == str({"$ref": "#/components/schemas/Health"})
    # What /readyz answers is what it documents.
    answer = (await client.get("/readyz")).json()
    assert answer == {"status": "ok", "database": "ok"}
