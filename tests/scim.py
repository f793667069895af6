"""A SCIM client for tests: SCIM's media type, a bearer API key, answers checked."""

from __future__ import annotations

from typing import Any

import httpx

from tests.factories import Client

ACCOUNT = "S1"
BASE = f"/scim/v2/{ACCOUNT}"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


class Scim:
    def __init__(self, http: httpx.AsyncClient, caller: Client) -> None:
        self.http = http
        self.headers = {
            "Authorization": f"Bearer {caller.api_key}",
            "Content-Type": "application/scim+json",
        }

    async def __call__(
        self,
        method: str,
        path: str,
        body: Any = None,
        expect: int = 200,
        headers: dict[str, str] | None = None,
    ) -> Any:
        response = await self.http.request(
            method, BASE + path, json=body, headers={**self.headers, **(headers or {})}
        )
        assert response.status_code == expect, response.text
        if expect >= 400:
            assert response.headers["content-type"] == "application/scim+json"
            found = response.json()
            assert found["schemas"] == [ERROR]
            assert found["status"] == str(expect)
        return response.json() if response.content else None

    async def create(self, **given: Any) -> dict[str, Any]:
        body = {"schemas": [USER], **given}
        created: dict[str, Any] = await self("POST", "/Users", body, expect=201)
        return created

    async def patch(self, path: str, *operations: dict[str, Any], expect: int = 200) -> Any:
        return await self(
            "PATCH", path, {"schemas": [PATCH], "Operations": list(operations)}, expect
        )
