"""Every field a client writes, declared once.

A :class:`Field` says what a value is (its kind, length, choices), how it is checked and
normalised (:meth:`Field.check`, which raises :class:`InvalidValue` naming the field by
its core name), what the directory's rules read it for (the spec's shared-person rule,
search, import) and its name in each door. The tables (``db/tables.py``), both APIs'
request and answer models, the import's checks and the People API's ROW are derived
from these declarations: adding a field is one declaration here and a migration.

Plain Python: the doors translate these declarations into their own types.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any

from roster.core.countries import COUNTRY_CODES
from roster.errors import InvalidRequest, Problem, blamed_on

# -- the one rule for text no database can store ------------------------------------------

_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")
#: What a client is told about such a text.
UNSTORABLE = "must not contain NUL characters or unpaired surrogates"


def storable(text: str) -> bool:
    """False for text no database column can hold: a NUL, or a lone UTF-16 surrogate (which
    JSON can carry and UTF-8 cannot). Every text a client sends, on every door, is checked
    with this before it reaches the database."""
    return _UNSTORABLE.search(text) is None


#: Unicode's control characters (category Cc): no stored field holds them.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
UNPRINTABLE = "must not contain control characters or unpaired surrogates"


class InvalidValue(InvalidRequest, ValueError):
    """A value a field's rules refuse, naming the field by its core name.

    Also a ``ValueError``, so that a door's validation library reports it as its own.
    """

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(blamed_on(field, problem), details=[Problem(field, problem)])
        self.name = field
        self.problem = problem


# -- what a field is ------------------------------------------------------------------------


class Kind(StrEnum):
    TEXT = "text"  # free text
    EMAIL = "email"  # name@domain
    PHONE = "phone"  # a phone number: compared in E.164, searched by its digits too
    DATE = "date"  # a calendar date, written YYYY-MM-DD
    CHOICE = "choice"  # one of the field's choices
    CODE = "code"  # a short code matching the field's pattern
    REFERENCE = "reference"  # the id (a UUID) of another record


class Owner(StrEnum):
    ACCOUNT = "account"
    PERSON = "person"
    PERSONA = "persona"
    ROLE = "role"
    TEAM = "team"
    BUDGET = "budget"
    ADDRESS = "address"
    CLIENT = "client"
    WEBHOOK = "webhook"


@dataclass(frozen=True, eq=False)
class Field:
    """One field: its core name is its column's name and the import's column name."""

    owner: Owner
    name: str
    kind: Kind = Kind.TEXT
    max_length: int | None = None
    min_length: int = 1
    #: Whether an all-white-space value is accepted (none is: "not given" is null).
    blank: bool = False
    choices: tuple[str, ...] = ()
    #: A CODE's whole value matches this; a value that does not is told ``problem``.
    pattern: str | None = None
    problem: str = "is not valid"
    #: A last check and normalisation: returns the value to store, or raises ``ValueError``.
    rule: Callable[[str], str] | None = None
    #: A column of the owner's table (``role_name`` is resolved to ``role_id`` instead).
    stored: bool = True
    nullable: bool = True
    unique: bool = False
    #: A person's own field, which only a client reaching every account of the person
    #: may change (spec/README.md, "Shared persons").
    shared: bool = False
    #: Read by the People API's search (``personas.search_text``).
    searched: bool = False
    #: A column of ``roster import`` and ``roster export``.
    imported: bool = False
    #: Its name in the Persons API (seed 000), where it is there.
    persons_api: str | None = None
    #: Its name in People API request bodies, where it is written there.
    people_api: str | None = None
    #: Its key in People API answers, when not ``people_api``.
    people_row: str | None = None
    #: POST needs it, and PATCH cannot clear it.
    people_required: bool = False
    #: What POST stores when it is not given (and PATCH cannot clear it).
    people_default: str | None = None
    #: The choices POST accepts, when they are fewer than ``choices``.
    people_new_choices: tuple[str, ...] = ()
    #: Whether a PATCH may change it (or only POST set it).
    people_on_update: bool = True
    #: Its SCIM attribute (api/scim), a path in its schema: ``name.givenName``; in the
    #: enterprise extension's schema when ``scim_enterprise``.
    scim: str | None = None
    scim_enterprise: bool = False
    #: SCIM compares it case-exact (RFC 7643 ``caseExact``).
    scim_case_exact: bool = False

    @property
    def people_key(self) -> str | None:
        """Its key in People API answers (None: not shown)."""
        return self.people_row or self.people_api

    def invalid(self, problem: str) -> InvalidValue:
        return InvalidValue(self.name, problem)

    def check(self, value: object) -> Any:
        """The value to store, normalised; :class:`InvalidValue` naming the field if the
        field's rules refuse it."""
        if self.kind is Kind.DATE:
            return self._date(value)
        if self.kind is Kind.REFERENCE:
            raise self.invalid("is set by reference, not as text")
        if not isinstance(value, str):
            raise self.invalid("must be a string")
        if self.kind is Kind.CHOICE and value not in self.choices:
            raise self.invalid(f"{value!r} is not one of {', '.join(self.choices)}")
        if self.pattern is not None and re.fullmatch(self.pattern, value) is None:
            raise self.invalid(self.problem)
        if not storable(value) or _CONTROL.search(value):
            raise self.invalid(UNPRINTABLE)
        if self.kind is not Kind.CHOICE and self.pattern is None:
            self._check_text(value)
        if self.rule is None:
            return value
        try:
            return self.rule(value)
        except ValueError as error:
            raise self.invalid(str(error)) from None

    def _check_text(self, value: str) -> None:
        if not self.blank and not value.strip():
            raise self.invalid("must not be blank")
        if self.max_length is not None and len(value) > self.max_length:
            raise self.invalid(f"must be at most {self.max_length} characters")
        if len(value) < self.min_length:
            raise self.invalid(f"must be at least {self.min_length} characters")

    def _date(self, value: object) -> date:
        if isinstance(value, date):
            return value
        if isinstance(value, str) and re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
            try:
                return date.fromisoformat(value)
            except ValueError:
                pass
        if isinstance(value, str):
            raise self.invalid(f"{value[:32]!r} is not a date written YYYY-MM-DD")
        raise self.invalid("must be a date written YYYY-MM-DD")


