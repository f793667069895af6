"""SCIM filters (RFC 7644 §3.4.2.2) as SQL: the whole grammar, parsed by scim2-models,
becomes one condition over ``personas`` and ``persons`` that the database evaluates (no
filter is evaluated in Python over a table). Text comparisons go through the backend seam
(``Backend.text_compare``); ``co``, ``sw`` and ``ew`` on searched fields are narrowed
first by the trigram index of People search; ``eq`` on userName, names and the person's
email compare keys (indexed), as the rest of Roster does, and so does ``sw`` on names (a
range of the key's index).

The same grammar selects values of one resource's multi-valued attribute in a PATCH path
(``emails[type eq "work"]``): :func:`matches` evaluates it on those few values.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import lru_cache, partial
from typing import Any, ClassVar

from scim2_models import InvalidFilterException, InvalidPathException, Path, ScimFilter
from scim2_models.path.expressions import (
    AttrPath,
    CompareOperator,
    Comparison,
    FilterNode,
    LogicalExpr,
    LogicalOperator,
    Not,
    Present,
    ValuePath,
)
from sqlalchemy import (
    Column,
    ColumnElement,
    Table,
    and_,
    bindparam,
    case,
    exists,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
    union,
)

from roster.api.scim.errors import InvalidFilter, ScimInvalid
from roster.api.scim.resources import (
    ADDRESS_PARTS,
    ENTERPRISE_SCHEMA,
    MULTI_VALUED,
    SIMPLE,
    USER_SCHEMA,
    ValueSlot,
)
from roster.core.fields import PERSON, PERSONA, TEAM, Field
from roster.core.matching import email_key, name_key, search_terms
from roster.db.backends import Backend, code_point_prefix, compare_ordered
from roster.db.tables import addresses, personas, persons, roles, team_members, teams

_TEXT_OPS = ("eq", "co", "sw", "ew", "gt", "ge", "lt", "le")

#: Compared by key for ``eq``: the key column and how a value becomes a key.
_KEYED: dict[str, tuple[ColumnElement[Any], Callable[[str], str | None]]] = {
    "first_name": (persons.c.first_name_key, name_key),
    "last_name": (persons.c.last_name_key, name_key),
}


#: Name keys a persona also keeps, in code-point order, indexed within its account (the
#: listing's sort column): a prefix is a range of the account's own index, which reads
#: only the account's matches (the persons' key index holds every account's).
_SORTED: dict[str, ColumnElement[Any]] = {"last_name": personas.c.sort_last}


#: A string literal of the filter grammar: scim2-models' ``STRING`` (JSON's rules).
_LITERAL = re.compile(r'"(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9A-Fa-f]{4})*"')


def parse_filter(text: str) -> FilterNode:
    """The filter's tree; ``InvalidFilter`` if it is not one.

    An identity provider's filters differ in their strings, not their shape (``userName
    eq "..."``, a new name each time), so the shape is parsed: each string literal
    replaced by its place (``userName eq "0"``), a text scim2-models parses once and
    keeps. The strings are then put back in the tree: 5 µs, where parsing each text anew
    cost 52 µs of a request of about 1 ms. A shape that does not parse (a quote outside
    any literal never does) is not a filter: the text itself is parsed, for its error."""
    literals: list[str] = []

    def place(literal: re.Match[str]) -> str:
        literals.append(literal.group())
        return f'"{len(literals) - 1}"'

    shaped = _LITERAL.sub(place, text)
    if not literals:
        return _parsed(text)
    try:
        shape = _parsed(shaped)
    except InvalidFilter:
        return _parsed(text)
    return _with_strings(shape, [json.loads(literal) for literal in literals])


def _parsed(text: str) -> FilterNode:
    try:
        parsed = ScimFilter(text).ast
    except (InvalidFilterException, ValueError) as error:
        raise InvalidFilter(f"The filter cannot be parsed: {error}.") from None
    if parsed is None:
        raise InvalidFilter("The filter is empty.")
    return parsed


def _with_strings(node: FilterNode, strings: list[str]) -> FilterNode:
    """The tree of a filter's shape with its strings put back: each string value of a
    comparison is the place of one."""
    if isinstance(node, Comparison):
        if isinstance(node.value, str):
            return replace(node, value=strings[int(node.value)])
        return node
    if isinstance(node, LogicalExpr):
        return replace(node, terms=tuple(_with_strings(term, strings) for term in node.terms))
    if isinstance(node, Not):
        return replace(node, expr=_with_strings(node.expr, strings))
    if isinstance(node, ValuePath):
        return replace(node, val_filter=_with_strings(node.val_filter, strings))
    return node  # Present: no value


def _attribute(path: AttrPath) -> tuple[str, str | None]:
    """``(attribute, sub-attribute)``, lower case; the enterprise's attributes prefixed
    ``enterprise:``. ``InvalidFilter`` for a schema this server does not have."""
    uri = (path.uri or "").lower()
    attr = path.attr.lower()
    sub = path.sub_attr.lower() if path.sub_attr else None
    if uri in ("", USER_SCHEMA.lower()):
        return attr, sub
    if uri == ENTERPRISE_SCHEMA.lower():
        return f"enterprise:{attr}", sub
    raise InvalidFilter(f"Unknown schema {path.uri!r} in the filter.")


def _simple_key(declared: Field) -> str:
    assert declared.scim is not None
    return ("enterprise:" if declared.scim_enterprise else "") + declared.scim.lower()


_SIMPLE_BY_KEY = {_simple_key(f): f for f in SIMPLE}


@dataclass(frozen=True)
class _Slot:
    """One value of a multi-valued attribute Roster keeps in a column: its ``value`` and
    its fixed ``type``."""

    type: str
    value: ColumnElement[Any]
    key: tuple[ColumnElement[Any], Callable[[str], str | None]] | None
    searched: bool
    #: When a User shows the value it holds (resources.py), if not always.
    shown: ColumnElement[bool] | None = None

    @property
    def held(self) -> ColumnElement[bool]:
        """The User has this value, as it reads it."""
        held = _filled(self.value)
        return held if self.shown is None else and_(held, self.shown)


def _slots(declared: tuple[ValueSlot, ...]) -> tuple[_Slot, ...]:
    """A multi-valued attribute's values (resources.py ``MULTI_VALUED``) as columns."""

    def table(slot: ValueSlot) -> Table:
        return persons if slot.of_person else personas

    by_type = {slot.type: slot for slot in declared}
    found = []
    for slot in declared:
        value = table(slot).c[slot.field]
        key = None
        if slot.key_column is not None and slot.key is not None:
            key = (table(slot).c[slot.key_column], slot.key)
        shown = None
        if slot.unless_same_as is not None and key is not None:
            other = by_type[slot.unless_same_as]
            assert other.key_column is not None
            shown = key[0].is_distinct_from(table(other).c[other.key_column])
        field = (PERSON if slot.of_person else PERSONA)[slot.field]
        found.append(_Slot(slot.type, value, key, field.searched, shown))
    return tuple(found)


