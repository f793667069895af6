"""``DELETE /persons/{identifier}``: erasure, the right to be forgotten (spec/events.md).

The admin API's: ``admin`` scope, the People API's credential contract.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Response
from pydantic import StringConstraints

from roster.api.admin import Admin
from roster.api.deps import WriteConnection
from roster.api.fields import STORABLE
from roster.api.people.contract import people_router
from roster.core.erasure import erase_person

router = people_router("Admin API: erasure")
Identifier = Annotated[
    str,
    StringConstraints(min_length=1, max_length=320),
    STORABLE,
    Path(description="The person's id, email address or external ref."),
]


@router.delete("/persons/{identifier}", status_code=204, response_class=Response)
async def erase(identifier: Identifier, conn: WriteConnection, principal: Admin) -> Response:
    """Erase a person everywhere, and its data from the change log; ``person.erased`` is
    logged in each of its accounts."""
    await erase_person(conn, identifier, principal.account_ids)
    return Response(status_code=204)
