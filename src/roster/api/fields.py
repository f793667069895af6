"""Constrained value types shared by both APIs' request models."""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints


def _no_control_characters(value: str) -> str:
    if any(unicodedata.category(c) == "Cc" for c in value):
        raise ValueError("must not contain control characters")
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
