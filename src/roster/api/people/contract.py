"""What every People API endpoint shares: its credential contract, its query
parameters' rules, and its routers' common error answers.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.alias_generators import to_camel
from sqlalchemy.ext.asyncio import AsyncConnection

from roster.api.deps import CredentialContract, authenticated, require_json_body
from roster.api.errors import naming_route
from roster.api.fields import AccountId
from roster.api.openapi import error_responses
from roster.api.people.models import field_name
from roster.core.accounts import require_account
from roster.core.auth import Principal
from roster.core.people.paging import Page, Paging
from roster.errors import InvalidRequest

T = TypeVar("T")

#: This API's contract (spec/people-api.md): missing or expired 401, invalid 403.
PEOPLE_CREDENTIALS = CredentialContract(missing=401, invalid=403, expired=401)
Reader = Annotated[Principal, Depends(authenticated(PEOPLE_CREDENTIALS, "read"), scope="function")]
Writer = Annotated[Principal, Depends(authenticated(PEOPLE_CREDENTIALS, "write"), scope="function")]
#: GET /people's reader, on the listing engine's connection (ListingConnection).
Lister = Annotated[
    Principal,
    Depends(authenticated(PEOPLE_CREDENTIALS, "read", listing=True), scope="function"),
]

#: The seed types limit and offset as int32.
INT32_MAX = 2**31 - 1
#: The query parameters that take several values; any other may be given once only.
LIST_PARAMETERS = frozenset(
    ("include", "status", "teams", "roles", "roleNames", "people", "budgetId", "types")
)
#: At most this many values in one list parameter.
MAX_VALUES = 1000


def one_of(allowed: tuple[str, ...]) -> Callable[[str], str]:
    """A list parameter's check of each value: one of ``allowed``."""

    def check(value: str) -> str:
        if value not in allowed:
            raise ValueError(f"{value!r} is not one of {', '.join(allowed)}")
        return value

    return check


def listed(parse: Callable[[str], object]) -> BeforeValidator:
    """Values given comma-separated, repeated, or both; each one parsed and checked."""

    def split(given: object) -> list[object]:
        values = [
            part.strip()
            for item in (given if isinstance(given, list) else [given])
            for part in str(item).split(",")
        ]
        if len(values) > MAX_VALUES:
            raise ValueError(f"takes at most {MAX_VALUES} values")
        if "" in values:
            raise ValueError("must not hold an empty value")
        return [parse(value) for value in values]

    return BeforeValidator(split)


async def one_value_each(request: Request) -> None:
    """400 for a single-valued parameter given twice (``limit=1&limit=2``): no guessing.
    A coroutine: FastAPI runs a plain function dependency in its thread pool, and
    handing every People API request to a thread and back cost more than the check."""
    names = Counter(name for name, _ in request.query_params.multi_items())
    for name, times in names.items():
        if times > 1 and name not in LIST_PARAMETERS:
            raise InvalidRequest.field(name, "must be given once", core=False)


class QueryParameters(BaseModel):
    """Query parameters in camelCase; an unknown one is refused, never ignored."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel)


class AccountScope(QueryParameters):
    account_id: AccountId = Field(description="The ID of the account to work with.")


class PageParameters(QueryParameters):
    """An offset page of a smaller list (roles, teams, budgets, accounts, clients)."""

    limit: int = Field(100, ge=1, le=1000, description="The maximum number of items to return.")
    offset: int = Field(0, ge=0, le=INT32_MAX, description="The number of items to skip.")

    def paging(self) -> Paging:
        return Paging(self.limit, self.offset)


class AccountPage(PageParameters, AccountScope):
    pass


def people_router(tag: str) -> APIRouter:
    """A router of the People API: JSON bodies, one value per plain parameter."""
    return APIRouter(
        tags=[tag],
        dependencies=[Depends(require_json_body), Depends(one_value_each)],
        responses=error_responses(400, 401, 403, 404, 405, 413, 414, 415, 429, 431, 500, 503),
        route_class=naming_route(field_name),
    )


#: The account a call works on, named in the query (``?accountId=``).
Scope = Annotated[AccountScope, Query()]
#: The account and the page of one of its lists (roles, teams, budgets).
Listing = Annotated[AccountPage, Query()]
PersonaId = Annotated[uuid.UUID, Path(alias="personaId")]


async def account_page(
    conn: AsyncConnection,
    principal: Principal,
    listing: AccountPage,
    lister: Callable[[AsyncConnection, str, Paging], Awaitable[Page[T]]],
    render: Callable[[T], object],
) -> dict[str, Any]:
    """One page of one of the account's lists, rendered."""
    account_id = await require_account(conn, principal, listing.account_id)
    page = await lister(conn, account_id, listing.paging())
    rows = [render(row) for row in page.rows]
    return {"count": page.count, "limit": page.limit, "offset": page.offset, "rows": rows}
