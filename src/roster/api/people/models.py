"""The People API's JSON: camelCase input models (unknown fields refused) and the
shapes it answers, with how a core row becomes one.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import fields
from datetime import UTC, date, datetime
from functools import cache, lru_cache
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from roster.api.fields import AccountId, Email, IsoDate, Phone, Text32, Text64, Text128, Text256
from roster.core.countries import COUNTRY_CODES
from roster.core.derived_columns import PERSON_FIELDS
from roster.core.people.persona_rows import Embed, PersonaRow
from roster.db.tables import BUDGET_TYPES

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

PersonaStatus = Literal["active", "deactivated", "created", "invited", "inviteExpired"]
NewPersonaStatus = Literal["active", "created", "invited", "deactivated"]
BudgetType = Literal["individual", "shared", "accountBalance"]
assert set(BudgetType.__args__) == set(BUDGET_TYPES)  # type: ignore[attr-defined]

#: At most this many persona ids in one body list.
MAX_MEMBERS = 1000


@lru_cache(maxsize=4096)
def timestamp(at: datetime) -> str:
    """``2026-01-02T13:47:01.000Z``: UTC, to the millisecond (truncated).

    Remembered: rows written together share their timestamps (an import batch has one),
    and a large page writes four per row.
    """
    if at.tzinfo is not UTC:
        at = at.astimezone(UTC)
    # isoformat() without a timespec is twice as fast, and a page renders 400,000 of these.
    text = at.isoformat()  # 2026-01-02T13:47:01.000123+00:00, or no fraction at all
    return text[:23] + "Z" if at.microsecond else text[:19] + ".000Z"


class CamelModel(BaseModel):
    """Fields in snake_case, JSON in camelCase."""

    model_config = ConfigDict(
        alias_generator=to_camel, serialize_by_alias=True, validate_by_name=True
    )


class Body(CamelModel):
    """An input body: camelCase names only, no unknown fields."""

    model_config = ConfigDict(extra="forbid", validate_by_name=False)


class PersonFields(Body):
    """The person fields of a write but the names (required on create, optional on update)."""

    title: Text64 | None = None
    middle_initials: Text32 | None = None
    dob: IsoDate | None = None
    gender: Text64 | None = None
    nationality: Text64 | None = None
    country_of_residence: Text64 | None = None
    email_address: Email | None = None
    primary_mobile_number: Phone | None = None
    external_ref: Text256 | None = None

    def person_values(self, *, only_given: bool) -> dict[str, Any]:
        """The core's person fields from this body: every one, or only those sent."""
        return {
            name: getattr(self, _api_name(name))
            for name in PERSON_FIELDS
            if not only_given or _api_name(name) in self.model_fields_set
        }


def _api_name(person_field: str) -> str:
    return "primary_mobile_number" if person_field == "phone_number" else person_field


class PersonCreate(PersonFields):
    """A person joining an account (a new person unless its email address is known)."""

    account_id: AccountId
    first_name: Text256
    last_name: Text256
    role_name: Text64
    status: NewPersonaStatus = "active"
    employee_number: Text64 | None = None
    job_title: Text256 | None = None
    work_number: Text64 | None = None
    created_by_persona_id: uuid.UUID | None = None


class PersonUpdate(PersonFields):
    """Any of a person's fields; ``null`` clears one (but names cannot be cleared)."""

    first_name: Text256 | None = None
    last_name: Text256 | None = None

    @field_validator("first_name", "last_name")
    @classmethod
    def _named(cls, value: str | None) -> str:
        if value is None:
            raise ValueError("must not be null")
        return value


class PersonaUpdate(Body):
    """Any of a persona's own fields; ``null`` clears one (but not the status)."""

    email_address: Email | None = None
    employee_number: Text64 | None = None
    work_number: Text64 | None = None
    job_title: Text256 | None = None
    status: PersonaStatus | None = None

    @field_validator("status")
    @classmethod
    def _has_status(cls, value: str | None) -> str:
        if value is None:
            raise ValueError("must not be null")
        return value


class RoleAssignment(Body):
    role_name: Text64


class RoleCreate(Body):
    account_id: AccountId
    name: Text64


class TeamCreate(Body):
    account_id: AccountId
    name: Text256
    primary_owner_persona_id: uuid.UUID | None = None
    member_persona_ids: list[uuid.UUID] = Field(default_factory=list, max_length=MAX_MEMBERS)


class BudgetCreate(TeamCreate):
    type: BudgetType


class AddressCreate(Body):
    persona_id: uuid.UUID
    type: Text32
    address_line1: Text256
    address_line2: Text256 | None = None
    address_line3: Text256 | None = None
    city: Text128
    region: Text128 | None = None
    postcode: Text32
    country: str = Field(description="An ISO 3166-1 alpha-2 code, such as GB.")

    @field_validator("country")
    @classmethod
    def _iso_country(cls, value: str) -> str:
        code = value.upper()
        if code not in COUNTRY_CODES:
            raise ValueError("must be an ISO 3166-1 alpha-2 country code, such as GB")
        return code


# What the API answers.


class AddressOut(CamelModel):
    id: uuid.UUID
    type: str
    address_line1: str
    address_line2: str | None
    address_line3: str | None
    city: str
    region: str | None
    postcode: str
    country_code: str


class CreatedAddress(AddressOut):
    persona_id: uuid.UUID


class CreatorOut(CamelModel):
    id: uuid.UUID = Field(description="The creator's persona.")
    person_id: uuid.UUID
    first_name: str | None
    last_name: str | None
    email_address: str | None = Field(description="The creator persona's email address.")


