"""The directory's pages: sign in and out, the account picker, search, a person's card,
and its edits. Each route parses, calls the core functions the People API calls, and
renders a template; the People API's own models check every value, so a rule is
written once and answers the same words on both doors.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlencode, urlsplit

import orjson
from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.datastructures import FormData

from roster.api.deps import (
    PrimaryReadConnection,
    PrimarySnapshotConnection,
    WriteConnection,
    charge,
    services,
)
from roster.api.errors import validation_error
from roster.api.events import event_json
from roster.api.people.listing import PeopleParameters
from roster.api.people.models import (
    PersonaUpdate,
    RoleAssignment,
    field_name,
    include_name,
    item_key,
    row_json,
    values_of,
)
from roster.api.web.assets import static_file
from roster.api.web.render import (
    STATUS_LABELS,
    PageRoute,
    from_script,
    html,
    redirect,
    sign_in_page,
    target_of,
)
from roster.api.web.session import (
    SESSION_COOKIE,
    SIGN_IN_COOKIE,
    TOKEN_FIELD,
    Posting,
    Reading,
    Visitor,
    clear_cookie,
    cookie,
    good_token,
    same_origin,
    seal,
    set_cookie,
    visitor_of,
)
from roster.core.accounts import Account, memberships_of, reachable_account, reachable_accounts
from roster.core.auth import Principal, client_by_key, client_by_secret
from roster.core.events import EventFilter, read_events
from roster.core.fields import PERSONA, stored
from roster.core.matching import matching
from roster.core.people.embeds import EMBEDS
from roster.core.people.listing import (
    PeopleQuery,
    count_people,
    list_people,
    search_page,
    uncounted_people,
)
from roster.core.people.paging import Paging
from roster.core.people.persona_rows import persona_row
from roster.core.people.personas import assign_role, update_persona
from roster.core.people.roles import list_roles
from roster.core.people.teams_and_budgets import add_team_member, remove_team_member, team_names
from roster.core.sessions import end_session, start_session
from roster.errors import InsufficientScope, InvalidCredentials, NotFound, Problem, RosterError

log = logging.getLogger("roster.web")
router = APIRouter(route_class=PageRoute, include_in_schema=False)

#: People shown at a time; "More" adds as many again.
PAGE_SIZE = 50
#: Accounts listed at a time in the picker; a search narrows them.
ACCOUNTS_SHOWN = 100
#: The picker offers a search from this many accounts.
SEARCHABLE_ACCOUNTS = 10
#: The query parameters of the directory: the People API's own names.
FILTERS = ("search", "status", "teams", "roles")
#: A filter of more choices than this is chosen on a searchable page of its own (a link
#: beside the search) rather than in a <select>: an account of 1,000 teams would
#: otherwise send 1,000 options with every page of its directory.
CHOICES_LISTED = 100
#: What a result row shows besides the person and persona.
ROW_EMBEDS = frozenset(embed for embed in EMBEDS if embed.name in ("teams", "roles"))
#: The changes a card shows, newest first.
RECENT_CHANGES = 10
#: The persona fields the card edits, by their People API names.
DETAIL_FIELDS = ("status", "jobTitle", "emailAddress", "workNumber")


def _shown(row: Any) -> dict[str, Any]:
    """A row as the People API answers it (camelCase, with its embeds), for a template."""
    loaded: dict[str, Any] = orjson.loads(orjson.dumps(row_json(row), default=str))
    return loaded


async def _people(
    conn: AsyncConnection, account_id: str, query: PeopleQuery
) -> tuple[int, list[dict[str, Any]]]:
    page = await search_page(conn, account_id, query, item_key)
    if page is None:
        page = await list_people(conn, account_id, query, item_key)
    return page.count, await _rows(page.chunks)


async def _rows(chunks: AsyncIterator[list[Any]]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    async for chunk in chunks:
        rows.extend(_shown(row) for row in chunk)
    return rows


def _problems(model: type[BaseModel], values: dict[str, Any]) -> list[Problem]:
    """What the People API would answer about these values, field by field."""
    try:
        model.model_validate(values)
    except ValidationError as error:
        return list(validation_error(RequestValidationError(error.errors())).details)
    return []


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _text(form: FormData, name: str) -> str | None:
    """A form's text field; an empty one (or blanks) means no value."""
    value = form.get(name)
    return value if isinstance(value, str) and value.strip() else None


