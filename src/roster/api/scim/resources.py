"""The SCIM User (RFC 7643 §4.1 and the enterprise extension §4.3) as Roster's persona:
how one is rendered from a :class:`UserRow`, and how a resource a client sends becomes the
person and persona fields of one write. The simple attributes come from the field
declarations (``Field.scim``); the multi-valued ones are mapped here (spec/scim.md).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from roster.api.scim.errors import ScimInvalid
from roster.core.fields import ADDRESS, PERSON, PERSONA, Field
from roster.core.matching import email_key
from roster.core.people.addresses import RESERVED_TYPE
from roster.core.people.embeds import ScimAddress
from roster.core.people.persona_rows import PERSON_AT, PERSONA_AT
from roster.core.people.user_rows import UserRow
from roster.errors import Naming

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE_SCHEMA = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
LIST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SEARCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
USER_SCHEMAS = (USER_SCHEMA, ENTERPRISE_SCHEMA)

#: The simple attributes: each declared field that names its SCIM attribute.
SIMPLE: tuple[Field, ...] = tuple(f for f in (*PERSON.values(), *PERSONA.values()) if f.scim)
#: The sub-attributes of ``name`` (the core schema's only complex simple attribute).
NAME_PARTS = tuple(f for f in SIMPLE if f.scim and f.scim.startswith("name."))

#: A SCIM address's sub-attributes and the address fields they are (``streetAddress`` is
#: the address's lines, one to three, joined by line breaks).
ADDRESS_PARTS = {
    "streetAddress": "address_line1",
    "locality": "city",
    "region": "region",
    "postalCode": "postcode",
    "country": "country_code",
    "type": "type",
}
#: What a Roster address needs (``type`` is ``other`` when not given).
ADDRESS_REQUIRED = ("streetAddress", "locality", "postalCode", "country")
_LINES = ("address_line1", "address_line2", "address_line3")

#: SCIM's name for each core field a SCIM error may blame.
_SCIM_NAMES = {
    **{core: f"addresses.{scim}" for scim, core in ADDRESS_PARTS.items()},
    "address_line2": "addresses.streetAddress",
    "address_line3": "addresses.streetAddress",
    "formatted": "addresses.formatted",
    **{f.name: f.scim for f in SIMPLE if f.scim},
    "email_address": "emails",
    "phone_number": "phoneNumbers",
    "work_number": "phoneNumbers",
    "role_name": "roles",
    "status": "active",
    "manager_persona_id": "manager",
}


@dataclass(frozen=True)
class ValueSlot:
    """One value of a User's multi-valued attribute that Roster keeps in a field: its
    fixed ``type``, the field that holds it (the person's or the persona's), and the
    derived column its ``value eq`` compares by (:mod:`roster.core.matching`)."""

    type: str
    field: str
    of_person: bool
    #: The column of the value's key and how a sent value's key is made, where values
    #: compare by key; else they compare as written.
    key_column: str | None = None
    key: Callable[[str | None], str | None] | None = None
    #: A value shown only where its key is not that of this type's value: the person's
    #: own email is a value of its own only where it is not the work one.
    unless_same_as: str | None = None

    def held(self, user: UserRow) -> Any:
        return _person(user, self.field) if self.of_person else _persona(user, self.field)

    def shown(self, held: Mapping[str, Any]) -> bool:
        """Whether a User holding these values (by type) shows this slot's."""
        value = held[self.type]
        if not value or self.unless_same_as is None or self.key is None:
            return bool(value)
        return self.key(value) != self.key(held[self.unless_same_as])


#: The multi-valued attributes of a User that Roster keeps in fields, each value in the
#: order a User lists them (spec/scim.md): rendering and filtering read this one table.
MULTI_VALUED: dict[str, tuple[ValueSlot, ...]] = {
    "emails": (
        ValueSlot("work", "email_address", False, "work_email_key", email_key),
        ValueSlot("other", "email_address", True, "email_key", email_key, unless_same_as="work"),
    ),
    "phoneNumbers": (
        ValueSlot("work", "work_number", False),
        ValueSlot("mobile", "phone_number", True),
    ),
}


def _values(user: UserRow, slots: tuple[ValueSlot, ...]) -> list[dict[str, Any]]:
    """The values a User shows of one multi-valued attribute."""
    held = {slot.type: slot.held(user) for slot in slots}
    return [{"value": held[s.type], "type": s.type} for s in slots if s.shown(held)]


def scim_name(name: str) -> str:
    """A field's SCIM name, for errors (``Naming``)."""
    return _SCIM_NAMES.get(name, name)


SCIM_NAMING: Naming = scim_name


