"""The Persons API (seed 000): exact lookup and bulk upsert, snake_case, cursor pages."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    create_model,
    model_validator,
)
from pydantic.config import JsonDict

from roster.api.deps import (
    CredentialContract,
    ReadConnection,
    WriteConnection,
    authenticated,
    require_json_body,
    services,
)
from roster.api.errors import naming_route
from roster.api.fields import Criterion, Cursor, GroupName, Schema, declared_type
from roster.api.openapi import error_responses
from roster.core.accounts import resolve_groups
from roster.core.auth import Principal
from roster.core.fields import PERSON
from roster.core.persons import (
    PersonCriteria,
    PersonRecord,
    PersonUpsert,
    find_persons,
    upsert_persons_in_groups,
)
from roster.core.writer import SharedPerson
from roster.errors import RosterError

#: Seed 000: a missing header is 400, an expired or invalid one 401.
PERSONS_CREDENTIALS = CredentialContract(missing=400, invalid=401, expired=401)
Reader = Annotated[Principal, Depends(authenticated(PERSONS_CREDENTIALS, "read"), scope="function")]
Writer = Annotated[
    Principal, Depends(authenticated(PERSONS_CREDENTIALS, "write"), scope="function")
]

#: The person fields this API has (core/fields.py): their names here, by core name.
PERSONS_FIELDS = {name: f.persons_api for name, f in PERSON.items() if f.persons_api}


def field_name(name: str) -> str:
    """The Persons API's name for a field that core names ``name`` (errors use it)."""
    return PERSONS_FIELDS.get(name, name)


router = APIRouter(
    tags=["Persons API"],
    dependencies=[Depends(require_json_body)],
    responses=error_responses(400, 401, 403, 405, 413, 414, 415, 429, 431, 500, 503),
    route_class=naming_route(field_name),
)


def _some_groups(groups: list[str]) -> list[str]:
    if not groups:
        raise ValueError("must name at least one group when given")
    return groups


#: A list of groups, by id or by external ref; an empty one is refused.
Groups = Annotated[
    list[GroupName], Field(max_length=1000), AfterValidator(_some_groups), Schema(minItems=1)
]
#: Both lists at once are refused (both_group_identifiers_provided), as the document says.
_ONE_KIND_OF_GROUPS: JsonDict = {
    "not": {
        "required": ["group_ids", "groups_external_refs"],
        "properties": {"group_ids": {"type": "array"}, "groups_external_refs": {"type": "array"}},
    }
}


_CURSOR_NAMES = ("after-id", "after_id")


class FindPersonsRequest(BaseModel):
    """Exact-match criteria (all must match), an optional group filter, and the cursor."""

    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, json_schema_extra=_ONE_KIND_OF_GROUPS
    )

    first_name: Criterion | None = None
    last_name: Criterion | None = None
    email_address: Criterion | None = None
    phone_number: Criterion | None = None
    external_ref: Criterion | None = None
    identifier: Criterion | None = None
    group_ids: Groups | None = None
    groups_external_refs: Groups | None = None
    after_id: Cursor = Field(
        default=1,
        validation_alias=AliasChoices("after-id", "after_id"),
        serialization_alias="after-id",
        description=(
            "Only persons after this cursor (a previous answer's last_id). Default 1; "
            "null means not given."
        ),
    )

    @model_validator(mode="before")
    @classmethod
    def _one_cursor(cls, data: Any) -> Any:
        if isinstance(data, dict):
            # null means "not given", as it does for every other field
            nulls = [name for name in _CURSOR_NAMES if name in data and data[name] is None]
            data = {name: value for name, value in data.items() if name not in nulls}
            if all(name in data for name in _CURSOR_NAMES):
                raise ValueError("give after-id or after_id, not both")
        return data


class PersonOut(BaseModel):
    identifier: str | None
    first_name: str | None
    last_name: str | None
    email_address: str | None
    phone_number: str | None
    external_ref: str | None
    group_ids: list[str] = Field(description="The reachable groups the person belongs to.")


class FindPersonsResponse(BaseModel):
    last_id: int = Field(description="Pass as after-id for the next page; -1 on the last page.")
    persons: list[PersonOut]


