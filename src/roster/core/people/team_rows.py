"""Teams as directory groups (SCIM's Groups): found by a condition a door built over
``teams``, read with or without their members, renamed, and changed one member at a
time. A change of members touches those members' rows and the team's own row only, never
the whole list, so a team of 100,000 members changes as fast as one of ten.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, func, or_, select, true, update
from sqlalchemy.ext.asyncio import AsyncConnection

from roster.core.clock import now
from roster.core.events import Event, append_events
from roster.core.people.personas import require_personas
from roster.core.people.teams_and_budgets import TEAMS, Team
from roster.db.backends import backend_for
from roster.db.tables import personas, persons, team_members, teams
from roster.errors import NotFound


@dataclass
class TeamRow:
    id: uuid.UUID
    name: str
    external_id: str | None
    created_at: datetime
    updated_at: datetime
    #: (persona id, name to show), when read with its members.
    members: list[tuple[uuid.UUID, str]] | None = field(default=None)


_TEAM_COLUMNS = (
    teams.c.id,
    teams.c.name,
    teams.c.scim_external_id,
    teams.c.created_at,
    teams.c.updated_at,
)


def _shown_name() -> ColumnElement[Any]:
    """How a member is named: its display name, else its person's first and last names."""
    return func.coalesce(
        personas.c.display_name,
        func.trim(
            func.coalesce(persons.c.first_name, "") + " " + func.coalesce(persons.c.last_name, "")
        ),
    )


async def _with_members(conn: AsyncConnection, found: list[TeamRow]) -> None:
    by_id = {team.id: team for team in found}
    for team in found:
        team.members = []
    if not by_id:
        return
    rows = await conn.execute(
        select(team_members.c.team_id, personas.c.id, _shown_name())
        .join(personas, personas.c.id == team_members.c.persona_id)
        .join(persons, persons.c.id == personas.c.person_id)
        .where(team_members.c.team_id.in_(list(by_id)))
        .order_by(team_members.c.team_id, personas.c.seq)
    )
    for team_id, persona_id, shown in rows:
        members = by_id[team_id].members
        assert members is not None
        members.append((persona_id, shown))


async def team_page(
    conn: AsyncConnection,
    account_id: str,
    condition: ColumnElement[bool] | None,
    offset: int,
    limit: int,
    *,
    members: bool,
    after: tuple[datetime, uuid.UUID] | None = None,
    order: Sequence[ColumnElement[Any]] = (),
) -> tuple[int, list[TeamRow]]:
    """How many of the account's teams meet ``condition``, and ``limit`` of them from
    ``offset`` (or after the team at ``after``: its created_at and id) in the order they
    were created (after ``order``); their members only if ``members``."""
    where = and_(teams.c.account_id == account_id, true() if condition is None else condition)
    total = await conn.scalar(select(func.count()).select_from(teams).where(where))
    rest = where
    if after is not None:
        at, last = after
        later = or_(teams.c.created_at > at, and_(teams.c.created_at == at, teams.c.id > last))
        rest = and_(where, later)
    found: list[TeamRow] = []
    if limit > 0:
        rows = await conn.execute(
            select(*_TEAM_COLUMNS)
            .where(rest)
            .order_by(*order, teams.c.created_at, teams.c.id)
            .offset(offset)
            .limit(limit)
        )
        found = [TeamRow(*row) for row in rows]
    if members:
        await _with_members(conn, found)
    return total or 0, found


async def team_row(
    conn: AsyncConnection, account_id: str, team_id: uuid.UUID, *, members: bool = True
) -> TeamRow:
    """One team of the account; ``NotFound`` if there is none."""
    row = (
        await conn.execute(
            select(*_TEAM_COLUMNS).where(teams.c.id == team_id, teams.c.account_id == account_id)
        )
    ).first()
    if row is None:
        raise NotFound(f"There is no team {team_id} in account {account_id!r}.")
    team = TeamRow(*row)
    if members:
        await _with_members(conn, [team])
    return team


async def external_id_holder(
    conn: AsyncConnection, account_id: str, external_id: str | None, other_than: uuid.UUID | None
) -> bool:
    """Whether another team of the account has this external id."""
    if not external_id:
        return False
    statement = select(teams.c.id).where(
        teams.c.account_id == account_id, teams.c.scim_external_id == external_id
    )
    if other_than is not None:
        statement = statement.where(teams.c.id != other_than)
    return await conn.scalar(statement.limit(1)) is not None