def _url(path: str, parameters: dict[str, Any]) -> str:
    given = {name: value for name, value in parameters.items() if value not in (None, "", 0)}
    return f"{path}?{urlencode(given, doseq=True)}" if given else path


def _people_url(account_id: str, **parameters: Any) -> str:
    return _url(f"/app/accounts/{account_id}/people", parameters)


def _card_url(account_id: str, person_id: object) -> str:
    return f"/app/accounts/{account_id}/people/{person_id}"


def _next_url(value: object) -> str:
    """Where to go after signing in: a page of this site, never anywhere else."""
    if isinstance(value, str):
        parts = urlsplit(value)
        if not parts.scheme and not parts.netloc and parts.path.startswith("/app/"):
            return value
    return "/app/"


@dataclass(frozen=True)
class _Choice:
    """A filter of the directory whose values are the account's teams or roles."""

    name: str  # the People API's parameter
    label: str
    noun: str
    plural: str
    #: The account's choices (the first ``limit``, given one): (id, name).
    load: Callable[[AsyncConnection, str, int | None], Awaitable[list[tuple[str, str]]]]

    @property
    def anything(self) -> str:
        return f"Any {self.noun}"


async def _teams(
    conn: AsyncConnection, account_id: str, limit: int | None = None
) -> list[tuple[str, str]]:
    return [(str(team.id), team.name) for team in await team_names(conn, account_id, limit)]


async def _roles(
    conn: AsyncConnection, account_id: str, limit: int | None = None
) -> list[tuple[str, str]]:
    roles = await list_roles(conn, account_id, Paging(limit=limit or 1000))
    return [(str(role.id), role.name) for role in roles.rows]


CHOICES = {
    choice.name: choice
    for choice in (
        _Choice("teams", "Team", "team", "teams", _teams),
        _Choice("roles", "Role", "role", "roles", _roles),
    )
}


# -- signing in and out ------------------------------------------------------------------


@router.get("/")
async def home(request: Request, conn: PrimaryReadConnection) -> Response:
    """The directory: the sign-in form, or on to the accounts once signed in."""
    if await visitor_of(request, conn) is not None:
        return redirect("/app/")
    message = "You have signed out." if "signed-out" in request.query_params else None
    return sign_in_page(request, message=message)


@router.post("/app/sign-in")
async def sign_in(request: Request, conn: WriteConnection) -> Response:
    """Exchange an API key (or a client id and secret) for a session cookie."""
    form = await request.form()
    next_url = _next_url(form.get("next"))
    if not same_origin(request) or not good_token(
        form.get(TOKEN_FIELD), cookie(request, SIGN_IN_COOKIE)
    ):
        problem = Problem("form", "This form had expired: please sign in again.")
        return sign_in_page(request, 403, [problem], next_url=next_url)
    host = request.client.host if request.client else "unknown"
    await charge(request, f"sign-in from {host}")
    try:
        principal = await _credentials(conn, form)
        principal.require("read")
    except _Refused as refused:
        log.info("sign-in refused", extra={"reason": refused.problem.problem})
        return sign_in_page(request, 401, [refused.problem], next_url=next_url)
    except InsufficientScope:
        problem = Problem("apiKey", "This client may not read the directory (no read scope).")
        return sign_in_page(request, 403, [problem], next_url=next_url)
    ttl = services(request).settings.token_ttl_seconds
    session = await start_session(conn, principal, ttl)
    request.state.client_id = principal.client_id
    log.info("signed in", extra={"client_id": principal.client_id})
    response = redirect(next_url)
    set_cookie(response, request, SESSION_COOKIE, seal(request, session.session_id), ttl)
    clear_cookie(response, request, SIGN_IN_COOKIE)
    return response


class _Refused(Exception):
    def __init__(self, problem: Problem) -> None:
        self.problem = problem


async def _credentials(conn: AsyncConnection, form: FormData) -> Principal:
    """The client the form's API key, or client id and secret, prove."""
    api_key, client_id, secret = (_text(form, n) for n in ("apiKey", "clientId", "clientSecret"))
    try:
        if api_key is not None:
            return await client_by_key(conn, api_key.strip())
        if client_id is not None and secret is not None:
            return await client_by_secret(conn, client_id.strip(), secret.strip())
    except InvalidCredentials:
        blamed = "apiKey" if api_key is not None else "clientSecret"
        raise _Refused(
            Problem(blamed, "This does not sign in: it is wrong, or its client was revoked.")
        ) from None
    if client_id is not None:
        raise _Refused(Problem("clientSecret", "Enter the client's secret too."))
    if secret is not None:
        raise _Refused(Problem("clientId", "Enter the client id too."))
    raise _Refused(Problem("apiKey", "Enter an API key, or a client id and its secret."))


