"""The Persons API's core: exact lookup across accounts, and bulk create-or-update."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

from sqlalchemy import ColumnElement, Select, bindparam, exists, select
from sqlalchemy.ext.asyncio import AsyncConnection

from roster.core.accounts import resolve_groups
from roster.core.auth import Principal
from roster.core.fields import storable
from roster.core.matching import email_key, name_key, phone_key
from roster.core.writer import PersonWrite, Written, write_persons
from roster.db.backends import Backend, backend_for
from roster.db.tables import accounts, personas, persons
from roster.errors import BothGroupIdentifiersProvided, InvalidRequest, NotFound, RosterError

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


#: Each criterion: how a client's value becomes the compared key, and the column.
_CRITERIA: dict[str, tuple[Callable[[str, str], object], ColumnElement[Any]]] = {
    "first_name": (lambda value, _: name_key(value), persons.c.first_name_key),
    "last_name": (lambda value, _: name_key(value), persons.c.last_name_key),
    "email_address": (lambda value, _: email_key(value), persons.c.email_key),
    "phone_number": (phone_key, persons.c.phone_key),
    "external_ref": (lambda value, _: value, persons.c.external_ref),
    "identifier": (lambda value, _: _canonical_uuid(value), persons.c.id),
}


def _comparison_keys(criteria: PersonCriteria, region: str) -> dict[str, object] | None:
    """The key of each given criterion, or ``None`` if one of them can match nothing."""
    keys: dict[str, object] = {}
    for name, (key_of, _) in _CRITERIA.items():
        value = getattr(criteria, name)
        if value is None:
            continue
        key = key_of(value, region)
        if not key or not storable(str(key)):  # nothing stored is blank or holds a NUL
            return None
        keys[name] = key
    return keys


def _canonical_uuid(value: str) -> uuid.UUID | None:
    """The UUID an identifier names, only when written exactly as Roster writes ids."""
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        return None
    return parsed if str(parsed) == value else None


def belongs_to(backend: Backend, scoped: bool) -> ColumnElement[bool]:
    """The person has a persona in the accounts bound to ``scope`` (any account if not scoped)."""
    reach = personas.c.person_id == persons.c.id
    if scoped:
        reach = reach & backend.one_of(personas.c.account_id, "scope")
    return exists().where(reach)


def _memberships(backend: Backend, listed: Any, reach_limited: bool) -> ColumnElement[bool]:
    joined: ColumnElement[bool] = personas.c.person_id == listed.c.id
    if reach_limited:
        joined = joined & backend.one_of(personas.c.account_id, "reach")
    return joined


@lru_cache(maxsize=512)
def _find_statement(
    backend: Backend, names: tuple[str, ...], scoped: bool, reach_limited: bool
) -> Select[Any]:
    """The find query for one shape of request, built once (building costs more than running)."""
    listed = (
        select(*RECORD_COLUMNS)
        .where(
            persons.c.seq > bindparam("after"),
            belongs_to(backend, scoped),
            *(_CRITERIA[name][1] == bindparam(name) for name in names),
        )
        .order_by(persons.c.seq)
        .limit(bindparam("limit"))
        .cte("listed")
    )
    return (
        select(listed, personas.c.account_id)
        .outerjoin(personas, _memberships(backend, listed, reach_limited))
        .order_by(listed.c.seq, personas.c.account_id)
    )


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
    keys = _comparison_keys(criteria, region)
    if keys is None:
        raise NotFound()
    scope = account_ids if reachable is None else reachable
    if account_ids is not None and reachable is not None:
        scope = set(account_ids) & set(reachable)
    backend = backend_for(conn)
    statement = _find_statement(backend, tuple(keys), scope is not None, reachable is not None)
    parameters: dict[str, object] = {**keys, "after": after, "limit": page_size + 1}
    if scope is not None:
        parameters["scope"] = sorted(scope)
    if reachable is not None:
        parameters["reach"] = sorted(reachable)
    records = _group_rows(await backend.fetch_plain(conn, statement, parameters))
    if not records:
        raise NotFound()
    more = len(records) > page_size
    records = records[:page_size]
    return PersonsPage(records, records[-1].seq if more else -1)


def _group_rows(rows: Iterable[Sequence[Any]]) -> list[PersonRecord]:
    """Rows of a person's columns plus one account each, into records with group ids."""
    records: dict[int, PersonRecord] = {}
    groups: dict[int, list[str]] = {}
    for row in rows:
        *person, account_id = row
        record = records.setdefault(person[0], PersonRecord(*person))
        if account_id is not None:
            groups.setdefault(record.seq, []).append(account_id)
    return [replace(r, group_ids=tuple(groups.get(seq, ()))) for seq, r in records.items()]


async def with_group_ids(
    conn: AsyncConnection, page: Select[Any], reachable: Collection[str] | None
) -> list[PersonRecord]:
    """Run a query of :data:`RECORD_COLUMNS` and attach each person's reachable accounts."""
    listed = page.cte("listed")
    parameters = {"reach": sorted(reachable)} if reachable is not None else {}
    query = (
        select(listed, personas.c.account_id)
        .outerjoin(personas, _memberships(backend_for(conn), listed, reachable is not None))
        .order_by(listed.c.seq, personas.c.account_id)
    )
    return _group_rows(await conn.execute(query, parameters))


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

    Each item succeeds or fails on its own (see core/writer.py); a group the client
    cannot reach fails that item only. Each result shows the person as its item left it.
    """
    resolved: dict[tuple[tuple[str, ...] | None, tuple[str, ...] | None], frozenset[str]] = {}
    planned: list[PersonWrite] = []
    for item in items:
        ids = tuple(item.group_ids) if item.group_ids is not None else None
        refs = tuple(item.groups_external_refs) if item.groups_external_refs is not None else None
        try:
            if (ids, refs) not in resolved:
                resolved[(ids, refs)] = await _item_groups(conn, principal, ids, refs)
            planned.append(PersonWrite(item.person, resolved[(ids, refs)]))
        except RosterError as error:
            planned.append(PersonWrite(item.person, frozenset(), error=error))
    written = await write_persons(conn, planned, region=region, reach=principal.account_ids)
    records = await person_records(
        conn, [w.person_id for w in written if w.person_id], principal.account_ids
    )
    return [
        PersonUpserted(_as_left(records[w.person_id], w) if w.person_id else None, w.error)
        for w in written
    ]


def _as_left(record: PersonRecord, written: Written) -> PersonRecord:
    """The record of a person as one item left it (a later item may change it again)."""
    return replace(
        record,
        first_name=written.person["first_name"],
        last_name=written.person["last_name"],
        email_address=written.person["email_address"],
        phone_number=written.person["phone_number"],
        external_ref=written.person["external_ref"],
        group_ids=tuple(a for a in record.group_ids if a in written.account_ids),
    )


#: Said of an upsert item that names both kinds of group (the seed's words are the find's).
BOTH_GROUPS_IN_ITEM = (
    "You have provided both group ids and group external references for this item. "
    "Please only provide one of the two."
)


async def _item_groups(
    conn: AsyncConnection,
    principal: Principal,
    ids: Sequence[str] | None,
    refs: Sequence[str] | None,
) -> frozenset[str]:
    if ids is not None and refs is not None:
        raise BothGroupIdentifiersProvided(BOTH_GROUPS_IN_ITEM)
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
