"""The change log (spec/events.md): events appended in the transaction of the change.

Every change to directory data appends its events through :func:`append_events`, in the
transaction that makes the change (a transactional outbox): it commits with them or
rolls back with them. The writer of persons and personas (``core/writer.py``) calls it
from ``record_changes``; the writes of teams, budgets, roles, addresses and accounts call
it beside their own statements.

Ids are assigned in commit order: the backend's event-log lock (``db/backends.py``) is
taken just before the first event of a transaction is appended and held until it ends,
so a transaction that gets larger ids commits after every one that got smaller ids. A
consumer that remembers the last id it read therefore never misses an event that
commits later (docs/events.md).

Events are stored with core names (``changed`` lists core field names; ``data`` holds
the resource's values by core name); each door renders them in its own names.
"""

from __future__ import annotations

import getpass
import os
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TextIO

import orjson
from sqlalchemy import ColumnElement, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from roster.core.clock import now
from roster.core.people.persona_rows import PERSON_COLUMNS, PERSONA_COLUMNS, PersonaRow, rows_select
from roster.db.backends import backend_for, json_default
from roster.db.engine import read_snapshot
from roster.db.tables import accounts, event_prunes, events, personas
from roster.errors import AccountNotFound, RosterError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    from roster.core.auth import Principal
    from roster.core.writer import Written

#: The execution option of a unit of work's connection that names who acts in it.
_ACTOR_OPTION = "roster_actor"
#: At most this many events in one page of the log.
MAX_PAGE = 1000

#: Every event type (spec/events.md); a ``types`` filter names these or ``resource.*``.
EVENT_TYPES = (
    "person.created",
    "person.updated",
    "person.erased",
    "persona.created",
    "persona.updated",
    "persona.deleted",
    "team.created",
    "team.updated",
    "team.deleted",
    "team.member_added",
    "team.member_removed",
    "budget.created",
    "budget.updated",
    "budget.deleted",
    "budget.member_added",
    "budget.member_removed",
    "address.created",
    "address.updated",
    "address.deleted",
    "role.created",
    "role.updated",
    "role.deleted",
    "account.created",
    "account.updated",
    "client.created",
    "client.revoked",
    "client.rotated",
)
RESOURCE_TYPES = tuple(dict.fromkeys(t.split(".")[0] for t in EVENT_TYPES))


class EventsExpired(RosterError):
    """The events after the id asked for are partly pruned (``roster events prune``)."""

    status = 410
    type = "events_expired"


# -- who acts ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Actor:
    """Who makes a change: an API client, or the command line's operating-system user."""

    type: str  # "client" or "cli"
    id: str | None
    name: str | None
    request_id: str | None = None

    @classmethod
    def client(cls, principal: Principal, request_id: str | None) -> Actor:
        return cls("client", principal.client_id, principal.name, request_id or None)

    @classmethod
    def command_line(cls) -> Actor:
        try:
            user = getpass.getuser()
        except (KeyError, OSError):  # no name for this uid (a container's user)
            user = str(os.getuid())
        return cls("cli", user, user)


async def act_as(conn: AsyncConnection, actor: Actor) -> None:
    """Name who acts in this unit of work: the events it appends carry it. A connection
    nobody named is the command line's (every request names its client)."""
    await conn.execution_options(**{_ACTOR_OPTION: actor})


def actor_of(conn: AsyncConnection) -> Actor:
    assert conn.sync_connection is not None
    found = conn.sync_connection.get_execution_options().get(_ACTOR_OPTION)
    return found if isinstance(found, Actor) else Actor.command_line()


# -- appending ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """One change to one resource, in one account, as core describes it."""

    account_id: str
    type: str
    resource_type: str
    resource_id: uuid.UUID | str
    #: The core names of the fields that changed (set, for a creation).
    changed: Sequence[str] = ()
    #: The resource after the change, by core names (none for a deletion).
    data: Mapping[str, Any] | None = None
    #: The person whose data the event carries (for erasure).
    person_id: uuid.UUID | None = None


