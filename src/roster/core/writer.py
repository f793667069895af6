"""The one writer of persons and personas, which every door calls.

The Persons API's bulk upsert, the People API's writes, ``roster import`` and the demo
each describe what they want as :class:`PersonWrite` items and call
:func:`write_persons`. So there is one set of uniqueness rules, one error per cause,
one retry policy, one source of ids, one role-by-name lookup, and one place every
change passes through (:func:`record_changes`). A call is planned in memory, then
written in bulk:

1. the keys its items match by (external refs, emails, phones in an account) are
   locked, so that writers of the same person take turns and each plans against what
   the one before it committed (:func:`lock_keys`);
2. every person an item could match, with all its personas, is fetched in one query;
3. the items are applied in order to that in-memory view, so an item sees the effects
   of the items before it exactly as if they had run one by one; an item that breaks a
   rule fails and changes nothing;
4. the surviving changes are written with the backend's bulk paths (COPY on
   PostgreSQL), and handed to :func:`record_changes` in the same savepoint; when the
   call created every person it wrote (a first import), their events are built from
   the rows as planned, in a thread, while the database writes those rows.

If the write meets a uniqueness violation all the same, each item is planned again
alone, against what the database now holds, and written in a savepoint of its own
(:func:`write_planned`).
"""

from __future__ import annotations

import asyncio
import os
import uuid
import zlib
from collections.abc import Awaitable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, Literal

from sqlalchemy import Column, CompoundSelect, Executable, Select, delete, exists, select, union
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from roster.core.clock import now
from roster.core.derived_columns import (
    person_keys,
    persona_derived,
    refresh_personas,
    user_name_key,
)
from roster.core.events import (
    Actor,
    actor_of,
    append_event_rows,
    append_events,
    event_rows,
    events_of_persons,
    holds_every_person,
    person_events,
)
from roster.core.fields import PERSON_FIELDS, PERSONA_FIELDS, SHARED_PERSON_FIELDS
from roster.core.matching import email_key, name_key, phone_key
from roster.core.people.persona_rows import (
    PERSON_COLUMNS,
    PERSONA_COLUMNS,
    PersonaRow,
    persona_not_found,
)
from roster.db.backends import Backend, backend_for, update_many
from roster.db.tables import budgets, personas, persons, roles
from roster.errors import Conflict, NotFound, RosterError, Unprocessable

#: Items per planned batch: bounded so that the prefetch stays within SQLite's
#: limit on bound parameters.
MAX_BATCH = 2000
#: A write with more lock keys or items than this is a bulk write: it takes one lock
#: that excludes every other writer of persons, instead of a lock per key. PostgreSQL
#: keeps every lock in one table of max_locks_per_transaction x max_connections
#: entries (6,400 by default): an import batch must not fill it.
MAX_KEY_LOCKS = 32
#: How often an item alone is planned and written again when another writer took a
#: value it gives in between (each time it sees what that writer committed).
ATTEMPTS = 3

DEFAULT_STATUS = "active"
DEFAULT_ROLE = "User"
#: The persona fields an item gives: the persona's columns, its role by name.
PERSONA_INPUTS = (*(f for f in PERSONA_FIELDS if f != "role_id"), "role_name")
_PERSONA_INPUTS = frozenset(PERSONA_INPUTS)
#: Persona fields that cannot be cleared: ``None`` leaves them as they are.
_REQUIRED_PERSONA_INPUTS = frozenset({"status", "role_name"})
#: The person fields behind a unique column (external_ref, and email_address's key).
_UNIQUE_FIELDS = frozenset({"email_address", "external_ref"})


# -- errors: one per cause, whichever door -------------------------------------------------


class InsufficientInformation(Unprocessable):
    type = "insufficient_information"
    default_message = "Insufficient information to create a new person record"


class AmbiguousMatch(Conflict):
    type = "ambiguous_match"
    default_message = (
        "The phone number matches several persons in these groups; "
        "give an external_ref or email_address to say which."
    )


class DuplicateValue(Conflict):
    """A unique value (email address, external ref) that another person holds."""

    type = "duplicate_value"

    @classmethod
    def held(cls, name: str, value: object) -> DuplicateValue:
        return cls.saying(
            lambda n: f"The {n(name)} {value!r} belongs to another person.",
            [name],
            "belongs to another person",
        )

    @classmethod
    def user_name(cls, name: str, value: object) -> DuplicateValue:
        """A persona that would read (as its SCIM userName, from ``name``) another
        persona's userName in the account."""
        return cls.saying(
            lambda n: f"The {n(name)} {value!r} is another user's user name here.",
            [name],
            "is another user's user name in this account",
        )

    @classmethod
    def raced(cls) -> DuplicateValue:
        """An item that still met another writer after every attempt."""
        return cls.saying(
            lambda n: (
                f"Another request took the {n('email_address')} or {n('external_ref')} this "
                "item gives while it was written; send it again."
            )
        )


