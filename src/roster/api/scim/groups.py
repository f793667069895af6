"""SCIM Groups (RFC 7643 §4.2) as the account's teams: ``displayName`` is the team's name,
``externalId`` its SCIM external id, ``members`` its personas. A PATCH of members names
the members it adds or removes and touches those alone (``core/people/team_rows.py``);
a list without ``members`` in its attributes never reads them.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fastapi import Request, Response
from scim2_models.path.expressions import (
    AttrPath,
    CompareOperator,
    Comparison,
    FilterNode,
    LogicalExpr,
    LogicalOperator,
    ValuePath,
)

from roster.api.deps import ReadConnection, WriteConnection
from roster.api.scim.discovery import GROUP_SCHEMA
from roster.api.scim.errors import InvalidCursor, InvalidFilter, NoTarget, ScimInvalid, Uniqueness
from roster.api.scim.filters import group_condition, group_sort
from roster.api.scim.patch import operations_of, parsed_path
from roster.api.scim.resources import timestamp
from roster.api.scim.routes import (
    Reader,
    Writer,
    account_of,
    add_list_routes,
    base_url,
    check_if_match,
    json_body,
    list_response,
    names_version,
    page_bounds,
    project,
    resource_id,
    router,
    scim_response,
    search_body,
    search_query,
    user_results,
)
from roster.core.auth import Principal
from roster.core.fields import TEAM
from roster.core.people.personas import lock_unique_values
from roster.core.people.team_rows import (
    TeamRow,
    add_team,
    change_team,
    external_id_holder,
    remove_team,
    team_page,
    team_row,
)
from roster.db.backends import backend_for
from roster.errors import NotFound


def group_version(team: TeamRow) -> str:
    digest = hashlib.sha256(team.updated_at.isoformat().encode()).hexdigest()[:20]
    return f'W/"{digest}"'


def render_group(team: TeamRow, url: str) -> dict[str, Any]:
    resource: dict[str, Any] = {"schemas": [GROUP_SCHEMA], "id": str(team.id)}
    if team.external_id is not None:
        resource["externalId"] = team.external_id
    resource["displayName"] = team.name
    if team.members is not None:
        resource["members"] = [
            {
                "value": str(persona_id),
                **({"display": shown} if shown else {}),
                "type": "User",
                "$ref": f"{url}/Users/{persona_id}",
            }
            for persona_id, shown in team.members
        ]
    resource["meta"] = {
        "resourceType": "Group",
        "created": timestamp(team.created_at),
        "lastModified": timestamp(team.updated_at),
        "location": f"{url}/Groups/{team.id}",
        "version": group_version(team),
    }
    return resource


# -- what a client sends ---------------------------------------------------------------------


@dataclass
class GroupChange:
    """The team fields a Group write sets, and what it does to the members."""

    values: dict[str, Any] = field(default_factory=dict)
    added: list[uuid.UUID] = field(default_factory=list)
    removed: list[uuid.UUID] = field(default_factory=list)
    all_removed: bool = False


def _member_ids(value: object) -> list[uuid.UUID]:
    """The persona ids of a ``members`` value (a list of ``{"value": id}``, or one)."""
    items = value if isinstance(value, list) else [value]
    ids = []
    for item in items:
        if not isinstance(item, Mapping):
            raise ScimInvalid("members must be a list of objects with a value.")
        given = {str(k).lower(): v for k, v in item.items()}
        if str(given.get("type") or "User").lower() == "group":
            raise ScimInvalid("Groups cannot be members of groups here.")
        ids.append(_user_id(given.get("value")))
    return ids


def _user_id(value: object) -> uuid.UUID:
    """A member's id as sent; a value that cannot be one is refused, whichever way it
    came (a value of ``members``, or in a ``members[value eq ...]`` path)."""
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise ScimInvalid(f"members value {value!r} is not a User id.") from None


def _set_field(change: GroupChange, key: str, value: Any) -> None:
    """``displayName`` or ``externalId`` by their declared rules; others are ignored."""
    for declared in TEAM.values():
        if declared.scim and declared.scim.lower() == key:
            if value is None and not declared.nullable:
                raise ScimInvalid(f"{declared.scim} is required.")
            change.values[declared.name] = None if value is None else declared.check(value)


def parse_group(resource: Mapping[str, Any]) -> GroupChange:
    """A whole Group (POST, PUT): its fields, and its members replacing any others."""
    schemas = resource.get("schemas")
    if schemas is not None and schemas != [GROUP_SCHEMA]:
        raise ScimInvalid(f"A Group's schemas must be [{GROUP_SCHEMA!r}].")
    sent = {str(k).lower(): v for k, v in resource.items()}
    change = GroupChange(all_removed=True)
    for declared in TEAM.values():
        if declared.scim:
            _set_field(change, declared.scim.lower(), sent.get(declared.scim.lower()))
    if sent.get("members") is not None:
        change.added = _member_ids(sent["members"])
    return change


def _filtered_ids(node: FilterNode) -> list[uuid.UUID]:
    """The ids a members filter names: ``value eq "id"``, joined by ``or``."""
    if (
        isinstance(node, Comparison)
        and node.op is CompareOperator.eq
        and node.attr_path.attr.lower() == "value"
    ):
        return [_user_id(node.value)]
    if isinstance(node, LogicalExpr) and node.op is LogicalOperator.or_:
        return [found for term in node.terms for found in _filtered_ids(term)]
    raise InvalidFilter('A members filter here is value eq "id", or several joined by or.')


def patch_group(operations: list[dict[str, Any]]) -> GroupChange:
    """What PATCH operations do to a Group: its fields, members added and removed."""
    change = GroupChange()
    for operation in operations:
        name = str(operation.get("op") or "").lower()
        if name not in ("add", "remove", "replace"):
            raise ScimInvalid(f"op must be add, remove or replace (got {operation.get('op')!r}).")
        path, value = operation.get("path"), operation.get("value")
        if path in (None, ""):
            if name == "remove" or not isinstance(value, Mapping):
                raise NoTarget("An operation without a path needs an object as its value.")
            for key, item in value.items():
                if str(key).lower() == "members":
                    _members(change, name, item)
                else:
                    _set_field(change, str(key).lower(), item)  # id and others: ignored
            continue
        if not isinstance(path, str):
            raise ScimInvalid("path must be a string.")
        parsed = parsed_path(path)
        if isinstance(parsed, ValuePath) and parsed.attr_path.attr.lower() == "members":
            if name != "remove":
                raise ScimInvalid("Add members with path members and a list of values.")
            ids = _filtered_ids(parsed.val_filter)
            change.removed += ids
            change.added = [a for a in change.added if a not in ids]
            continue
        if not isinstance(parsed, AttrPath) or parsed.sub_attr:
            raise ScimInvalid(f"{path} is not a path this server changes on a Group.")
        attr = parsed.attr.lower()
        if attr == "members":
            _members(change, name, value)
        else:
            _set_field(change, attr, None if name == "remove" else value)
    return change


def _members(change: GroupChange, name: str, value: Any) -> None:
    if name == "replace" or (name == "remove" and value is None):
        change.all_removed, change.removed, change.added = True, [], []
    if value is None:
        return
    ids = _member_ids(value)
    if name == "remove":  # a list of members to remove (Entra, Okta)
        change.removed += ids
        change.added = [a for a in change.added if a not in ids]
    else:
        change.added += ids
        change.removed = [r for r in change.removed if r not in ids]


# -- routes ----------------------------------------------------------------------------------


async def _check(
    conn: Any, account: str, change: GroupChange, other_than: uuid.UUID | None
) -> None:
    external_id = change.values.get("scim_external_id")
    await lock_unique_values(conn, account, {"team_external_id": external_id})
    if await external_id_holder(conn, account, external_id, other_than):
        raise Uniqueness("Another Group of this account has this externalId.")


async def _apply(conn: Any, account: str, team_id: uuid.UUID, change: GroupChange) -> TeamRow:
    try:
        return await change_team(
            conn,
            account,
            team_id,
            change.values,
            added=change.added,
            removed=change.removed,
            all_removed=change.all_removed,
        )
    except NotFound as missing:
        raise ScimInvalid(f"A member is not a User of this account: {missing.message}") from None


def _wants_members(query: Mapping[str, Any]) -> bool:
    attributes = str(query.get("attributes") or "").lower()
    excluded = str(query.get("excludedAttributes") or "").lower()
    if attributes:
        return "members" in attributes
    return "members" not in [name.strip() for name in excluded.split(",")]


async def group_results(
    request: Request,
    conn: Any,
    account: str,
    query: dict[str, Any],
    offset: int,
    count: int,
    after: list[Any] | None = None,
) -> tuple[int, list[dict[str, Any]], list[list[Any]]]:
    """How many Groups the query's filter finds, ``count`` of them from ``offset`` (or
    after the cursor position ``after``), and their cursor positions."""
    filter_text = query.get("filter")
    condition = group_condition(filter_text, backend_for(conn)) if filter_text else None
    position = None
    if after is not None:
        try:
            position = (datetime.fromisoformat(after[0]), uuid.UUID(after[1]))
        except (IndexError, TypeError, ValueError):
            position = None
        if position is None or position[0].tzinfo is None:
            raise InvalidCursor("The cursor is not one this server gave for Groups.")
    total, found = await team_page(
        conn,
        account,
        condition,
        offset,
        count,
        members=_wants_members(query),
        after=position,
        order=group_sort(query.get("sortBy"), query.get("sortOrder")),
    )
    url = base_url(request, account)
    attributes, excluded = query.get("attributes"), query.get("excludedAttributes")
    shown = [project(render_group(team, url), attributes, excluded) for team in found]
    return total, shown, [[team.created_at.isoformat(), str(team.id)] for team in found]


add_list_routes("Groups", group_results)


def _group_response(request: Request, account: str, team: TeamRow, status: int = 200) -> Response:
    resource = render_group(team, base_url(request, account))
    headers = {"ETag": resource["meta"]["version"]}
    if status == 201:
        headers["Location"] = resource["meta"]["location"]
    query = request.query_params
    shown = project(resource, query.get("attributes"), query.get("excludedAttributes"))
    return scim_response(shown, status, headers)


@router.post("/.search")
async def search_everything(
    request: Request, account_id: str, principal: Reader, conn: ReadConnection
) -> Response:
    """Users and Groups in one list (RFC 7644 §3.4.3), Users first. A filter on an
    attribute one of them does not have finds none of that one."""
    account = await account_of(conn, principal, account_id)
    query = search_query(await search_body(request))
    if "cursor" in query:
        raise ScimInvalid("Cursor pages are served by /Users and /Groups, not /.search.")
    start, count = page_bounds(query)
    found: list[dict[str, Any]] = []
    total, refused = 0, []
    offset = start - 1
    for results in (user_results, group_results):
        try:
            matched, page, _ = await results(
                request, conn, account, query, offset, count - len(found)
            )
        except InvalidFilter as error:
            refused.append(error)
            continue
        found += page
        total += matched
        offset = max(0, offset - matched)
    if len(refused) == 2:
        raise refused[0]
    return scim_response(list_response(found, start, total))


@router.get("/Groups/{group_id}")
async def get_group(
    request: Request, account_id: str, group_id: str, principal: Reader, conn: ReadConnection
) -> Response:
    """One Group; 304 if ``If-None-Match`` names its current version."""
    account = await account_of(conn, principal, account_id)
    wanted = _wants_members(request.query_params)
    team = await team_row(conn, account, resource_id(group_id, "Group"), members=wanted)
    if names_version(request.headers.get("if-none-match"), group_version(team)):
        return Response(status_code=304, headers={"ETag": group_version(team)})
    return _group_response(request, account, team)


@router.post("/Groups", status_code=201)
async def create_group(
    request: Request, account_id: str, principal: Writer, conn: WriteConnection
) -> Response:
    """A new Group: a team of the account."""
    account = await account_of(conn, principal, account_id)
    change = parse_group(await json_body(request))
    await _check(conn, account, change, None)
    try:
        team_id = await add_team(conn, account, change.values, change.added)
    except NotFound as missing:
        raise ScimInvalid(f"A member is not a User of this account: {missing.message}") from None
    return _group_response(request, account, await team_row(conn, account, team_id), 201)


async def _matching_team(
    request: Request, conn: Any, principal: Principal, account_id: str, group_id: str
) -> tuple[str, uuid.UUID]:
    account = await account_of(conn, principal, account_id)
    team_id = resource_id(group_id, "Group")
    # The Group's writers take turns from here: its version is compared to the Group as
    # the writer before left it.
    await lock_unique_values(conn, account, {"team": str(team_id)})
    check_if_match(request, group_version(await team_row(conn, account, team_id, members=False)))
    return account, team_id


@router.put("/Groups/{group_id}")
async def replace_group(
    request: Request, account_id: str, group_id: str, principal: Writer, conn: WriteConnection
) -> Response:
    """Replace a Group: its name, externalId and members."""
    account, team_id = await _matching_team(request, conn, principal, account_id, group_id)
    change = parse_group(await json_body(request))
    await _check(conn, account, change, team_id)
    await _apply(conn, account, team_id, change)
    return _group_response(request, account, await team_row(conn, account, team_id))


@router.patch("/Groups/{group_id}")
async def patch_group_route(
    request: Request, account_id: str, group_id: str, principal: Writer, conn: WriteConnection
) -> Response:
    """Change a Group: its name, or members added and removed one by one (only their rows
    are touched). 204 (RFC 7644 §3.5.2), so a large team's members are not read; with
    ``attributes`` or ``excludedAttributes``, 200 and the Group they ask for."""
    account, team_id = await _matching_team(request, conn, principal, account_id, group_id)
    change = patch_group(operations_of(await json_body(request)))
    await _check(conn, account, change, team_id)
    team = await _apply(conn, account, team_id, change)
    query = request.query_params
    if "attributes" not in query and "excludedAttributes" not in query:
        return Response(status_code=204, headers={"ETag": group_version(team)})
    wanted = _wants_members(query)
    return _group_response(request, account, await team_row(conn, account, team_id, members=wanted))


@router.delete("/Groups/{group_id}", status_code=204)
async def delete_group(
    request: Request, account_id: str, group_id: str, principal: Writer, conn: WriteConnection
) -> Response:
    """Delete a Group (the team); its members stay."""
    account, team_id = await _matching_team(request, conn, principal, account_id, group_id)
    await remove_team(conn, account, team_id)
    return Response(status_code=204)
