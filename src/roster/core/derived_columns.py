"""Derived columns: the comparison keys of persons and the sort and search columns of personas.

They are derived from the fields clients write, so every write path calls these
functions instead of computing them itself.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from roster.core.matching import email_key, name_key, phone_key, search_text
from roster.db.tables import personas, persons

#: The person fields a client may write, in the order the APIs list them.
PERSON_FIELDS = (
    "first_name",
    "last_name",
    "title",
    "middle_initials",
    "dob",
    "gender",
    "nationality",
    "country_of_residence",
    "email_address",
    "phone_number",
    "external_ref",
)

#: The persona fields a client may write.
PERSONA_FIELDS = (
    "status",
    "email_address",
    "employee_number",
    "work_number",
    "job_title",
    "role_id",
    "created_by_persona_id",
)


def person_keys(person: Mapping[str, Any], region: str) -> dict[str, str | None]:
    """The key columns for a person's fields (all four, from the given values)."""
    return {
        "email_key": email_key(person.get("email_address")),
        "phone_key": phone_key(person.get("phone_number"), region),
        "first_name_key": name_key(person.get("first_name")),
        "last_name_key": name_key(person.get("last_name")),
    }


def persona_derived(
    person: Mapping[str, Any], persona: Mapping[str, Any], region: str
) -> dict[str, str]:
    """The sort and search columns of a persona, from its person's and its own fields."""
    return {
        "sort_last": name_key(person.get("last_name")) or "",
        "sort_first": name_key(person.get("first_name")) or "",
        "search_text": search_text(
            (
                person.get("first_name"),
                person.get("last_name"),
                person.get("email_address"),
                persona.get("email_address"),
                persona.get("employee_number"),
            ),
            (person.get("phone_number"), persona.get("work_number")),
            region,
        ),
    }


async def refresh_personas(
    conn: AsyncConnection, person_ids: Collection[uuid.UUID], region: str
) -> None:
    """Recompute the derived columns of every persona of these persons, in every account."""
    if not person_ids:
        return
    rows = await conn.execute(
        select(
            personas.c.seq,
            personas.c.email_address.label("persona_email_address"),
            personas.c.employee_number,
            personas.c.work_number,
            persons.c.first_name,
            persons.c.last_name,
            persons.c.email_address,
            persons.c.phone_number,
        )
        .join(persons, persons.c.id == personas.c.person_id)
        .where(personas.c.person_id.in_(list(person_ids)))
    )
    changes = []
    for row in rows:
        m = row._mapping
        persona = {
            "email_address": m["persona_email_address"],
            "employee_number": m["employee_number"],
            "work_number": m["work_number"],
        }
        changes.append({"_seq": m["seq"], **persona_derived(dict(m), persona, region)})
    if changes:
        await conn.execute(
            update(personas)
            .where(personas.c.seq == bindparam("_seq"))
            .values(
                sort_last=bindparam("sort_last"),
                sort_first=bindparam("sort_first"),
                search_text=bindparam("search_text"),
            ),
            changes,
        )