class PersonaExists(Conflict):
    """A second persona for one person in one account (People API ``POST /people``)."""

    @classmethod
    def of(cls, persona_id: uuid.UUID, account_id: str) -> PersonaExists:
        return cls.saying(
            lambda n: (
                f"The person with this {n('email_address')} already has persona "
                f"{persona_id} in account {account_id!r}."
            )
        )


class UnknownRole(Unprocessable):
    @classmethod
    def named_as(cls, role_name: str, account_id: str) -> UnknownRole:
        return cls.saying(
            lambda n: (
                f"There is no role {role_name!r} in account {account_id!r}: "
                f"{n('role_name')} must name one of the account's roles."
            ),
            ["role_name"],
            "must name one of the account's roles",
        )


class SharedPerson(RosterError):
    """A change to a person's own fields by a client that does not reach every account
    where the person has a persona (spec/README.md, "Shared persons")."""

    status = 403
    type = "shared_person"

    @classmethod
    def changing(cls, names: Collection[str]) -> SharedPerson:
        fields = [f for f in SHARED_PERSON_FIELDS if f in names]
        return cls.saying(
            lambda n: (
                "This person also has a persona in an account your client cannot reach, so "
                f"its own fields cannot be changed by your client ({', '.join(map(n, fields))}); "
                "persona fields can."
            ),
            fields,
            "belongs to a person shared with accounts your client cannot reach",
        )


async def write_unique(conn: AsyncConnection, statement: Executable, conflict: str) -> None:
    """Run a write whose unique values were checked first; ``Conflict`` if another writer
    took one of them in between (the check and the write are not atomic)."""
    try:
        async with conn.begin_nested():
            await conn.execute(statement)
    except IntegrityError as error:
        raise Conflict(conflict) from error


# -- what a door asks for ------------------------------------------------------------------


@dataclass(frozen=True)
class Matching:
    """The person the matching rules find: by external_ref, else email, else phone among
    the persons of the item's accounts; a new person if none (Persons API, import)."""


@dataclass(frozen=True)
class Joining:
    """The person holding the item's email joins the accounts as it is (its fields are
    not changed); a new person if none; a persona already there is a conflict (People
    API ``POST /people``)."""


@dataclass(frozen=True)
class PersonById:
    """This person, which must have a persona in each of the item's accounts."""

    person_id: uuid.UUID


@dataclass(frozen=True)
class PersonaById:
    """This persona, which must be in one of the item's accounts; ``remove`` deletes it."""

    persona_id: uuid.UUID
    remove: bool = False


Target = Matching | Joining | PersonById | PersonaById
MATCHING = Matching()


@dataclass(frozen=True)
class PersonWrite:
    """One write: which person, the person fields to set, and the persona fields to set
    in each of its accounts (a persona is created where the person has none).

    A given field is set (``None`` clears it, but never a status or role); an absent
    field is left as it is.
    """

    person: Mapping[str, Any]  # PERSON_FIELDS
    account_ids: frozenset[str]  # resolved accounts, each reachable by the caller
    persona: Mapping[str, Any] = field(default_factory=dict)  # PERSONA_INPUTS
    target: Target = MATCHING
    error: RosterError | None = None  # failed before planning (bad group, bad value)


@dataclass(frozen=True)
class PersonaWritten:
    """What an item did to one persona, and which of its fields changed."""

    persona_id: uuid.UUID
    account_id: str
    change: Literal["created", "updated", "deleted"]
    fields: tuple[str, ...] = ()  # PERSONA_FIELDS set on creation, changed on update
    #: The individual budgets deleted with their owner (a deleted persona).
    budgets_deleted: tuple[uuid.UUID, ...] = ()


@dataclass(frozen=True)
class Written:
    """What one item did: its person, the person fields that changed (all those set,
    for a new person), and each persona created, updated or deleted. A failed item
    has its ``error`` and changed nothing."""

    person_id: uuid.UUID | None
    error: RosterError | None = None
    created: bool = False
    fields: tuple[str, ...] = ()
    personas: tuple[PersonaWritten, ...] = ()
    #: The person's fields, and the accounts it belongs to, as this item left them.
    person: Mapping[str, Any] = field(default_factory=dict)
    account_ids: frozenset[str] = frozenset()

    @property
    def changed(self) -> bool:
        return bool(self.fields) or any(p.change != "created" for p in self.personas)


def has_enough_to_match(person: Mapping[str, Any]) -> bool:
    """An external_ref, or an email or phone together with a first or last name."""
    return bool(person.get("external_ref")) or (
        bool(person.get("email_address") or person.get("phone_number"))
        and bool(person.get("first_name") or person.get("last_name"))
    )


async def write_persons(
    conn: AsyncConnection,
    items: Sequence[PersonWrite],
    *,
    region: str,
    reach: Collection[str] | None = None,
) -> list[Written]:
    """Apply every item in order; one result per item, a failed item changing nothing.

    ``reach`` is the caller's accounts (``None``: every account); a person's own fields
    change only for a caller that reaches every account where it has a persona.
    """
    row_locks = await lock_keys(conn, items, region)
    written: list[Written] = []
    for start in range(0, len(items), MAX_BATCH):
        planned = await plan_writes(
            conn, items[start : start + MAX_BATCH], region, reach, row_locks=row_locks
        )
        written.extend(await write_planned(conn, planned))
    return written