#: By attribute name, folded.
_MULTI = {name.lower(): _slots(slots) for name, slots in MULTI_VALUED.items()}

#: The sub-attributes ``pr`` takes on the attributes of every resource (RFC 7643 §3.1):
#: the same their comparisons take; every resource has them.
_COMMON_PRESENT_SUBS: dict[str, tuple[str | None, ...]] = {
    "id": (None,),
    "meta": (None, "created", "lastmodified", "resourcetype"),
}

#: The sub-attributes ``pr`` takes on a User's attributes that are not declared fields,
#: the same its comparisons take (``roles.display pr`` was every User, where
#: ``roles.display eq`` is refused); the others are checked where they are compared.
_PRESENT_SUBS: dict[str, tuple[str | None, ...]] = {
    **_COMMON_PRESENT_SUBS,
    "username": (None,),
    "active": (None,),
    "roles": (None, "value"),
    "groups": (None, "value"),
    "enterprise:manager": (None, "value"),
    **dict.fromkeys(_MULTI, (None, "value", "type")),
}

#: The same for a Group's attributes that are not declared fields (``displayName`` and
#: ``externalId`` are).
_GROUP_PRESENT_SUBS: dict[str, tuple[str | None, ...]] = {
    **_COMMON_PRESENT_SUBS,
    "members": (None, "value"),
}

#: An address's sub-attributes (names folded) as what they read: ``streetAddress`` is its
#: lines joined by line breaks, as a User shows it.
_ADDRESS = {
    **{scim.lower(): addresses.c[core] for scim, core in ADDRESS_PARTS.items()},
    "streetaddress": addresses.c.address_line1
    + func.coalesce("\n" + addresses.c.address_line2, "")
    + func.coalesce("\n" + addresses.c.address_line3, ""),
    "formatted": addresses.c.formatted,
}


def _logic(
    node: FilterNode, one: Callable[[FilterNode], ColumnElement[bool]]
) -> ColumnElement[bool]:
    """``and``, ``or`` and ``not`` of a filter, each other node's condition as ``one``
    makes it."""
    if isinstance(node, LogicalExpr):
        parts = [_logic(term, one) for term in node.terms]
        return and_(*parts) if node.op is LogicalOperator.and_ else or_(*parts)
    if isinstance(node, Not):
        return _negated(_logic(node.expr, one))
    return one(node)


