"""The People API's teams and budgets: named sets of an account's personas."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import Path, Response

from roster.api.deps import SnapshotConnection, WriteConnection
from roster.api.openapi import error_responses
from roster.api.people.contract import (
    Listing,
    PersonaId,
    Reader,
    Scope,
    Writer,
    account_page,
    people_router,
)
from roster.api.people.models import (
    BudgetCreate,
    BudgetOut,
    BudgetsPage,
    TeamCreate,
    TeamOut,
    TeamsPage,
    camel,
)
from roster.core.accounts import require_account
from roster.core.people.teams_and_budgets import (
    add_team_member,
    create_budget,
    create_team,
    list_budgets,
    list_teams,
    remove_team_member,
)

router = people_router("People API: teams and budgets")
TeamId = Annotated[uuid.UUID, Path(alias="teamId")]


@router.get("/teams", response_model=TeamsPage)
async def teams_of_account(listing: Listing, conn: SnapshotConnection, principal: Reader) -> Any:
    """The account's teams, by name, with their members."""
    return await account_page(conn, principal, listing, list_teams, camel)


@router.post("/teams", status_code=201, response_model=TeamOut)
async def add_team(body: TeamCreate, conn: WriteConnection, principal: Writer) -> Any:
    """Add a team; its primary owner and members must be personas of the account."""
    account_id = await require_account(conn, principal, body.account_id)
    team = await create_team(
        conn, account_id, body.name, body.primary_owner_persona_id, body.member_persona_ids
    )
    return camel(team)


@router.put("/teams/{teamId}/members/{personaId}", status_code=204, response_class=Response)
async def add_member(
    team_id: TeamId, persona_id: PersonaId, scope: Scope, conn: WriteConnection, principal: Writer
) -> Response:
    """Make a persona a member of a team (already being one is no error)."""
    account_id = await require_account(conn, principal, scope.account_id)
    await add_team_member(conn, account_id, team_id, persona_id)
    return Response(status_code=204)


@router.delete("/teams/{teamId}/members/{personaId}", status_code=204, response_class=Response)
async def remove_member(
    team_id: TeamId, persona_id: PersonaId, scope: Scope, conn: WriteConnection, principal: Writer
) -> Response:
    """Take a persona out of a team (not being a member is no error)."""
    account_id = await require_account(conn, principal, scope.account_id)
    await remove_team_member(conn, account_id, team_id, persona_id)
    return Response(status_code=204)


@router.get("/budgets", response_model=BudgetsPage)
async def budgets_of_account(listing: Listing, conn: SnapshotConnection, principal: Reader) -> Any:
    """The account's budgets, by name, with their members."""
    return await account_page(conn, principal, listing, list_budgets, camel)


@router.post("/budgets", status_code=201, response_model=BudgetOut, responses=error_responses(422))
async def add_budget(body: BudgetCreate, conn: WriteConnection, principal: Writer) -> Any:
    """Add a budget; an individual one needs its primary owner and takes no other members."""
    account_id = await require_account(conn, principal, body.account_id)
    budget = await create_budget(
        conn,
        account_id,
        body.name,
        body.type,
        body.primary_owner_persona_id,
        body.member_persona_ids,
    )
    return camel(budget)
