"""Teams and budgets: named sets of an account's personas, each with an optional
primary owner. An ``individual`` budget belongs to exactly one persona, its owner,
and has no other members.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.schema import Table

from roster.core.clock import now
from roster.core.events import Event, append_events, created_event, resource_data
from roster.core.people.embeds import TeamRef
from roster.core.people.paging import Page, Paging, page_of
from roster.core.people.personas import require_personas
from roster.db.backends import backend_for
from roster.db.tables import budget_members, budgets, team_members, teams
from roster.errors import NotFound, Problem, Unprocessable

T = TypeVar("T")


@dataclass(frozen=True)
class Team:
    id: uuid.UUID
    account_id: str
    name: str
    primary_owner_persona_id: uuid.UUID | None
    member_persona_ids: list[uuid.UUID]

    @classmethod
    def of(cls, row: Any, members: list[uuid.UUID]) -> Team:
        return cls(row.id, row.account_id, row.name, row.primary_owner_persona_id, members)


@dataclass(frozen=True)
class Budget(Team):
    type: str

    @classmethod
    def of(cls, row: Any, members: list[uuid.UUID]) -> Budget:
        return cls(
            row.id, row.account_id, row.name, row.primary_owner_persona_id, members, row.type
        )


def _without_members(data: dict[str, Any], persona_ids: Sequence[uuid.UUID]) -> dict[str, Any]:
    """A set's event data naming ``persona_ids`` (who joined or left) instead of its members."""
    data.pop("member_persona_ids")
    return {**data, "persona_ids": list(persona_ids)}


#: Sets read at once when their events are logged.
_CHUNK = 500


@dataclass(frozen=True)
class _Kind:
    """Where one kind of set lives: its table and its members' table."""

    noun: str
    table: Table
    members: Table
    key: str  # the members' column naming the set

    async def require(self, conn: AsyncConnection, account_id: str, set_id: uuid.UUID) -> None:
        found = await conn.scalar(
            select(self.table.c.id).where(
                self.table.c.id == set_id, self.table.c.account_id == account_id
            )
        )
        if found is None:
            raise self.not_found(account_id, set_id)

    def not_found(self, account_id: str, set_id: uuid.UUID) -> NotFound:
        """The error of a set the account does not have."""
        return NotFound(f"There is no {self.noun} {set_id} in account {account_id!r}.")

    async def change_members(
        self,
        conn: AsyncConnection,
        account_id: str,
        set_id: uuid.UUID,
        persona_id: uuid.UUID,
        *,
        add: bool,
        build: Callable[[Any, list[uuid.UUID]], Team],
    ) -> None:
        """Add a persona to a set, or take it out; ``<noun>.member_added`` or
        ``member_removed`` naming it, when that changed anything."""
        await self.require(conn, account_id, set_id)
        await require_personas(conn, account_id, [persona_id])
        member = {self.key: set_id, "persona_id": persona_id}
        if add:
            statement: Any = (
                backend_for(conn).insert(self.members).values(member).on_conflict_do_nothing()
            )
        else:
            statement = delete(self.members).where(
                *(self.members.c[name] == value for name, value in member.items())
            )
        if (await conn.execute(statement)).rowcount:
            change = "member_added" if add else "member_removed"
            await self.log(conn, account_id, build, changed=[(set_id, change, [persona_id])])

    async def log(
        self,
        conn: AsyncConnection,
        account_id: str,
        build: Callable[[Any, list[uuid.UUID]], Team],
        created: Sequence[uuid.UUID] = (),
        changed: Sequence[tuple[uuid.UUID, str, Sequence[uuid.UUID]]] = (),
        updated: Mapping[uuid.UUID, Sequence[str]] | None = None,
        rows: Mapping[uuid.UUID, Any] | None = None,
    ) -> None:
        """Log ``<noun>.created`` for each set created and ``<noun>.updated`` for each set
        whose own fields changed (``updated``: the fields, by core names), each with the
        set as it is now, members included; and ``<noun>.<change>`` (``member_added``,
        ``member_removed``) for each set, change and the personas it concerns
        (``changed``), with the set's own fields and only those personas (``persona_ids``):
        a member joining a set of 100,000 neither reads nor logs the other 99,999. Sets
        are read in chunks, within SQLite's limit on bound parameters, unless ``rows``
        holds them (their rows as the writer just left them: read again, they cost a
        round trip of a one-member change)."""
        updated = updated or {}
        rows = rows or {}
        whole = set(created) | set(updated)  # a set: the demo creates thousands at once
        wanted = list(dict.fromkeys([*created, *updated, *(set_id for set_id, _, _ in changed)]))
        as_now: dict[uuid.UUID, Team] = {}
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            held = await self.members_of(conn, [set_id for set_id in chunk if set_id in whole])
            known = [rows[set_id] for set_id in chunk if set_id in rows]
            unread = [set_id for set_id in chunk if set_id not in rows]
            if unread:
                known += await conn.execute(select(self.table).where(self.table.c.id.in_(unread)))
            for row in known:
                as_now[row.id] = build(row, held.get(row.id, []))
        found = [created_event(account_id, self.noun, as_now[set_id]) for set_id in created]
        found.extend(
            Event(
                account_id,
                f"{self.noun}.updated",
                self.noun,
                set_id,
                tuple(fields),
                resource_data(as_now[set_id]),
            )
            for set_id, fields in updated.items()
        )
        found.extend(
            Event(
                account_id,
                f"{self.noun}.{change}",
                self.noun,
                set_id,
                ("member_persona_ids",),
                _without_members(resource_data(as_now[set_id]), persona_ids),
            )
            for set_id, change, persona_ids in changed
        )
        await append_events(conn, found)

    async def members_of(
        self, conn: AsyncConnection, set_ids: Collection[uuid.UUID]
    ) -> dict[uuid.UUID, list[uuid.UUID]]:
        found: defaultdict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
        if set_ids:
            key = self.members.c[self.key]
            for set_id, persona_id in await conn.execute(
                select(key, self.members.c.persona_id)
                .where(key.in_(list(set_ids)))
                .order_by(key, self.members.c.persona_id)
            ):
                found[set_id].append(persona_id)
        return found

    async def page(
        self,
        conn: AsyncConnection,
        account_id: str,
        paging: Paging,
        build: Callable[[Any, list[uuid.UUID]], T],
    ) -> Page[T]:
        """One page of the account's sets, by name, each built from its row and members."""
        by_name = (backend_for(conn).byte_order(self.table.c.name), self.table.c.id)
        count, rows = await page_of(conn, self.table, account_id, paging, by_name)
        members = await self.members_of(conn, [row.id for row in rows])
        return Page(count, paging.limit, paging.offset, [build(r, members[r.id]) for r in rows])

    async def create(
        self,
        conn: AsyncConnection,
        account_id: str,
        values: dict[str, Any],
        owner: uuid.UUID | None,
        members: Sequence[uuid.UUID],
    ) -> tuple[uuid.UUID, list[uuid.UUID]]:
        """Insert a set and its members (each persona of this account, else ``NotFound``)."""
        members = list(dict.fromkeys(members))
        await require_personas(conn, account_id, [*members, *([owner] if owner else [])])
        set_id = uuid.uuid4()
        at = now()
        await conn.execute(
            insert(self.table).values(
                id=set_id,
                account_id=account_id,
                primary_owner_persona_id=owner,
                created_at=at,
                updated_at=at,
                **values,
            )
        )
        if members:
            await conn.execute(
                insert(self.members), [{self.key: set_id, "persona_id": m} for m in members]
            )
        return set_id, sorted(members)

    async def created(self, conn: AsyncConnection, created: Team) -> None:
        """``<noun>.created``, with every field set."""
        await append_events(conn, [created_event(created.account_id, self.noun, created)])


