"""The Pydantic types of both APIs' fields, derived from the core's declarations
(core/fields.py): each checks a value with its field's own rules and states those rules
in the OpenAPI document.

Every text a client sends is checked for what no database can store (NUL, unpaired
surrogates) before it reaches the database: a declared field's rules include that, and
:data:`Storable` is the rule for the other texts (search terms, criteria, names).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    StringConstraints,
    WithJsonSchema,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

from roster.core import fields as declared
from roster.core.fields import ACCOUNT, UNSTORABLE, InvalidValue, Kind, storable

#: JSON Schema patterns (ECMA 262) of what the server refuses in a text: a stored
#: field's text holds no control character and is not blank; any text holds no NUL.


def printable_without(characters: str = "") -> str:
    """The pattern of a stored field's text that also holds none of ``characters``
    (each a literal character, no regex syntax)."""
    banned = re.escape(characters) + r"\x00-\x1f\x7f-\x9f"
    return rf"^[^{banned}]*[^\s{banned}][^{banned}]*$"


PRINTABLE = printable_without()
NO_NUL = r"^[^\x00]*$"


class Schema:
    """Pydantic metadata: keys added to a type's JSON schema (rules checked elsewhere)."""

    def __init__(self, **keys: Any) -> None:
        self.keys = keys

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        generated = handler.resolve_ref_schema(handler(schema))
        generated.update(self.keys)
        return generated


class NotNull:
    """Pydantic metadata for ``X | None`` that refuses null but may be left out (a PATCH
    field that cannot be cleared): the JSON schema says ``X`` alone, as the server does."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_after_validator_function(_not_null, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        generated = handler.resolve_ref_schema(handler(schema))
        kept = [s for s in generated.get("anyOf", ()) if s.get("type") != "null"]
        if len(kept) != 1:
            return generated
        # No null, not even as the default: leaving the field out is how it is not given.
        unset = ("anyOf", "default")
        return {**{k: v for k, v in generated.items() if k not in unset}, **kept[0]}


def _not_null(value: object) -> object:
    if value is None:
        raise ValueError("must not be null")
    return value


def _checked(field: declared.Field) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        try:
            return field.check(value)
        except InvalidValue as error:
            raise ValueError(error.problem) from None  # the door names the field

    return check


class Rules:
    """Pydantic metadata: a declared field's rules, as ``Annotated[str, Rules(field)]``.

    Lengths are checked by Pydantic (its messages), the rest by the field's own check;
    the JSON schema states them all.
    """

    def __init__(self, field: declared.Field) -> None:
        self.field = field

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        metadata = self._metadata()
        return handler.generate_schema(Annotated[(source, *metadata)] if metadata else source)

    def _metadata(self) -> tuple[Any, ...]:
        field = self.field
        if field.kind is Kind.DATE:
            return (BeforeValidator(_checked(field)),)
        if field.kind in (Kind.CHOICE, Kind.REFERENCE):
            return ()  # a Literal or a UUID says it all
        check = AfterValidator(_checked(field))
        if field.kind is Kind.CODE:
            return (
                check,
                Schema(minLength=1, maxLength=field.max_length, pattern=field.pattern),
            )
        if field.kind is Kind.EMAIL:
            return (
                StringConstraints(min_length=field.min_length, max_length=field.max_length),
                check,
                Schema(format="email"),
            )
        return (
            StringConstraints(max_length=field.max_length),
            check,
            Schema(minLength=field.min_length, pattern=PRINTABLE),
        )


def python_type(field: declared.Field, choices: tuple[str, ...] = ()) -> Any:
    """The Python type of a field's values (``choices``: fewer than the field's)."""
    if field.kind is Kind.DATE:
        return date
    if field.kind is Kind.REFERENCE:
        return uuid.UUID
    if field.kind is Kind.CHOICE:
        return Literal[choices or field.choices]
    return str


def declared_type(field: declared.Field, choices: tuple[str, ...] = ()) -> Any:
    """The type of a field in a request: its values, checked by its rules."""
    return Annotated[python_type(field, choices), Rules(field)]


def _storable(value: str) -> str:
    if not storable(value):
        raise ValueError(UNSTORABLE)
    return value


class Storable:
    """Pydantic metadata: the rule for any other text a client sends (a search, a
    criterion, a name to look up), after the type's own constraints."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_after_validator_function(_storable, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {**handler.resolve_ref_schema(handler(schema)), "pattern": NO_NUL}


STORABLE = Storable()
#: A value compared exactly (a lookup criterion): bounded, but anything storable goes.
Criterion = Annotated[str, StringConstraints(max_length=320), STORABLE]
GroupName = Annotated[str, StringConstraints(min_length=1, max_length=255), STORABLE]
AccountId = Annotated[str, Rules(ACCOUNT["id"])]
#: An API client's id (``cl_`` and 20 hex digits when Roster made it).
ClientId = Annotated[str, StringConstraints(min_length=1, max_length=64), STORABLE]


def _json_integer(value: object) -> object:
    """A JSON number, as JSON Schema's ``integer`` takes it (``60`` or ``60.0``): never a
    boolean or a text, which Pydantic's lax mode would take as 0, 1 or 60."""
    if isinstance(value, bool | str):
        raise ValueError("must be a whole number")
    return value


#: An integer of a JSON body.
JsonInt = Annotated[int, BeforeValidator(_json_integer)]

_CURSOR = re.compile(r"[0-9]{1,40}")
#: The largest cursor number stored (a BIGINT); a larger after-id is past every person.
_CURSOR_MAX = 2**63 - 1


def _cursor(value: object) -> object:
    """An integer, or a string of digits, as the seed documents after-id."""
    if isinstance(value, bool):
        raise ValueError("must be a whole number")
    if isinstance(value, str):
        if not _CURSOR.fullmatch(value):
            raise ValueError("must be a whole number (or a string of digits)")
        return int(value)
    return value


def _past_every_person(value: int) -> int:
    return min(value, _CURSOR_MAX)


Cursor = Annotated[
    int,
    BeforeValidator(_cursor),
    Field(ge=0),
    AfterValidator(_past_every_person),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 0},
                {"type": "string", "pattern": f"^{_CURSOR.pattern}$"},
            ]
        }
    ),
]

#: A timestamp in an answer: ``2026-01-02T13:47:01.000Z``.
Timestamp = Annotated[str, Schema(format="date-time", examples=["2026-01-02T13:47:01.000Z"])]
