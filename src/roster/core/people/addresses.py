"""Postal addresses of personas."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, fields
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from roster.core.clock import now
from roster.core.events import Event, append_events, created_event
from roster.core.people.embeds import Address, ScimAddress
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
    # An address SCIM writes keeps what SCIM sends beside it (its events show it too).
    item = ScimAddress if _SCIM_ONLY & address.keys() else Address
    created = item(id=uuid.uuid4(), **values)
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


#: An address's own values (all but its id), as ``set_addresses`` compares them: SCIM's
#: (it is the one writer of a persona's addresses as a whole).
_VALUES = tuple(f.name for f in fields(ScimAddress) if f.name != "id")
#: What only SCIM's addresses have.
_SCIM_ONLY = frozenset(_VALUES) - {f.name for f in fields(Address)}


def _values(address: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(address.get(name) for name in _VALUES)


async def addresses_of(
    conn: AsyncConnection, persona_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, list[Address]]:
    """These personas' addresses, each persona's in the order they were given."""
    found: dict[uuid.UUID, list[Address]] = {}  # ScimAddress, each
    if not persona_ids:
        return found
    rows = await conn.execute(
        select(addresses.c.persona_id, *(addresses.c[f] for f in ("id", *_VALUES)))
        .where(addresses.c.persona_id.in_(list(persona_ids)))
        .order_by(addresses.c.created_at, addresses.c.id)
    )
    for persona_id, *values in rows:
        found.setdefault(persona_id, []).append(ScimAddress(*values))
    return found


async def set_addresses(
    conn: AsyncConnection,
    account_id: str,
    persona_id: uuid.UUID,
    wanted: Sequence[Mapping[str, Any]],
) -> bool:
    """Make a persona's addresses exactly ``wanted`` (each its values, without an id), as
    a resource that lists them all (a SCIM User) replaces them: an address equal in every
    value to one wanted stays as it is (its id too), the others are deleted, and the rest
    are added (``add_address``'s rules). Whether anything changed."""
    current = (await addresses_of(conn, [persona_id])).get(persona_id, [])
    missing = [_values(w) for w in wanted]
    gone: list[Address] = []
    for address in current:
        values = _values(asdict(address))
        if values in missing:
            missing.remove(values)
        else:
            gone.append(address)
    if gone:
        await conn.execute(delete(addresses).where(addresses.c.id.in_([a.id for a in gone])))
        await append_events(
            conn, [Event(account_id, "address.deleted", "address", a.id) for a in gone]
        )
    for values in missing:
        await add_address(conn, account_id, persona_id, dict(zip(_VALUES, values, strict=True)))
    return bool(gone or missing)