def _in_value(
    node: FilterNode, compare: Callable[[str, str, Any], ColumnElement[bool]]
) -> ColumnElement[bool]:
    """One comparison of a value filter (``emails[...]``, ``addresses[...]``), as ``compare``
    (sub-attribute, operator, value) makes it."""
    if isinstance(node, Present):
        return compare(node.attr_path.attr.lower(), "pr", None)
    if not isinstance(node, Comparison):
        raise InvalidFilter("Value filters do not nest.")
    return compare(node.attr_path.attr.lower(), str(node.op.value), node.value)


def _has(outer: Table, *conditions: ColumnElement[bool]) -> ColumnElement[bool]:
    """EXISTS a row meeting ``conditions`` for the statement's row of ``outer`` (a persona,
    a team): correlated to ``outer`` alone, so the subquery keeps its own tables when the
    statement around it joins them too (the Users page joins ``roles``; auto-correlated,
    ``roles eq`` lost its only FROM and was a 500)."""
    return exists().where(*conditions).correlate(outer)


def _has_address(condition: ColumnElement[bool]) -> ColumnElement[bool]:
    """The persona has an address meeting ``condition`` (one index probe of its addresses)."""
    return _has(personas, addresses.c.persona_id == personas.c.id, condition)


def _has_member(condition: ColumnElement[bool]) -> ColumnElement[bool]:
    """The team has a member meeting ``condition`` (a range of ``team_members``' key)."""
    return _has(teams, team_members.c.team_id == teams.c.id, condition)


#: A value that can be part of an id's text (36 hex digits and dashes, lower case).
_ID_PART = re.compile(r"[0-9a-f-]{1,36}")


def _datetime(value: object) -> datetime:
    """A moment of a filter; one without an offset is UTC's (Roster keeps UTC)."""
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    raise InvalidFilter(f"{value!r} is not a date and time (xsd:dateTime).")


