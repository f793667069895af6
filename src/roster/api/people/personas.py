"""The People API's writes on people and personas."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import Path, Request, Response
from pydantic.alias_generators import to_camel

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
    row_json,
)
from roster.core.accounts import require_account
from roster.core.people.personas import (
    add_person,
    assign_role,
    remove_persona,
    update_person,
    update_persona,
)
from roster.errors import NamesFields

router = people_router("People API: people and personas")


def _region(request: Request) -> str:
    return services(request).settings.default_phone_region


def people_api_name(field: str) -> str:
    """This API's name of a core field."""
    return "primaryMobileNumber" if field == "phone_number" else to_camel(field)


@contextmanager
def in_people_api_names() -> Iterator[None]:
    """The core's errors, their fields named as this API names them."""
    try:
        yield
    except NamesFields as error:
        raise error.named(people_api_name) from None


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
    persona = {
        "status": body.status,
        "email_address": body.email_address,
        "employee_number": body.employee_number,
        "job_title": body.job_title,
        "work_number": body.work_number,
        "created_by_persona_id": body.created_by_persona_id,
    }
    with in_people_api_names():
        row = await add_person(
            conn,
            account_id,
            body.person_values(only_given=False),
            persona,
            body.role_name,
            _region(request),
            principal.account_ids,
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
    changes = body.person_values(only_given=True)
    with in_people_api_names():
        row = await update_person(
            conn, account_id, person_id, changes, _region(request), principal.account_ids
        )
    return row_json(row)


@router.patch("/personas/{personaId}", response_model=PersonRow, response_model_exclude_unset=True)
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
    changes = body.model_dump(include=body.model_fields_set, by_alias=False)
    with in_people_api_names():
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
) -> RoleOut:
    """Give a persona another of the account's roles, by name (ignoring case)."""
    account_id = await require_account(conn, principal, scope.account_id)
    with in_people_api_names():
        role = await assign_role(conn, account_id, persona_id, body.role_name, _region(request))
    return RoleOut(id=role.id, name=role.name, type=role.type)


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
