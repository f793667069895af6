"""``GET /people``: an account's people, streamed as they are read."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Annotated, Literal

import orjson
from fastapi import Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BeforeValidator, Field, StringConstraints
from starlette.types import Receive, Scope, Send

from roster.api.deps import ListingConnection, snapshot_for
from roster.api.fields import STORABLE, AccountId, Schema, declared_type, printable_without
from roster.api.people.contract import (
    INT32_MAX,
    Lister,
    QueryParameters,
    listed,
    one_of,
    people_router,
)
from roster.api.people.models import (
    PeoplePage,
    PersonaStatus,
    include_name,
    item_key,
    row_json,
)
from roster.core.accounts import require_account
from roster.core.fields import PERSONA_STATUSES, ROLE, UNSTORABLE, storable
from roster.core.people.embeds import EMBEDS
from roster.core.people.listing import PeoplePage as PeoplePageRead
from roster.core.people.listing import PeopleQuery, list_people, search_page
from roster.db.backends import json_default

router = people_router("People API")

#: Rows rendered between two turns of the event loop.
RENDER_SLICE = 100


def _uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a UUID") from None


def _text(value: str) -> str:
    if not storable(value):
        raise ValueError(UNSTORABLE)
    return value


def _true_or_false(value: object) -> bool:
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ValueError("must be true or false")


Ids = Annotated[list[uuid.UUID], listed(_uuid)]
#: A role name in ``roleNames``: the declared field's rules, and no comma (values are
#: separated by commas, so a name holding one cannot be asked for by name).
_NO_COMMA = printable_without(",")
if TYPE_CHECKING:
    RoleName = str
else:
    RoleName = Annotated[declared_type(ROLE["name"]), Schema(pattern=_NO_COMMA)]
#: The embeds by the names ``include`` takes.
EMBEDS_NAMED = {include_name(embed): embed for embed in EMBEDS}
if TYPE_CHECKING:
    EmbedName = str
else:
    EmbedName = Literal[tuple(EMBEDS_NAMED)]


class PeopleParameters(QueryParameters):
    """The parameters of ``GET /people`` (spec/people-api.md)."""

    account_id: AccountId = Field(description="The ID of the account to work with.")
    limit: int = Field(100, ge=1, le=100000, description="The maximum number of rows to return.")
    offset: int = Field(0, ge=0, le=INT32_MAX, description="The number of rows to skip.")
    search: Annotated[str, StringConstraints(max_length=100), STORABLE] | None = Field(
        None, description="Every term must occur in a name, email or number."
    )
    include: Annotated[list[EmbedName], listed(one_of(tuple(EMBEDS_NAMED)))] = Field(
        default_factory=list, description="Embeds to add inside each row's persona."
    )
    status: Annotated[list[PersonaStatus], listed(one_of(PERSONA_STATUSES))] = Field(
        default_factory=list, description="Personas with any of these statuses."
    )
    teams: Ids = Field(default_factory=list, description="Personas in any of these teams.")
    roles: Ids = Field(default_factory=list, description="Personas with any of these roles.")
    role_names: Annotated[list[RoleName], listed(_text)] = Field(
        default_factory=list, description="The same by role name, ignoring case."
    )
    people: Ids = Field(default_factory=list, description="Only these persons.")
    without_individual_budget: Annotated[bool, BeforeValidator(_true_or_false)] = Field(
        False, description="true: only personas that own no individual budget."
    )
    budget_id: Ids = Field(
        default_factory=list, description="Personas owning or members of any of these budgets."
    )

    def core_query(self) -> PeopleQuery:
        return PeopleQuery(
            limit=self.limit,
            offset=self.offset,
            search=self.search,
            include=frozenset(EMBEDS_NAMED[name] for name in self.include),
            statuses=frozenset(self.status),
            team_ids=frozenset(self.teams),
            role_ids=frozenset(self.roles),
            role_names=frozenset(self.role_names),
            person_ids=frozenset(self.people),
            without_individual_budget=self.without_individual_budget,
            budget_ids=frozenset(self.budget_id),
        )


async def _people_json(
    request: Request, account_id: str, parameters: PeopleParameters
) -> AsyncGenerator[bytes, None]:
    """The answer's JSON, in pieces, read in one read transaction (on a replica or the
    primary), so that the count and the rows agree."""
    async with snapshot_for(request) as conn:
        page = await list_people(conn, account_id, parameters.core_query(), item_key)
        async for piece in _page_json(parameters, page):
            yield piece


async def _page_json(
    parameters: PeopleParameters, page: PeoplePageRead
) -> AsyncGenerator[bytes, None]:
    """A page's JSON, in pieces: the head once the count is known, then each chunk of rows."""
    head = {
        "limit": parameters.limit,
        "offset": parameters.offset,
        "count": page.count,
        "search": parameters.search,
    }
    yield orjson.dumps(head)[:-1] + b',"rows":['
    separator = b""
    async for chunk in page.chunks:
        for start in range(0, len(chunk), RENDER_SLICE):
            rows = chunk[start : start + RENDER_SLICE]
            yield separator + b",".join(
                orjson.dumps(row_json(row), default=json_default) for row in rows
            )
            separator = b","
            # A turn for the event loop: the next chunk's queries go on meanwhile.
            await asyncio.sleep(0)
    yield b"]}"


async def _after(first: bytes, rest: AsyncGenerator[bytes, None]) -> AsyncGenerator[bytes, None]:
    try:
        yield first
        async for piece in rest:
            yield piece
    finally:
        await rest.aclose()


class _JsonStream(StreamingResponse):
    """A streamed answer that closes its pieces however it ends. Starlette leaves a stream
    cut short by a client's disconnect suspended until garbage collection, which would
    hold its read transaction and connection until then.
    """

    def __init__(self, pieces: AsyncGenerator[bytes, None]) -> None:
        super().__init__(pieces, media_type="application/json")
        self._pieces = pieces

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._pieces.aclose()


@router.get(
    "/people",
    summary="List people",
    response_model=None,
    responses={200: {"model": PeoplePage, "description": "A page of the account's people."}},
)
async def list_people_endpoint(
    request: Request,
    conn: ListingConnection,
    principal: Lister,
    parameters: Annotated[PeopleParameters, Query()],
) -> Response:
    """List the people of an account: search, filters, embeds, offset pages up to 100,000."""
    account_id = await require_account(conn, principal, parameters.account_id)
    # A search's page of up to SEARCH_PAGE_LIMIT rows is one statement on this
    # connection; else a snapshot of its own counts and streams the page.
    found = await search_page(conn, account_id, parameters.core_query(), item_key)
    if found is not None:
        pieces = [piece async for piece in _page_json(parameters, found)]
        return Response(b"".join(pieces), media_type="application/json")
    body = _people_json(request, account_id, parameters)
    # The first piece runs the count: a fault there is still answered as an error.
    first = await anext(body)
    return _JsonStream(_after(first, body))