class TeamRefOut(CamelModel):
    id: uuid.UUID
    name: str


class OwnershipOut(CamelModel):
    type: Literal["team", "budget"]
    id: uuid.UUID
    name: str


class RoleOut(CamelModel):
    id: uuid.UUID
    name: str
    type: Literal["core"] | None


class PersonaOut(CamelModel):
    id: uuid.UUID
    account_id: str
    email_address: str | None
    employee_number: str | None
    work_number: str | None
    job_title: str | None
    status: PersonaStatus
    role_id: uuid.UUID
    created_by_persona_id: uuid.UUID | None
    created_at: str = Field(examples=["2026-01-02T13:47:01.000Z"])
    updated_at: str = Field(examples=["2026-01-02T13:47:02.000Z"])
    addresses: list[AddressOut] | None = Field(None, description="With persona.addresses.")
    created_by: CreatorOut | None = Field(None, description="With persona.createdBy.")
    teams: list[TeamRefOut] | None = Field(None, description="With persona.teams.")
    primary_owner_of: list[OwnershipOut] | None = Field(
        None, description="With persona.primaryOwnerOf."
    )
    roles: list[RoleOut] | None = Field(None, description="With persona.roles.")


class PersonRow(CamelModel):
    """A person joined with its persona on the account."""

    id: uuid.UUID
    first_name: str | None
    last_name: str | None
    title: str | None
    middle_initials: str | None
    dob: date | None
    gender: str | None
    nationality: str | None
    country_of_residence: str | None
    primary_email_address: str | None
    primary_mobile_number: str | None
    external_ref: str | None
    status: PersonaStatus = Field(description="The persona's status on the account.")
    created_at: str = Field(examples=["2026-01-02T13:47:01.000Z"])
    updated_at: str = Field(examples=["2026-01-02T13:47:02.000Z"])
    persona: PersonaOut


class PeoplePage(CamelModel):
    limit: int
    offset: int
    count: int = Field(description="Every matching row, whatever the limit and offset.")
    search: str | None
    rows: list[PersonRow]


class RoleRow(RoleOut):
    account_id: str
    created_at: str
    updated_at: str


class TeamOut(CamelModel):
    id: uuid.UUID
    account_id: str
    name: str
    primary_owner_persona_id: uuid.UUID | None
    member_persona_ids: list[uuid.UUID]


class BudgetOut(TeamOut):
    type: BudgetType


class RolesPage(CamelModel):
    count: int
    limit: int
    offset: int
    rows: list[RoleRow]


class TeamsPage(CamelModel):
    count: int
    limit: int
    offset: int
    rows: list[TeamOut]


class BudgetsPage(CamelModel):
    count: int
    limit: int
    offset: int
    rows: list[BudgetOut]


def camel(value: DataclassInstance) -> dict[str, Any]:
    """A core dataclass as a camelCase dict."""
    keys, values = _camel_fields(type(value))
    return dict(zip(keys, values(value), strict=True))


@cache
def _camel_fields(
    kind: type[DataclassInstance],
) -> tuple[tuple[str, ...], Callable[[Any], tuple[Any, ...]]]:
    """A dataclass's camelCase keys, and a getter of its values in the same order (a page
    renders hundreds of thousands of these)."""
    names = [f.name for f in fields(kind)]
    getter = attrgetter(*names)
    return tuple(map(to_camel, names)), (getter if len(names) > 1 else lambda v: (getter(v),))


#: The row attribute holding each embed, and its key inside ``persona``.
_EMBED_ATTRIBUTES = {
    Embed.ADDRESSES: ("addresses", "addresses"),
    Embed.CREATED_BY: ("created_by", "createdBy"),
    Embed.TEAMS: ("teams", "teams"),
    Embed.PRIMARY_OWNER_OF: ("primary_owner_of", "primaryOwnerOf"),
    Embed.ROLES: ("roles", "roles"),
}


def row_json(row: PersonaRow) -> dict[str, Any]:
    """A ROW of the spec, with the embeds the row was loaded with."""
    persona: dict[str, Any] = {
        "id": row.persona_id,
        "accountId": row.account_id,
        "emailAddress": row.persona_email_address,
        "employeeNumber": row.employee_number,
        "workNumber": row.work_number,
        "jobTitle": row.job_title,
        "status": row.status,
        "roleId": row.role_id,
        "createdByPersonaId": row.created_by_persona_id,
        "createdAt": timestamp(row.persona_created_at),
        "updatedAt": timestamp(row.persona_updated_at),
    }
    for embed, (attribute, key) in _EMBED_ATTRIBUTES.items():
        if embed not in row.included:
            continue
        if (rendered := row.rendered.get(embed)) is not None:
            persona[key] = orjson.Fragment(rendered)  # JSON the database wrote
            continue
        value = getattr(row, attribute)
        if isinstance(value, list):
            persona[key] = [camel(item) for item in value]
        else:
            persona[key] = camel(value) if value is not None else None
    return {
        "id": row.id,
        "firstName": row.first_name,
        "lastName": row.last_name,
        "title": row.title,
        "middleInitials": row.middle_initials,
        "dob": row.dob,
        "gender": row.gender,
        "nationality": row.nationality,
        "countryOfResidence": row.country_of_residence,
        "primaryEmailAddress": row.email_address,
        "primaryMobileNumber": row.phone_number,
        "externalRef": row.external_ref,
        "status": row.status,
        "createdAt": timestamp(row.created_at),
        "updatedAt": timestamp(row.updated_at),
        "persona": persona,
    }