async def record_changes(
    conn: AsyncConnection,
    written: Sequence[Written],
    plan: _Plan | None = None,
    *,
    alongside: Awaitable[None] | None = None,
) -> None:
    """Every change the writer makes passes here, in its transaction, right after the
    rows are written (and in the same savepoint): change events (spec/events.md) are
    appended here, so a change commits with its events or not at all.

    ``alongside``: the write of the rows, awaited here. When ``plan`` created every
    person written (a first import), the events' ROWs are the ones it wrote, so they are
    built and encoded in a thread while the database writes the rows, instead of being
    read back afterwards.
    """
    building = None
    if plan is not None and alongside is not None:
        actor, at = actor_of(conn), now()
        building = asyncio.ensure_future(asyncio.to_thread(_event_rows, plan, written, actor, at))
    try:
        if alongside is not None:
            await alongside
    finally:
        rows = None if building is None else await building
    if rows is not None:
        await append_event_rows(conn, rows)
        return
    known = plan.created_rows() if plan is not None else None
    await append_events(conn, await person_events(conn, written, known))


def _event_rows(
    plan: _Plan, written: Sequence[Written], actor: Actor, at: datetime
) -> list[dict[str, Any]] | None:
    """The log's rows of the writes' events, if ``plan`` holds the ROW of every person
    they changed (it created them all); None otherwise."""
    rows = plan.created_rows()
    if not holds_every_person(written, rows):
        return None
    return event_rows(events_of_persons(written, rows), actor, at)


# -- locks ---------------------------------------------------------------------------------


def value_lock(name: str, account_id: str, value: str) -> int:
    """The writers' lock of one unique value of an account (``user_name``: a userName's
    key; ``scim_external_id``, ``team_external_id``; ``user``, ``team``: an id), as an int."""
    return _lock(f"{name}:{account_id}:{value}")


def _lock(key: str) -> int:
    return zlib.crc32(key.encode("utf-8", "surrogatepass")) & 0x7FFFFFFF


def _given_user_names(item: PersonWrite) -> set[str]:
    """The keys of the userNames an item's personas could read from the values it gives."""
    given = (
        item.persona.get("user_name"),
        item.persona.get("email_address"),
        item.person.get("email_address"),
    )
    return {key for value in given if (key := name_key(value))}


def _key_locks(items: Sequence[PersonWrite], region: str) -> set[int]:
    """The lock of each key the items could match or claim a person by, hashed to an int:
    an external_ref, an email, a phone in one of the item's accounts; and of each
    userName the item's personas could read from the values it gives, in its accounts
    (the lock a SCIM writer of that userName takes too: :func:`value_lock`)."""
    keys: set[str] = set()
    locks: set[int] = set()
    for item in items:
        if item.error is not None:
            continue
        if ref := item.person.get("external_ref"):
            keys.add(f"r:{ref}")
        if key := email_key(item.person.get("email_address")):
            keys.add(f"e:{key}")
        phone = phone_key(item.person.get("phone_number"), region)
        if phone and isinstance(item.target, Matching):
            keys.update(f"p:{account}:{phone}" for account in item.account_ids)
        for user_name in _given_user_names(item):
            locks.update(value_lock("user_name", a, user_name) for a in item.account_ids)
    return locks | {_lock(k) for k in keys}


async def lock_keys(conn: AsyncConnection, items: Sequence[PersonWrite], region: str) -> bool:
    """Lock, until the transaction ends, the keys these items match persons by, so that
    two writers of one person take turns; a bulk write takes one lock that excludes
    every other writer instead. Whether other writers may still run beside this one
    (then the persons it finds must be locked as they are read).

    Locks are taken before anything is read, so each writer plans against what the
    writer before it committed.
    """
    locks = _key_locks(items, region) if len(items) <= MAX_KEY_LOCKS else None
    if locks is not None and len(locks) > MAX_KEY_LOCKS:
        locks = None
    backend = backend_for(conn)
    await backend.lock_for_writing(conn, None if locks is None else sorted(locks))
    return backend.concurrent_writers and locks is not None


# -- planning ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedWrites:
    """Items planned against what a connection read; nothing written yet."""

    items: Sequence[PersonWrite]
    written: list[Written]
    plan: _Plan


async def plan_writes(
    conn: AsyncConnection,
    items: Sequence[PersonWrite],
    region: str,
    reach: Collection[str] | None = None,
    *,
    row_locks: bool = False,
) -> PlannedWrites:
    """Plan the items (at most MAX_BATCH) against what ``conn`` reads, writing nothing.

    With ``row_locks`` the persons found are read again locked (where writers run side by
    side), so a writer that changes one person by another key waits for this one.
    """
    plan = _Plan(region, None if reach is None else frozenset(reach), row_locks)
    await plan.load(conn, items)
    return PlannedWrites(items, [plan.apply(item) for item in items], plan)