async def add_team(
    conn: AsyncConnection,
    account_id: str,
    values: Mapping[str, Any],
    members: Collection[uuid.UUID],
) -> uuid.UUID:
    """A new team of the account with these fields and members (each a persona of the
    account, else ``NotFound``)."""
    team_id, _ = await TEAMS.create(conn, account_id, dict(values), None, list(members))
    await TEAMS.log(conn, account_id, Team.of, created=[team_id])
    return team_id


async def change_team(
    conn: AsyncConnection,
    account_id: str,
    team_id: uuid.UUID,
    values: Mapping[str, Any],
    *,
    added: Collection[uuid.UUID] = (),
    removed: Collection[uuid.UUID] = (),
    all_removed: bool = False,
) -> TeamRow:
    """Change a team's fields and members: remove every member (``all_removed``) or
    these, then add these (each a persona of the account, else ``NotFound``). Only the
    rows of the members named are touched; the team's ``updated_at`` moves. The team as
    it is now, without its members.

    Each step is one statement (a one-member change was 16 round trips): the team's row
    is updated first and returned (its existence, the events' data and the answer's
    version at once), and members join by an insert that returns who really joined."""
    changed = (
        await conn.execute(
            update(teams)
            .where(teams.c.id == team_id, teams.c.account_id == account_id)
            .values(**values, updated_at=now())
            .returning(*teams.c)
        )
    ).first()
    if changed is None:
        raise TEAMS.not_found(account_id, team_id)
    adding = list(dict.fromkeys(added))
    await require_personas(conn, account_id, adding)
    left: list[uuid.UUID] = []
    if all_removed:
        everyone = delete(team_members).where(team_members.c.team_id == team_id)
        left = list((await conn.execute(everyone.returning(team_members.c.persona_id))).scalars())
    else:
        leaving = list(dict.fromkeys(removed))
        for start in range(0, len(leaving), _CHUNK):  # under the limit on bound parameters
            some = delete(team_members).where(
                team_members.c.team_id == team_id,
                team_members.c.persona_id.in_(leaving[start : start + _CHUNK]),
            )
            left += (await conn.execute(some.returning(team_members.c.persona_id))).scalars()
    joined = await _joined(conn, team_id, adding)
    # The change log: a new name is team.updated (the external id is the provider's
    # bookkeeping, not the team's); members that really joined or left, one event each
    # way, naming only them (never the whole member list: see TEAMS.log).
    changes = [(team_id, "member_added", joined)] if joined else []
    changes += [(team_id, "member_removed", left)] if left else []
    renamed = {team_id: ["name"]} if "name" in values else {}
    await TEAMS.log(
        conn, account_id, Team.of, changed=changes, updated=renamed, rows={team_id: changed}
    )
    return TeamRow(*(changed._mapping[column] for column in _TEAM_COLUMNS))


#: Personas named in one statement: under SQLite's limit on bound parameters.
_CHUNK = 10_000


async def _joined(
    conn: AsyncConnection, team_id: uuid.UUID, persona_ids: Sequence[uuid.UUID]
) -> list[uuid.UUID]:
    """Add these personas to the team; those that were not members already, in order."""
    if not persona_ids:
        return []
    new: set[uuid.UUID] = set()
    statement = (
        backend_for(conn)
        .insert(team_members)
        .on_conflict_do_nothing()
        .returning(team_members.c.persona_id)
    )
    for start in range(0, len(persona_ids), _CHUNK):
        rows = [{"team_id": team_id, "persona_id": p} for p in persona_ids[start : start + _CHUNK]]
        new.update((await conn.execute(statement, rows)).scalars())
    return [persona_id for persona_id in persona_ids if persona_id in new]


async def remove_team(conn: AsyncConnection, account_id: str, team_id: uuid.UUID) -> None:
    """Delete a team of the account, with its memberships."""
    await TEAMS.require(conn, account_id, team_id)
    await conn.execute(delete(team_members).where(team_members.c.team_id == team_id))
    await conn.execute(delete(teams).where(teams.c.id == team_id))
    await append_events(conn, [Event(account_id, "team.deleted", "team", team_id)])
