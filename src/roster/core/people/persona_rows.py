"""A ROW: one person joined with its persona on one account, and the embeds a listing adds."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.ext.asyncio import AsyncConnection

from roster.db.tables import personas, persons
from roster.errors import NotFound


class Embed(StrEnum):
    """What ``include`` may add inside a row's persona."""

    ADDRESSES = "persona.addresses"
    CREATED_BY = "persona.createdBy"
    TEAMS = "persona.teams"
    PRIMARY_OWNER_OF = "persona.primaryOwnerOf"
    ROLES = "persona.roles"


@dataclass(frozen=True, slots=True)
class Address:
    id: uuid.UUID
    type: str
    address_line1: str
    address_line2: str | None
    address_line3: str | None
    city: str
    region: str | None
    postcode: str
    country_code: str


@dataclass(frozen=True, slots=True)
class PersonaRef:
    """Who created a persona: that persona and its person's names."""

    id: uuid.UUID
    person_id: uuid.UUID
    first_name: str | None
    last_name: str | None
    email_address: str | None


@dataclass(frozen=True, slots=True)
class TeamRef:
    id: uuid.UUID
    name: str


@dataclass(frozen=True, slots=True)
class Ownership:
    """A team or budget a persona is the primary owner of."""

    type: str  # "team" or "budget"
    id: uuid.UUID
    name: str


@dataclass(frozen=True, slots=True)
class RoleRef:
    id: uuid.UUID
    name: str
    type: str | None


@dataclass(slots=True)
class PersonaRow:
    """A person and its persona on one account; embeds are filled only when included."""

    id: uuid.UUID
    first_name: str | None
    last_name: str | None
    title: str | None
    middle_initials: str | None
    dob: date | None
    gender: str | None
    nationality: str | None
    country_of_residence: str | None
    email_address: str | None
    phone_number: str | None
    external_ref: str | None
    created_at: datetime
    updated_at: datetime
    persona_id: uuid.UUID
    account_id: str
    persona_email_address: str | None
    employee_number: str | None
    work_number: str | None
    job_title: str | None
    status: str
    role_id: uuid.UUID
    created_by_persona_id: uuid.UUID | None
    persona_created_at: datetime
    persona_updated_at: datetime
    included: frozenset[Embed] = frozenset()
    #: Embeds the database rendered as JSON text (PostgreSQL), in place of the lists below.
    rendered: dict[Embed, str] = field(default_factory=dict)
    addresses: list[Address] = field(default_factory=list)
    created_by: PersonaRef | None = None
    teams: list[TeamRef] = field(default_factory=list)
    primary_owner_of: list[Ownership] = field(default_factory=list)
    roles: list[RoleRef] = field(default_factory=list)


ROW_COLUMNS: tuple[ColumnElement[Any], ...] = (
    persons.c.id,
    persons.c.first_name,
    persons.c.last_name,
    persons.c.title,
    persons.c.middle_initials,
    persons.c.dob,
    persons.c.gender,
    persons.c.nationality,
    persons.c.country_of_residence,
    persons.c.email_address,
    persons.c.phone_number,
    persons.c.external_ref,
    persons.c.created_at,
    persons.c.updated_at,
    personas.c.id.label("persona_id"),
    personas.c.account_id,
    personas.c.email_address.label("persona_email_address"),
    personas.c.employee_number,
    personas.c.work_number,
    personas.c.job_title,
    personas.c.status,
    personas.c.role_id,
    personas.c.created_by_persona_id,
    personas.c.created_at.label("persona_created_at"),
    personas.c.updated_at.label("persona_updated_at"),
)


#: A ROW's columns are the first fields of PersonaRow, in order: rows are built by position.
assert [c.name for c in ROW_COLUMNS] == [f.name for f in fields(PersonaRow)][: len(ROW_COLUMNS)]


def rows_select() -> Select[Any]:
    """The ROW columns of personas joined with their persons, to be filtered and ordered."""
    return select(*ROW_COLUMNS).select_from(
        personas.join(persons, persons.c.id == personas.c.person_id)
    )


async def persona_row(conn: AsyncConnection, account_id: str, persona_id: uuid.UUID) -> PersonaRow:
    """The ROW of one persona of this account, without embeds; ``NotFound`` if there is none."""
    rows = await persona_rows(conn, account_id, [persona_id])
    if not rows:
        raise persona_not_found(account_id, persona_id)
    return rows[0]


async def persona_rows(
    conn: AsyncConnection, account_id: str, persona_ids: Collection[uuid.UUID]
) -> list[PersonaRow]:
    """The ROWs of these personas of this account (others are left out), without embeds."""
    found = await conn.execute(
        rows_select().where(
            personas.c.account_id == account_id, personas.c.id.in_(list(persona_ids))
        )
    )
    return [PersonaRow(*row) for row in found]


def persona_not_found(account_id: str, persona_id: uuid.UUID) -> NotFound:
    return NotFound(f"There is no persona {persona_id} in account {account_id!r}.")