@router.post("/app/sign-out")
async def sign_out(request: Request, conn: WriteConnection, visitor: Posting) -> Response:
    """End the session on the server and forget the cookie."""
    await end_session(conn, visitor.session_id)
    response = redirect("/?signed-out")
    clear_cookie(response, request, SESSION_COOKIE)
    return response


# -- accounts ------------------------------------------------------------------------------


@router.get("/app/")
async def accounts_page(
    request: Request, conn: PrimarySnapshotConnection, visitor: Reading
) -> Response:
    """The accounts this client reaches, searchable when there are many."""
    search = request.query_params.get("search", "")[:100]
    found = await reachable_accounts(conn, visitor.principal, search)
    if not search and len(found) == 1 and not from_script(request):
        return redirect(_people_url(found[0].id))
    context = {
        "visitor": visitor,
        "accounts": found[:ACCOUNTS_SHOWN],
        "total": len(found),
        "shown": min(len(found), ACCOUNTS_SHOWN),
        "noun": "account",
        "plural": "accounts",
        "search": search,
        "searchable": bool(search) or len(found) > SEARCHABLE_ACCOUNTS,
    }
    if target_of(request) == "accounts":
        return html(request, "_accounts.html", {**context, "fragment": True})
    return html(request, "accounts.html", context)


@router.get("/app/accounts/{account_id}")
async def account_home(account_id: str) -> Response:
    return redirect(_people_url(account_id))


# -- the directory -----------------------------------------------------------------------


@router.get("/app/accounts/{account_id}/people")
async def people_page(
    account_id: str, request: Request, conn: PrimarySnapshotConnection, visitor: Reading
) -> Response:
    """An account's people: search as you type, filters, 50 at a time."""
    account = await reachable_account(conn, visitor.principal, account_id)
    chosen = {
        name: [v for v in request.query_params.getlist(name) if v.strip()] for name in FILTERS
    }
    given: dict[str, Any] = {name: values for name, values in chosen.items() if values}
    if "search" in given:
        given["search"] = given["search"][0]
    offset = request.query_params.get("offset", "0") or "0"
    filters = {name: (values[0] if values else "") for name, values in chosen.items()}
    context: dict[str, Any] = {
        "visitor": visitor,
        "account": account,
        "filters": filters,
        "count": 0,
        "rows": [],
        "offset": 0,
        "more_url": None,
        "problems": {},
    }
    status = 200
    target = target_of(request)
    try:
        parameters = PeopleParameters.model_validate(
            {
                **given,
                "accountId": account.id,
                "limit": PAGE_SIZE,
                "offset": offset,
                "include": [include_name(embed) for embed in ROW_EMBEDS],
            }
        )
    except ValidationError as error:
        problems = validation_error(RequestValidationError(error.errors())).details
        context["problems"] = {p.field: p.problem for p in problems}
        status = 400
    else:
        query = parameters.core_query()
        if target == "count":  # the page's script, once the page is shown
            context["count"] = await count_people(conn, account.id, query)
            return html(request, "_count.html", context)
        if target is None and query.whole_account and not query.offset:
            # A page's first load: its rows at once, their count (all of a large
            # account's people) asked by the page's script after it has loaded.
            more = replace(query, limit=PAGE_SIZE + 1)
            rows = await _rows(uncounted_people(conn, account.id, more, item_key))
            count: int | None = None
            following = PAGE_SIZE if len(rows) > PAGE_SIZE else 0
            rows = rows[:PAGE_SIZE]
        else:
            count, rows = await _people(conn, account.id, query)
            following = parameters.offset + len(rows)
            following = following if following < count else 0
        context.update(
            count=count,
            rows=rows,
            offset=parameters.offset,
            more_url=_people_url(account.id, **filters, offset=following) if following else None,
            count_url=_people_url(account.id, **filters),
        )
    if target == "count":  # what is wrong is beside the field the page shows
        return html(request, "_count.html", context, status)
    if target == "more-row":
        return html(request, "_rows.html", context, status)
    if target == "results":
        return html(request, "_results.html", {**context, "fragment": True}, status)
    context["choices"] = [
        {
            "name": "status",
            "label": "Status",
            "anything": "Any status",
            "options": list(STATUS_LABELS.items()),
        }
    ]
    for choice in CHOICES.values():
        options = await choice.load(conn, account.id, CHOICES_LISTED + 1)
        listed = len(options) <= CHOICES_LISTED
        if not listed and filters[choice.name]:  # the name of the one chosen, among all
            options = await choice.load(conn, account.id, None)
        context["choices"].append(
            {
                "name": choice.name,
                "label": choice.label,
                "anything": choice.anything,
                "options": options if listed else None,
                "chosen": dict(options).get(filters[choice.name]),
                "picker_url": _url(f"/app/accounts/{account.id}/filters/{choice.name}", filters),
            }
        )
    return html(request, "people.html", context, status)