def _email_shape(value: str) -> str:
    local, at, domain = value.rpartition("@")
    if not at or not local or not domain or any(c.isspace() for c in value):
        raise ValueError("must be an email address (name@domain)")
    return value


def _country_code(value: str) -> str:
    return value.upper()  # the pattern has checked it is one of the codes, in any case


#: The ISO 3166-1 alpha-2 codes in any case, as a pattern the OpenAPI document states too
#: (JSON Schema's patterns have no flag for case, so each letter is a pair).
COUNTRY_PATTERN = (
    "^(?:"
    + "|".join("".join(f"[{c}{c.lower()}]" for c in code) for code in sorted(COUNTRY_CODES))
    + ")$"
)


def _declared(*fields: Field) -> Mapping[str, Field]:
    return {field.name: field for field in fields}


# -- the declarations -------------------------------------------------------------------------

PERSONA_STATUSES = ("active", "deactivated", "created", "invited", "inviteExpired")
BUDGET_TYPES = ("individual", "shared", "accountBalance")

ACCOUNT = _declared(
    Field(
        Owner.ACCOUNT,
        "id",
        Kind.CODE,
        max_length=36,
        pattern=r"^[A-Za-z0-9_-]{1,36}$",
        problem="must be 1 to 36 letters, digits, '_' or '-'",
        nullable=False,
    ),
    Field(Owner.ACCOUNT, "external_ref", max_length=255, unique=True),
    Field(Owner.ACCOUNT, "name", max_length=256, nullable=False),
)

#: What an operator writes of an API client (the command line, the admin API).
CLIENT = _declared(
    Field(Owner.CLIENT, "name", max_length=256, nullable=False),
)

