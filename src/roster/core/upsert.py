"""Create-or-update of persons by the matching rules, many at a time.

One engine serves the Persons API's bulk upsert (``POST /persons/multiple/``) and
``roster import``. A batch is planned in memory, then written in bulk:

1. every person any item could match is fetched in one query;
2. the items are applied in order to that in-memory view, so an item sees the
   effects of the items before it exactly as if they had run one by one; an item
   that breaks a rule fails and changes nothing;
3. the surviving changes are written with the backend's bulk paths.

If the write meets a uniqueness violation (another writer got in between), the
batch is retried one item at a time, each planned again and written in its own
savepoint, so only the items that really conflict fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import CompoundSelect, exists, select, union
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from roster.core.clock import now
from roster.core.keys import PERSON_FIELDS, person_keys, persona_derived, refresh_personas
from roster.core.matching import email_key, phone_key
from roster.db.backends import Backend, backend_for, update_many
from roster.db.tables import personas, persons, roles
from roster.errors import Conflict, RosterError, Unprocessable

#: Items per planned batch: bounded so that the prefetch stays within SQLite's
#: limit on bound parameters.
MAX_BATCH = 2000

#: The persona fields an item may set (``role_name`` is resolved to a role id).
ITEM_PERSONA_FIELDS = ("status", "role_name", "employee_number", "job_title", "work_number")
_PERSONA_COLUMNS = (
    "status",
    "email_address",
    "employee_number",
    "job_title",
    "work_number",
    "role_id",
)
#: The person fields behind a unique column (external_ref, and email_address's key).
_UNIQUE_FIELDS = frozenset({"email_address", "external_ref"})
DEFAULT_STATUS = "active"
DEFAULT_ROLE = "User"


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
    type = "duplicate_value"


_RACED = "Another person already holds the email_address or external_ref this item gives."


@dataclass(frozen=True)
class UpsertItem:
    """One person to create or update, and the accounts it belongs in."""

    person: Mapping[str, Any]  # the given person fields; absent fields are left as they are
    account_ids: frozenset[str]  # resolved accounts, each reachable by the caller
    persona: Mapping[str, Any] = field(default_factory=dict)  # ITEM_PERSONA_FIELDS
    error: RosterError | None = None  # failed before planning (bad group, bad value)


@dataclass(frozen=True)
class UpsertOutcome:
    person_id: uuid.UUID | None
    error: RosterError | None = None
    created_person: bool = False
    created_personas: int = 0
    changed: bool = False


def has_enough_to_match(person: Mapping[str, Any]) -> bool:
    """An external_ref, or an email or phone together with a first or last name."""
    return bool(person.get("external_ref")) or (
        bool(person.get("email_address") or person.get("phone_number"))
        and bool(person.get("first_name") or person.get("last_name"))
    )


async def upsert_persons(
    conn: AsyncConnection, items: Sequence[UpsertItem], *, region: str
) -> list[UpsertOutcome]:
    """Apply every item in order; one outcome per item, failed items changing nothing."""
    outcomes: list[UpsertOutcome] = []
    for start in range(0, len(items), MAX_BATCH):
        planned = await plan_upserts(conn, items[start : start + MAX_BATCH], region)
        outcomes.extend(await write_planned(conn, planned))
    return outcomes


@dataclass(frozen=True)
class PlannedUpserts:
    """Items planned against what a connection read; nothing written yet."""

    items: Sequence[UpsertItem]
    outcomes: list[UpsertOutcome]
    plan: _Plan


async def plan_upserts(
    conn: AsyncConnection, items: Sequence[UpsertItem], region: str
) -> PlannedUpserts:
    """Plan the items (at most MAX_BATCH) against what ``conn`` reads, writing nothing."""
    plan = _Plan(region)
    await plan.load(conn, items)
    return PlannedUpserts(items, [plan.apply(item) for item in items], plan)


async def write_planned(conn: AsyncConnection, planned: PlannedUpserts) -> list[UpsertOutcome]:
    """Write a plan in a savepoint of ``conn``'s transaction; the items' outcomes.

    On a uniqueness violation (another writer got in between) each item is planned
    again alone, against what the database holds now, and written in a savepoint of
    its own; an item that still meets one fails alone.
    """
    try:
        async with conn.begin_nested():
            await planned.plan.write(conn)
        return planned.outcomes
    except IntegrityError:
        pass
    outcomes: list[UpsertOutcome] = []
    for item in planned.items:
        alone = await plan_upserts(conn, [item], planned.plan.region)
        try:
            async with conn.begin_nested():
                await alone.plan.write(conn)
            outcomes.extend(alone.outcomes)
        except IntegrityError:
            outcomes.append(UpsertOutcome(None, DuplicateValue(_RACED)))
    return outcomes


@dataclass
class _Persona:
    id: uuid.UUID
    values: dict[str, Any]
    new: bool
    dirty: bool = False


@dataclass
class _Person:
    id: uuid.UUID
    values: dict[str, Any]
    new: bool
    personas: dict[str, _Persona]
    dirty: bool = False
    #: Its email or external_ref changes: the old one is released before any is taken.
    rekeyed: bool = False


@lru_cache(maxsize=16)
def _prefetch_statement(
    backend: Backend, by_ref: bool, by_email: bool, by_phone: bool
) -> CompoundSelect[Any]:
    """Every person an item could match: one index lookup per rule, as a UNION.

    An OR of the three would let the planner fall back to scanning the whole table
    once it is large. Parameters: ``refs``, ``emails``, ``phones``, ``accounts``.
    """
    columns = (persons.c.id, *(persons.c[f] for f in PERSON_FIELDS))
    lookups = []
    if by_ref:
        lookups.append(select(*columns).where(backend.one_of(persons.c.external_ref, "refs")))
    if by_email:
        lookups.append(select(*columns).where(backend.one_of(persons.c.email_key, "emails")))
    if by_phone:
        in_accounts = backend.one_of(personas.c.account_id, "accounts")
        lookups.append(
            select(*columns).where(
                backend.one_of(persons.c.phone_key, "phones"),
                exists().where(personas.c.person_id == persons.c.id, in_accounts),
            )
        )
    return union(*lookups)


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

    def __init__(self, region: str) -> None:
        self.region = region
        self.ids = _random_ids()
        self.persons: dict[uuid.UUID, _Person] = {}
        self.by_ref: dict[str, uuid.UUID] = {}
        self.by_email: dict[str, uuid.UUID] = {}
        self.by_phone: dict[tuple[str, str], set[uuid.UUID]] = {}
        self.roles: dict[tuple[str, str], uuid.UUID] = {}
        self.at: datetime = now()

    async def load(self, conn: AsyncConnection, items: Sequence[UpsertItem]) -> None:
        live = [item for item in items if item.error is None]
        accounts = sorted({a for item in live for a in item.account_ids})
        refs = {r for item in live if (r := item.person.get("external_ref"))}
        emails = {k for item in live if (k := email_key(item.person.get("email_address")))}
        phones = {
            k for item in live if (k := phone_key(item.person.get("phone_number"), self.region))
        }
        backend = backend_for(conn)
        if refs or emails or (phones and accounts):
            statement = _prefetch_statement(
                backend, bool(refs), bool(emails), bool(phones and accounts)
            )
            parameters = {"refs": list(refs), "emails": list(emails), "phones": list(phones)}
            for row in await conn.execute(statement, {**parameters, "accounts": accounts}):
                values = dict(row._mapping)
                person_id = values.pop("id")
                self._index(_Person(person_id, values, new=False, personas={}))
        if self.persons and accounts:
            found = await conn.execute(
                select(personas).where(
                    backend.one_of(personas.c.person_id, "persons"),
                    backend.one_of(personas.c.account_id, "accounts"),
                ),
                {"persons": list(self.persons), "accounts": accounts},
            )
            for row in found:
                m = row._mapping
                values = {f: m[f] for f in _PERSONA_COLUMNS}
                person = self.persons[m["person_id"]]
                person.personas[m["account_id"]] = _Persona(m["id"], values, new=False)
                self._index_phone(person, m["account_id"])
        if accounts:
            for role_id, account_id, name_key in await conn.execute(
                select(roles.c.id, roles.c.account_id, roles.c.name_key).where(
                    roles.c.account_id.in_(accounts)
                )
            ):
                self.roles[(account_id, name_key)] = role_id

    def _index(self, person: _Person) -> None:
        self.persons[person.id] = person
        if ref := person.values.get("external_ref"):
            self.by_ref[ref] = person.id
        if key := email_key(person.values.get("email_address")):
            self.by_email[key] = person.id
        for account_id in person.personas:
            self._index_phone(person, account_id)

    def _index_phone(self, person: _Person, account_id: str) -> None:
        if key := phone_key(person.values.get("phone_number"), self.region):
            self.by_phone.setdefault((account_id, key), set()).add(person.id)

    def _unindex(self, person: _Person) -> None:
        if (ref := person.values.get("external_ref")) and self.by_ref.get(ref) == person.id:
            del self.by_ref[ref]
        key = email_key(person.values.get("email_address"))
        if key and self.by_email.get(key) == person.id:
            del self.by_email[key]
        pkey = phone_key(person.values.get("phone_number"), self.region)
        for account_id in person.personas:
            self.by_phone.get((account_id, pkey or ""), set()).discard(person.id)

    def _match(self, item: UpsertItem) -> uuid.UUID | None:
        """By external_ref; failing that by email; failing that by phone in the item's groups."""
        given = item.person
        if (ref := given.get("external_ref")) and ref in self.by_ref:
            return self.by_ref[ref]
        if (key := email_key(given.get("email_address"))) and key in self.by_email:
            return self.by_email[key]
        if pkey := phone_key(given.get("phone_number"), self.region):
            candidates = set().union(
                *(self.by_phone.get((a, pkey), set()) for a in item.account_ids)
            )
            if len(candidates) > 1:
                raise AmbiguousMatch()
            if candidates:
                return candidates.pop()
        return None

    def _check_unique(self, person_id: uuid.UUID | None, given: Mapping[str, Any]) -> None:
        key = email_key(given.get("email_address"))
        if key and self.by_email.get(key, person_id) != person_id:
            raise DuplicateValue(
                f"The email address {given['email_address']!r} belongs to another person."
            )
        ref = given.get("external_ref")
        if ref and self.by_ref.get(ref, person_id) != person_id:
            raise DuplicateValue(f"The external_ref {ref!r} belongs to another person.")

    def _persona_values(
        self, item: UpsertItem, person_id: uuid.UUID | None, account_id: str
    ) -> dict[str, Any]:
        """The persona fields the item sets in one account, with defaults for a new persona."""
        values = {
            f: item.persona[f]
            for f in ("status", "employee_number", "job_title", "work_number")
            if item.persona.get(f) is not None
        }
        role_name = item.persona.get("role_name")
        exists_already = person_id is not None and account_id in self.persons[person_id].personas
        if not role_name and not exists_already:
            role_name = DEFAULT_ROLE
        if role_name:
            role_id = self.roles.get((account_id, str(role_name).casefold()))
            if role_id is None:
                raise Unprocessable(f"There is no role {role_name!r} in account {account_id!r}.")
            values["role_id"] = role_id
        return values

    def apply(self, item: UpsertItem) -> UpsertOutcome:
        """Plan one item; a broken rule fails it before anything in the view changes."""
        if item.error is not None:
            return UpsertOutcome(None, item.error)
        try:
            if not has_enough_to_match(item.person):
                raise InsufficientInformation()
            person_id = self._match(item)
            self._check_unique(person_id, item.person)
            wanted = {a: self._persona_values(item, person_id, a) for a in item.account_ids}
        except RosterError as error:
            return UpsertOutcome(None, error)

        person = (
            self.persons[person_id]
            if person_id is not None
            else _Person(next(self.ids), dict.fromkeys(PERSON_FIELDS), new=True, personas={})
        )
        changes = {f: v for f, v in item.person.items() if person.values.get(f) != v}
        self._unindex(person)
        person.values.update(changes)
        person.dirty = person.dirty or bool(changes)
        person.rekeyed = person.rekeyed or not changes.keys().isdisjoint(_UNIQUE_FIELDS)
        created_personas = 0
        personas_changed = False
        for account_id, values in wanted.items():
            persona = person.personas.get(account_id)
            if persona is None:
                blank = dict.fromkeys(
                    ("email_address", "employee_number", "job_title", "work_number")
                )
                person.personas[account_id] = _Persona(
                    next(self.ids), {**blank, "status": DEFAULT_STATUS, **values}, new=True
                )
                created_personas += 1
            elif any(persona.values.get(f) != v for f, v in values.items()):
                persona.values.update(values)
                persona.dirty = personas_changed = True
        self._index(person)
        return UpsertOutcome(
            person.id,
            created_person=person_id is None,
            created_personas=created_personas,
            changed=bool(changes) or personas_changed,
        )

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
                            "created_by_persona_id": None,
                            "created_at": at,
                            "updated_at": at,
                            **persona_derived(person.values, persona.values, self.region),
                        }
                    )
                elif persona.dirty:
                    changed_personas.append({"id": persona.id, **persona.values, "updated_at": at})
                    refresh.add(person.id)
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
