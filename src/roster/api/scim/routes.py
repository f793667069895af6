"""SCIM 2.0 at ``/scim/v2/{accountId}`` (spec/scim.md): discovery and Users. A thin door:
parse SCIM, call the core (the one writer, the persona rows), render SCIM."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request, Response
from starlette._utils import get_route_path  # how Starlette's own routes read the path
from starlette.routing import Match
from starlette.types import Scope

from roster.api.deps import (
    CredentialContract,
    ReadConnection,
    WriteConnection,
    authenticated,
    require_json_body,
    services,
)
from roster.api.errors import naming_route
from roster.api.scim import discovery
from roster.api.scim.errors import (
    MEDIA_TYPE,
    InvalidCursor,
    InvalidSyntax,
    PreconditionFailed,
    ScimInvalid,
    Uniqueness,
)
from roster.api.scim.filters import user_condition, user_sort
from roster.api.scim.patch import apply_patch, operations_of
from roster.api.scim.resources import (
    ENTERPRISE_SCHEMA,
    LIST_SCHEMA,
    SCIM_NAMING,
    SEARCH_SCHEMA,
    USER_SCHEMA,
    UserWrite,
    parse_user,
    primary_moved,
    render_user,
    scim_name,
    version,
)
from roster.core.accounts import require_account
from roster.core.auth import Principal
from roster.core.fields import storable
from roster.core.people.addresses import set_addresses
from roster.core.people.personas import (
    add_person,
    change_persona,
    lock_unique_values,
    remove_persona,
)
from roster.core.people.roles import role_names
from roster.core.people.user_rows import (
    UserRow,
    user_name_holder,
    user_page,
    user_row,
)
from roster.core.writer import DEFAULT_ROLE, PersonaExists
from roster.db.backends import backend_for
from roster.errors import NotFound, RosterError

#: SCIM's contract: every credential that does not authenticate is 401.
SCIM_CREDENTIALS = CredentialContract(missing=401, invalid=401, expired=401)
Reader = Annotated[Principal, Depends(authenticated(SCIM_CREDENTIALS, "read"), scope="function")]
Writer = Annotated[Principal, Depends(authenticated(SCIM_CREDENTIALS, "write"), scope="function")]

#: Where every SCIM path starts.
SCIM_ROOT = "/scim/v2/"


class ScimRouter(APIRouter):
    """SCIM's routes, which say "not mine" at once to a path outside ``/scim/v2/``.

    The app includes them first: the other APIs then pay one prefix test each, and a SCIM
    request no longer tries the 45 routes before it (61 µs on FastAPI 0.165, more than a
    filter's parse; docs/scim.md).
    """

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if not get_route_path(scope).startswith(SCIM_ROOT):
            return Match.NONE, {}
        return super().matches(scope)


router = ScimRouter(
    prefix=SCIM_ROOT + "{account_id}",
    include_in_schema=False,  # SCIM's own discovery documents describe it
    dependencies=[Depends(require_json_body)],
    route_class=naming_route(SCIM_NAMING),
)

#: The multi-valued attributes of a User (a PATCH adds to these, and filters their values).
USER_MULTI_VALUED = discovery.multi_valued(discovery.user_schema([]))


def scim_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=MEDIA_TYPE, headers=headers)


def base_url(request: Request, account_id: str) -> str:
    return f"{str(request.base_url).rstrip('/')}/scim/v2/{account_id}"


async def account_of(conn: Any, principal: Principal, account_id: str) -> str:
    if not storable(account_id):
        raise NotFound("There is no such account.")
    return await require_account(conn, principal, account_id)


def resource_id(given: str, kind: str = "User") -> uuid.UUID:
    try:
        return uuid.UUID(given)
    except ValueError:
        raise NotFound(f"There is no {kind} {given[:64]!r}.") from None


async def json_body(request: Request) -> dict[str, Any]:
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        raise InvalidSyntax("The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise InvalidSyntax("The request body must be a JSON object.")
    return body


def _region(request: Request) -> str:
    return services(request).settings.default_phone_region


# -- attributes and excludedAttributes -------------------------------------------------------

_ALWAYS = frozenset({"id", "schemas"})


def _names(text: str | None) -> list[tuple[str, str | None]]:
    """``attributes``' names as (attribute or extension URN key, sub-attribute), folded."""
    found: list[tuple[str, str | None]] = []
    for raw in (text or "").split(","):
        name = raw.strip()
        if not name:
            continue
        lowered = name.lower()
        for urn in (ENTERPRISE_SCHEMA.lower(), USER_SCHEMA.lower()):
            if lowered.startswith(urn + ":"):
                rest = lowered.removeprefix(urn + ":")
                prefix = "" if urn == USER_SCHEMA.lower() else urn + "|"
                lowered = prefix + rest
                break
        attr, _, sub = lowered.partition(".")
        found.append((attr, sub or None))
    return found


def project(
    resource: dict[str, Any], attributes: str | None, excluded: str | None
) -> dict[str, Any]:
    """The resource with only ``attributes`` (and those always returned), or without
    ``excludedAttributes`` (RFC 7644 §3.9)."""
    wanted, unwanted = _names(attributes), _names(excluded)
    if not wanted and not unwanted:
        return resource
    shown: dict[str, Any] = {}
    for key, value in resource.items():
        folded_key = key.lower()
        if folded_key in _ALWAYS:
            shown[key] = value
            continue
        if isinstance(value, dict) and folded_key == ENTERPRISE_SCHEMA.lower():
            inner = {
                k: v
                for k, v in value.items()
                if _keep(f"{folded_key}|{k.lower()}", wanted, unwanted)
            }
            if inner:
                shown[key] = inner
            continue
        keep = _keep(folded_key, wanted, unwanted)
        if keep and isinstance(value, dict) and wanted:
            subs = {s for a, s in wanted if a == folded_key and s}
            if subs and (folded_key, None) not in wanted:
                value = {k: v for k, v in value.items() if k.lower() in subs}
        if keep:
            shown[key] = value
    return shown


def _keep(
    key: str, wanted: list[tuple[str, str | None]], unwanted: list[tuple[str, str | None]]
) -> bool:
    if wanted:
        return any(a == key for a, _ in wanted)
    return (key, None) not in unwanted


# -- discovery -------------------------------------------------------------------------------


@router.get("/ServiceProviderConfig")
async def service_provider_config(
    request: Request, account_id: str, principal: Reader, conn: ReadConnection
) -> Response:
    """What this server supports."""
    account = await account_of(conn, principal, account_id)
    limit = services(request).settings.max_body_bytes
    return scim_response(discovery.service_provider_config(base_url(request, account), limit))


async def _discovered(
    request: Request,
    conn: Any,
    principal: Principal,
    account_id: str,
    documents: Callable[[str, str], Awaitable[list[dict[str, Any]]]],
    wanted: str | None,
) -> Response:
    """A list of discovery documents, or the one whose id is ``wanted``."""
    account = await account_of(conn, principal, account_id)
    found = await documents(account, base_url(request, account))
    if wanted is None:
        return scim_response(list_response(found, 1, len(found)))
    for document in found:
        if document["id"] == wanted:
            return scim_response(document)
    raise NotFound(f"There is no {request.url.path.split('/')[-2]} entry {wanted[:128]!r}.")


async def _resource_types(account_id: str, url: str) -> list[dict[str, Any]]:
    return discovery.resource_types(url)


def _schemas(conn: Any) -> Callable[[str, str], Awaitable[list[dict[str, Any]]]]:
    async def schemas(account_id: str, url: str) -> list[dict[str, Any]]:
        return discovery.schemas(url, await role_names(conn, account_id))

    return schemas


@router.get("/ResourceTypes")
async def resource_types(
    request: Request, account_id: str, principal: Reader, conn: ReadConnection
) -> Response:
    """The resource types served."""
    return await _discovered(request, conn, principal, account_id, _resource_types, None)


@router.get("/ResourceTypes/{name}")
async def resource_type(
    request: Request, account_id: str, name: str, principal: Reader, conn: ReadConnection
) -> Response:
    """One resource type."""
    return await _discovered(request, conn, principal, account_id, _resource_types, name)


@router.get("/Schemas")
async def list_schemas(
    request: Request, account_id: str, principal: Reader, conn: ReadConnection
) -> Response:
    """The schemas of the resources served."""
    return await _discovered(request, conn, principal, account_id, _schemas(conn), None)


@router.get("/Schemas/{urn}")
async def one_schema(
    request: Request, account_id: str, urn: str, principal: Reader, conn: ReadConnection
) -> Response:
    """One schema."""
    return await _discovered(request, conn, principal, account_id, _schemas(conn), urn)


def list_response(resources: list[dict[str, Any]], start: int, total: int) -> dict[str, Any]:
    return {
        "schemas": [LIST_SCHEMA],
        "totalResults": total,
        "startIndex": start,
        "itemsPerPage": len(resources),
        "Resources": resources,
    }


# -- Users -----------------------------------------------------------------------------------


def page_parameter(value: object, name: str, default: int) -> int:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise ScimInvalid(f"{name} must be an integer.")
    try:
        return int(str(value))
    except ValueError:
        raise ScimInvalid(f"{name} must be an integer.") from None


def page_bounds(query: dict[str, Any]) -> tuple[int, int]:
    """``startIndex`` (at least 1) and ``count`` (0 to MAX_COUNT) of a list request."""
    # Past 2^31 every page is past the end; the database's integers end at 2^63.
    start = min(2**31, max(1, page_parameter(query.get("startIndex"), "startIndex", 1)))
    count = page_parameter(query.get("count"), "count", discovery.DEFAULT_COUNT)
    return start, min(discovery.MAX_COUNT, max(0, count))


def search_query(query: dict[str, Any]) -> dict[str, Any]:
    """A list request's parameters, checked: ``filter`` a string, the attribute lists
    (a search body may give them as lists) as text."""
    filter_text = query.get("filter")
    if filter_text is not None and (not isinstance(filter_text, str) or not storable(filter_text)):
        raise ScimInvalid("filter must be a string.")
    for name in ("attributes", "excludedAttributes"):
        if isinstance(query.get(name), list):
            query[name] = ",".join(str(v) for v in query[name])
    return query


async def user_results(
    request: Request,
    conn: Any,
    account_id: str,
    query: dict[str, Any],
    offset: int,
    count: int,
    after: list[Any] | None = None,
) -> tuple[int, list[dict[str, Any]], list[list[Any]]]:
    """How many Users the query's filter finds, ``count`` of them from ``offset`` (or
    after the cursor position ``after``), and their cursor positions."""
    filter_text = query.get("filter")
    backend = backend_for(conn)
    compiled = user_condition(filter_text, backend) if filter_text else None
    position = None
    if after is not None:
        if len(after) != 1 or not isinstance(after[0], int) or not 0 <= after[0] < 2**63:
            raise InvalidCursor("The cursor is not one this server gave for Users.")
        position = after[0]
    order = user_sort(query.get("sortBy"), query.get("sortOrder"))
    total, users = await user_page(
        conn,
        account_id,
        None if compiled is None else compiled.condition,
        offset,
        count,
        position,
        order,
        planned_by_values=compiled is not None and compiled.planned_by_values,
        parameters={} if compiled is None else compiled.parameters,
    )
    url = base_url(request, account_id)
    attributes, excluded = query.get("attributes"), query.get("excludedAttributes")
    shown = [project(render_user(user, url), attributes, excluded) for user in users]
    return total, shown, [[user.position] for user in users]


Results = Callable[..., Awaitable[tuple[int, list[dict[str, Any]], list[list[Any]]]]]


def encode_cursor(position: list[Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(position)).decode().rstrip("=")


def decode_cursor(text: object) -> list[Any] | None:
    """The position a cursor names (``None``: the first page, an empty cursor)."""
    if text in ("", None):
        return None
    try:
        assert isinstance(text, str)
        found = orjson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (AssertionError, ValueError, orjson.JSONDecodeError):
        raise InvalidCursor("The cursor is not one this server gave.") from None
    if not isinstance(found, list):
        raise InvalidCursor("The cursor is not one this server gave.")
    return found


async def listed(
    request: Request,
    conn: Any,
    principal: Principal,
    account_id: str,
    read: Callable[[Request], Awaitable[dict[str, Any]]],
    results: Results,
) -> Response:
    """The account's resources, as :func:`_listed` answers from the query ``read``
    finds, if the client reaches the account. Whether the account exists is read only
    when the answer is empty or an error (it is then a 404 whatever else was wrong):
    resources found are of an account that exists, and reading it first was a third of
    the database's round trips of an ``eq`` filter that finds its User."""
    if not storable(account_id) or not principal.can_reach(account_id):
        await account_of(conn, principal, account_id)  # raises, as for any account
    try:
        response, total = await _listed(request, conn, account_id, await read(request), results)
    except RosterError:
        await account_of(conn, principal, account_id)
        raise
    if total == 0:
        await account_of(conn, principal, account_id)
    return response


async def _listed(
    request: Request, conn: Any, account_id: str, query: dict[str, Any], results: Results
) -> tuple[Response, int]:
    """A ListResponse, and how many resources it counts: by ``startIndex`` and
    ``count``, or, given ``cursor`` (RFC 9865), the page after the cursor with the
    ``nextCursor`` of the page after it."""
    start, count = page_bounds(search_query(query))
    if "cursor" not in query:
        total, shown, _ = await results(request, conn, account_id, query, start - 1, count)
        return scim_response(list_response(shown, start, total)), total
    if query.get("sortBy"):
        raise ScimInvalid("Cursor pages follow the order of creation: give no sortBy.")
    after = decode_cursor(query["cursor"])
    total, shown, positions = await results(request, conn, account_id, query, 0, count + 1, after)
    body: dict[str, Any] = {
        "schemas": [LIST_SCHEMA],
        "totalResults": total,
        "itemsPerPage": min(count, len(shown)),
        "Resources": shown[:count],
    }
    if count and len(shown) > count:
        body["nextCursor"] = encode_cursor(positions[count - 1])
    return scim_response(body), total


def add_list_routes(noun: str, results: Results) -> None:
    """``GET /{noun}`` and ``POST /{noun}/.search`` (RFC 7644 §3.4.2, §3.4.3): the
    account's resources of one type, filtered, sorted and paged by ``results``."""

    async def list_resources(
        request: Request, account_id: str, principal: Reader, conn: ReadConnection
    ) -> Response:
        return await listed(request, conn, principal, account_id, query_parameters, results)

    async def search_resources(
        request: Request, account_id: str, principal: Reader, conn: ReadConnection
    ) -> Response:
        return await listed(request, conn, principal, account_id, search_body, results)

    router.add_api_route(f"/{noun}", list_resources, methods=["GET"], name=f"list_{noun}")
    router.add_api_route(
        f"/{noun}/.search", search_resources, methods=["POST"], name=f"search_{noun}"
    )


add_list_routes("Users", user_results)


async def query_parameters(request: Request) -> dict[str, Any]:
    """The parameters of a list request by GET."""
    return dict(request.query_params)


async def search_body(request: Request) -> dict[str, Any]:
    """The parameters of a search by POST (a SearchRequest)."""
    body = await json_body(request)
    schemas = body.pop("schemas", None)
    if schemas is not None and schemas != [SEARCH_SCHEMA]:
        raise ScimInvalid(f"A search request's schemas must be [{SEARCH_SCHEMA!r}].")
    return body


def _user_response(
    request: Request, user: UserRow, status: int = 200, *, located: bool = False
) -> Response:
    resource = render_user(user, base_url(request, user.row.persona_value("account_id")))
    headers = {"ETag": resource["meta"]["version"]}
    if located:
        headers["Location"] = resource["meta"]["location"]
    shown = project(
        resource,
        request.query_params.get("attributes"),
        request.query_params.get("excludedAttributes"),
    )
    return scim_response(shown, status, headers)


@router.get("/Users/{user_id}")
async def get_user(
    request: Request, account_id: str, user_id: str, principal: Reader, conn: ReadConnection
) -> Response:
    """One User; 304 if ``If-None-Match`` names its current version."""
    account = await account_of(conn, principal, account_id)
    user = await user_row(conn, account, resource_id(user_id))
    if names_version(request.headers.get("if-none-match"), version(user)):
        return Response(status_code=304, headers={"ETag": version(user)})
    return _user_response(request, user)


def names_version(header: str | None, current: str) -> bool:
    if header is None:
        return False
    tags = [tag.strip() for tag in header.split(",")]
    bare = current.removeprefix("W/")
    return "*" in tags or any(tag.removeprefix("W/") == bare for tag in tags)


def check_if_match(request: Request, current: str) -> None:
    """412 unless ``If-Match`` (when given) names the resource's ``current`` version."""
    header = request.headers.get("if-match")
    if header is not None and not names_version(header, current):
        raise PreconditionFailed(
            f"The resource has changed: its version is {current}, not {header[:64]}."
        )


async def _matching_user(
    request: Request, conn: Any, principal: Principal, account_id: str, user_id: str
) -> tuple[str, uuid.UUID, UserRow]:
    """The account, the User's id and the User a change names, if ``If-Match`` allows."""
    account = await account_of(conn, principal, account_id)
    persona_id = resource_id(user_id)
    # The User's writers take turns from here: its version is compared, and a PATCH
    # applied, to the User as the writer before left it (docs/scim.md, "ETag").
    await lock_unique_values(conn, account, {"user": str(persona_id)})
    user = await user_row(conn, account, persona_id)
    check_if_match(request, version(user))
    return account, persona_id, user


async def _check_write(
    conn: Any, account_id: str, written: UserWrite, other_than: uuid.UUID | None
) -> None:
    """409 uniqueness for a userName or externalId another User holds; 400 for a User
    named as its own manager. The externalId is checked under its writers' lock; the
    userName here only for the answer's sake: the writer checks it again under the lock
    of that userName, which it takes with the other keys it locks, in one order (taken
    here first, it made a deadlock with a Persons API batch locking the same keys)."""
    user_name = written.persona.get("user_name")
    external_id = written.persona.get("scim_external_id")
    await lock_unique_values(conn, account_id, {"scim_external_id": external_id})
    taken = await user_name_holder(conn, account_id, user_name, external_id, other_than)
    if taken is not None:
        raise Uniqueness(f"Another User of this account has this {scim_name(taken)}.")
    # A manager is kept as written even when no User of the account has that id (yet):
    # IdPs send managers they have not provisioned (docs/scim.md, "manager").
    if written.manager is not None and written.manager == other_than:
        raise ScimInvalid("A User cannot be its own manager.")


@router.post("/Users", status_code=201)
async def create_user(
    request: Request, account_id: str, principal: Writer, conn: WriteConnection
) -> Response:
    """A new User: a persona, of the person holding its email if there is one."""
    account = await account_of(conn, principal, account_id)
    written = parse_user(await json_body(request), creating=True)
    await _check_write(conn, account, written, None)
    persona = {k: v for k, v in written.persona.items() if v is not None}
    role_name = persona.pop("role_name", DEFAULT_ROLE)
    try:
        row = await add_person(
            conn,
            account,
            {k: v for k, v in written.person.items() if v is not None},
            persona,
            role_name,
            _region(request),
            principal.account_ids,
        )
    except PersonaExists as exists:
        raise Uniqueness(exists.message_in(SCIM_NAMING)) from None
    await set_addresses(conn, account, row.persona_id, written.addresses)
    user = await user_row(conn, account, row.persona_id)
    return _user_response(request, user, 201, located=True)


async def _replace(
    request: Request,
    conn: Any,
    principal: Principal,
    account: str,
    persona_id: uuid.UUID,
    written: UserWrite,
    current: UserRow,
) -> Response:
    await _check_write(conn, account, written, persona_id)
    status = written.persona.get("status")
    if status is not None and (status == "active") == (
        current.row.persona_value("status") == "active"
    ):
        # active as it reads: a created or invited persona is left as it is.
        del written.persona["status"]
    await change_persona(
        conn,
        account,
        persona_id,
        written.person,
        written.persona,
        _region(request),
        principal.account_ids,
    )
    await set_addresses(conn, account, persona_id, written.addresses)
    return _user_response(request, await user_row(conn, account, persona_id))


@router.put("/Users/{user_id}")
async def replace_user(
    request: Request, account_id: str, user_id: str, principal: Writer, conn: WriteConnection
) -> Response:
    """Replace a User: attributes left out are cleared (read-only ones kept)."""
    account, persona_id, user = await _matching_user(request, conn, principal, account_id, user_id)
    written = parse_user(await json_body(request), creating=False)
    return await _replace(request, conn, principal, account, persona_id, written, user)


@router.patch("/Users/{user_id}")
async def patch_user(
    request: Request, account_id: str, user_id: str, principal: Writer, conn: WriteConnection
) -> Response:
    """Change a User by PATCH operations, applied in one transaction or not at all."""
    account, persona_id, user = await _matching_user(request, conn, principal, account_id, user_id)
    operations = operations_of(await json_body(request))
    current = render_user(user, base_url(request, account), built=False)
    patched = apply_patch(current, operations, USER_MULTI_VALUED)
    primary_moved(current, patched)
    written = parse_user(patched, creating=False)
    return await _replace(request, conn, principal, account, persona_id, written, user)


@router.delete("/Users/{user_id}", status_code=204)
async def delete_user(
    request: Request, account_id: str, user_id: str, principal: Writer, conn: WriteConnection
) -> Response:
    """Remove a User's persona; the person stays for its other accounts."""
    account, persona_id, _ = await _matching_user(request, conn, principal, account_id, user_id)
    await remove_persona(conn, account, persona_id, _region(request))
    return Response(status_code=204)
