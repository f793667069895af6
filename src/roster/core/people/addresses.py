"""Postal addresses of personas."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from roster.core.clock import now
from roster.core.events import append_events, created_event
from roster.core.people.embeds import Address
from roster.core.people.personas import require_personas
from roster.db.tables import addresses, personas
from roster.errors import Unprocessable

#: The one type a persona's address may not have (compared ignoring case).
RESERVED_TYPE = "registered"


async def add_address(
    conn: AsyncConnection, account_id: str, persona_id: uuid.UUID, address: Mapping[str, Any]
) -> Address:
    """Give a persona of this account an address; any type but ``registered``."""
    if address["type"].strip().casefold() == RESERVED_TYPE:
        raise Unprocessable(
            f"An address of type {address['type']!r} cannot be given to a persona: "
            f"the type {RESERVED_TYPE!r} is reserved."
        )
    await require_personas(conn, account_id, [persona_id])
    values = {"address_line2": None, "address_line3": None, "region": None, **address}
    created = Address(id=uuid.uuid4(), **values)
    at = now()
    await conn.execute(
        insert(addresses).values(
            persona_id=persona_id, **asdict(created), created_at=at, updated_at=at
        )
    )
    person_id = await conn.scalar(select(personas.c.person_id).where(personas.c.id == persona_id))
    event = created_event(account_id, "address", created, person_id, persona_id=persona_id)
    await append_events(conn, [event])
    return created