def _id(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


class _Filter:
    """Compiles a filter for one backend: the logic and the attributes every resource has
    (``id``, ``meta``) here, each resource's own attributes in a subclass, and ``null``
    the same for all: ``eq null`` is ``not (x pr)`` (RFC 7643 §2.5: an unassigned
    attribute and null are the same state)."""

    #: The resource's table (its ``id`` column).
    table: ClassVar[Table]
    #: Its ``meta.resourceType``.
    resource_type: ClassVar[str]
    #: The sub-attributes ``pr`` takes on its attributes that are not declared fields.
    present_subs: ClassVar[Mapping[str, tuple[str | None, ...]]]

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        #: Search conditions so far: each binds its terms under names of its own.
        self.searches = 0
        #: Whether the condition's best plan depends on its values (see Compiled).
        self.planned_by_values = False
        #: Values the condition binds by name (see Compiled).
        self.parameters: dict[str, Any] = {}

    def condition(self, node: FilterNode) -> ColumnElement[bool]:
        return _logic(node, self._one)

    def _one(self, node: FilterNode) -> ColumnElement[bool]:
        if isinstance(node, ValuePath):
            return self._value_path(node)
        if isinstance(node, Present):
            return self._compare(*_attribute(node.attr_path), "pr", None)
        assert isinstance(node, Comparison)
        attr, sub = _attribute(node.attr_path)
        return self._compare(attr, sub, str(node.op.value), node.value)

    def _value_path(self, node: ValuePath) -> ColumnElement[bool]:
        raise InvalidFilter(f"{node.attr_path.attr} has no values to filter by [].")

    def _equals(self, column: ColumnElement[Any], value: str) -> ColumnElement[bool]:
        """``column`` equals ``value`` (as stored: a key, or a case-exact text)."""
        return column == literal(value, type_=column.type)

    def _compare(self, attr: str, sub: str | None, op: str, value: Any) -> ColumnElement[bool]:
        return _compared(
            op, value, partial(self._present, attr, sub), partial(self._compare_value, attr, sub)
        )

    def _compare_value(
        self, attr: str, sub: str | None, op: str, value: Any
    ) -> ColumnElement[bool]:
        """A comparison with a value (not ``pr``, ``ne``, nor with null)."""
        if attr == "id" and sub is None:
            return _by_id(self.table.c.id, op, value)
        if attr == "meta" and sub in ("created", "lastmodified"):
            if op not in ("eq", "gt", "ge", "lt", "le"):
                raise InvalidFilter(f"meta.{sub} compares as a date with eq, gt, ge, lt or le.")
            created, modified = self._moments()
            return _ordered(created if sub == "created" else modified, op, _datetime(value))
        if attr == "meta" and sub == "resourcetype":
            return true() if op == "eq" and value == self.resource_type else false()
        return self._compare_own(attr, sub, op, value)

    def _present(self, attr: str, sub: str | None) -> ColumnElement[bool]:
        if sub not in self.present_subs.get(attr, (sub,)):
            raise InvalidFilter(f"{_shown(attr, sub)} is not an attribute this server filters.")
        if attr in _COMMON_PRESENT_SUBS:
            return true()
        return self._present_own(attr, sub)

    def _moments(self) -> tuple[ColumnElement[Any], ColumnElement[Any]]:
        """The resource's ``meta.created`` and ``meta.lastModified``."""
        raise NotImplementedError

    def _compare_own(self, attr: str, sub: str | None, op: str, value: Any) -> ColumnElement[bool]:
        """A comparison (not ``pr``, ``ne``, nor with null) of the resource's own attribute."""
        raise NotImplementedError

    def _present_own(self, attr: str, sub: str | None) -> ColumnElement[bool]:
        """``pr`` of the resource's own attribute (its sub-attribute already checked)."""
        raise NotImplementedError

    def _text(
        self, column: ColumnElement[Any], op: str, value: Any, case_exact: bool, searched: bool
    ) -> ColumnElement[bool]:
        if not isinstance(value, str) or op not in _TEXT_OPS:
            raise InvalidFilter(f"{op} compares a string attribute with a string.")
        if op == "eq" and case_exact:
            return self._equals(column, value)
        compared = self.backend.text_compare(column, op, value, case_exact)
        terms = search_terms(value)
        if op in ("co", "sw", "ew") and searched and not case_exact and terms:
            # The trigram index finds the candidates; the comparison decides. A value
            # holding ``value`` holds its terms' folds (matching.search_fold).
            self.searches += 1
            self.planned_by_values = True
            found = self.backend.search_condition(terms, f"search{self.searches}")
            return and_(found, compared)
        return compared


class UserFilter(_Filter):
    """Compiles a filter on Users."""

    table = personas
    resource_type = "User"
    present_subs = _PRESENT_SUBS

    def _value_path(self, node: ValuePath) -> ColumnElement[bool]:
        attr, _ = _attribute(node.attr_path)
        wanted = node.val_filter
        if (
            attr == "emails"
            and isinstance(wanted, Comparison)
            and wanted.attr_path.attr.lower() == "value"
            and wanted.op is CompareOperator.eq
            and isinstance(wanted.value, str)
        ):
            return self._email_probe(wanted.value)  # emails[value eq "..."]
        if attr == "addresses":  # every comparison on the same address
            return _has_address(self._address(node.val_filter))
        if attr == "roles":  # a User has one role: each comparison is of the role's name
            return _logic(node.val_filter, lambda one: _in_value(one, self._role_compare))
        slots = _MULTI.get(attr)
        if slots is None:
            return super()._value_path(node)
        return or_(*(and_(slot.held, self._slot(slot, node.val_filter)) for slot in slots))

    def _bound(self, value: Any) -> str:
        """The name ``value`` is bound by (the next of this filter's places)."""
        place = f"value_{len(self.parameters)}"
        self.parameters[place] = value
        return place

    def _equals(self, column: ColumnElement[Any], value: str) -> ColumnElement[bool]:
        """The value bound by name, in a condition built once for the column and place
        (a table's column; an expression is built for each filter)."""
        if not isinstance(column, Column):
            return super()._equals(column, value)
        return _equals(column, self._bound(value))

    def _email_probe(self, value: str) -> ColumnElement[bool]:
        """``emails[value eq ...]``: the probe of its place, its key bound by name."""
        key = email_key(value)
        if key is None:
            return false()
        return _email_probe(self._bound(key))

    # -- one attribute ---------------------------------------------------------------------

    def _moments(self) -> tuple[ColumnElement[Any], ColumnElement[Any]]:
        return personas.c.created_at, _last_modified()

    def _present_own(self, attr: str, sub: str | None) -> ColumnElement[bool]:
        if attr in ("username", "active", "roles"):
            return true()
        if attr in _MULTI:
            return or_(*(slot.held for slot in _MULTI[attr]))
        if attr == "addresses":
            return _has_address(true() if sub is None else self._address_compare(sub, "pr", None))
        if attr == "name" and sub is None:
            return or_(*(_filled(_column(f)) for f in SIMPLE if f.scim and "name." in f.scim))
        if attr == "enterprise:manager":
            return personas.c.manager_persona_id.is_not(None)
        if attr == "groups":
            return _has(personas, team_members.c.persona_id == personas.c.id)
        declared = _SIMPLE_BY_KEY.get(f"{attr}.{sub}" if sub else attr)
        if declared is None:
            raise InvalidFilter(f"{_shown(attr, sub)} is not an attribute this server filters.")
        return _filled(_column(declared))

    def _compare_own(self, attr: str, sub: str | None, op: str, value: Any) -> ColumnElement[bool]:
        if attr == "username" and sub is None:
            if not isinstance(value, str) or op not in _TEXT_OPS:
                raise InvalidFilter("userName compares with a string.")
            key = name_key(value) or ""
            if op != "eq":
                return self._user_name(op, key)
            found = _id(value)
            if found is None or str(found) != key:  # the hot path: one index probe
                return self._equals(personas.c.user_name_key, key)
            # A persona with no userName and no email reads its id (as str() writes it)
            # as its userName.
            named = personas.c.user_name_key == key
            return or_(named, and_(personas.c.id == found, personas.c.user_name_key.is_(None)))
        if attr == "active" and sub is None:
            if op != "eq" or not isinstance(value, bool):
                raise InvalidFilter("active compares with eq and true or false.")
            is_active = personas.c.status == "active"
            return is_active if value else not_(is_active)
        if attr == "emails" and sub in (None, "value") and op == "eq" and isinstance(value, str):
            return self._email_probe(value)
        if attr == "addresses":
            if sub is None:
                raise InvalidFilter("addresses compares by a sub-attribute: addresses.locality.")
            return _has_address(self._address_compare(sub, op, value))
        if attr in _MULTI and sub in (None, "value", "type"):
            return or_(
                *(
                    and_(slot.held, self._slot_compare(slot, sub, op, value))
                    for slot in _MULTI[attr]
                )
            )
        if attr == "roles" and sub in (None, "value"):
            named = self._text(roles.c.name, op, value, case_exact=False, searched=False)
            return _has(personas, roles.c.id == personas.c.role_id, named)
        if attr == "groups" and sub in (None, "value"):
            member = _by_id(team_members.c.team_id, op, value)
            return _has(personas, team_members.c.persona_id == personas.c.id, member)
        if attr == "enterprise:manager" and sub in (None, "value"):
            return _by_id(personas.c.manager_persona_id, op, value)
        declared = _SIMPLE_BY_KEY.get(f"{attr}.{sub}" if sub else attr)
        if declared is None:
            raise InvalidFilter(f"{_shown(attr, sub)} is not an attribute this server filters.")
        column = _column(declared)
        if op in ("eq", "sw") and declared.name in _KEYED and isinstance(value, str):
            # Names compare by their keys, as Roster's matching does: eq one index probe,
            # sw a range of the same index.
            key_column, key_of = _KEYED[declared.name]
            folded = key_of(value)
            if folded is None:  # "" (or blanks): no name equals it, every name starts so
                return _filled(column) if op == "sw" else false()
            if op == "eq":
                return key_column == folded
            self.planned_by_values = True
            if declared.name in _SORTED:
                return code_point_prefix(_SORTED[declared.name], folded)
            return self.backend.starts_with(key_column, folded)
        return self._text(column, op, value, declared.scim_case_exact, declared.searched)

    def _user_name(self, op: str, key: str) -> ColumnElement[bool]:
        """The userName a User reads compared with ``key`` (not ``eq``): its key
        (core/derived_columns.py), else, for a persona with no userName and no email, its
        id's text, which it reads as its userName (resources.user_name). The id's text is
        compared only by ``sw``, ``co`` and ``ew`` of a value that can be part of one:
        the ``OR`` of it turns the key's index range into a walk of every persona on
        PostgreSQL (``userName ge "ffffe"``: 0.66 ms to 488 ms at 1,000,000 personas).
        ``gt``, ``ge``, ``lt``, ``le`` compare the key alone, the order ``sortBy`` uses,
        in which those personas come last."""
        compare = self.backend.text_compare
        by_key = compare(personas.c.user_name_key, op, key, True)
        if op not in ("sw", "co", "ew") or not _ID_PART.fullmatch(key):
            return by_key
        by_id = compare(self.backend.uuid_text(personas.c.id), op, key, True)
        return or_(by_key, and_(personas.c.user_name_key.is_(None), by_id))

    def _role_compare(self, sub: str, op: str, value: Any) -> ColumnElement[bool]:
        """One comparison of a value filter on roles (``roles[value eq "User"]``)."""
        return self._compare("roles", sub, op, value)

    def _slot(self, slot: _Slot, node: FilterNode) -> ColumnElement[bool]:
        """A value filter (``emails[...]``) on one of the attribute's values."""
        return _logic(node, lambda one: _in_value(one, partial(self._slot_compare, slot)))

    def _slot_compare(
        self, slot: _Slot, sub: str | None, op: str, value: Any
    ) -> ColumnElement[bool]:
        if sub in (None, "value"):
            return _compared(
                op, value, partial(_filled, slot.value), partial(self._slot_value, slot)
            )
        if sub == "type":  # every value has its slot's type
            return _compared(op, value, true, partial(_slot_type, slot))
        raise InvalidFilter(f"{sub} is not a sub-attribute this server filters.")

    def _slot_value(self, slot: _Slot, op: str, value: Any) -> ColumnElement[bool]:
        if op == "eq" and slot.key is not None and isinstance(value, str):
            key_column, key_of = slot.key
            key = key_of(value)
            return false() if key is None else key_column == key
        return self._text(slot.value, op, value, case_exact=False, searched=slot.searched)

    def _address(self, node: FilterNode) -> ColumnElement[bool]:
        """A value filter (``addresses[...]``) on one address."""
        return _logic(node, lambda one: _in_value(one, self._address_compare))

    def _address_compare(self, sub: str, op: str, value: Any) -> ColumnElement[bool]:
        """One address's sub-attribute compared: its text, without case; ``primary``
        with true or false."""
        if sub == "primary":  # present when sent, true or false
            sent = addresses.c.is_primary.is_not(None)
            return _compared(op, value, lambda: sent, _primary)
        column = _ADDRESS.get(sub)
        if column is None:
            raise InvalidFilter(f"addresses.{sub} is not a sub-attribute this server filters.")
        text = partial(self._text, column, case_exact=False, searched=False)
        return _compared(op, value, partial(_filled, column), text)


class GroupFilter(_Filter):
    """Compiles a filter on Groups (teams)."""

    table = teams
    resource_type = "Group"
    present_subs = _GROUP_PRESENT_SUBS

    def _value_path(self, node: ValuePath) -> ColumnElement[bool]:
        if _attribute(node.attr_path)[0] != "members":
            return super()._value_path(node)
        # One member meets the whole value filter, as one address does for a User.
        return _has_member(_logic(node.val_filter, lambda one: _in_value(one, self._member)))

    def _member(self, sub: str, op: str, value: Any) -> ColumnElement[bool]:
        """One comparison of a value filter on members: a member's ``value`` (its
        persona's id), which every member has."""
        if sub != "value":
            raise InvalidFilter('members[...] filters by value: members[value eq "id"].')
        return _compared(op, value, true, partial(_by_id, team_members.c.persona_id))

    def _moments(self) -> tuple[ColumnElement[Any], ColumnElement[Any]]:
        return teams.c.created_at, teams.c.updated_at

    def _present_own(self, attr: str, sub: str | None) -> ColumnElement[bool]:
        if attr == "members":
            return _has_member(true())
        return _filled(teams.c[self._declared(attr, sub).name])

    def _compare_own(self, attr: str, sub: str | None, op: str, value: Any) -> ColumnElement[bool]:
        if attr == "members" and sub in (None, "value"):
            return _has_member(_by_id(team_members.c.persona_id, op, value))
        declared = self._declared(attr, sub)
        column = teams.c[declared.name]
        return self._text(column, op, value, declared.scim_case_exact, searched=False)

    def _declared(self, attr: str, sub: str | None) -> Field:
        """The declared field (``displayName``, ``externalId``) an attribute names."""
        declared = _TEAM_BY_KEY.get(attr) if sub is None else None
        if declared is None:
            raise InvalidFilter(f"{_shown(attr, sub)} is not an attribute this server filters.")
        return declared


_TEAM_BY_KEY = {f.scim.lower(): f for f in TEAM.values() if f.scim}


def group_condition(text: str, backend: Backend) -> ColumnElement[bool]:
    """The SQL condition of a filter on Groups; ``InvalidFilter`` (400) if it is not one
    this server can evaluate."""
    return GroupFilter(backend).condition(parse_filter(text))


@lru_cache(maxsize=256)  # a filter that compares more columns or places builds the rest anew
def _equals(column: ColumnElement[Any], place: str) -> ColumnElement[bool]:
    """``column`` equals the value bound as ``place``: built once for each column and
    place, so its cache key is computed once (building the comparison and keying it
    for each request cost about 0.05 ms, a fifth of what separated a ``userName eq``
    from a find)."""
    return column == bindparam(place, type_=column.type)


@lru_cache(maxsize=64)  # kept for 64 places; a filter of more builds its probes anew
def _email_probe(place: str) -> ColumnElement[bool]:
    """Personas with the email key bound as ``place``, work or person's: two index probes,
    never a scan (an OR across the joined tables would read every persona of the
    account). Built once for each place: building it for each request cost 0.06 ms, about
    half of what the database took to answer, and a condition kept whole is keyed once."""
    key = bindparam(place, type_=persons.c.email_key.type)
    by_work = select(personas.c.id).where(personas.c.work_email_key == key)
    by_person = (
        select(personas.c.id)
        .join(persons, persons.c.id == personas.c.person_id)
        .where(persons.c.email_key == key)
    )
    return personas.c.id.in_(union(by_work, by_person))


def _column(declared: Field) -> ColumnElement[Any]:
    table = persons if declared.name in PERSON else personas
    return table.c[declared.name]


def _filled(column: ColumnElement[Any]) -> ColumnElement[bool]:
    return and_(column.is_not(None), column != "")


def _compared(
    op: str,
    value: Any,
    present: Callable[[], ColumnElement[bool]],
    compare: Callable[[str, Any], ColumnElement[bool]],
) -> ColumnElement[bool]:
    """The rule every comparison keeps, of an attribute or within a value filter: ``pr``
    is ``present``; ``ne`` is not ``eq``; ``eq null`` is not ``pr`` (RFC 7643 §2.5: an
    unassigned attribute and null are the same state), and no other operator takes null;
    the rest is ``compare(op, value)``."""
    if op == "pr":
        return present()
    if op == "ne":
        return _negated(_compared("eq", value, present, compare))
    _refuse_null(op, value)
    if value is None:
        return _negated(present())
    return compare(op, value)


def _refuse_null(op: str, value: Any) -> None:
    """``InvalidFilter`` for null with an operator other than ``eq`` and ``ne``."""
    if value is None and op not in ("eq", "ne"):
        raise InvalidFilter(f"{op} null is not a comparison.")


def _primary(op: str, value: Any) -> ColumnElement[bool]:
    """An address's ``primary`` equal to true or false (not sent reads false)."""
    if op != "eq" or not isinstance(value, bool):
        raise InvalidFilter("addresses.primary compares with eq or ne and a boolean.")
    primary = func.coalesce(addresses.c.is_primary, false())
    return primary if value else not_(primary)


def _slot_type(slot: _Slot, op: str, value: Any) -> ColumnElement[bool]:
    """A slot's fixed type compared (``emails[type eq "work"]``)."""
    if not isinstance(value, str) or op not in _TEXT_OPS:
        raise InvalidFilter("type compares with a string.")
    return true() if _python_text(slot.type, op, value.lower()) else false()


def _negated(condition: ColumnElement[bool]) -> ColumnElement[bool]:
    """NOT, with an unknown (a null compared) taken as false first."""
    return not_(func.coalesce(condition, false()))


def _last_modified() -> ColumnElement[Any]:
    return case(
        (personas.c.updated_at > persons.c.updated_at, personas.c.updated_at),
        else_=persons.c.updated_at,
    )


def _ordered(column: ColumnElement[Any], op: str, value: Any) -> ColumnElement[bool]:
    return compare_ordered(column, op, literal(value, type_=column.type))


def _by_id(column: ColumnElement[Any], op: str, value: object) -> ColumnElement[bool]:
    if op != "eq":
        raise InvalidFilter("Ids compare with eq.")
    found = _id(value)
    return false() if found is None else column == found


def _shown(attr: str, sub: str | None) -> str:
    return f"{attr}.{sub}" if sub else attr


def _python_text(held: str, op: str, value: str) -> bool:
    return {
        "eq": held == value,
        "co": value in held,
        "sw": held.startswith(value),
        "ew": held.endswith(value),
        "gt": held > value,
        "ge": held >= value,
        "lt": held < value,
        "le": held <= value,
    }[op]


@dataclass(frozen=True)
class Compiled:
    """A filter's SQL condition."""

    condition: ColumnElement[bool]
    #: Its best plan depends on its values: a prefix range or a trigram search matches a
    #: few rows or half the account. A plan PostgreSQL made for any values (a generic
    #: plan, after five runs of a prepared statement) walked the whole account for a
    #: rare prefix: 6 s instead of 35 ms at a million personas, measured. Such a filter
    #: runs under ``Backend.custom_plans``, as People search does.
    planned_by_values: bool
    #: Values the condition binds by name, for the statement around it.
    parameters: Mapping[str, Any]


def user_condition(text: str, backend: Backend) -> Compiled:
    """The SQL condition of a filter on Users; ``InvalidFilter`` (400) if it is not one
    this server can evaluate."""
    compiler = UserFilter(backend)
    condition = compiler.condition(parse_filter(text))
    return Compiled(condition, compiler.planned_by_values, compiler.parameters)


# -- value filters on one resource (PATCH paths) -------------------------------------------


def check_value_filter(node: FilterNode, attr: str, subs: frozenset[str]) -> None:
    """``InvalidFilter`` for a PATCH path's value filter on ``attr`` that a search would
    refuse for the same reasons: a sub-attribute the attribute does not have (``subs``,
    folded), or null with an operator other than ``eq`` and ``ne`` (:func:`_compared`'s
    rule). Without it a sub-attribute never present read as null: ``emails[shoeSize eq
    null]`` matched every email."""
    if isinstance(node, LogicalExpr):
        for term in node.terms:
            check_value_filter(term, attr, subs)
    elif isinstance(node, Not):
        check_value_filter(node.expr, attr, subs)
    elif isinstance(node, Present | Comparison):
        named = _shown(node.attr_path.attr, node.attr_path.sub_attr).lower()
        if named not in subs:
            raise InvalidFilter(f"{attr}.{named} is not a sub-attribute of {attr}.")
        if isinstance(node, Comparison):
            _refuse_null(str(node.op.value), node.value)
    else:
        raise InvalidFilter("Value filters do not nest.")


def matches(node: FilterNode, value: Mapping[str, Any]) -> bool:
    """Whether one value of a multi-valued attribute (its keys in lower case) meets a
    value filter. Strings compare without case, as the sub-attributes Roster keeps
    (type, value of emails and phone numbers, members' value) are not case-exact."""
    if isinstance(node, LogicalExpr):
        found = [matches(term, value) for term in node.terms]
        return all(found) if node.op is LogicalOperator.and_ else any(found)
    if isinstance(node, Not):
        return not matches(node.expr, value)
    if isinstance(node, Present):
        return value.get(node.attr_path.attr.lower()) not in (None, "", [])
    if not isinstance(node, Comparison):
        raise InvalidFilter("Value filters do not nest.")
    held = value.get(node.attr_path.attr.lower())
    op, wanted = str(node.op.value), node.value
    if op == "pr":
        return held not in (None, "", [])
    if op == "ne":
        return not _equal(held, wanted)
    if op == "eq":
        return _equal(held, wanted)
    if isinstance(held, str) and isinstance(wanted, str) and op in _TEXT_OPS:
        return _python_text(held.lower(), op, wanted.lower())
    return False


def _equal(held: object, wanted: object) -> bool:
    if isinstance(held, str) and isinstance(wanted, str):
        return held.lower() == wanted.lower()
    if isinstance(wanted, bool) and isinstance(held, str):
        return held.lower() == str(wanted).lower()
    return held == wanted


# -- sortBy (RFC 7644 §3.4.2.3) ---------------------------------------------------------------

_USER_SORT: dict[str, ColumnElement[Any]] = {
    "id": personas.c.id,
    "username": personas.c.user_name_key,
    "name.givenname": persons.c.first_name_key,
    "name.familyname": persons.c.last_name_key,
    "meta.created": personas.c.created_at,
    "meta.lastmodified": _last_modified(),
    "active": personas.c.status,
    **{
        key: _column(f) if f.scim_case_exact else func.lower(_column(f))
        for key, f in _SIMPLE_BY_KEY.items()
        if key not in ("name.givenname", "name.familyname", "username")
    },
}
_GROUP_SORT: dict[str, ColumnElement[Any]] = {
    "id": teams.c.id,
    "meta.created": teams.c.created_at,
    "meta.lastmodified": teams.c.updated_at,
    **{
        key: teams.c[f.name] if f.scim_case_exact else func.lower(teams.c[f.name])
        for key, f in _TEAM_BY_KEY.items()
    },
}


def _sort(
    table: Mapping[str, ColumnElement[Any]], by: object, order: object
) -> list[ColumnElement[Any]]:
    if by in (None, ""):
        return []
    if not isinstance(by, str):
        raise ScimInvalid("sortBy must be an attribute's name.")
    try:
        attr, sub = _attribute(attribute_path(by))
    except InvalidFilter:
        attr, sub = "", None
    column = table.get(f"{attr}.{sub}" if sub else attr)
    if column is None:
        raise ScimInvalid(f"sortBy {by[:64]!r} is not a simple attribute this server sorts by.")
    if order not in (None, "", "ascending", "descending"):
        raise ScimInvalid("sortOrder must be ascending or descending.")
    ordered = column.desc() if order == "descending" else column.asc()
    return [ordered.nulls_last()]


def user_sort(by: object, order: object) -> list[ColumnElement[Any]]:
    """The order ``sortBy`` and ``sortOrder`` ask of Users (absent values last)."""
    return _sort(_USER_SORT, by, order)


def group_sort(by: object, order: object) -> list[ColumnElement[Any]]:
    """The order ``sortBy`` and ``sortOrder`` ask of Groups (absent values last)."""
    return _sort(_GROUP_SORT, by, order)


def attribute_path(text: str) -> AttrPath:
    """An attribute path (``name.familyName``, with or without its schema's URN)."""
    try:
        parsed = Path(text).ast
    except (InvalidPathException, ValueError):
        raise InvalidFilter(f"{text[:64]!r} is not an attribute path.") from None
    if not isinstance(parsed, AttrPath):
        raise InvalidFilter(f"{text[:64]!r} is not an attribute path.")
    return parsed
