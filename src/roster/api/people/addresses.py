"""The People API's postal addresses of personas."""

from __future__ import annotations

from typing import Any

from roster.api.deps import WriteConnection
from roster.api.openapi import error_responses
from roster.api.people.contract import Scope, Writer, people_router
from roster.api.people.models import AddressCreate, CreatedAddress, camel, values_of
from roster.core.accounts import require_account
from roster.core.fields import ADDRESS
from roster.core.people.addresses import add_address

router = people_router("People API: addresses")


@router.post(
    "/addresses", status_code=201, response_model=CreatedAddress, responses=error_responses(422)
)
async def add_persona_address(
    scope: Scope, body: AddressCreate, conn: WriteConnection, principal: Writer
) -> Any:
    """Give a persona a postal address (of any type but ``registered``)."""
    account_id = await require_account(conn, principal, scope.account_id)
    address = await add_address(
        conn, account_id, body.persona_id, values_of(body, ADDRESS.values())
    )
    return {**camel(address), "personaId": body.persona_id}
