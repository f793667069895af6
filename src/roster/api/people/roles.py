"""The People API's roles: the account's six core roles and its own."""

from __future__ import annotations

from typing import Any

from roster.api.deps import SnapshotConnection, WriteConnection
from roster.api.openapi import error_responses
from roster.api.people.contract import Listing, Reader, Writer, account_page, people_router
from roster.api.people.models import RoleCreate, RoleRow, RolesPage, timestamp
from roster.core.accounts import require_account
from roster.core.people.roles import Role, create_role, list_roles

router = people_router("People API: roles")


def _role_row(role: Role) -> RoleRow:
    return RoleRow(
        id=role.id,
        name=role.name,
        type=role.type,
        account_id=role.account_id,
        created_at=timestamp(role.created_at),
        updated_at=timestamp(role.updated_at),
    )


@router.get("/roles", response_model=RolesPage)
async def roles_of_account(listing: Listing, conn: SnapshotConnection, principal: Reader) -> Any:
    """The account's roles (its six core roles and its own), by name ignoring case."""
    return await account_page(conn, principal, listing, list_roles, _role_row)


@router.post("/roles", status_code=201, response_model=RoleRow, responses=error_responses(409))
async def add_role(body: RoleCreate, conn: WriteConnection, principal: Writer) -> RoleRow:
    """Add a custom role to an account; its name must be new to the account, ignoring case."""
    account_id = await require_account(conn, principal, body.account_id)
    return _role_row(await create_role(conn, account_id, body.name))