TEAMS = _Kind("team", teams, team_members, "team_id")
BUDGETS = _Kind("budget", budgets, budget_members, "budget_id")


async def list_teams(conn: AsyncConnection, account_id: str, paging: Paging) -> Page[Team]:
    """The account's teams, by name, with their members."""
    return await TEAMS.page(conn, account_id, paging, Team.of)


async def team_names(
    conn: AsyncConnection, account_id: str, limit: int | None = None
) -> list[TeamRef]:
    """Every team of the account (or the first ``limit``), by name as in
    :func:`list_teams`, without its members."""
    rows = await conn.execute(
        select(teams.c.id, teams.c.name)
        .where(teams.c.account_id == account_id)
        .order_by(backend_for(conn).byte_order(teams.c.name), teams.c.id)
        .limit(limit)
    )
    return [TeamRef(*row) for row in rows]


async def create_team(
    conn: AsyncConnection,
    account_id: str,
    name: str,
    owner: uuid.UUID | None,
    members: Sequence[uuid.UUID],
) -> Team:
    """A team; its owner and members must be personas of the account."""
    team_id, member_ids = await TEAMS.create(conn, account_id, {"name": name}, owner, members)
    team = Team(team_id, account_id, name, owner, member_ids)
    await TEAMS.created(conn, team)
    return team


async def add_team_member(
    conn: AsyncConnection, account_id: str, team_id: uuid.UUID, persona_id: uuid.UUID
) -> None:
    """Make a persona a member of a team (nothing changes if it already is one)."""
    await TEAMS.change_members(conn, account_id, team_id, persona_id, add=True, build=Team.of)


async def remove_team_member(
    conn: AsyncConnection, account_id: str, team_id: uuid.UUID, persona_id: uuid.UUID
) -> None:
    """Take a persona out of a team (nothing changes if it is not a member)."""
    await TEAMS.change_members(conn, account_id, team_id, persona_id, add=False, build=Team.of)


async def list_budgets(conn: AsyncConnection, account_id: str, paging: Paging) -> Page[Budget]:
    """The account's budgets, by name, with their members."""
    return await BUDGETS.page(conn, account_id, paging, Budget.of)


async def create_budget(
    conn: AsyncConnection,
    account_id: str,
    name: str,
    budget_type: str,
    owner: uuid.UUID | None,
    members: Sequence[uuid.UUID],
) -> Budget:
    """A budget; an ``individual`` one needs its owner and takes no other members."""
    if budget_type == "individual":
        if owner is None:
            raise Unprocessable(
                lambda name: (
                    "An individual budget belongs to one persona: "
                    f"give its {name('primary_owner_persona_id')}."
                ),
                details=[
                    Problem("primary_owner_persona_id", "is required for an individual budget")
                ],
            )
        if members:
            raise Unprocessable(
                lambda name: (
                    "An individual budget belongs to its owner alone: "
                    f"it takes no {name('member_persona_ids')}."
                ),
                details=[Problem("member_persona_ids", "must be empty for an individual budget")],
            )
    values = {"name": name, "type": budget_type}
    budget_id, member_ids = await BUDGETS.create(conn, account_id, values, owner, members)
    budget = Budget(budget_id, account_id, name, owner, member_ids, budget_type)
    await BUDGETS.created(conn, budget)
    return budget
