"""The People API's writes on people and personas."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import Path, Request, Response

from roster.api.deps import WriteConnection, services
from roster.api.openapi import error_responses
from roster.api.people.contract import PersonaId, Scope, Writer, people_router
from roster.api.people.models import (
    PersonaUpdate,
    PersonCreate,
    PersonRow,
    PersonUpdate,
    RoleAssignment,
    RoleOut,
    camel,
    row_json,
    values_of,
)
from roster.core.accounts import require_account
from roster.core.fields import PERSON, PERSONA, stored
from roster.core.people.personas import (
    add_person,
    assign_role,
    remove_persona,
    update_person,
    update_persona,
)

router = people_router("People API: people and personas")


def _region(request: Request) -> str:
    return services(request).settings.default_phone_region


@router.post(
    "/people",
    status_code=201,
    response_model=PersonRow,
    response_model_exclude_unset=True,
    responses=error_responses(409, 422),
)
async def create_person(
    body: PersonCreate, request: Request, conn: WriteConnection, principal: Writer
) -> dict[str, Any]:
    """Add a person to an account; a person whose email address is known joins as it is."""
    account_id = await require_account(conn, principal, body.account_id)
    person = values_of(body, PERSON.values())
    persona = values_of(body, stored(PERSONA))
    role_name = values_of(body, [PERSONA["role_name"]])["role_name"]
    row = await add_person(
        conn, account_id, person, persona, role_name, _region(request), principal.account_ids
    )
    return row_json(row)


@router.patch(
    "/people/{personId}",
    response_model=PersonRow,
    response_model_exclude_unset=True,
    responses=error_responses(409),
)
async def change_person(
    person_id: Annotated[uuid.UUID, Path(alias="personId")],
    scope: Scope,
    body: PersonUpdate,
    request: Request,
    conn: WriteConnection,
    principal: Writer,
) -> dict[str, Any]:
    """Change a person's fields (every account the person belongs to sees the change)."""
    account_id = await require_account(conn, principal, scope.account_id)
    changes = values_of(body, PERSON.values(), only_given=True)
    row = await update_person(
        conn, account_id, person_id, changes, _region(request), principal.account_ids
    )
    return row_json(row)


@router.patch(
    "/personas/{personaId}",
    response_model=PersonRow,
    response_model_exclude_unset=True,
    responses=error_responses(409),
)
async def change_persona(
    persona_id: PersonaId,
    scope: Scope,
    body: PersonaUpdate,
    request: Request,
    conn: WriteConnection,
    principal: Writer,
) -> dict[str, Any]:
    """Change a persona's own fields: work email, employee and work numbers, job title, status."""
    account_id = await require_account(conn, principal, scope.account_id)
    changes = values_of(body, stored(PERSONA), only_given=True)
    row = await update_persona(conn, account_id, persona_id, changes, _region(request))
    return row_json(row)


@router.patch("/personas/{personaId}/role", response_model=RoleOut, responses=error_responses(422))
async def change_role(
    persona_id: PersonaId,
    scope: Scope,
    body: RoleAssignment,
    request: Request,
    conn: WriteConnection,
    principal: Writer,
) -> dict[str, Any]:
    """Give a persona another of the account's roles, by name (ignoring case)."""
    account_id = await require_account(conn, principal, scope.account_id)
    role = await assign_role(conn, account_id, persona_id, body.role_name, _region(request))
    return camel(role)


@router.delete("/personas/{personaId}", status_code=204, response_class=Response)
async def delete_persona(
    persona_id: PersonaId,
    scope: Scope,
    request: Request,
    conn: WriteConnection,
    principal: Writer,
) -> Response:
    """Remove a persona from its account, with the individual budgets it owns; the person
    stays."""
    account_id = await require_account(conn, principal, scope.account_id)
    await remove_persona(conn, account_id, persona_id, _region(request))
    return Response(status_code=204)