@router.get("/app/accounts/{account_id}/filters/{name}")
async def choice_page(
    account_id: str,
    name: str,
    request: Request,
    conn: PrimarySnapshotConnection,
    visitor: Reading,
) -> Response:
    """A searchable list of an account's teams (or roles), each a link to the directory
    filtered by it, the other filters of the directory kept: the filter's picker when
    the account has too many for a <select>."""
    account = await reachable_account(conn, visitor.principal, account_id)
    choice = CHOICES.get(name)
    if choice is None:
        raise NotFound(f"There is no filter {name!r}.")
    find = request.query_params.get("find", "")[:100]
    filters = {n: request.query_params.get(n, "")[:100] for n in FILTERS}
    found = matching(await choice.load(conn, account.id, None), find, lambda option: option[1])
    kept = {**filters, choice.name: None}
    context = {
        "visitor": visitor,
        "account": account,
        "choice": choice,
        "filters": filters,
        "kept": {n: v for n, v in kept.items() if v},
        "search": find,
        "any_url": _people_url(account.id, **kept),
        "back_url": _people_url(account.id, **filters),
        "options": [
            (_people_url(account.id, **{**kept, choice.name: value}), text, value)
            for value, text in found[:CHOICES_LISTED]
        ],
        "total": len(found),
        "shown": min(len(found), CHOICES_LISTED),
        "noun": choice.noun,
        "plural": choice.plural,
    }
    if target_of(request) == "choices":
        return html(request, "_choices.html", {**context, "fragment": True})
    return html(request, "choices.html", context)


# -- a person's card -----------------------------------------------------------------------


async def _card(
    request: Request,
    conn: AsyncConnection,
    visitor: Visitor,
    account: Account,
    person_id: uuid.UUID | None,
    *,
    status: int = 200,
    **edits: Any,
) -> Response:
    """The card of a person of the account, with every embed, and the forms that edit it."""
    rows: list[dict[str, Any]] = []
    if person_id is not None:
        query = PeopleQuery(limit=1, person_ids=frozenset((person_id,)), include=frozenset(EMBEDS))
        _, rows = await _people(conn, account.id, query)
    if not rows:
        raise NotFound(f"There is no person {person_id} in account {account.id!r}.")
    person = rows[0]
    changes = await read_events(
        conn,
        EventFilter(account.id, person_id=uuid.UUID(person["id"])),
        RECENT_CHANGES,
        newest_first=True,
    )
    others = [
        m
        for m in await memberships_of(conn, visitor.principal, uuid.UUID(person["id"]))
        if m.account_id != account.id
    ]
    context: dict[str, Any] = {
        "visitor": visitor,
        "account": account,
        "person": person,
        "others": others,
        "changes": [event_json(event) for event in changes],
        "role_choices": [],
        "teams": [],
        "section": None,
        "submitted": None,
        "problems": {},
        "saved": False,
        **edits,
    }
    if visitor.can_write:
        member_of = {team["id"] for team in person["persona"]["teams"]}
        roles = await list_roles(conn, account.id, Paging(limit=1000))
        context["role_choices"] = [(role.name, role.name) for role in roles.rows]
        context["teams"] = [
            team for team in await team_names(conn, account.id) if str(team.id) not in member_of
        ]
    fragment = "_card.html" if target_of(request) == "card" else "card.html"
    return html(request, fragment, context, status)


@router.get("/app/accounts/{account_id}/people/{person_id}")
async def card_page(
    account_id: str,
    person_id: str,
    request: Request,
    conn: PrimarySnapshotConnection,
    visitor: Reading,
) -> Response:
    """Everything about one person of the account, and the person's other accounts."""
    account = await reachable_account(conn, visitor.principal, account_id)
    return await _card(request, conn, visitor, account, _uuid(person_id))