def timestamp(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _person(user: UserRow, name: str) -> Any:
    return user.row.person[PERSON_AT[name]]


def _persona(user: UserRow, name: str) -> Any:
    return user.row.persona_value(name)


def user_name(user: UserRow) -> str:
    """Its userName: as written, else its work email, else its person's, else its id."""
    found = (
        _persona(user, "user_name")
        or _persona(user, "email_address")
        or _person(user, "email_address")
    )
    return str(found or user.row.persona_id)


def last_modified(user: UserRow) -> datetime:
    changed: datetime = max(user.row.persona[-1], user.row.person[-1])
    return changed


def version(user: UserRow) -> str:
    """The weak ETag: a digest of when the persona and its person last changed, and of
    its addresses (an address changed is a new one, with a new id)."""
    moments = f"{user.row.persona[-1].isoformat()}|{user.row.person[-1].isoformat()}"
    moments += "".join(f"|{a.id}" for a in user.addresses)
    return 'W/"' + hashlib.sha256(moments.encode()).hexdigest()[:20] + '"'


#: The parts ``name.formatted`` is built of, in order, and the field of each.
_FORMATTED_ORDER = ("honorificPrefix", "givenName", "middleName", "familyName")
_NAME_FIELDS = {f.scim.removeprefix("name."): f.name for f in NAME_PARTS if f.scim}


def built_formatted(part: Callable[[str], Any], core: bool = False) -> str:
    """``name.formatted`` as built from the name's parts (``part`` of a SCIM name, or of
    a core field name when ``core``): a persona whose formatted name was not sent reads
    this, and a sent one equal to it is not kept (a client that reads a User and sends
    it back must not freeze the built name)."""
    parts = (part(_NAME_FIELDS[s] if core else s) for s in _FORMATTED_ORDER)
    return " ".join(p for p in parts if p)


def _placed(declared: Field) -> tuple[bool, int, str, str]:
    """Where a User's simple attribute is read (the person's values or the persona's, at
    which index), and where it is written (``enterprise``, ``name`` or the resource, by
    which key)."""
    assert declared.scim is not None
    of_person = declared.name in PERSON
    at = PERSON_AT[declared.name] if of_person else PERSONA_AT[declared.name]
    if declared.scim_enterprise:
        return of_person, at, "enterprise", declared.scim
    if declared.scim.startswith("name."):
        return of_person, at, "name", declared.scim.removeprefix("name.")
    return of_person, at, "resource", declared.scim


#: SIMPLE's attributes placed once: a page renders a hundred Users.
_PLACED = tuple(_placed(declared) for declared in SIMPLE)


def render_user(user: UserRow, base_url: str, *, built: bool = True) -> dict[str, Any]:
    """The User resource of a persona; without a ``name.formatted`` it was not sent
    unless ``built`` (PATCH applies its operations to the User as stored)."""
    persona_id = str(user.row.persona_id)
    resource: dict[str, Any] = {"schemas": [USER_SCHEMA], "id": persona_id}
    enterprise: dict[str, Any] = {}
    name: dict[str, Any] = {}
    into = {"resource": resource, "enterprise": enterprise, "name": name}
    person, persona = user.row.person, user.row.persona
    for of_person, at, where, key in _PLACED:
        value = person[at] if of_person else persona[at]
        if value is not None:
            into[where][key] = value
    resource["userName"] = user_name(user)
    if name:
        if built:
            name.setdefault("formatted", built_formatted(name.get))
        resource["name"] = name
    resource["active"] = _persona(user, "status") == "active"
    for attribute, slots in MULTI_VALUED.items():
        if values := _values(user, slots):
            resource[attribute] = values
    if user.addresses:
        resource["addresses"] = [render_address(a) for a in user.addresses]
    resource["roles"] = [{"value": user.role_name}]
    if user.teams:
        resource["groups"] = [
            {"value": str(team.id), "display": team.name, "type": "direct"} for team in user.teams
        ]
    if user.manager_id is not None:
        manager = {"value": str(user.manager_id)}
        if user.manager_name:
            manager["displayName"] = user.manager_name
        enterprise["manager"] = manager
    if enterprise:
        resource["schemas"].append(ENTERPRISE_SCHEMA)
        resource[ENTERPRISE_SCHEMA] = enterprise
    resource["meta"] = {
        "resourceType": "User",
        "created": timestamp(user.row.persona[-2]),
        "lastModified": timestamp(last_modified(user)),
        "location": f"{base_url}/Users/{persona_id}",
        "version": version(user),
    }
    return resource


def render_address(address: ScimAddress) -> dict[str, Any]:
    """A persona's address as a SCIM address (its lines one ``streetAddress``), with its
    ``formatted`` and ``primary`` as sent."""
    values = {**{f: getattr(address, f) for f in ADDRESS_PARTS.values()}}
    lines = (getattr(address, f) for f in _LINES)
    values["address_line1"] = "\n".join(line for line in lines if line)
    shown = {scim: values[core] for scim, core in ADDRESS_PARTS.items() if values[core]}
    if address.formatted:
        shown["formatted"] = address.formatted
    if address.is_primary is not None:
        shown["primary"] = address.is_primary
    return shown


# -- what a client sends ------------------------------------------------------------------


def folded(resource: Mapping[str, Any]) -> dict[str, Any]:
    """The resource's keys in lower case (SCIM's attribute names ignore case), nested
    objects too; values of multi-valued attributes keep their own keys folded."""
    out: dict[str, Any] = {}
    for key, value in resource.items():
        if isinstance(value, Mapping):
            value = folded(value)
        elif isinstance(value, list):
            value = [folded(v) if isinstance(v, Mapping) else v for v in value]
        out[str(key).lower()] = value
    return out


def invalid(message: str) -> ScimInvalid:
    return ScimInvalid(message)


def boolean(value: object, attribute: str) -> bool:
    """A SCIM boolean, or the strings IdPs send for one (Entra's ``"False"``)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise invalid(f"{attribute} must be a boolean.")


def _text(declared: Field, value: object) -> Any:
    if value is None:
        return None
    return declared.check(value)


def _multi(resource: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
    values = resource.get(key)
    if values is None:
        return []
    if isinstance(values, Mapping):
        values = [values]
    if not isinstance(values, list) or not all(isinstance(v, Mapping) for v in values):
        raise invalid(f"{key} must be a list of objects.")
    return [dict(v) for v in values]


def _typed(values: list[dict[str, Any]], wanted: str) -> dict[str, Any] | None:
    for value in values:
        if str(value.get("type") or "").lower() == wanted:
            return value
    return None


def _others(values: list[dict[str, Any]], wanted: str) -> dict[str, Any] | None:
    """The primary value not of type ``wanted``, else the first one."""
    others = [v for v in values if str(v.get("type") or "").lower() != wanted]
    primaries = [v for v in others if v.get("primary") in (True, "true", "True")]
    found = primaries or others
    return found[0] if found else None


def _item_value(item: dict[str, Any] | None, declared: Field) -> Any:
    if item is None:
        return None
    return _text(declared, item.get("value"))


def _sent_values(sent: Mapping[str, Any], attribute: str) -> tuple[list[dict[str, Any]], Any, Any]:
    """A multi-valued attribute as a User sends it: its values, then the persona's (of
    the persona's slot's type) and the person's (the primary of any other type, else the
    first), each checked by the rules of the field that keeps it (``MULTI_VALUED``)."""
    persona_slot, person_slot = MULTI_VALUED[attribute]
    items = _multi(sent, attribute.lower())
    return (
        items,
        _item_value(_typed(items, persona_slot.type), PERSONA[persona_slot.field]),
        _item_value(_others(items, persona_slot.type), PERSON[person_slot.field]),
    )


@dataclass
class UserWrite:
    """What a User resource sets: person and persona fields (absent ones cleared, but the
    person's email and phone, which change only when given or when the User has no
    email, or no phone number, at all), and its manager."""

    person: dict[str, Any] = field(default_factory=dict)
    persona: dict[str, Any] = field(default_factory=dict)
    manager: uuid.UUID | None = None
    #: Its addresses (each its fields): the persona's addresses become exactly these.
    addresses: list[dict[str, Any]] = field(default_factory=list)


def _address(sent: Mapping[str, Any]) -> dict[str, Any]:
    """A SCIM address (keys folded) as a Roster address's fields; ``ScimInvalid`` naming
    the first sub-attribute a Roster address needs and this one lacks, or one its field's
    rules refuse. ``formatted`` and ``primary`` (as ``is_primary``) are kept as sent."""
    for name in ADDRESS_REQUIRED:
        if sent.get(name.lower()) in (None, ""):
            raise invalid(
                f"addresses.{name} is required: a Roster address has a street address, "
                "a locality, a postal code and a country."
            )
    values: dict[str, Any] = {}
    for scim, core in ADDRESS_PARTS.items():
        value = sent.get(scim.lower())
        if scim == "streetAddress":
            if not isinstance(value, str):
                raise invalid("addresses.streetAddress must be a string.")
            lines = [line.strip() for line in value.splitlines() if line.strip()]
            if not lines:
                raise invalid("addresses.streetAddress must have a line that is not blank.")
            if len(lines) > len(_LINES):
                raise invalid(
                    f"addresses.streetAddress has {len(lines)} lines: "
                    f"a Roster address has at most {len(_LINES)}."
                )
            for line_field, line in zip(_LINES, lines, strict=False):
                values[line_field] = _text(ADDRESS[line_field], line)
            continue
        if scim == "type" and value in (None, ""):
            value = "other"
        if scim == "type" and str(value).strip().casefold() == RESERVED_TYPE:
            raise invalid(f"addresses.type cannot be {RESERVED_TYPE!r}: that type is reserved.")
        values[core] = _text(ADDRESS[core], value)
    values["formatted"] = _text(ADDRESS["formatted"], sent.get("formatted") or None)
    primary = sent.get("primary")
    values["is_primary"] = None if primary is None else boolean(primary, _PRIMARY)
    return values


_PRIMARY = "addresses.primary"


def _is_primary(value: Mapping[str, Any]) -> bool:
    return any(k.lower() == "primary" and str(v).lower() == "true" for k, v in value.items())


def _without_primary(value: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in value.items() if k.lower() != "primary"}


def primary_moved(before: Mapping[str, Any], after: dict[str, Any]) -> None:
    """RFC 7644 §3.5.2: a PATCH that makes an address primary makes the one that was
    primary before not (``after``, the patched resource with its keys folded, changed in
    place). Two made primary by one request stay so, and are refused as a PUT is."""
    values = after.get("addresses")
    if not isinstance(values, list):
        return
    held = [v for v in values if isinstance(v, dict) and _is_primary(v)]
    if len(held) < 2:
        return
    was = [_without_primary(v) for v in folded(before).get("addresses") or [] if _is_primary(v)]
    for value in held:
        if _without_primary(value) in was:
            for key in [k for k in value if k.lower() == "primary"]:
                del value[key]
            value["primary"] = False


def _addresses(sent: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A User's addresses; ``primary`` true on at most one (RFC 7643 §2.4)."""
    found = [_address(a) for a in _multi(sent, "addresses")]
    if sum(1 for a in found if a["is_primary"]) > 1:
        raise invalid(f"{_PRIMARY} is true on more than one address: at most one is primary.")
    return found


