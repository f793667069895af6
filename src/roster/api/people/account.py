"""The People API's account structure: roles, teams, budgets and addresses."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import Path, Query, Response
from sqlalchemy.ext.asyncio import AsyncConnection

from roster.api.deps import SnapshotConnection, WriteConnection
from roster.api.openapi import error_responses
from roster.api.people.contract import AccountPage, AccountScope, Reader, Writer, people_router
from roster.api.people.models import (
    AddressCreate,
    BudgetCreate,
    BudgetOut,
    BudgetsPage,
    CreatedAddress,
    RoleCreate,
    RoleRow,
    RolesPage,
    TeamCreate,
    TeamOut,
    TeamsPage,
    camel,
    timestamp,
)
from roster.core.accounts import require_account
from roster.core.auth import Principal
from roster.core.people.addresses import add_address
from roster.core.people.memberships import (
    add_team_member,
    create_budget,
    create_team,
    list_budgets,
    list_teams,
    remove_team_member,
)
from roster.core.people.paging import Page, Paging
from roster.core.people.roles import Role, create_role, list_roles

T = TypeVar("T")
router = people_router("People API: roles, teams, budgets, addresses")
Scope = Annotated[AccountScope, Query()]
Listing = Annotated[AccountPage, Query()]
TeamId = Annotated[uuid.UUID, Path(alias="teamId")]
PersonaId = Annotated[uuid.UUID, Path(alias="personaId")]


def _role_row(role: Role) -> RoleRow:
    return RoleRow(
        id=role.id,
        name=role.name,
        type=role.type,
        account_id=role.account_id,
        created_at=timestamp(role.created_at),
        updated_at=timestamp(role.updated_at),
    )


async def _page_of(
    conn: AsyncConnection,
    principal: Principal,
    listing: AccountPage,
    lister: Callable[[AsyncConnection, str, Paging], Awaitable[Page[T]]],
    render: Callable[[T], object],
) -> dict[str, Any]:
    """One page of one of the account's lists, rendered."""
    account_id = await require_account(conn, principal, listing.account_id)
    page = await lister(conn, account_id, Paging(listing.limit, listing.offset))
    rows = [render(row) for row in page.rows]
    return {"count": page.count, "limit": page.limit, "offset": page.offset, "rows": rows}


@router.get("/roles", response_model=RolesPage)
async def roles_of_account(listing: Listing, conn: SnapshotConnection, principal: Reader) -> Any:
    """The account's roles (its six core roles and its own), by name ignoring case."""
    return await _page_of(conn, principal, listing, list_roles, _role_row)


@router.post("/roles", status_code=201, response_model=RoleRow, responses=error_responses(409))
async def add_role(body: RoleCreate, conn: WriteConnection, principal: Writer) -> RoleRow:
    """Add a custom role to an account; its name must be new to the account, ignoring case."""
    account_id = await require_account(conn, principal, body.account_id)
    return _role_row(await create_role(conn, account_id, body.name))


@router.get("/teams", response_model=TeamsPage)
async def teams_of_account(listing: Listing, conn: SnapshotConnection, principal: Reader) -> Any:
    """The account's teams, by name, with their members."""
    return await _page_of(conn, principal, listing, list_teams, camel)


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
    return await _page_of(conn, principal, listing, list_budgets, camel)


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


@router.post(
    "/addresses", status_code=201, response_model=CreatedAddress, responses=error_responses(422)
)
async def add_persona_address(
    scope: Scope, body: AddressCreate, conn: WriteConnection, principal: Writer
) -> Any:
    """Give a persona a postal address (of any type but ``registered``)."""
    account_id = await require_account(conn, principal, scope.account_id)
    fields = body.model_dump(exclude={"persona_id", "country"}, by_alias=False)
    address = await add_address(
        conn, account_id, body.persona_id, {**fields, "country_code": body.country}
    )
    return {**camel(address), "personaId": body.persona_id}