class PersonGroups(BaseModel):
    """The groups a person to create or update belongs in."""

    model_config = ConfigDict(extra="forbid")

    group_ids: Groups | None = None
    groups_external_refs: Groups | None = None


if TYPE_CHECKING:
    PersonItem = PersonGroups
else:
    PersonItem = create_model(
        "PersonItem",
        __base__=PersonGroups,
        __doc__="One person to create or update, and the groups it belongs in.",
        **{
            named: (declared_type(PERSON[name]) | None, None)
            for name, named in PERSONS_FIELDS.items()
        },
    )


def person_values(item: PersonGroups) -> dict[str, Any]:
    """The person fields an item gives, by core name (a null one is not given)."""
    sent = item.model_dump()
    return {name: sent[named] for name, named in PERSONS_FIELDS.items() if sent[named] is not None}


class UpsertPersonsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    persons: list[PersonItem] = Field(min_length=1, max_length=1000)


class UpsertedPersonOut(PersonOut):
    success: bool
    failure_reason: str | None
    failure_type: str | None = Field(description="A code for the failure (an addition).")


class UpsertPersonsResponse(BaseModel):
    persons: list[UpsertedPersonOut]


def person_out(record: PersonRecord) -> PersonOut:
    return PersonOut(
        identifier=str(record.id),
        first_name=record.first_name,
        last_name=record.last_name,
        email_address=record.email_address,
        phone_number=record.phone_number,
        external_ref=record.external_ref,
        group_ids=list(record.group_ids),
    )


def failure_reason(error: RosterError) -> str:
    """Why an item failed; a shared person's reason starts with its type, as the spec says."""
    message = error.message_in(field_name)
    return f"{error.type}: {message}" if isinstance(error, SharedPerson) else message


_FIND_ERRORS = error_responses(404)
_UPSERT_ERRORS = error_responses(404)


@router.post("/persons/find/", response_model=FindPersonsResponse, responses=_FIND_ERRORS)
@router.post("/persons/find", response_model=FindPersonsResponse, include_in_schema=False)
async def find(
    body: FindPersonsRequest, request: Request, conn: ReadConnection, principal: Reader
) -> FindPersonsResponse:
    """Find persons by exact match on every given field, 100 per page, by cursor."""
    account_ids = await resolve_groups(conn, principal, body.group_ids, body.groups_external_refs)
    criteria = PersonCriteria(
        first_name=body.first_name,
        last_name=body.last_name,
        email_address=body.email_address,
        phone_number=body.phone_number,
        external_ref=body.external_ref,
        identifier=body.identifier,
    )
    page = await find_persons(
        conn,
        criteria,
        account_ids=account_ids,
        reachable=principal.account_ids,
        after=body.after_id,
        region=services(request).settings.default_phone_region,
    )
    return FindPersonsResponse(last_id=page.last_id, persons=[person_out(p) for p in page.persons])


@router.post("/persons/multiple/", response_model=UpsertPersonsResponse, responses=_UPSERT_ERRORS)
@router.post("/persons/multiple", response_model=UpsertPersonsResponse, include_in_schema=False)
async def upsert_multiple(
    body: UpsertPersonsRequest, request: Request, conn: WriteConnection, principal: Writer
) -> UpsertPersonsResponse:
    """Create or update up to 1000 persons; each item succeeds or fails on its own."""
    items = [
        PersonUpsert(
            person=person_values(item),
            group_ids=item.group_ids,
            groups_external_refs=item.groups_external_refs,
        )
        for item in body.persons
    ]
    results = await upsert_persons_in_groups(
        conn, principal, items, region=services(request).settings.default_phone_region
    )
    out: list[UpsertedPersonOut] = []
    for item, result in zip(body.persons, results, strict=True):
        if result.record is not None:
            shown = person_out(result.record).model_dump()
            out.append(
                UpsertedPersonOut(**shown, success=True, failure_reason=None, failure_type=None)
            )
        else:
            assert result.error is not None
            sent = item.model_dump(include=set(PERSONS_FIELDS.values()))
            out.append(
                UpsertedPersonOut(
                    **sent,
                    identifier=None,
                    group_ids=[],
                    success=False,
                    failure_reason=failure_reason(result.error),
                    failure_type=result.error.type,
                )
            )
    return UpsertPersonsResponse(persons=out)
