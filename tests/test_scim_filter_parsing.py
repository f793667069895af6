"""SCIM filters are parsed by their shape (strings put back after): for every text, valid
or not, that must read exactly as parsing the text itself (scim2-models' own parser)."""

from __future__ import annotations

import json
from collections.abc import Callable

from hypothesis import event, example, given, settings
from hypothesis import strategies as st
from scim2_models.path.expressions import FilterNode

from roster.api.scim.errors import InvalidFilter
from roster.api.scim.filters import _parsed, parse_filter
from tests.factories import PROPERTY_SETTINGS

ATTRIBUTES = st.sampled_from(
    ["userName", "emails", "emails.value", "name.familyName", "title", "active", "x-y"]
)
OPERATORS = st.sampled_from(["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"])
#: Any text as a JSON string literal, escapes and all, or one written by hand.
LITERALS = st.one_of(
    st.text().map(json.dumps),
    st.text().map(lambda text: json.dumps(text, ensure_ascii=False)),
    st.text(alphabet='ab"\\/u0 \t\n\x01', max_size=8).map(lambda text: f'"{text}"'),
)
VALUES = st.one_of(LITERALS, st.sampled_from(["true", "false", "null", "42", "-1.5e3"]))


@st.composite
def filters(draw: st.DrawFn, depth: int = 2) -> str:
    """A filter of the grammar's shapes; its strings any text."""
    attribute, operator, value = draw(ATTRIBUTES), draw(OPERATORS), draw(VALUES)
    kinds = ["compare", "present", "value path", "entra"]
    if depth > 0:
        kinds += ["and", "or", "not"]
    kind = draw(st.sampled_from(kinds))
    if kind == "compare":
        return f"{attribute} {operator} {value}"
    if kind == "present":
        return f"{attribute} pr"
    if kind == "value path":
        return f"emails[type {operator} {value} and value eq {draw(VALUES)}]"
    if kind == "entra":
        return f"emails[type eq {value}].value {operator} {draw(VALUES)}"
    if kind == "not":
        return f"not ({draw(filters(depth - 1))})"
    return f"({draw(filters(depth - 1))}) {kind} {draw(filters(depth - 1))}"


#: Texts with the grammar's pieces in any order: mostly not filters at all.
PIECES = st.sampled_from(['"', '\\"', "eq", " ", "[", "]", "(", ")", ".", "and", "a", "pr"])
GARBLED = st.one_of(
    st.lists(st.one_of(PIECES, LITERALS), max_size=12).map("".join),
    st.text(max_size=20),
)


def answer(parse: Callable[[str], FilterNode], text: str) -> FilterNode | str:
    """The tree ``parse`` makes of the text, or its refusal's message."""
    try:
        return parse(text)
    except InvalidFilter as refused:
        return refused.message


@settings(PROPERTY_SETTINGS, max_examples=400)  # each example takes well under 1 ms
@given(text=st.one_of(filters(), GARBLED))
@example(text='userName eq "a\x01b" or title eq "c"')
@example(text='userName eq "a" "b"')
@example(text='title eq "\\ud800"')
@example(text='emails[value eq "X\\"Y"]')
def test_a_filter_parsed_by_its_shape_reads_as_the_text_itself(text: str) -> None:
    expected = answer(_parsed, text)  # scim2-models' parse of the text as it is
    event("refused" if isinstance(expected, str) else "a filter")
    assert answer(parse_filter, text) == expected


def test_a_filters_strings_come_back_in_their_places() -> None:
    parsed = parse_filter('name.givenName eq "0" and (title sw "1" or userName co "\\"")')
    assert str(parsed) == 'name.givenName eq "0" and (title sw "1" or userName co "\\"")'