async def _editable(
    conn: AsyncConnection, visitor: Visitor, account_id: str, persona_id: str
) -> tuple[Account, Any]:
    """The account and the persona a form edits (``write`` scope needed)."""
    visitor.principal.require("write")
    account = await reachable_account(conn, visitor.principal, account_id)
    found = _uuid(persona_id)
    if found is None:
        raise NotFound(f"There is no persona {persona_id!r} in account {account.id!r}.")
    return account, await persona_row(conn, account.id, found)


@dataclass
class _Edit:
    """What became of a form sent from the card: the section it edits, and its problems."""

    section: str
    problems: list[Problem] = field(default_factory=list)
    status: int = 200

    def refuse(self, problems: list[Problem], status: int = 400) -> None:
        if problems:
            self.problems, self.status = problems, status

    async def attempt(
        self, conn: AsyncConnection, blamed: str, *writes: Callable[[], Awaitable[object]]
    ) -> None:
        """The writes, in a savepoint: a rule they break undoes them all, and is shown
        beside the field ``blamed``."""
        try:
            async with conn.begin_nested():
                for write in writes:
                    await write()
        except RosterError as error:
            self.refuse([Problem(blamed, error.message_in(field_name))], error.status_code)

    async def answer(
        self,
        request: Request,
        conn: AsyncConnection,
        visitor: Visitor,
        account: Account,
        person_id: uuid.UUID,
        submitted: dict[str, str | None] | None = None,
    ) -> Response:
        """The card again, saying what was saved or what is wrong; a form sent without the
        page's script, once saved, is answered with a redirect to the card."""
        if not self.problems and not from_script(request):
            return redirect(_card_url(account.id, person_id))
        return await _card(
            request,
            conn,
            visitor,
            account,
            person_id,
            status=self.status,
            section=self.section,
            submitted=submitted if self.problems else None,
            problems={p.field: p.problem for p in self.problems},
            saved=not self.problems,
        )


@router.post("/app/accounts/{account_id}/personas/{persona_id}")
async def save_details(
    account_id: str, persona_id: str, request: Request, conn: WriteConnection, visitor: Posting
) -> Response:
    """Change a persona's status, role, job title, work email and work number."""
    account, current = await _editable(conn, visitor, account_id, persona_id)
    form = await request.form()
    submitted = {name: _text(form, name) for name in (*DETAIL_FIELDS, "roleName")}
    fields = {name: submitted[name] for name in DETAIL_FIELDS}
    role = {"roleName": submitted["roleName"]}
    edit = _Edit("details")
    edit.refuse(_problems(PersonaUpdate, fields) + _problems(RoleAssignment, role))
    if not edit.problems:
        sent = PersonaUpdate.model_validate(fields)
        values = values_of(sent, stored(PERSONA), only_given=True)
        changes = {
            name: value for name, value in values.items() if value != current.persona_value(name)
        }
        region = services(request).settings.default_phone_region
        await edit.attempt(
            conn,
            "roleName",
            lambda: update_persona(conn, account.id, current.persona_id, changes, region),
            lambda: assign_role(
                conn, account.id, current.persona_id, str(role["roleName"]), region
            ),
        )
    return await edit.answer(request, conn, visitor, account, current.id, submitted)


@router.post("/app/accounts/{account_id}/personas/{persona_id}/teams")
async def change_teams(
    account_id: str, persona_id: str, request: Request, conn: WriteConnection, visitor: Posting
) -> Response:
    """Add a persona to a team (``add``) or take it out of one (``remove``)."""
    account, current = await _editable(conn, visitor, account_id, persona_id)
    form = await request.form()
    adding = _text(form, "add")
    team_id = _uuid(adding or _text(form, "remove") or "")
    edit = _Edit("teams")
    if team_id is None:
        edit.refuse([Problem("add", "Choose a team.")])
    else:
        change = add_team_member if adding else remove_team_member
        await edit.attempt(
            conn, "add", lambda: change(conn, account.id, team_id, current.persona_id)
        )
    return await edit.answer(request, conn, visitor, account, current.id)


# -- files, and what is not here -----------------------------------------------------------


@router.get("/app/static/{name}")
async def static(name: str, request: Request) -> Response:
    """The page's script, styles and icon."""
    return static_file(request, name)


@router.get("/app/{rest:path}")
async def no_page(rest: str) -> Response:
    raise NotFound(f"There is no page at /app/{rest}.")
