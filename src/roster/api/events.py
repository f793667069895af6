"""``GET /events``: an account's change log, oldest first, with long polling (spec/events.md).

Events are stored with core names; :func:`event_json` renders one in the People API's
names (its ``data`` as that API renders the resource), for this feed and for
``roster events export``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

import orjson
from fastapi import Depends, Query, Request
from pydantic import Field, StringConstraints
from sqlalchemy.ext.asyncio import AsyncEngine

from roster.api.deps import authenticated_briefly, services
from roster.api.fields import STORABLE, AccountId, Timestamp
from roster.api.openapi import error_responses
from roster.api.people.contract import (
    PEOPLE_CREDENTIALS,
    QueryParameters,
    listed,
    one_of,
    people_router,
)
from roster.api.people.models import CamelModel, item_key, row_json, timestamp
from roster.core.accounts import require_account
from roster.core.auth import Principal
from roster.core.events import (
    EVENT_TYPES,
    MAX_PAGE,
    PERSON_KEYS,
    PERSONA_KEYS,
    RESOURCE_TYPES,
    EventFilter,
    StoredEvent,
    prune_events,
    pruned_through,
    read_events,
)
from roster.core.fields import PERSON, PERSONA
from roster.core.people.persona_rows import PersonaRow
from roster.core.webhooks import prune_deliveries
from roster.db.backends import DATABASE_ERRORS
from roster.db.engine import unit_of_work

log = logging.getLogger("roster.events")

router = people_router("Events")

#: How often a long poll looks for new events.
POLL_SECONDS = 0.2
#: The longest long poll.
MAX_WAIT = 60
#: What ``types`` takes: an event type, or every type of a resource.
TYPE_FILTERS = (*EVENT_TYPES, *(f"{resource}.*" for resource in RESOURCE_TYPES))
if TYPE_CHECKING:
    TypeFilter = str
else:
    TypeFilter = Literal[TYPE_FILTERS]

_Id = Annotated[str, StringConstraints(min_length=1, max_length=64), STORABLE]


class EventParameters(QueryParameters):
    """The parameters of ``GET /events``."""

    account_id: AccountId = Field(description="The account whose events to read.")
    after: int | None = Field(
        None,
        ge=0,
        le=2**63 - 1,
        description=(
            "The id of the last event read: the events after it. Left out: from the oldest "
            "event kept. An id older than the oldest kept is 410 events_expired."
        ),
    )
    limit: int = Field(100, ge=1, le=MAX_PAGE, description="The most events to return.")
    types: Annotated[list[TypeFilter], listed(one_of(TYPE_FILTERS))] = Field(
        default_factory=list,
        description="Only these types (comma-separated or repeated); `persona.*`: all of one.",
    )
    resource_id: _Id | None = Field(None, description="Only events about this resource (its id).")
    actor_id: _Id | None = Field(None, description="Only events by this actor (a client id).")
    wait: int = Field(
        0,
        ge=0,
        le=MAX_WAIT,
        description="Seconds to hold the request open until an event arrives (long polling).",
    )


class ResourceOut(CamelModel):
    type: str
    id: str


class ActorOut(CamelModel):
    type: Literal["client", "cli"]
    id: str | None
    name: str | None


class EventOut(CamelModel):
    """One change to one resource of the account."""

    id: int
    type: str
    occurred_at: Timestamp
    account_id: str
    resource: ResourceOut
    actor: ActorOut
    request_id: str | None
    changed: list[str] = Field(description="The attributes that changed (set, when created).")
    data: dict[str, Any] | None = Field(
        description="The resource after the change, as the People API renders it; null for a "
        "deletion (and after the person's erasure)."
    )


class EventsPage(CamelModel):
    events: list[EventOut]
    next_after: int = Field(description="The `after` of the next request.")


# -- rendering ---------------------------------------------------------------------------------


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _row(data: dict[str, Any]) -> dict[str, Any]:
    """A person with its persona on one account, as ``GET /people`` renders the ROW."""
    person, persona = data["person"], data["persona"]
    row = PersonaRow(
        tuple(_at(person[k]) if k.endswith("_at") else person.get(k) for k in PERSON_KEYS),
        tuple(_at(persona[k]) if k.endswith("_at") else persona.get(k) for k in PERSONA_KEYS),
    )
    return row_json(row)


def _resource(data: dict[str, Any]) -> dict[str, Any]:
    """A team, budget, role, address or account: camelCase keys, timestamps as the API's."""
    return {
        item_key(key): timestamp(_at(value)) if key.endswith("_at") and value else value
        for key, value in data.items()
    }


