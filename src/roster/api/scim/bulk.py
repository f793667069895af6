"""SCIM Bulk (RFC 7644 §3.7): up to MAX_BULK_OPERATIONS operations on Users and Groups in one
request, each served by the same routes as alone (an in-process request with the
caller's credentials), in order; ``bulkId`` references (``bulkId:q1``) in paths and data
are resolved to the ids the earlier operations created; ``failOnErrors`` stops the run.
Each operation is its own unit of work, as the RFC's operations are independent.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import orjson
from fastapi import Request, Response

from roster.api.deps import ReadConnection
from roster.api.scim.discovery import MAX_BULK_OPERATIONS
from roster.api.scim.errors import InvalidSyntax, ScimInvalid
from roster.api.scim.routes import (
    Reader,
    account_of,
    json_body,
    router,
    scim_response,
)

BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
BULK_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
_METHODS = ("POST", "PUT", "PATCH", "DELETE")
_PATH = re.compile(r"^/(Users|Groups)(/[^/?#]+)?$")
_REFERENCE = re.compile(r"bulkId:([A-Za-z0-9._~-]+)")


class _Unresolved(Exception):
    def __init__(self, bulk_id: str) -> None:
        self.bulk_id = bulk_id


def _resolved(value: Any, ids: dict[str, str]) -> Any:
    """``value`` with every ``bulkId:x`` replaced by the id operation ``x`` created."""
    if isinstance(value, str):

        def swap(found: re.Match[str]) -> str:
            if found.group(1) not in ids:
                raise _Unresolved(found.group(1))
            return ids[found.group(1)]

        return _REFERENCE.sub(swap, value)
    if isinstance(value, list):
        return [_resolved(item, ids) for item in value]
    if isinstance(value, dict):
        return {key: _resolved(item, ids) for key, item in value.items()}
    return value


def _error(status: int, detail: str, scim_type: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
        "status": str(status),
        "detail": detail,
    }
    if scim_type:
        body["scimType"] = scim_type
    return body


@router.post("/Bulk")
async def bulk(
    request: Request, account_id: str, principal: Reader, conn: ReadConnection
) -> Response:
    """Several operations in one request; each one's status in the answer."""
    account = await account_of(conn, principal, account_id)
    principal.require("write")
    body = await json_body(request)
    if body.get("schemas") not in (None, [BULK_REQUEST]):
        raise ScimInvalid(f"A bulk request's schemas must be [{BULK_REQUEST!r}].")
    operations = body.get("Operations")
    if not isinstance(operations, list) or not all(isinstance(o, dict) for o in operations):
        raise InvalidSyntax("A bulk request needs Operations: a list of operations.")
    if len(operations) > MAX_BULK_OPERATIONS:
        raise ScimInvalid(
            f"A bulk request holds at most {MAX_BULK_OPERATIONS} operations.", status=413
        )
    fail_on_errors = body.get("failOnErrors")
    if fail_on_errors is not None and (
        not isinstance(fail_on_errors, int) or isinstance(fail_on_errors, bool)
    ):
        raise ScimInvalid("failOnErrors must be an integer.")
    base = f"/scim/v2/{account}"
    headers = {"authorization": request.headers.get("authorization", "")}
    ids: dict[str, str] = {}
    results: list[dict[str, Any]] = []
    errors = 0
    transport = httpx.ASGITransport(app=request.app)
    async with httpx.AsyncClient(transport=transport, base_url=str(request.base_url)) as http:
        for operation in operations:
            if fail_on_errors and errors >= fail_on_errors:
                break
            result = await _one(http, base, headers, operation, ids)
            results.append(result)
            if int(result["status"]) >= 400:
                errors += 1
    return scim_response({"schemas": [BULK_RESPONSE], "Operations": results})


async def _one(
    http: httpx.AsyncClient,
    base: str,
    headers: dict[str, str],
    operation: dict[str, Any],
    ids: dict[str, str],
) -> dict[str, Any]:
    method = str(operation.get("method") or "").upper()
    bulk_id = operation.get("bulkId")
    path = operation.get("path")
    result: dict[str, Any] = {"method": method}
    if isinstance(bulk_id, str):
        result["bulkId"] = bulk_id
    if method not in _METHODS:
        return {
            **result,
            "status": "400",
            "response": _error(400, "Unknown method.", "invalidSyntax"),
        }
    if method == "POST" and not isinstance(bulk_id, str):
        return {
            **result,
            "status": "400",
            "response": _error(400, "A POST needs a bulkId.", "invalidValue"),
        }
    try:
        path = _resolved(path, ids)
        data = _resolved(operation.get("data"), ids)
    except _Unresolved as missing:
        detail = f"bulkId:{missing.bulk_id} names no resource created before this operation."
        return {**result, "status": "409", "response": _error(409, detail, "invalidValue")}
    if (
        not isinstance(path, str)
        or not _PATH.match(path)
        or (method == "POST") == ("/" in path[1:])
    ):
        return {**result, "status": "400", "response": _error(400, "Bad path.", "invalidPath")}
    sent = dict(headers)
    if isinstance(operation.get("version"), str):
        sent["if-match"] = operation["version"]
    answer = await http.request(
        method,
        base + path,
        content=None if data is None else orjson.dumps(data),
        headers={**sent, "content-type": "application/scim+json"},
    )
    result["status"] = str(answer.status_code)
    if answer.headers.get("location"):
        result["location"] = answer.headers["location"]
    if answer.headers.get("etag"):
        result["version"] = answer.headers["etag"]
    if answer.status_code >= 400:
        result["response"] = answer.json()
    elif method == "POST" and isinstance(bulk_id, str):
        ids[bulk_id] = str(answer.json()["id"])
    return result
