"""The OpenAPI description is complete: every operation documents its answers and errors."""

from __future__ import annotations

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
