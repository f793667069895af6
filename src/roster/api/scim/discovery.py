"""The discovery documents (RFC 7644 §4, RFC 7643 §5-7): what this server supports, and
nothing it does not. The User schema's simple attributes come from the field declarations."""

from __future__ import annotations

from typing import Any

from roster.api.scim.resources import (
    ADDRESS_PARTS,
    ADDRESS_REQUIRED,
    ENTERPRISE_SCHEMA,
    MULTI_VALUED,
    SIMPLE,
    USER_SCHEMA,
)
from roster.core.countries import COUNTRY_CODES
from roster.core.fields import TEAM, Field

#: Page sizes: the default and the most a page holds (``count`` above it is cut to it).
DEFAULT_COUNT = 100
MAX_COUNT = 1000
#: The most operations of one bulk request.
MAX_BULK_OPERATIONS = 1000

SPC_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
RESOURCE_TYPE_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
SCHEMA_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Schema"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"


def _attribute(
    name: str,
    kind: str = "string",
    *,
    multi: bool = False,
    required: bool = False,
    case_exact: bool = False,
    mutability: str = "readWrite",
    returned: str = "default",
    uniqueness: str = "none",
    sub: list[dict[str, Any]] | None = None,
    description: str = "",
    canonical: list[str] | None = None,
) -> dict[str, Any]:
    found: dict[str, Any] = {
        "name": name,
        "type": kind,
        "multiValued": multi,
        "description": description or name,
        "required": required,
        "caseExact": case_exact,
        "mutability": mutability,
        "returned": returned,
        "uniqueness": uniqueness,
    }
    if sub is not None:
        found["subAttributes"] = sub
    if canonical is not None:
        found["canonicalValues"] = canonical
    return found


def _declared(field: Field, name: str) -> dict[str, Any]:
    required = name == "userName"
    unique = "server" if name in ("userName", "externalId") else "none"
    return _attribute(
        name,
        required=required,
        case_exact=field.scim_case_exact,
        uniqueness=unique,
        description=f"Roster's {field.owner.value} field {field.name}.",
    )


def _types(attribute: str) -> list[str]:
    """The types of the values Roster keeps of a multi-valued attribute, in order."""
    return [slot.type for slot in MULTI_VALUED[attribute]]


def _typed_values(kinds: list[str], what: str) -> list[dict[str, Any]]:
    """The sub-attributes of emails and phone numbers: Roster keeps one value of each
    type (the persona's own, the person's), so neither another type nor ``primary`` is
    kept (``primary`` is read to choose among several values of the person's type)."""
    return [
        _attribute("value", description=what),
        _attribute(
            "type",
            description=f"{kinds[0]} is the persona's own, {kinds[1]} its person's.",
            canonical=kinds,
        ),
    ]


def _address_parts() -> list[dict[str, Any]]:
    """An address's sub-attributes: those a Roster address needs are required."""
    described = {
        "streetAddress": "One to three lines, joined by line breaks.",
        "country": "An ISO 3166-1 alpha-2 code.",
        "type": "Any type but registered; other when not given.",
    }
    canonical = {"country": sorted(COUNTRY_CODES), "type": ["work", "home", "other"]}
    return [
        *(
            _attribute(
                name,
                required=name in ADDRESS_REQUIRED,
                description=described.get(name, f"Roster's address field {core}."),
                canonical=canonical.get(name),
            )
            for name, core in ADDRESS_PARTS.items()
        ),
        _attribute("formatted", description="The whole address as sent, kept as it is."),
        _attribute(
            "primary", "boolean", description="The User's primary address: true on one at most."
        ),
    ]


def user_schema(role_names: list[str]) -> dict[str, Any]:
    attributes = [_attribute("id", mutability="readOnly", returned="always", case_exact=True)]
    name_parts = []
    for field in SIMPLE:
        assert field.scim is not None
        if field.scim_enterprise:
            continue
        if field.scim.startswith("name."):
            name_parts.append(_declared(field, field.scim.removeprefix("name.")))
        else:
            attributes.append(_declared(field, field.scim))
    attributes += [
        _attribute("name", "complex", sub=name_parts),
        _attribute(
            "active",
            "boolean",
            required=True,
            description="The persona's status is active. Every User has it: true when a "
            "create leaves it out, kept when a replace leaves it out.",
        ),
        *(
            _attribute(name, "complex", multi=True, sub=_typed_values(_types(name), kind))
            for name, kind in (("emails", "email"), ("phoneNumbers", "number"))
        ),
        _attribute(
            "addresses",
            "complex",
            multi=True,
            sub=_address_parts(),
            description="The persona's postal addresses.",
        ),
        _attribute(
            "roles",
            "complex",
            multi=True,
            required=True,
            sub=[_attribute("value", description="A role's name", canonical=role_names)],
            description="The persona's one role, by name. Every User has one: the "
            "account's User role when a create leaves it out, kept when a replace does.",
        ),
        _attribute(
            "groups",
            "complex",
            multi=True,
            mutability="readOnly",
            sub=[
                _attribute("value", mutability="readOnly"),
                _attribute("display", mutability="readOnly"),
                _attribute("type", mutability="readOnly"),
            ],
            description="The persona's teams.",
        ),
    ]
    return _schema(USER_SCHEMA, "User", attributes)