def _json(value: object) -> str:
    return orjson.dumps(value, default=json_default).decode()


async def append_events(conn: AsyncConnection, appended: Sequence[Event]) -> None:
    """Append events to the log in ``conn``'s transaction, by whoever acts in it; their
    ids are assigned in commit order."""
    if not appended:
        return
    await backend_for(conn).lock_event_log(conn)
    await _insert_events(conn, event_rows(appended, actor_of(conn), now()))


async def append_event_rows(conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Append rows :func:`event_rows` built, as :func:`append_events` does."""
    if rows:
        await backend_for(conn).lock_event_log(conn)
        await _insert_events(conn, rows)


async def _insert_events(conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> None:
    await backend_for(conn).insert_many(conn, events, rows)


def event_rows(appended: Sequence[Event], actor: Actor, at: datetime) -> list[dict[str, Any]]:
    """The log's rows of these events, their JSON encoded. Plain Python, touching no
    connection: a bulk writer builds them in a thread while its rows are written."""
    return [
        {
            "account_id": event.account_id,
            "type": event.type,
            "occurred_at": at,
            "resource_type": event.resource_type,
            "resource_id": str(event.resource_id),
            "person_id": event.person_id,
            "actor_type": actor.type,
            "actor_id": actor.id,
            "actor_name": actor.name,
            "request_id": actor.request_id,
            "changed": _json(list(event.changed)),
            "data": None if event.data is None else _json(event.data),
        }
        for event in appended
    ]


def resource_data(resource: DataclassInstance, **more: Any) -> dict[str, Any]:
    """A core dataclass (a team, a budget, a role, an address) as an event's data."""
    return {**asdict(resource), **more}


#: A resource's own ids and timestamps: set, but never listed as changed.
_NOT_CHANGES = frozenset(("id", "account_id", "created_at", "updated_at"))


def created_event(
    account_id: str,
    resource_type: str,
    resource: DataclassInstance,
    person_id: uuid.UUID | None = None,
    **more: Any,
) -> Event:
    """``<resource>.created`` for a core dataclass (its ``id`` the resource's): every
    value it was given is ``changed``."""
    data = resource_data(resource, **more)
    given = tuple(n for n, v in data.items() if v not in (None, []) and n not in _NOT_CHANGES)
    kind = f"{resource_type}.created"
    return Event(account_id, kind, resource_type, data["id"], given, data, person_id)


#: The keys of a ROW's person and persona values, in the order ``PersonaRow`` holds them.
PERSON_KEYS = ("id", *PERSON_COLUMNS, "created_at", "updated_at")
PERSONA_KEYS = ("id", "account_id", *PERSONA_COLUMNS, "created_at", "updated_at")


def row_data(row: PersonaRow) -> dict[str, Any]:
    """A person with its persona on one account (a ROW) as an event's data."""
    return {
        "person": dict(zip(PERSON_KEYS, row.person, strict=True)),
        "persona": dict(zip(PERSONA_KEYS, row.persona, strict=True)),
    }


async def _rows_of_persons(
    conn: AsyncConnection, person_ids: Collection[uuid.UUID]
) -> dict[tuple[uuid.UUID, str], PersonaRow]:
    """Every persona of these persons, in every account, as ROWs by person and account."""
    found = await conn.execute(
        rows_select().where(backend_for(conn).one_of(personas.c.person_id, "persons")),
        {"persons": list(person_ids)},
    )
    rows = (PersonaRow.of(row) for row in found)
    return {(row.id, row.persona_value("account_id")): row for row in rows}


async def person_events(
    conn: AsyncConnection,
    written: Sequence[Written],
    known: Mapping[tuple[uuid.UUID, str], PersonaRow] | None = None,
) -> list[Event]:
    """The events of what the writer did: a new person is ``person.created`` in each
    account it joins; a change to a person's own fields is ``person.updated`` in every
    account where it has a persona; a persona of a known person created, changed or
    removed is ``persona.*`` in its account (with ``budget.deleted`` for the individual
    budgets it owned). Their data is the ROW as the writer's batch left it.

    ``known``: ROWs the writer already holds whole, by person and account (every ROW
    of each person there: the persons it created), which are not read back."""
    known = known or {}
    held = {person_id for person_id, _ in known}
    unknown = {p for w in _changed(written) if (p := w.person_id) and p not in held}
    rows = {**known, **(await _rows_of_persons(conn, unknown) if unknown else {})}
    return events_of_persons(written, rows)


def _changed(written: Sequence[Written]) -> list[Written]:
    return [w for w in written if w.person_id is not None and (w.fields or w.personas)]


def holds_every_person(
    written: Sequence[Written], rows: Mapping[tuple[uuid.UUID, str], PersonaRow]
) -> bool:
    """Whether ``rows`` hold a ROW of every person these writes changed."""
    persons_held = {person_id for person_id, _ in rows}
    return all(w.person_id in persons_held for w in _changed(written))


def events_of_persons(
    written: Sequence[Written], rows: Mapping[tuple[uuid.UUID, str], PersonaRow]
) -> list[Event]:
    """:func:`person_events` from the ROWs of the persons written, by person and account
    (every ROW of each of them). Plain Python, touching no connection."""
    changed = _changed(written)
    found: list[Event] = []
    for w in changed:
        assert w.person_id is not None
        person_id = w.person_id

        def data(account_id: str) -> dict[str, Any] | None:
            row = rows.get((person_id, account_id))  # noqa: B023 (used at once)
            return None if row is None else row_data(row)

        if w.created:
            found.extend(
                Event(
                    p.account_id,
                    "person.created",
                    "person",
                    person_id,
                    (*w.fields, *(f"persona.{f}" for f in p.fields)),
                    data(p.account_id),
                    person_id,
                )
                for p in w.personas
            )
            continue
        if w.fields:
            found.extend(
                Event(a, "person.updated", "person", person_id, w.fields, data(a), person_id)
                for a in sorted(w.account_ids)
            )
        for p in w.personas:
            kind, account_id = f"persona.{p.change}", p.account_id
            deleted = p.change == "deleted"
            found.append(
                Event(
                    account_id,
                    kind,
                    "persona",
                    p.persona_id,
                    p.fields,
                    None if deleted else data(account_id),
                    person_id,
                )
            )
            owned = p.budgets_deleted
            found.extend(Event(account_id, "budget.deleted", "budget", b) for b in owned)
    return found


# -- reading -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EventFilter:
    """Which events of an account to read: those after an id, of some types (exact, or
    ``resource.*``), about one resource, by one actor, carrying one person's data (the
    person, its persona and its addresses)."""

    account_id: str
    after: int | None = None
    types: Sequence[str] = ()
    resource_id: str | None = None
    actor_id: str | None = None
    since: datetime | None = None
    person_id: uuid.UUID | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        found: list[ColumnElement[bool]] = [events.c.account_id == self.account_id]
        if self.after is not None:
            found.append(events.c.id > self.after)
        if self.types:
            exact = [t for t in self.types if not t.endswith(".*")]
            prefixes = [t[:-1] for t in self.types if t.endswith(".*")]
            found.append(
                or_(
                    *([events.c.type.in_(exact)] if exact else []),
                    *(events.c.type.startswith(p, autoescape=True) for p in prefixes),
                )
            )
        if self.resource_id is not None:
            found.append(events.c.resource_id == self.resource_id)
        if self.actor_id is not None:
            found.append(events.c.actor_id == self.actor_id)
        if self.since is not None:
            found.append(events.c.occurred_at >= self.since)
        if self.person_id is not None:
            found.append(events.c.person_id == self.person_id)
        return found


def check_types(types: Iterable[str]) -> list[str]:
    """The types a filter names, each an event type or ``resource.*``; ``ValueError``
    naming the first that is neither."""
    wanted = list(dict.fromkeys(types))
    for name in wanted:
        if name not in EVENT_TYPES and not (name.endswith(".*") and name[:-2] in RESOURCE_TYPES):
            raise ValueError(
                f"{name[:64]!r} is not an event type (such as persona.updated or persona.*)"
            )
    return wanted


@dataclass(frozen=True)
class StoredEvent:
    """An event as the log holds it: ``changed`` and ``data`` are JSON texts."""

    id: int
    account_id: str
    type: str
    occurred_at: datetime
    resource_type: str
    resource_id: str
    actor_type: str
    actor_id: str | None
    actor_name: str | None
    request_id: str | None
    changed: str | None
    data: str | None


_READ = (
    events.c.id,
    events.c.account_id,
    events.c.type,
    events.c.occurred_at,
    events.c.resource_type,
    events.c.resource_id,
    events.c.actor_type,
    events.c.actor_id,
    events.c.actor_name,
    events.c.request_id,
    events.c.changed,
    events.c.data,
)


async def pruned_through(conn: AsyncConnection) -> int:
    """The id up to which every event was pruned (0: none ever was)."""
    found = await conn.scalar(select(func.max(event_prunes.c.pruned_through)))
    return int(found or 0)


async def read_events(
    conn: AsyncConnection, wanted: EventFilter, limit: int = MAX_PAGE, *, newest_first: bool = False
) -> list[StoredEvent]:
    """The account's events after ``wanted.after``, oldest first (or the newest ``limit``
    of them, newest first), at most ``limit``.

    ``EventsExpired`` when events after that id were pruned: the consumer has missed
    some and must read the directory again.
    """
    if wanted.after is not None and wanted.after < await pruned_through(conn):
        raise EventsExpired(
            f"Events after {wanted.after} are no longer kept (the retention period is over); "
            "read the directory again, then follow the log from its newest event."
        )
    found = await conn.execute(
        select(*_READ)
        .where(*wanted.conditions())
        .order_by(events.c.id.desc() if newest_first else events.c.id)
        .limit(limit)
    )
    return [StoredEvent(**row._asdict()) for row in found]


async def prune_events(conn: AsyncConnection, retention_days: int) -> int:
    """Remove every event up to the newest one older than the retention period; how many.

    Removed by id, so the horizon is exact: a consumer asking for events after an older
    id is told ``events_expired``.
    """
    cutoff = now() - timedelta(days=retention_days)
    through = await conn.scalar(select(func.max(events.c.id)).where(events.c.occurred_at < cutoff))
    if through is None:
        return 0
    removed = await conn.execute(delete(events).where(events.c.id <= through))
    # Two servers may prune at once: the second records the same horizon, or none.
    horizon = backend_for(conn).insert(event_prunes).values(pruned_through=through, pruned_at=now())
    await conn.execute(horizon.on_conflict_do_nothing())
    return removed.rowcount or 0


async def export_events(
    engine: AsyncEngine,
    wanted: EventFilter,
    out: TextIO,
    render: Callable[[StoredEvent], object],
) -> int:
    """Write the events ``wanted`` selects (``since`` a time, oldest first) to ``out`` as
    JSON Lines, each as ``render`` shows it; how many. ``AccountNotFound`` for an unknown
    account, before anything is written. One snapshot, read a page at a time."""
    written = 0
    async with read_snapshot(engine) as conn:
        if (
            await conn.scalar(select(accounts.c.id).where(accounts.c.id == wanted.account_id))
            is None
        ):
            raise AccountNotFound(f"There is no account {wanted.account_id!r}.")
        while page := await read_events(conn, wanted):
            out.write("".join(_json(render(event)) + "\n" for event in page))
            written += len(page)
            wanted = replace(wanted, after=page[-1].id)
    return written