#: What an admin writes of a webhook (the admin API's /webhooks, docs/events.md). Its id
#: is Roster's (``wh_`` and 24 hex digits); a client only names it, bounded by its length.
WEBHOOK = _declared(
    Field(Owner.WEBHOOK, "id", max_length=64, nullable=False),
    Field(Owner.WEBHOOK, "url", max_length=2048, nullable=False),
    Field(Owner.WEBHOOK, "description", max_length=256),
)

ROLE = _declared(
    Field(Owner.ROLE, "name", max_length=64, nullable=False, people_api="name"),
)

TEAM = _declared(
    Field(
        Owner.TEAM, "name", max_length=256, nullable=False, people_api="name", scim="displayName"
    ),
    # Set by an identity provider through SCIM; unique within the account, case-exact.
    Field(Owner.TEAM, "scim_external_id", max_length=255, scim="externalId", scim_case_exact=True),
)

BUDGET = _declared(
    Field(Owner.BUDGET, "name", max_length=256, nullable=False, people_api="name"),
    Field(
        Owner.BUDGET,
        "type",
        Kind.CHOICE,
        max_length=16,
        choices=BUDGET_TYPES,
        nullable=False,
        people_api="type",
    ),
)


def _person(name: str, **given: Any) -> Field:
    """A person's field: every one is shared with the person's accounts, and imported."""
    return Field(Owner.PERSON, name, shared=True, imported=True, **given)


#: The person's email and the persona's (work) email are the same kind of value.
_AN_EMAIL_ADDRESS: dict[str, Any] = {
    "kind": Kind.EMAIL,
    "max_length": 320,
    "min_length": 3,
    "rule": _email_shape,
}


#: The person's fields, in the order of the spec's ROW.
PERSON = _declared(
    _person(
        "first_name",
        max_length=256,
        searched=True,
        persons_api="first_name",
        people_api="firstName",
        people_required=True,
        scim="name.givenName",
    ),
    _person(
        "last_name",
        max_length=256,
        searched=True,
        persons_api="last_name",
        people_api="lastName",
        people_required=True,
        scim="name.familyName",
    ),
    _person("title", max_length=64, people_api="title", scim="name.honorificPrefix"),
    _person("middle_initials", max_length=256, people_api="middleInitials", scim="name.middleName"),
    _person("dob", kind=Kind.DATE, people_api="dob"),
    _person("gender", max_length=64, people_api="gender"),
    _person("nationality", max_length=64, people_api="nationality"),
    _person("country_of_residence", max_length=64, people_api="countryOfResidence"),
    _person(
        "email_address",
        **_AN_EMAIL_ADDRESS,
        searched=True,
        persons_api="email_address",
        people_api="emailAddress",
        people_row="primaryEmailAddress",
    ),
    _person(
        "phone_number",
        kind=Kind.PHONE,
        max_length=64,
        searched=True,
        persons_api="phone_number",
        people_api="primaryMobileNumber",
    ),
    _person(
        "external_ref",
        max_length=255,
        unique=True,
        persons_api="external_ref",
        people_api="externalRef",
    ),
)


def _persona(name: str, **given: Any) -> Field:
    return Field(Owner.PERSONA, name, **given)


