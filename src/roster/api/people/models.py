"""The People API's JSON: camelCase input models (unknown fields refused), the shapes it
answers, how a core row becomes one, and the API's names for core things.

The models of people, personas and addresses, and the ROW, are built from the field and
embed declarations (core/fields.py, core/people/embeds.py): a field declared there with
a People API name is written and answered here without another edit. For the type
checker such a model is its static base (``if TYPE_CHECKING``), which holds the fields
that are not declared there.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import fields
from datetime import UTC, datetime
from functools import cache, lru_cache
from operator import attrgetter
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_type_hints

import orjson
from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic.alias_generators import to_camel

from roster.api.fields import AccountId, NotNull, Rules, Timestamp, declared_type, python_type
from roster.core.fields import (
    ADDRESS,
    BUDGET,
    PERSON,
    PERSONA,
    PERSONA_STATUSES,
    ROLE,
    TEAM,
    stored,
)
from roster.core.fields import Field as Declared
from roster.core.people.embeds import EMBEDS, Embed
from roster.core.people.persona_rows import PERSON_AT, PERSONA_AT, PersonaRow

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    PersonaStatus = str
    BudgetType = str
else:
    PersonaStatus = Literal[PERSONA_STATUSES]
    BudgetType = Literal[BUDGET["type"].choices]

#: At most this many persona ids in one body list.
MAX_MEMBERS = 1000


# -- names -----------------------------------------------------------------------------------

#: The body name of each declared field, by its core name.
_BODY_NAMES = {
    f.name: f.people_api
    for declared in (PERSON, PERSONA, ROLE, TEAM, BUDGET, ADDRESS)
    for f in declared.values()
    if f.people_api
}


def field_name(name: str) -> str:
    """The People API's name for a field that core names ``name`` (errors use it)."""
    return _BODY_NAMES.get(name) or to_camel(name)


def item_key(name: str) -> str:
    """The key of a field of an embed's item, or of another core dataclass answered."""
    return to_camel(name)


@cache
def embed_key(embed: Embed) -> str:
    """The key an embed adds inside ``persona``."""
    return to_camel(embed.name)


def include_name(embed: Embed) -> str:
    """The ``include`` value that asks for an embed: ``persona.primaryOwnerOf``."""
    return f"persona.{embed_key(embed)}"


# -- building blocks ---------------------------------------------------------------------------


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


def optional_timestamp(at: datetime | None) -> str | None:
    """:func:`timestamp`, or None for no time."""
    return None if at is None else timestamp(at)


class CamelModel(BaseModel):
    """Fields in snake_case, JSON in camelCase."""

    model_config = ConfigDict(
        alias_generator=to_camel, serialize_by_alias=True, validate_by_name=True
    )


class Body(CamelModel):
    """An input body: camelCase names only, no unknown fields."""

    model_config = ConfigDict(extra="forbid", validate_by_name=False)


def _written(declared: Iterable[Declared], *, new: bool) -> dict[str, Any]:
    """The model fields, by body name, of the declared fields a POST (``new``) or a PATCH
    takes; a PATCH never clears a field a POST requires or defaults."""
    written: dict[str, Any] = {}
    for f in declared:
        name = f.people_api
        if name is None or name in written or not (new or f.people_on_update):
            continue
        kind = declared_type(f, f.people_new_choices if new else ())
        if new and f.people_required:
            written[name] = (kind, ...)
        elif new and f.people_default is not None:
            written[name] = (kind, f.people_default)
        elif not new and (f.people_required or f.people_default is not None):
            written[name] = (Annotated[kind | None, NotNull()], None)
        else:
            written[name] = (kind | None, None)
    return written


def _model(name: str, base: type[BaseModel], doc: str, defined: Mapping[str, Any]) -> Any:
    return create_model(name, __base__=base, __doc__=doc, **defined)


def values_of(
    body: BaseModel, declared: Iterable[Declared], *, only_given: bool = False
) -> dict[str, Any]:
    """The core's values of the declared fields a body has, by core name: every one, or
    only those the client sent."""
    sent = body.model_dump(by_alias=True)
    given = body.model_fields_set
    return {
        f.name: sent[f.people_api]
        for f in declared
        if f.people_api in sent and (not only_given or f.people_api in given)
    }


# -- what the API takes ------------------------------------------------------------------------


class NewPerson(Body):
    account_id: AccountId


class NewAddress(Body):
    persona_id: uuid.UUID


if TYPE_CHECKING:
    PersonCreate = NewPerson
    PersonUpdate = Body
    PersonaUpdate = Body
    AddressCreate = NewAddress
else:
    PersonCreate = _model(
        "PersonCreate",
        NewPerson,
        "A person joining an account (a new person unless its email address is known).",
        _written((*PERSON.values(), *PERSONA.values()), new=True),
    )
    PersonUpdate = _model(
        "PersonUpdate",
        Body,
        "Any of a person's fields; ``null`` clears one (but names cannot be cleared).",
        _written(PERSON.values(), new=False),
    )
    PersonaUpdate = _model(
        "PersonaUpdate",
        Body,
        "Any of a persona's own fields; ``null`` clears one (but not the status).",
        _written(stored(PERSONA), new=False),
    )
    AddressCreate = _model(
        "AddressCreate", NewAddress, "A postal address.", _written(ADDRESS.values(), new=True)
    )


class RoleAssignment(Body):
    role_name: Annotated[str, Rules(PERSONA["role_name"])]


class RoleCreate(Body):
    account_id: AccountId
    name: Annotated[str, Rules(ROLE["name"])]


