"""The Persons API's core: exact lookup across accounts, and bulk create-or-update."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import ColumnElement, Select, exists, false, select
from sqlalchemy.ext.asyncio import AsyncConnection

from roster.core.accounts import resolve_groups
from roster.core.auth import Principal
from roster.core.matching import email_key, name_key, phone_key
from roster.core.upsert import UpsertItem, upsert_persons
from roster.db.tables import accounts, personas, persons
from roster.errors import InvalidRequest, NotFound, RosterError

PAGE_SIZE = 100


@dataclass(frozen=True)
class PersonCriteria:
    """What a find asks for; every given field must match (AND), none given matches all."""

    first_name: str | None = None
    last_name: str | None = None
    email_address: str | None = None
    phone_number: str | None = None
    external_ref: str | None = None
    identifier: str | None = None


@dataclass(frozen=True)
class PersonRecord:
    """A person as both lookups return it, with the reachable accounts it belongs to."""

    seq: int
    id: uuid.UUID
    first_name: str | None
    last_name: str | None
    email_address: str | None
    phone_number: str | None
    external_ref: str | None
    group_ids: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class PersonsPage:
    persons: list[PersonRecord]
    last_id: int  # the cursor to pass as after-id, or -1 when this page is the last


RECORD_COLUMNS = (
    persons.c.seq,
    persons.c.id,
    persons.c.first_name,
    persons.c.last_name,
    persons.c.email_address,
    persons.c.phone_number,
    persons.c.external_ref,
)


def _criteria_conditions(criteria: PersonCriteria, region: str) -> list[ColumnElement[bool]]:
    """One condition per given criterion; a value that cannot match anything gives ``false``."""
    conditions: list[ColumnElement[bool]] = []
    keyed = (
        (criteria.first_name, name_key, persons.c.first_name_key),
        (criteria.last_name, name_key, persons.c.last_name_key),
        (criteria.email_address, email_key, persons.c.email_key),
    )
    for value, key_of, column in keyed:
        if value is not None:
            key = key_of(value)
            conditions.append(column == key if _storable(key) else false())
    if criteria.phone_number is not None:
        key = phone_key(criteria.phone_number, region)
        conditions.append(persons.c.phone_key == key if _storable(key) else false())
    if criteria.external_ref is not None:
        ref = criteria.external_ref
        conditions.append(persons.c.external_ref == ref if _storable(ref) else false())
    if criteria.identifier is not None:
        identifier = _canonical_uuid(criteria.identifier)
        conditions.append(persons.c.id == identifier if identifier else false())
    return conditions


def _storable(value: str | None) -> bool:
    """False for values no stored record can hold (nothing, or a NUL character)."""
    return bool(value) and "\x00" not in str(value)


def _canonical_uuid(value: str) -> uuid.UUID | None:
    """The UUID an identifier names, only when written exactly as Roster writes ids."""
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        return None
    return parsed if str(parsed) == value else None


def belongs_to(account_ids: Collection[str] | None) -> ColumnElement[bool]:
    """The person has a persona in one of these accounts (``None``: in any account)."""
    reach = personas.c.person_id == persons.c.id
    if account_ids is not None:
        reach = reach & personas.c.account_id.in_(sorted(account_ids))
    return exists().where(reach)


async def find_persons(
    conn: AsyncConnection,
    criteria: PersonCriteria,
    *,
    account_ids: Collection[str] | None,
    reachable: Collection[str] | None,
    after: int,
    region: str,
    page_size: int = PAGE_SIZE,
) -> PersonsPage:
    """The next page of persons matching ``criteria`` with a persona in ``account_ids``.

    ``reachable`` (the client's accounts; ``None`` for all) always bounds both the
    persons and the ``group_ids`` shown, whatever ``account_ids`` asks for. Raises
    :class:`NotFound` when the page is empty.
    """
    scope = account_ids if reachable is None else reachable
    if account_ids is not None and reachable is not None:
        scope = set(account_ids) & set(reachable)
    page = (
        select(*RECORD_COLUMNS)
        .where(
            persons.c.seq > after,
            belongs_to(scope),
            *_criteria_conditions(criteria, region),
        )
        .order_by(persons.c.seq)
        .limit(page_size + 1)
    )
    records = await with_group_ids(conn, page, reachable)
    if not records:
        raise NotFound()
    more = len(records) > page_size
    records = records[:page_size]
    return PersonsPage(records, records[-1].seq if more else -1)


async def with_group_ids(
    conn: AsyncConnection, page: Select[tuple[object, ...]], reachable: Collection[str] | None
) -> list[PersonRecord]:
    """Run a query of :data:`RECORD_COLUMNS` and attach each person's reachable accounts."""
    listed = page.cte("listed")
    memberships = personas.c.person_id == listed.c.id
    if reachable is not None:
        memberships = memberships & personas.c.account_id.in_(sorted(reachable))
    rows = await conn.execute(
        select(listed, personas.c.account_id)
        .outerjoin(personas, memberships)
        .order_by(listed.c.seq, personas.c.account_id)
    )
    records: dict[int, PersonRecord] = {}
    groups: dict[int, list[str]] = {}
    for row in rows:
        *person, account_id = row
        record = records.setdefault(row.seq, PersonRecord(*person))
        if account_id is not None:
            groups.setdefault(record.seq, []).append(account_id)
    return [replace(r, group_ids=tuple(groups.get(seq, ()))) for seq, r in records.items()]


class GroupRequired(InvalidRequest):
    type = "group_required"
    default_message = "group_ids or groups_external_refs is required"


@dataclass(frozen=True)
class PersonUpsert:
    """One item of a bulk upsert: the person's given fields, and the groups it names."""

    person: Mapping[str, Any]
    group_ids: Sequence[str] | None = None
    groups_external_refs: Sequence[str] | None = None


@dataclass(frozen=True)
class PersonUpserted:
    record: PersonRecord | None
    error: RosterError | None


async def person_records(
    conn: AsyncConnection, person_ids: Collection[uuid.UUID], reachable: Collection[str] | None
) -> dict[uuid.UUID, PersonRecord]:
    """The records of these persons, by id, with their reachable accounts."""
    if not person_ids:
        return {}
    query = select(*RECORD_COLUMNS).where(persons.c.id.in_(list(person_ids)))
    return {record.id: record for record in await with_group_ids(conn, query, reachable)}


async def upsert_persons_in_groups(
    conn: AsyncConnection,
    principal: Principal,
    items: Sequence[PersonUpsert],
    *,
    region: str,
) -> list[PersonUpserted]:
    """Create or update each item's person and give it a persona in each of its groups.

    Each item succeeds or fails on its own (see core/upsert.py); a group the client
    cannot reach fails that item only.
    """
    resolved: dict[tuple[tuple[str, ...] | None, tuple[str, ...] | None], frozenset[str]] = {}
    planned: list[UpsertItem] = []
    for item in items:
        ids = tuple(item.group_ids) if item.group_ids is not None else None
        refs = tuple(item.groups_external_refs) if item.groups_external_refs is not None else None
        try:
            if (ids, refs) not in resolved:
                resolved[(ids, refs)] = await _item_groups(conn, principal, ids, refs)
            planned.append(UpsertItem(item.person, resolved[(ids, refs)]))
        except RosterError as error:
            planned.append(UpsertItem(item.person, frozenset(), error=error))
    outcomes = await upsert_persons(conn, planned, region=region)
    records = await person_records(
        conn, [o.person_id for o in outcomes if o.person_id], principal.account_ids
    )
    return [
        PersonUpserted(records[o.person_id] if o.person_id else None, o.error) for o in outcomes
    ]


async def _item_groups(
    conn: AsyncConnection,
    principal: Principal,
    ids: Sequence[str] | None,
    refs: Sequence[str] | None,
) -> frozenset[str]:
    groups = await resolve_groups(conn, principal, ids, refs)
    if ids is not None or refs is not None:
        assert groups is not None
        return groups
    # No group named: the client's one account, if it reaches exactly one.
    if groups is None:
        every = list(await conn.scalars(select(accounts.c.id).limit(2)))
        groups = frozenset(every)
    if len(groups) != 1:
        raise GroupRequired()
    return groups