async def write_planned(conn: AsyncConnection, planned: PlannedWrites) -> list[Written]:
    """Write a plan in a savepoint of ``conn``'s transaction; the items' results.

    On a uniqueness violation (another writer got in between) each item is planned
    again alone, against what the database holds now, and written in a savepoint of
    its own, up to ATTEMPTS times; an item that still meets one fails alone.
    """
    try:
        return await _write(conn, planned)
    except IntegrityError:
        pass
    written: list[Written] = []
    for item in planned.items:
        for _ in range(ATTEMPTS):
            plan = planned.plan
            alone = await plan_writes(
                conn, [item], plan.region, plan.reach, row_locks=plan.row_locks
            )
            try:
                written.extend(await _write(conn, alone))
                break
            except IntegrityError:
                continue
        else:
            written.append(Written(None, DuplicateValue.raced()))
    return written


async def _write(conn: AsyncConnection, planned: PlannedWrites) -> list[Written]:
    async with conn.begin_nested():
        written = [w for w in planned.written if w.error is None]
        plan = planned.plan
        await record_changes(conn, written, plan, alongside=plan.write(conn))
    return planned.written


@dataclass
class _Persona:
    id: uuid.UUID
    values: dict[str, Any]  # PERSONA_FIELDS
    new: bool
    dirty: bool = False


@dataclass
class _Person:
    id: uuid.UUID
    values: Mapping[str, Any]  # PERSON_FIELDS, replaced (not changed in place) by each item
    new: bool
    personas: dict[str, _Persona]  # by account, every account the person belongs to
    dirty: bool = False
    #: Its email or external_ref changes: the old one is released before any is taken.
    rekeyed: bool = False


_PERSON_COLUMNS = (persons.c.id, *(persons.c[f] for f in PERSON_FIELDS))
#: A new person's and a new persona's fields before an item sets them (never changed in
#: place: a person's values are replaced, and a persona's start as a copy).
_NO_PERSON: Mapping[str, Any] = dict.fromkeys(PERSON_FIELDS)
_NEW_PERSONA: Mapping[str, Any] = {**dict.fromkeys(PERSONA_FIELDS), "status": DEFAULT_STATUS}
_PERSONA_COLUMNS = tuple(personas.c[f] for f in PERSONA_FIELDS)


@lru_cache(maxsize=32)
def _prefetch_statement(
    backend: Backend, by_ref: bool, by_email: bool, by_phone: bool, by_id: bool, by_persona: bool
) -> CompoundSelect[Any]:
    """Every person an item could name: one index lookup per way, as a UNION.

    An OR of them would let the planner fall back to scanning the whole table once it
    is large. Parameters: ``refs``, ``emails``, ``phones``, ``accounts``, ``ids``,
    ``persona_ids``.
    """
    lookups = []
    if by_ref:
        lookups.append(backend.one_of(persons.c.external_ref, "refs"))
    if by_email:
        lookups.append(backend.one_of(persons.c.email_key, "emails"))
    if by_phone:
        in_accounts = backend.one_of(personas.c.account_id, "accounts")
        lookups.append(
            backend.one_of(persons.c.phone_key, "phones")
            & exists().where(personas.c.person_id == persons.c.id, in_accounts)
        )
    if by_id:
        lookups.append(backend.one_of(persons.c.id, "ids"))
    if by_persona:
        named = select(personas.c.person_id).where(backend.one_of(personas.c.id, "persona_ids"))
        lookups.append(persons.c.id.in_(named.scalar_subquery()))
    return union(*(select(*_PERSON_COLUMNS).where(lookup) for lookup in lookups))


#: The columns the writer finds persons and personas by (the statements above and
#: ``_load_personas``): a bulk load keeps their statistics fresh for its own plans.
LOOKUP_COLUMNS = (
    persons.c.id,
    persons.c.external_ref,
    persons.c.email_key,
    persons.c.phone_key,
    personas.c.id,
    personas.c.person_id,
    personas.c.account_id,
    personas.c.user_name_key,
)


#: A bulk load (an import, the demo) refreshes the planner's statistics of persons and
#: personas after this many rows, then each time its rows have grown fourfold (at most
#: every ANALYZE_EVERY), and at its end (PostgreSQL may run without autovacuum; SQLite
#: has none of its own). Early: a planner that has never seen statistics matches each
#: batch by scanning every row loaded so far (2 s a batch at 20,000 rows); once it has
#: some, it scales them by the table's size, so a few more are enough. Between the first
#: and the end, only the columns the writer finds rows by (``LOOKUP_COLUMNS``): every
#: column's took 2.8 s for persons and 3.2 s for personas at 500,000 rows, the names'
#: and the search text's most of it. The first covers every column, so an import cut
#: short leaves some for each (a demo is one transaction: cut short, it leaves none).
FIRST_ANALYZE = 2_000
ANALYZE_EVERY = 200_000