def parse_user(resource: Mapping[str, Any], *, creating: bool) -> UserWrite:
    """The write a User resource describes; ``ScimInvalid`` (400) for a value the field's
    declared rules refuse, naming it as SCIM does."""
    schemas = resource.get("schemas")
    if schemas is not None:
        if not isinstance(schemas, list) or not all(isinstance(s, str) for s in schemas):
            raise invalid("schemas must be a list of schema URNs.")
        unknown = [s for s in schemas if s not in USER_SCHEMAS]
        if unknown:
            raise invalid(f"Unknown schema {unknown[0]!r}: this server knows {USER_SCHEMA}.")
    sent = folded(resource)
    enterprise = sent.get(ENTERPRISE_SCHEMA.lower())
    if enterprise is not None and not isinstance(enterprise, Mapping):
        raise invalid(f"{ENTERPRISE_SCHEMA} must be an object.")
    enterprise = enterprise or {}
    name = sent.get("name") or {}
    if not isinstance(name, Mapping):
        raise invalid("name must be an object.")
    written = UserWrite()
    for declared in SIMPLE:
        assert declared.scim is not None
        key = declared.scim.lower()
        if declared.scim_enterprise:
            value = enterprise.get(key)
        elif key.startswith("name."):
            value = name.get(key.removeprefix("name."))
        else:
            value = sent.get(key)
        target = written.person if declared.name in PERSON else written.persona
        target[declared.name] = _text(declared, value)
    if written.persona["formatted_name"] == built_formatted(written.person.get, core=True):
        written.persona["formatted_name"] = None
    if not written.persona["user_name"]:
        raise invalid("userName is required.")
    if "active" in sent and sent["active"] is not None:
        written.persona["status"] = "active" if boolean(sent["active"], "active") else "deactivated"
    emails, work, own = _sent_values(sent, "emails")
    written.persona["email_address"] = work
    if own or (creating and work):
        # A new User joins the person holding its email (its own, else its work one).
        written.person["email_address"] = own or work
    elif not emails and not creating:
        # A User sent without any email has none: its person's email goes too (under
        # the shared-person rule, as every change of a person's own field).
        written.person["email_address"] = None
    phones, work_number, mobile = _sent_values(sent, "phoneNumbers")
    written.persona["work_number"] = work_number
    if mobile or (not phones and not creating):
        written.person["phone_number"] = mobile
    written.addresses = _addresses(sent)
    roles = _multi(sent, "roles")
    if roles:
        # One role: the primary, else the last given (a PATCH ``add`` appends the new one).
        role = next((r for r in roles if r.get("primary") in (True, "true", "True")), roles[-1])
        if not isinstance(role.get("value"), str):
            raise invalid("roles[].value must be a role's name.")
        written.persona["role_name"] = role["value"]
    manager = enterprise.get("manager")
    if isinstance(manager, Mapping):
        manager = manager.get("value")
    if manager not in (None, ""):
        try:
            written.manager = uuid.UUID(str(manager))
        except ValueError:
            raise invalid("manager.value must be the id of a User of this account.") from None
    written.persona["manager_persona_id"] = written.manager
    return written