def _changed_name(resource_type: str, name: str) -> str:
    owner, _, field = name.rpartition(".")
    declared = (
        PERSONA
        if owner == "persona" or resource_type == "persona"
        else PERSON
        if resource_type == "person"
        else {}
    )
    found = declared.get(field)
    return (found.people_key if found is not None else None) or item_key(field)


def occurred_at(at: datetime) -> str:
    """``2026-11-27T15:04:05.123456Z``: UTC, to the microsecond."""
    return at.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def event_json(event: StoredEvent) -> dict[str, Any]:
    """An event as the feed, webhooks and exports show it."""
    data = None if event.data is None else orjson.loads(event.data)
    if data is not None:
        data = _row(data) if event.resource_type in ("person", "persona") else _resource(data)
    return {
        "id": event.id,
        "type": event.type,
        "occurredAt": occurred_at(event.occurred_at),
        "accountId": event.account_id,
        "resource": {"type": event.resource_type, "id": event.resource_id},
        "actor": {"type": event.actor_type, "id": event.actor_id, "name": event.actor_name},
        "requestId": event.request_id,
        "changed": [
            _changed_name(event.resource_type, name) for name in orjson.loads(event.changed or "[]")
        ],
        "data": data,
    }


# -- retention -------------------------------------------------------------------------------

#: The server's first prune comes this long after it starts, then one a day.
FIRST_PRUNE_SECONDS = 60.0
PRUNE_EVERY_SECONDS = 24 * 3600.0
#: After a prune that failed (the database was down), the next try.
PRUNE_RETRY_SECONDS = 3600.0


async def prune_daily(engine: AsyncEngine, retention_days: int) -> None:
    """Remove the events (and webhooks' delivery attempts) past retention once a day,
    while the server runs (each worker does: a second prune finds nothing left to remove)."""
    wait = FIRST_PRUNE_SECONDS
    while True:
        await asyncio.sleep(wait)
        try:
            async with unit_of_work(engine, write=True) as conn:
                removed = await prune_events(conn, retention_days)
                await prune_deliveries(conn, retention_days)
        except DATABASE_ERRORS:
            log.warning("the change log could not be pruned; trying again in an hour")
            wait = PRUNE_RETRY_SECONDS
            continue
        log.info("pruned %d events older than %d days", removed, retention_days)
        wait = PRUNE_EVERY_SECONDS


# -- the feed ----------------------------------------------------------------------------------


#: The People API's reader, authenticated on a connection given back at once: a long
#: poll holds no pooled connection while it waits, only for each look at the log.
Reader = Annotated[
    Principal, Depends(authenticated_briefly(PEOPLE_CREDENTIALS, "read"), scope="function")
]


@router.get("/events", response_model=EventsPage, responses=error_responses(410))
async def events_of_account(
    parameters: Annotated[EventParameters, Query()], request: Request, principal: Reader
) -> dict[str, Any]:
    """The account's events after an id, oldest first; ``wait`` holds the request until
    one arrives."""
    engine = services(request).engine
    async with unit_of_work(engine, write=False) as conn:
        account_id = await require_account(conn, principal, parameters.account_id)
    wanted = EventFilter(
        account_id,
        parameters.after,
        parameters.types,
        parameters.resource_id,
        parameters.actor_id,
    )

    async def look() -> tuple[list[StoredEvent], int]:
        """The events, and the ``nextAfter`` to answer with them."""
        async with unit_of_work(engine, write=False) as conn:
            found = await read_events(conn, wanted, parameters.limit)
            if found:
                return found, found[-1].id
            if parameters.after is not None:
                return found, parameters.after
            return found, await pruned_through(conn)

    deadline = time.monotonic() + parameters.wait
    found, next_after = await look()
    while not found and (left := deadline - time.monotonic()) > 0:
        await asyncio.sleep(min(POLL_SECONDS, left))
        found, next_after = await look()
    return {"events": [event_json(event) for event in found], "nextAfter": next_after}