class LoadStatistics:
    """When a bulk load of persons and personas refreshes their statistics, as it grows
    (``FIRST_ANALYZE``)."""

    def __init__(self) -> None:
        self._next = FIRST_ANALYZE
        self._first = True

    def due(self, rows: int) -> Sequence[Column[Any]] | None:
        """Once ``rows`` are loaded: the columns whose statistics to refresh now (empty:
        every column), or None when it is not time yet."""
        if rows < self._next:
            return None
        columns = () if self._first else LOOKUP_COLUMNS
        self._first = False
        self._next = rows + min(3 * rows, ANALYZE_EVERY)
        return columns


async def analyze_persons(conn: AsyncConnection, only: Sequence[Column[Any]] = ()) -> None:
    """Refresh the statistics of persons and personas: of ``only`` these columns, or of
    every column."""
    await backend_for(conn).analyze(conn, (persons, personas), only)


@lru_cache(maxsize=2)
def _user_names_statement(backend: Backend) -> Select[Any]:
    """The personas of ``accounts`` whose userName key is one of ``keys`` (the index on
    the account and the key, probed for each pair)."""
    return select(personas.c.id, personas.c.account_id, personas.c.user_name_key).where(
        backend.one_of(personas.c.account_id, "accounts"),
        backend.one_of(personas.c.user_name_key, "keys"),
    )


def _random_ids() -> Iterator[uuid.UUID]:
    """Random (version 4) UUIDs, as ``next(self.ids)`` makes them, asking the OS once per 1024.

    A system call per id releases the GIL each time, and a bulk import runs a
    reading thread beside the planning one.
    """
    while True:
        pool = os.urandom(16 * 1024)
        for start in range(0, len(pool), 16):
            yield uuid.UUID(bytes=pool[start : start + 16], version=4)


