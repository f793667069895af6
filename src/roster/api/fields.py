"""Constrained value types shared by both APIs' request models."""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints

from roster.core.accounts import ACCOUNT_ID


def _no_control_characters(value: str) -> str:
    # Cs: an unpaired UTF-16 surrogate, which JSON can carry but UTF-8 cannot store.
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in value):
        raise ValueError("must not contain control characters or unpaired surrogates")
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank; omit the field or send null to leave it as it is")
    return value


def _email_shape(value: str) -> str:
    local, at, domain = value.rpartition("@")
    if not at or not local or not domain or any(c.isspace() for c in value):
        raise ValueError("must be an email address (name@domain)")
    return value


def _cursor(value: object) -> object:
    """An integer, or a string of digits, as the seed documents after-id."""
    if isinstance(value, bool):
        raise ValueError("must be a whole number")
    if isinstance(value, str):
        if not re.fullmatch(r"[0-9]{1,19}", value):
            raise ValueError("must be a whole number (or a string of digits)")
        return int(value)
    return value


#: A value compared exactly (a lookup criterion): bounded, but anything else goes.
Criterion = Annotated[str, StringConstraints(max_length=320)]
Name = Annotated[
    str,
    StringConstraints(min_length=1, max_length=256),
    AfterValidator(_no_control_characters),
    AfterValidator(_not_blank),
]
Email = Annotated[
    str,
    StringConstraints(min_length=3, max_length=320),
    AfterValidator(_no_control_characters),
    AfterValidator(_email_shape),
]
Phone = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64),
    AfterValidator(_no_control_characters),
    AfterValidator(_not_blank),
]
ExternalRef = Annotated[
    str,
    StringConstraints(min_length=1, max_length=255),
    AfterValidator(_no_control_characters),
    AfterValidator(_not_blank),
]
GroupName = Annotated[str, StringConstraints(min_length=1, max_length=255)]
Cursor = Annotated[int, BeforeValidator(_cursor), Field(ge=0, le=2**63 - 1)]


def _account_id(value: str) -> str:
    if not ACCOUNT_ID.match(value):
        raise ValueError("must be 1 to 36 letters, digits, '_' or '-'")
    return value


def _iso_date(value: object) -> object:
    if not isinstance(value, str) or not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        raise ValueError("must be a date written YYYY-MM-DD")
    return value


AccountId = Annotated[str, AfterValidator(_account_id)]
IsoDate = Annotated[date, BeforeValidator(_iso_date)]


def _has_text(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


#: Free text of a bounded length (the People API's fields): not blank, no control characters.
Printable = Annotated[str, AfterValidator(_no_control_characters), AfterValidator(_has_text)]
Text32 = Annotated[Printable, StringConstraints(max_length=32)]
Text64 = Annotated[Printable, StringConstraints(max_length=64)]
Text128 = Annotated[Printable, StringConstraints(max_length=128)]
Text256 = Annotated[Printable, StringConstraints(max_length=256)]
