"""A ROW: one person joined with its persona on one account, with the embeds a listing adds.

Its columns are the declared person and persona fields (core/fields.py), in declaration
order, between the ids and the timestamps.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.ext.asyncio import AsyncConnection

from roster.core.fields import PERSON, PERSONA, stored
from roster.db.tables import personas, persons
from roster.errors import NotFound

if TYPE_CHECKING:
    from roster.core.people.embeds import Embed

#: The person's and the persona's stored fields, in the order of their values in a row.
PERSON_COLUMNS = tuple(f.name for f in stored(PERSON))
PERSONA_COLUMNS = tuple(f.name for f in stored(PERSONA))

_PERSON_ROW: tuple[ColumnElement[Any], ...] = (
    persons.c.id,
    *(persons.c[name] for name in PERSON_COLUMNS),
    persons.c.created_at,
    persons.c.updated_at,
)
_PERSONA_ROW: tuple[ColumnElement[Any], ...] = (
    personas.c.id.label("persona_id"),
    personas.c.account_id,
    *(personas.c[name].label(f"persona_{name}") for name in PERSONA_COLUMNS),
    personas.c.created_at.label("persona_created_at"),
    personas.c.updated_at.label("persona_updated_at"),
)
ROW_COLUMNS = (*_PERSON_ROW, *_PERSONA_ROW)
#: Where each of the person's values is in ``PersonaRow.person``, and the persona's in
#: ``PersonaRow.persona``.
PERSON_AT = {"id": 0, **{name: 1 + i for i, name in enumerate(PERSON_COLUMNS)}}
PERSONA_AT = {"id": 0, "account_id": 1, **{n: 2 + i for i, n in enumerate(PERSONA_COLUMNS)}}


@dataclass(slots=True)
class PersonaRow:
    """A person and its persona on one account; embeds are filled only when included."""

    #: The person's id, its stored fields (``PERSON_COLUMNS``), created_at, updated_at.
    person: tuple[Any, ...]
    #: The persona's id, account_id, its stored fields (``PERSONA_COLUMNS``), created_at,
    #: updated_at.
    persona: tuple[Any, ...]
    #: The embeds asked for, in the order they are declared.
    included: tuple[Embed, ...] = ()
    #: Each included embed by name: its items (a list, or one item or None) ...
    embeds: dict[str, Any] = field(default_factory=dict)
    #: ... or the JSON text the database wrote for it (PostgreSQL).
    rendered: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, row: Sequence[Any]) -> PersonaRow:
        """A ROW from the values of ``ROW_COLUMNS``, in order."""
        return cls(tuple(row[: len(_PERSON_ROW)]), tuple(row[len(_PERSON_ROW) : len(ROW_COLUMNS)]))

    @property
    def id(self) -> uuid.UUID:
        """The person's id."""
        person_id: uuid.UUID = self.person[0]
        return person_id

    @property
    def persona_id(self) -> uuid.UUID:
        persona_id: uuid.UUID = self.persona[0]
        return persona_id

    def persona_value(self, name: str) -> Any:
        """One of the persona's values: ``id``, ``account_id`` or a stored field's."""
        return self.persona[PERSONA_AT[name]]


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
    return [PersonaRow.of(row) for row in found]


def persona_not_found(account_id: str, persona_id: uuid.UUID) -> NotFound:
    return NotFound(f"There is no persona {persona_id} in account {account_id!r}.")