class _Plan:
    """The in-memory view of the persons a batch touches, and the changes to write."""

    def __init__(self, region: str, reach: frozenset[str] | None, row_locks: bool) -> None:
        self.region = region
        self.reach = reach
        self.row_locks = row_locks
        self.ids = _random_ids()
        self.persons: dict[uuid.UUID, _Person] = {}
        self.by_ref: dict[str, uuid.UUID] = {}
        self.by_email: dict[str, uuid.UUID] = {}
        self.by_phone: dict[tuple[str, str], set[uuid.UUID]] = {}
        self.by_persona: dict[uuid.UUID, tuple[uuid.UUID, str]] = {}
        self.by_persona_wanted = False  # kept only for items that name a persona
        self.roles: dict[tuple[str, str], uuid.UUID] = {}  # by account and name_key
        self.role_keys: dict[str, str] = {}  # the name_key of each role name given
        self.owned: dict[uuid.UUID, list[uuid.UUID]] = {}  # individual budgets by owner
        #: The personas that read each userName (by account and key) an item could give
        #: one of its personas: those the database holds, then as the items leave them.
        self.user_names: dict[tuple[str, str], set[uuid.UUID]] = {}
        self.removed: list[PersonaWritten] = []
        self.at: datetime = now()

    async def load(self, conn: AsyncConnection, items: Sequence[PersonWrite]) -> None:
        live = [item for item in items if item.error is None]
        accounts = sorted({a for item in live for a in item.account_ids})
        refs = {r for item in live if (r := item.person.get("external_ref"))}
        emails = {k for item in live if (k := email_key(item.person.get("email_address")))}
        phones = {
            k
            for item in live
            if isinstance(item.target, Matching)
            and (k := phone_key(item.person.get("phone_number"), self.region))
        }
        ids = [item.target.person_id for item in live if isinstance(item.target, PersonById)]
        named = [item.target for item in live if isinstance(item.target, PersonaById)]
        self.by_persona_wanted = bool(named)
        backend = backend_for(conn)
        if refs or emails or (phones and accounts) or ids or named:
            statement = _prefetch_statement(
                backend, bool(refs), bool(emails), bool(phones and accounts), bool(ids), bool(named)
            )
            parameters = {
                "refs": list(refs),
                "emails": list(emails),
                "phones": list(phones),
                "accounts": accounts,
                "ids": ids,
                "persona_ids": [target.persona_id for target in named],
            }
            rows = list(await conn.execute(statement, parameters))
            if rows and self.row_locks:
                # Writers run side by side: the rows again, locked, in one order (so that
                # no two writers wait for each other), as the last writer left them.
                found = [row.id for row in rows]
                rows = list(
                    await conn.execute(
                        select(*_PERSON_COLUMNS)
                        .where(backend.one_of(persons.c.id, "ids"))
                        .order_by(persons.c.id)
                        .with_for_update(),
                        {"ids": found},
                    )
                )
            for person_id, *values in rows:
                fields = dict(zip(PERSON_FIELDS, values, strict=True))
                self.persons[person_id] = _Person(person_id, fields, new=False, personas={})
        if self.persons:
            await self._load_personas(conn, backend)
        for person in self.persons.values():
            self._index(person)
        await self._load_user_names(conn, backend, live, accounts)
        if accounts:
            for role_id, account_id, key in await conn.execute(
                select(roles.c.id, roles.c.account_id, roles.c.name_key).where(
                    backend.one_of(roles.c.account_id, "accounts")
                ),
                {"accounts": accounts},
            ):
                self.roles[(account_id, key)] = role_id
        removed = [t.persona_id for t in named if t.remove]
        if removed:
            for budget_id, owner in await conn.execute(
                select(budgets.c.id, budgets.c.primary_owner_persona_id)
                .where(
                    budgets.c.type == "individual",
                    backend.one_of(budgets.c.primary_owner_persona_id, "owners"),
                )
                .order_by(budgets.c.id),
                {"owners": removed},
            ):
                self.owned.setdefault(owner, []).append(budget_id)

    async def _load_personas(self, conn: AsyncConnection, backend: Backend) -> None:
        """Every persona of the persons loaded, in every account."""
        found = await conn.execute(
            select(
                personas.c.id, personas.c.person_id, personas.c.account_id, *_PERSONA_COLUMNS
            ).where(backend.one_of(personas.c.person_id, "persons")),
            {"persons": list(self.persons)},
        )
        for row in found:
            persona_id, person_id, account_id, *values = row
            fields = dict(zip(PERSONA_FIELDS, values, strict=True))
            self.persons[person_id].personas[account_id] = _Persona(persona_id, fields, new=False)

    async def _load_user_names(
        self,
        conn: AsyncConnection,
        backend: Backend,
        items: Sequence[PersonWrite],
        accounts: list[str],
    ) -> None:
        """Who reads each userName the items' personas could take: one from a value an
        item gives, or one a person found (or its personas) already has, in the items'
        accounts and every account of the persons found."""
        keys = {key for item in items for key in _given_user_names(item)}
        if not keys and all(isinstance(i.target, PersonaById | PersonById) for i in items):
            return  # no item gives a name or makes a persona: no userName changes
        for person in self.persons.values():
            values = [person.values.get("email_address")]
            for persona in person.personas.values():
                values += [persona.values.get("user_name"), persona.values.get("email_address")]
            keys.update(key for value in values if (key := name_key(value)))
        if not keys:
            return
        where = {*accounts, *(a for p in self.persons.values() for a in p.personas)}
        found = await conn.execute(
            _user_names_statement(backend), {"accounts": sorted(where), "keys": sorted(keys)}
        )
        for persona_id, account_id, key in found:
            self.user_names.setdefault((account_id, key), set()).add(persona_id)

    def _index(self, person: _Person) -> None:
        self.persons[person.id] = person
        if ref := person.values.get("external_ref"):
            self.by_ref[ref] = person.id
        if key := email_key(person.values.get("email_address")):
            self.by_email[key] = person.id
        if self.by_persona_wanted:
            for account_id, persona in person.personas.items():
                self.by_persona[persona.id] = (person.id, account_id)
        if key := phone_key(person.values.get("phone_number"), self.region):
            for account_id in person.personas:
                self.by_phone.setdefault((account_id, key), set()).add(person.id)

    def _unindex(self, person: _Person) -> None:
        if (ref := person.values.get("external_ref")) and self.by_ref.get(ref) == person.id:
            del self.by_ref[ref]
        key = email_key(person.values.get("email_address"))
        if key and self.by_email.get(key) == person.id:
            del self.by_email[key]
        if self.by_persona_wanted:
            for persona in person.personas.values():
                self.by_persona.pop(persona.id, None)
        if key := phone_key(person.values.get("phone_number"), self.region):
            for account_id in person.personas:
                self.by_phone.get((account_id, key), set()).discard(person.id)

    def _match(self, item: PersonWrite) -> _Person | None:
        """By external_ref; failing that by email; failing that by phone in the item's groups."""
        given = item.person
        if (ref := given.get("external_ref")) and ref in self.by_ref:
            return self.persons[self.by_ref[ref]]
        if (key := email_key(given.get("email_address"))) and key in self.by_email:
            return self.persons[self.by_email[key]]
        if pkey := phone_key(given.get("phone_number"), self.region):
            candidates = set().union(
                *(self.by_phone.get((a, pkey), set()) for a in item.account_ids)
            )
            if len(candidates) > 1:
                raise AmbiguousMatch()
            if candidates:
                return self.persons[candidates.pop()]
        return None

    def _target(self, item: PersonWrite) -> tuple[_Person | None, Mapping[str, Any]]:
        """The person an item writes (``None``: a new one) and the person fields it sets."""
        target = item.target
        if isinstance(target, Matching):
            if not has_enough_to_match(item.person):
                raise InsufficientInformation()
            return self._match(item), item.person
        if isinstance(target, Joining):
            holder = self.by_email.get(email_key(item.person.get("email_address")) or "")
            return (self.persons[holder], {}) if holder else (None, item.person)
        if isinstance(target, PersonById):
            person = self.persons.get(target.person_id)
            for account_id in sorted(item.account_ids):
                if person is None or account_id not in person.personas:
                    raise NotFound(
                        f"There is no person {target.person_id} in account {account_id!r}."
                    )
            return person, item.person
        found = self.by_persona.get(target.persona_id)
        if found is None or found[1] not in item.account_ids:
            raise persona_not_found(min(item.account_ids), target.persona_id)
        return self.persons[found[0]], item.person

    def _check_unique(self, person: _Person | None, changes: Mapping[str, Any]) -> None:
        person_id = person.id if person is not None else None
        key = email_key(changes.get("email_address"))
        if key and self.by_email.get(key, person_id) != person_id:
            raise DuplicateValue.held("email_address", changes["email_address"])
        ref = changes.get("external_ref")
        if ref and self.by_ref.get(ref, person_id) != person_id:
            raise DuplicateValue.held("external_ref", ref)

    def _check_shared(self, person: _Person | None, changes: Mapping[str, Any]) -> None:
        """Only a caller that reaches every account of a person changes its own fields."""
        reach = self.reach
        shared = not changes.keys().isdisjoint(SHARED_PERSON_FIELDS)
        if shared and person is not None and reach is not None and person.personas.keys() - reach:
            raise SharedPerson.changing(changes)

    def _role(self, account_id: str, role_name: str) -> uuid.UUID:
        key = self.role_keys.get(role_name)
        if key is None:
            key = self.role_keys[role_name] = name_key(role_name) or ""
        role_id = self.roles.get((account_id, key))
        if role_id is None:
            raise UnknownRole.named_as(role_name, account_id)
        return role_id

    def _persona_values(
        self, given: Mapping[str, Any], account_id: str, existing: _Persona | None
    ) -> dict[str, Any]:
        """The persona columns an item sets in one account, with a new persona's role."""
        values = {
            f: v
            for f, v in given.items()
            if f in _PERSONA_INPUTS and (v is not None or f not in _REQUIRED_PERSONA_INPUTS)
        }
        role_name = values.pop("role_name", None if existing else DEFAULT_ROLE)
        if role_name is not None:
            values["role_id"] = self._role(account_id, role_name)
        return values

    def apply(self, item: PersonWrite) -> Written:
        """Plan one item; a broken rule fails it before anything in the view changes."""
        if item.error is not None:
            return Written(None, item.error)
        target = item.target
        removing = isinstance(target, PersonaById) and target.remove
        try:
            person, given = self._target(item)
            old = person.values if person is not None else _NO_PERSON
            changes = {f: v for f, v in given.items() if old.get(f) != v}
            self._check_unique(person, changes)
            self._check_shared(person, changes)
            accounts = (
                [self.by_persona[target.persona_id][1]]
                if isinstance(target, PersonaById)
                else sorted(item.account_ids)
            )
            wanted: dict[str, dict[str, Any]] = {}
            for account_id in accounts if not removing else ():
                existing = person.personas.get(account_id) if person is not None else None
                if existing is not None and isinstance(target, Joining):
                    raise PersonaExists.of(existing.id, account_id)
                wanted[account_id] = self._persona_values(item.persona, account_id, existing)
            renamed = self._check_user_names(person, {**old, **changes}, wanted)
        except RosterError as error:
            return Written(None, error)

        created = person is None
        if person is None:
            person = _Person(next(self.ids), old, new=True, personas={})
        else:
            self._unindex(person)
        if changes:  # a new dict: the results of earlier items keep the values they left
            person.values = {**person.values, **changes}
        person.dirty = person.dirty or bool(changes)
        person.rekeyed = person.rekeyed or not changes.keys().isdisjoint(_UNIQUE_FIELDS)
        done = (
            [self._remove(person, accounts[0])]
            if removing
            else [w for a, v in wanted.items() if (w := self._set_persona(person, a, v))]
        )
        self._index(person)
        for account_id, was, key in renamed:
            if was is not None:
                self.user_names.get((account_id, was[1]), set()).discard(was[0])
            if key is not None:
                persona_id = person.personas[account_id].id
                self.user_names.setdefault((account_id, key), set()).add(persona_id)
        return Written(
            person.id,
            created=created,
            fields=tuple(changes),
            personas=tuple(done),
            person=person.values,
            account_ids=frozenset(person.personas),
        )

    def _check_user_names(
        self,
        person: _Person | None,
        values: Mapping[str, Any],
        wanted: Mapping[str, Mapping[str, Any]],
    ) -> list[tuple[str, tuple[uuid.UUID, str] | None, str | None]]:
        """Each persona whose userName key the item changes (in an account it writes, or
        in any of the person's accounts when the person's email changes), as (account,
        the persona and the key it read, the key it will read); ``DuplicateValue`` when
        one would read another persona's userName in its account (spec/scim.md)."""
        held = person.personas if person is not None else {}
        accounts = set(wanted)
        if person is not None and values.get("email_address") != person.values.get("email_address"):
            accounts.update(held)
        renamed = []
        for account_id in sorted(accounts):
            existing = held.get(account_id)
            persona = existing.values if existing is not None else _NEW_PERSONA
            was = user_name_key(person.values, persona) if person and existing else None
            then = {**persona, **wanted.get(account_id, {})}
            key = user_name_key(values, then)
            if key == was:
                continue
            others = self.user_names.get((account_id, key), set()) if key else set()
            if others - {existing.id if existing is not None else None}:
                if then.get("user_name"):
                    raise DuplicateValue.user_name("user_name", then["user_name"])
                taken = then.get("email_address") or values.get("email_address")
                raise DuplicateValue.user_name("email_address", taken)
            previous = (existing.id, was) if existing is not None and was else None
            renamed.append((account_id, previous, key))
        return renamed

    def _set_persona(
        self, person: _Person, account_id: str, values: dict[str, Any]
    ) -> PersonaWritten | None:
        persona = person.personas.get(account_id)
        if persona is None:
            values = {**_NEW_PERSONA, **values}
            persona = _Persona(next(self.ids), values, new=True)
            person.personas[account_id] = persona
            given = tuple(f for f, v in values.items() if v is not None)
            return PersonaWritten(persona.id, account_id, "created", given)
        changed = {f: v for f, v in values.items() if persona.values[f] != v}
        if not changed:
            return None
        persona.values.update(changed)
        persona.dirty = True
        return PersonaWritten(persona.id, account_id, "updated", tuple(changed))

    def _remove(self, person: _Person, account_id: str) -> PersonaWritten:
        persona = person.personas.pop(account_id)
        if key := user_name_key(person.values, persona.values):
            self.user_names.get((account_id, key), set()).discard(persona.id)
        removed = PersonaWritten(
            persona.id, account_id, "deleted", budgets_deleted=tuple(self.owned.get(persona.id, ()))
        )
        if not persona.new:
            self.removed.append(removed)
        return removed

    def created_rows(self) -> dict[tuple[uuid.UUID, str], PersonaRow]:
        """The ROWs of the persons this plan creates, by person and account, as it writes
        them (a new person has no others). Reads the plan only: safe in a thread while
        :meth:`write` runs."""
        at = self.at
        rows: dict[tuple[uuid.UUID, str], PersonaRow] = {}
        for person in self.persons.values():
            if not person.new:
                continue
            person_row = (person.id, *(person.values[c] for c in PERSON_COLUMNS), at, at)
            for account_id, persona in person.personas.items():
                values = (*(persona.values[c] for c in PERSONA_COLUMNS), at, at)
                rows[(person.id, account_id)] = PersonaRow(
                    person_row, (persona.id, account_id, *values)
                )
        return rows

    async def write(self, conn: AsyncConnection) -> None:
        """Write the planned changes with the backend's bulk paths."""
        backend = backend_for(conn)
        at = self.at
        new_persons: list[dict[str, Any]] = []
        changed_persons: list[dict[str, Any]] = []
        new_personas: list[dict[str, Any]] = []
        changed_personas: list[dict[str, Any]] = []
        refresh: set[uuid.UUID] = set()
        for person in self.persons.values():
            row = {"id": person.id, **person.values, **person_keys(person.values, self.region)}
            if person.new:
                new_persons.append({**row, "created_at": at, "updated_at": at})
            elif person.dirty:
                changed_persons.append({**row, "updated_at": at})
                refresh.add(person.id)
            for account_id, persona in person.personas.items():
                if persona.new:
                    new_personas.append(
                        {
                            "id": persona.id,
                            "person_id": person.id,
                            "account_id": account_id,
                            **persona.values,
                            "created_at": at,
                            "updated_at": at,
                            **persona_derived(person.values, persona.values, self.region),
                        }
                    )
                elif persona.dirty:
                    changed_personas.append({"id": persona.id, **persona.values, "updated_at": at})
                    refresh.add(person.id)
        if self.removed:
            owned = [b for removed in self.removed for b in removed.budgets_deleted]
            if owned:
                await conn.execute(delete(budgets).where(budgets.c.id.in_(owned)))
            gone = [removed.persona_id for removed in self.removed]
            await conn.execute(delete(personas).where(personas.c.id.in_(gone)))
        # A key one person gives up may be taken by another of this plan (a swap, even):
        # released first, each is free whatever order the rows are written in.
        released = [
            {"id": p.id, "email_key": None, "external_ref": None}
            for p in self.persons.values()
            if p.rekeyed and not p.new
        ]
        await update_many(conn, persons, "id", released)
        await backend.insert_many(conn, persons, new_persons)
        await update_many(conn, persons, "id", changed_persons)
        await backend.insert_many(conn, personas, new_personas)
        await update_many(conn, personas, "id", changed_personas)
        await refresh_personas(conn, refresh, self.region)