class TeamCreate(Body):
    account_id: AccountId
    name: Annotated[str, Rules(TEAM["name"])]
    primary_owner_persona_id: uuid.UUID | None = None
    member_persona_ids: list[uuid.UUID] = Field(default_factory=list, max_length=MAX_MEMBERS)


class BudgetCreate(TeamCreate):
    name: Annotated[str, Rules(BUDGET["name"])]
    type: BudgetType


# -- what the API answers ----------------------------------------------------------------------


def _answer(item: type[Any]) -> Any:
    """The answer model of a core dataclass (an embed's item): its fields, camelCase."""
    hints = get_type_hints(item)
    defined: dict[str, Any] = {f.name: (hints[f.name], ...) for f in fields(item)}
    return create_model(f"{item.__name__}Out", __base__=CamelModel, **defined)


def _shown(declared: Iterable[Declared]) -> dict[str, Any]:
    """The answer fields of stored declared fields, by their keys."""
    shown: dict[str, Any] = {}
    for f in declared:
        if f.people_key is not None:
            kind = python_type(f)
            shown[f.people_key] = (kind | None if f.nullable else kind, ...)
    return shown


_EMBEDDED = {embed.name: _answer(embed.item) for embed in EMBEDS}
_TIMESTAMPS = {"createdAt": (Timestamp, ...), "updatedAt": (Timestamp, ...)}

if TYPE_CHECKING:
    RoleOut = CamelModel
    AddressOut = CamelModel
    CreatedAddress = CamelModel
    PersonaOut = CamelModel
    PersonRow = CamelModel
else:
    RoleOut = _EMBEDDED["roles"]
    AddressOut = _EMBEDDED["addresses"]
    CreatedAddress = create_model("CreatedAddress", __base__=AddressOut, personaId=(uuid.UUID, ...))
    PersonaOut = create_model(
        "PersonaOut",
        __base__=CamelModel,
        id=(uuid.UUID, ...),
        accountId=(str, ...),
        **_shown(stored(PERSONA)),
        **_TIMESTAMPS,
        **{
            embed_key(embed): (
                (list[_EMBEDDED[embed.name]] if embed.many else _EMBEDDED[embed.name]) | None,
                Field(None, description=f"With {include_name(embed)}."),
            )
            for embed in EMBEDS
        },
    )
    PersonRow = create_model(
        "PersonRow",
        __base__=CamelModel,
        __doc__="A person joined with its persona on the account.",
        id=(uuid.UUID, ...),
        **_shown(stored(PERSON)),
        status=(PersonaStatus, Field(description="The persona's status on the account.")),
        **_TIMESTAMPS,
        persona=(PersonaOut, ...),
    )


class PeoplePage(CamelModel):
    limit: int
    offset: int
    count: int = Field(description="Every matching row, whatever the limit and offset.")
    search: str | None
    rows: list[PersonRow]


class RoleRow(CamelModel):
    id: uuid.UUID
    name: str
    type: Literal["core"] | None
    account_id: str
    created_at: Timestamp
    updated_at: Timestamp


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


# -- rendering ---------------------------------------------------------------------------------


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
    return tuple(map(item_key, names)), (getter if len(names) > 1 else lambda v: (getter(v),))


def _display(entries: Sequence[tuple[str, str]]) -> Callable[..., dict[str, Any]]:
    """A function of a row's ``person`` and ``persona`` values writing a dict display of
    these keys and expressions. A page renders 100,000 rows: built with ``dict(zip())``
    they took twice as long as this, the code a hand-written dict literal compiles to."""
    display = ", ".join(f"{key!r}: {expression}" for key, expression in entries)
    code = f"lambda person, persona, shown: {{{display}}}"
    written: Callable[..., dict[str, Any]] = eval(code, {"timestamp": timestamp})  # noqa: S307
    return written


#: A persona's answer, then the row's: the declared fields' keys between the ids and the
#: timestamps; the row's status is its persona's.
_render_persona = _display(
    [
        ("id", "persona[0]"),
        ("accountId", "persona[1]"),
        *(
            (f.people_key, f"persona[{PERSONA_AT[f.name]}]")
            for f in stored(PERSONA)
            if f.people_key is not None  # the People API's fields, not SCIM's own
        ),
        ("createdAt", "timestamp(persona[-2])"),
        ("updatedAt", "timestamp(persona[-1])"),
    ]
)
_render_row = _display(
    [
        ("id", "person[0]"),
        *(
            (f.people_key, f"person[{PERSON_AT[f.name]}]")
            for f in stored(PERSON)
            if f.people_key is not None
        ),
        ("status", f"persona[{PERSONA_AT['status']}]"),
        ("createdAt", "timestamp(person[-2])"),
        ("updatedAt", "timestamp(person[-1])"),
        ("persona", "shown"),
    ]
)


def _embed_json(row: PersonaRow, embed: Embed) -> Any:
    if (written := row.rendered.get(embed.name)) is not None:
        return orjson.Fragment(written)  # JSON the database wrote
    value = row.embeds[embed.name]
    if isinstance(value, list):
        return [camel(item) for item in value]
    return camel(value) if value is not None else None


def row_json(row: PersonaRow) -> dict[str, Any]:
    """A ROW of the spec, with the embeds the row was loaded with."""
    shown = _render_persona(row.person, row.persona, None)
    for embed in row.included:
        shown[embed_key(embed)] = _embed_json(row, embed)
    return _render_row(row.person, row.persona, shown)