#: The persona's fields, in the order of the spec's ROW.
PERSONA = _declared(
    # POST /people takes one emailAddress: the person's and the new persona's.
    _persona(
        "email_address",
        **_AN_EMAIL_ADDRESS,
        searched=True,
        people_api="emailAddress",
    ),
    _persona(
        "employee_number",
        max_length=64,
        searched=True,
        imported=True,
        people_api="employeeNumber",
        scim="employeeNumber",
        scim_enterprise=True,
    ),
    _persona(
        "work_number",
        kind=Kind.PHONE,
        max_length=64,
        searched=True,
        imported=True,
        people_api="workNumber",
    ),
    _persona("job_title", max_length=256, imported=True, people_api="jobTitle", scim="title"),
    _persona(
        "status",
        kind=Kind.CHOICE,
        max_length=16,
        choices=PERSONA_STATUSES,
        nullable=False,
        imported=True,
        people_api="status",
        people_default="active",
        people_new_choices=("active", "created", "invited", "deactivated"),
    ),
    # A role by name: resolved to the account's role of that name, ignoring case.
    _persona(
        "role_name",
        max_length=ROLE["name"].max_length,
        stored=False,
        imported=True,
        people_api="roleName",
        people_required=True,
        people_on_update=False,
    ),
    _persona("role_id", kind=Kind.REFERENCE, nullable=False, people_row="roleId"),
    _persona(
        "created_by_persona_id",
        kind=Kind.REFERENCE,
        people_api="createdByPersonaId",
        people_on_update=False,
    ),
    # SCIM's displayName: stored and returned as sent.
    _persona(
        "display_name", max_length=256, imported=True, people_api="displayName", scim="displayName"
    ),
    # The SCIM User's own attributes (spec/scim.md), written through SCIM only. userName
    # is compared by its key (personas.user_name_key), which other doors' personas
    # derive from their email addresses.
    _persona("user_name", max_length=256, scim="userName"),
    _persona("scim_external_id", max_length=255, scim="externalId", scim_case_exact=True),
    # name.formatted: stored as sent when given (RFC 7643 makes it readWrite); read as
    # built from the name's parts when not.
    _persona("formatted_name", max_length=1024, scim="name.formatted"),
    _persona("nick_name", max_length=256, scim="nickName"),
    _persona("preferred_language", max_length=64, scim="preferredLanguage"),
    _persona("locale", max_length=64, scim="locale"),
    _persona("timezone", max_length=64, scim="timezone"),
    _persona("user_type", max_length=64, scim="userType"),
    *(
        _persona(name, max_length=256, scim=scim, scim_enterprise=True)
        for name, scim in (
            ("department", "department"),
            ("cost_center", "costCenter"),
            ("organization", "organization"),
            ("division", "division"),
        )
    ),
    # Another persona of the account (SCIM's enterprise manager.value).
    _persona("manager_persona_id", kind=Kind.REFERENCE),
)


def _address(name: str, **given: Any) -> Field:
    return Field(Owner.ADDRESS, name, **given)


#: A persona's postal address, in the order of its answers.
ADDRESS = _declared(
    _address("type", max_length=32, nullable=False, people_api="type", people_required=True),
    _address(
        "address_line1",
        max_length=256,
        nullable=False,
        people_api="addressLine1",
        people_required=True,
    ),
    _address("address_line2", max_length=256, people_api="addressLine2"),
    _address("address_line3", max_length=256, people_api="addressLine3"),
    _address("city", max_length=128, nullable=False, people_api="city", people_required=True),
    _address("region", max_length=128, people_api="region"),
    _address(
        "postcode", max_length=64, nullable=False, people_api="postcode", people_required=True
    ),
    _address(
        "country_code",
        kind=Kind.CODE,
        max_length=2,
        pattern=COUNTRY_PATTERN,
        problem="must be an ISO 3166-1 alpha-2 country code, such as GB",
        rule=_country_code,
        nullable=False,
        people_api="country",
        people_row="countryCode",
        people_required=True,
    ),
    # SCIM's addresses.formatted, as sent (written through SCIM only).
    _address("formatted", max_length=1024),
)

# -- what the rest of the directory reads from them --------------------------------------------

#: The person fields a client may write, in the order the APIs list them.
PERSON_FIELDS = tuple(PERSON)
#: The persona's columns a write sets (its role by id).
PERSONA_FIELDS = tuple(name for name, field in PERSONA.items() if field.stored)
#: The person fields the spec's shared-person rule protects.
SHARED_PERSON_FIELDS = tuple(name for name, field in PERSON.items() if field.shared)


def stored(fields: Mapping[str, Field]) -> tuple[Field, ...]:
    """The fields that are columns of their owner's table, in declaration order."""
    return tuple(field for field in fields.values() if field.stored)


def searched(fields: Iterable[Field], *, phones: bool) -> tuple[str, ...]:
    """The searched fields' names: the phone numbers, or the others."""
    return tuple(f.name for f in fields if f.searched and (f.kind is Kind.PHONE) == phones)