#: The sub-attributes RFC 7643 §2.4 gives every multi-valued attribute.
MULTI_VALUED_SUBS = frozenset({"type", "primary", "display", "value", "$ref"})


def multi_valued(schema: dict[str, Any]) -> dict[str, frozenset[str]]:
    """A schema's multi-valued attributes (names folded), each with the sub-attributes
    a PATCH path's value filter may compare (folded): its own and RFC 7643 §2.4's."""
    return {
        attribute["name"].lower(): MULTI_VALUED_SUBS
        | {sub["name"].lower() for sub in attribute.get("subAttributes", ())}
        for attribute in schema["attributes"]
        if attribute["multiValued"]
    }


def enterprise_schema() -> dict[str, Any]:
    attributes = [_declared(f, f.scim) for f in SIMPLE if f.scim and f.scim_enterprise]
    manager = _attribute(
        "manager",
        "complex",
        sub=[
            _attribute("value", description="The id of another User of the account."),
            _attribute("displayName", mutability="readOnly"),
        ],
    )
    return _schema(ENTERPRISE_SCHEMA, "EnterpriseUser", [*attributes, manager])


def _schema(urn: str, name: str, attributes: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "schemas": [SCHEMA_SCHEMA],
        "id": urn,
        "name": name,
        "description": f"{name} (a persona of the account)",
        "attributes": attributes,
        "meta": {"resourceType": "Schema", "location": f"/Schemas/{urn}"},
    }


def schemas(base_url: str, role_names: list[str]) -> list[dict[str, Any]]:
    """The schemas; the roles a User may have are the account's (``role_names``)."""
    found = [user_schema(role_names), enterprise_schema(), group_schema()]
    for schema in found:
        schema["meta"]["location"] = f"{base_url}/Schemas/{schema['id']}"
    return found


def group_schema() -> dict[str, Any]:
    members = _attribute(
        "members",
        "complex",
        multi=True,
        sub=[
            _attribute("value", mutability="immutable", description="A User's id."),
            _attribute("display", mutability="readOnly"),
            _attribute("type", mutability="immutable", canonical=["User"]),
            _attribute("$ref", "reference", mutability="immutable"),
        ],
        description="The team's personas.",
    )
    members["subAttributes"][3]["referenceTypes"] = ["User"]
    fields = [
        _attribute(
            f.scim,
            required=not f.nullable,
            case_exact=f.scim_case_exact,
            uniqueness="server" if f.scim == "externalId" else "none",
            description=f"Roster's team field {f.name}.",
        )
        for f in TEAM.values()
        if f.scim
    ]
    return _schema(GROUP_SCHEMA, "Group", [*fields, members])


def resource_types(base_url: str) -> list[dict[str, Any]]:
    return [
        {
            "schemas": [RESOURCE_TYPE_SCHEMA],
            "id": "User",
            "name": "User",
            "endpoint": "/Users",
            "description": "A persona: one person on this account.",
            "schema": USER_SCHEMA,
            "schemaExtensions": [{"schema": ENTERPRISE_SCHEMA, "required": False}],
            "meta": {"resourceType": "ResourceType", "location": f"{base_url}/ResourceTypes/User"},
        },
        {
            "schemas": [RESOURCE_TYPE_SCHEMA],
            "id": "Group",
            "name": "Group",
            "endpoint": "/Groups",
            "description": "A team of the account.",
            "schema": GROUP_SCHEMA,
            "meta": {"resourceType": "ResourceType", "location": f"{base_url}/ResourceTypes/Group"},
        },
    ]


def service_provider_config(base_url: str, max_payload: int) -> dict[str, Any]:
    """What the server supports; a bulk request is bounded by ``max_payload`` bytes (the
    body limit) and MAX_BULK_OPERATIONS operations."""
    return {
        "schemas": [SPC_SCHEMA],
        "documentationUri": "https://github.com/roster/roster/blob/main/docs/scim.md",
        "patch": {"supported": True},
        "bulk": {
            "supported": True,
            "maxOperations": MAX_BULK_OPERATIONS,
            "maxPayloadSize": max_payload,
        },
        "filter": {"supported": True, "maxResults": MAX_COUNT},
        "changePassword": {"supported": False},
        "sort": {"supported": True},
        # RFC 9865: cursor pages beside index pages; a cursor does not expire.
        "pagination": {
            "cursor": True,
            "index": True,
            "defaultPaginationMethod": "index",
            "defaultPageSize": DEFAULT_COUNT,
            "maxPageSize": MAX_COUNT,
        },
        "etag": {"supported": True},
        "authenticationSchemes": [
            {
                "type": "oauthbearertoken",
                "name": "OAuth Bearer Token",
                "description": "A token from /oauth2/token, or the API client's key as the bearer.",
                "primary": True,
            }
        ],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": f"{base_url}/ServiceProviderConfig",
        },
    }
