"""The web page through the real app (spec/web.md): sessions, form tokens, what each page
shows, and edits held to the People API's rules. The same pages in a real browser are
in test_web_browser.py.
"""

from __future__ import annotations

import hashlib
import html
import re
import subprocess
import sys
import uuid
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr
from sqlalchemy import select, update

from roster.api.app import create_app
from roster.api.web.pages import CHOICES_LISTED
from roster.core.auth import revoke_client
from roster.db.engine import unit_of_work
from roster.db.tables import personas, web_sessions
from roster.settings import Settings
from tests.factories import PROPERTY_SETTINGS, Client, Directory

ACCOUNT = "ACME"
LOCAL = "http://127.0.0.1"


@dataclass
class Page:
    """A browser's view of the site: its cookies, and the last page's form token."""

    http: httpx.AsyncClient
    origin: str = LOCAL
    token: str = ""

    async def get(
        self, path: str, status: int = 200, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        response = await self.http.get(path, headers=headers)
        assert response.status_code == status, response.text[:2000]
        if found := re.search(r'name="csrf_token" value="([^"]+)"', response.text):
            self.token = found.group(1)
        return response

    async def post(
        self,
        path: str,
        data: dict[str, str],
        status: int = 303,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        sent = {"Origin": self.origin, **(headers or {})}
        response = await self.http.post(path, data={"csrf_token": self.token, **data}, headers=sent)
        assert response.status_code == status, response.text[:2000]
        return response

    async def sign_in(self, caller: Client, status: int = 303, **fields: str) -> httpx.Response:
        await self.get("/")
        return await self.post("/app/sign-in", fields or {"apiKey": caller.api_key}, status)


def words(page: httpx.Response) -> str:
    """A page's text, without its markup, its white space collapsed."""
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", page.text, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body)).split())


def error_beside(page: httpx.Response, field_id: str) -> str:
    """The error shown next to a form field (the element its aria-describedby names)."""
    found = re.search(rf'<p id="{field_id}-error" class="error">(.*?)</p>', page.text, re.S)
    assert found, f"no error beside {field_id}"
    assert re.search(rf'id="{field_id}"[^>]*aria-invalid="true"', page.text, re.S)
    return html.unescape(found.group(1))


def count_of(page: httpx.Response) -> int:
    found = re.search(r'id="results"[^>]*data-count="(\d+)"', page.text)
    assert found, page.text[:2000]
    return int(found.group(1))


async def counted(page: Page, url: str) -> int:
    """The count the page's script asks for after a page loads (its ``#count``)."""
    shown = await page.get(url, headers={"HX-Request": "true", "HX-Target": "count"})
    assert "<" not in shown.text  # the count's words alone
    found = re.fullmatch(r"([\d,]+) (?:people|person)", words(shown))
    return int(found.group(1).replace(",", "")) if found else 0


def names_of(page: httpx.Response) -> list[str]:
    return [
        " ".join(html.unescape(re.sub(r"<[^>]+>", " ", name)).split())
        for name in re.findall(r'<a class="person" href="[^"]+">(.*?)</a>', page.text, re.S)
    ]


def cookie_header(response: httpx.Response, name: str) -> str:
    found = [c for c in response.headers.get_list("set-cookie") if c.startswith(f"{name}=")]
    assert found, response.headers
    return found[0]


async def open_page(app: Any, base_url: str = LOCAL) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app)
    return httpx.AsyncClient(transport=transport, base_url=base_url)


@pytest.fixture
async def page(app: Any) -> AsyncIterator[Page]:
    async with await open_page(app) as http:
        yield Page(http)


@pytest.fixture
async def caller(directory: Directory) -> Client:
    await directory.account(ACCOUNT, "Acme Ltd")
    await directory.account("OTHER", "Other Co")
    await directory.account("HIDDEN", "Hidden Co")
    return await directory.client([ACCOUNT, "OTHER"])


async def api(client: httpx.AsyncClient, caller: Client, path: str, **params: Any) -> Any:
    response = await client.get(
        path, params={"accountId": ACCOUNT, **params}, headers=caller.headers
    )
    assert response.status_code == 200, response.text
    return response.json()


# -- sessions ---------------------------------------------------------------------------


async def test_sign_in_gives_an_http_only_strict_cookie_whose_id_is_stored_as_a_digest(
    page: Page, caller: Client, app: Any
) -> None:
    signed = await page.sign_in(caller)
    assert signed.headers["location"] == "/app/"
    assert caller.api_key not in signed.text + str(signed.headers)
    set_cookie = cookie_header(signed, "roster_session")
    attributes = {part.strip().lower() for part in set_cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/", "max-age=3600"} <= attributes
    assert "secure" not in attributes  # plain http, but on this machine
    session_id = set_cookie.split(";")[0].split("=", 1)[1]
    async with unit_of_work(app.state.services.engine, write=False) as conn:
        stored = (await conn.execute(select(web_sessions))).all()
    assert [row.id_digest for row in stored] == [hashlib.sha256(session_id.encode()).hexdigest()]
    assert stored[0].client_id == caller.client_id
    assert stored[0].expires_at - stored[0].created_at == timedelta(seconds=3600)
    accounts = await page.get("/app/")
    assert "Acme Ltd" in words(accounts)
    assert "Other Co" in words(accounts)
    assert "Hidden Co" not in words(accounts)
    assert caller.api_key not in accounts.text


async def test_over_https_or_from_another_host_the_cookie_is_secure(
    app: Any, caller: Client
) -> None:
    async with await open_page(app, "https://roster.example") as http:
        visit = Page(http, origin="https://roster.example")
        signed = await visit.sign_in(caller)
        assert "secure" in cookie_header(signed, "__Host-roster_session").lower()
        assert "Acme Ltd" in words(await visit.get("/app/"))
    # Plain http to another machine: the browser would not send a Secure cookie back, so
    # signing in cannot work there, and the page says why.
    async with await open_page(app, "http://roster.example") as http:
        warned = await Page(http).get("/")
    assert "secure" in cookie_header(warned, "__Host-roster_sign_in").lower()
    assert "plain HTTP" in words(warned)


async def test_sign_in_with_a_client_id_and_secret(page: Page, caller: Client) -> None:
    wrong = await page.sign_in(
        caller, 401, clientId=caller.client_id, clientSecret=caller.secret + "x"
    )
    assert "wrong, or its client was revoked" in error_beside(wrong, "clientSecret")
    await page.sign_in(caller, clientId=caller.client_id, clientSecret=caller.secret)
    assert "Acme Ltd" in words(await page.get("/app/"))


async def test_a_wrong_key_or_a_client_that_may_not_read_is_refused_beside_the_field(
    page: Page, caller: Client, directory: Directory, app: Any
) -> None:
    wrong = await page.sign_in(caller, 401, apiKey="rk_nothing")
    assert "wrong, or its client was revoked" in error_beside(wrong, "apiKey")
    empty = await page.sign_in(caller, 401, apiKey=" ")
    assert "Enter an API key" in error_beside(empty, "apiKey")
    writer = await directory.client([ACCOUNT], scopes=["write"])
    refused = await page.sign_in(writer, 403)
    assert "no read scope" in error_beside(refused, "apiKey")
    async with unit_of_work(app.state.services.engine, write=False) as conn:
        assert (await conn.execute(select(web_sessions))).all() == []


async def test_the_sign_in_form_needs_its_own_token_and_this_origin(
    page: Page, caller: Client
) -> None:
    await page.get("/")
    stale = await page.http.post(
        "/app/sign-in",
        data={"apiKey": caller.api_key, "csrf_token": "x"},
        headers={"Origin": LOCAL},
    )
    assert stale.status_code == 403
    assert "expired" in words(stale)
    elsewhere = await page.post(
        "/app/sign-in", {"apiKey": caller.api_key}, 403, {"Origin": "https://evil.example"}
    )
    assert "roster_session" not in str(elsewhere.headers)


async def test_every_form_needs_the_session_token_and_this_origin(
    page: Page, caller: Client, app: Any
) -> None:
    await page.sign_in(caller)
    await page.get("/app/")
    good = page.token
    for headers, token in (
        ({"Origin": LOCAL}, "not the token"),
        ({"Origin": "https://evil.example"}, good),
        ({"Origin": "null"}, good),
        ({}, good),  # neither Origin nor Referer
    ):
        refused = await page.http.post("/app/sign-out", data={"csrf_token": token}, headers=headers)
        assert refused.status_code == 403, (headers, token)
        assert "did not come from this page" in words(refused)
    async with unit_of_work(app.state.services.engine, write=False) as conn:
        assert len((await conn.execute(select(web_sessions))).all()) == 1
    # A Referer of this site stands for a missing Origin.
    referred = await page.http.post(
        "/app/sign-out", data={"csrf_token": good}, headers={"Referer": f"{LOCAL}/app/"}
    )
    assert referred.status_code == 303


async def test_signing_out_deletes_the_session(page: Page, caller: Client, app: Any) -> None:
    await page.sign_in(caller)
    await page.get("/app/")
    kept = dict(page.http.cookies)
    out = await page.post("/app/sign-out", {})
    assert out.headers["location"] == "/?signed-out"
    assert "You have signed out." in words(await page.get("/?signed-out"))
    async with unit_of_work(app.state.services.engine, write=False) as conn:
        assert (await conn.execute(select(web_sessions))).all() == []
    page.http.cookies.update(kept)  # the old cookie, sent again
    again = await page.get("/app/", 401)
    assert "Sign in to the directory" in words(again)
    assert "session has ended" in words(again)


async def test_a_revoked_clients_session_stops_at_the_next_request(
    page: Page, caller: Client, app: Any
) -> None:
    await page.sign_in(caller)
    await page.get(f"/app/accounts/{ACCOUNT}/people")
    async with unit_of_work(app.state.services.engine, write=True) as conn:
        await revoke_client(conn, caller.client_id)
    refused = await page.get(f"/app/accounts/{ACCOUNT}/people?search=x", 401)
    assert "session has ended" in words(refused)
    # The sign-in form leads back to the page asked for.
    assert f'name="next" value="/app/accounts/{ACCOUNT}/people?search=x"' in refused.text
    assert "max-age=0" in cookie_header(refused, "roster_session").lower()


async def test_a_script_request_without_a_session_reloads_the_page(
    page: Page, caller: Client
) -> None:
    answer = await page.get(
        f"/app/accounts/{ACCOUNT}/people",
        401,
        headers={"HX-Request": "true", "HX-Target": "results"},
    )
    assert answer.headers["HX-Refresh"] == "true"


async def test_an_ended_session_is_refused_and_swept_away_at_the_next_sign_in(
    page: Page, caller: Client, app: Any
) -> None:
    await page.sign_in(caller)
    async with unit_of_work(app.state.services.engine, write=True) as conn:
        await conn.execute(
            update(web_sessions).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    assert "session has ended" in words(await page.get("/app/", 401))
    await page.sign_in(caller)
    async with unit_of_work(app.state.services.engine, write=False) as conn:
        left = (await conn.execute(select(web_sessions))).all()
    assert len(left) == 1
    assert left[0].expires_at > datetime.now(UTC)


async def test_sign_in_attempts_count_against_a_budget_per_address(
    settings: Settings, caller: Client
) -> None:
    app = create_app(settings.model_copy(update={"rate_limit": "2/minute"}))
    try:
        async with await open_page(app) as http:
            visit = Page(http)
            await visit.sign_in(caller, 401, apiKey="rk_wrong")
            await visit.sign_in(caller, 401, apiKey="rk_wrong")
            refused = await visit.sign_in(caller, 429)
        assert "Too many requests" in words(refused)
    finally:
        await app.state.services.engine.dispose()


async def test_with_a_secret_key_the_cookie_is_signed(settings: Settings, caller: Client) -> None:
    signed_settings = settings.model_copy(update={"secret_key": SecretStr("k" * 40)})
    app = create_app(signed_settings)
    try:
        async with await open_page(app) as http:
            visit = Page(http)
            signed = await visit.sign_in(caller)
            value = cookie_header(signed, "roster_session").split(";")[0].split("=", 1)[1]
            session_id, _, signature = value.rpartition(".")
            assert len(signature) == 64
            assert session_id
            await visit.get("/app/")
            for forged in (session_id, f"{session_id}.{'0' * 64}"):
                http.cookies.set("roster_session", forged)
                await visit.get("/app/", 401)
    finally:
        await app.state.services.engine.dispose()


async def test_after_signing_in_the_next_page_is_on_this_site_only(
    page: Page, caller: Client
) -> None:
    for next_url, landing in (
        (f"/app/accounts/{ACCOUNT}/people?search=a", f"/app/accounts/{ACCOUNT}/people?search=a"),
        ("//evil.example/app/", "/app/"),
        ("https://evil.example/app/", "/app/"),
        ("/elsewhere", "/app/"),
    ):
        page.http.cookies.clear()
        signed = await page.sign_in(caller, apiKey=caller.api_key, next=next_url)
        assert signed.headers["location"] == landing


async def test_pages_are_not_in_the_openapi_document(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert "/" not in paths
    assert not [p for p in paths if p.startswith("/app")]


async def test_pages_carry_a_request_id_and_forbid_caching_and_other_origins(
    page: Page, caller: Client
) -> None:
    shown = await page.get("/", headers={"X-Request-Id": "web-test-1"})
    assert shown.headers["x-request-id"] == "web-test-1"
    assert shown.headers["cache-control"] == "no-store"
    policy = shown.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy


async def test_static_files_are_served_by_roster_and_kept_by_version(page: Page) -> None:
    shown = await page.get("/")
    scripts = re.findall(r'<script src="([^"]+)"', shown.text)
    assert [s.split("?")[0] for s in scripts] == ["/app/static/htmx.min.js", "/app/static/app.js"]
    versioned = await page.get(scripts[0], headers={"Accept-Encoding": "gzip"})
    assert versioned.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert versioned.headers["content-encoding"] == "gzip"
    assert b"htmx" in versioned.content
    unversioned = await page.get("/app/static/app.css")
    assert unversioned.headers["cache-control"] == "no-cache"
    await page.get("/app/static/htmx.LICENSE", 404)
    assert "pyproject" not in (await page.get("/app/static/..%2Fpyproject.toml", 404)).text[-9:]


async def test_a_page_over_the_clients_budget_is_429(settings: Settings, caller: Client) -> None:
    app = create_app(settings.model_copy(update={"rate_limit": "3/minute"}))
    try:
        async with await open_page(app) as http:
            visit = Page(http)
            await visit.sign_in(caller)
            for _ in range(3):
                await visit.get("/app/")
            refused = await visit.get("/app/", 429)
        assert "Too many requests" in words(refused)
        assert int(refused.headers["Retry-After"]) > 0
        assert refused.headers["RateLimit-Remaining"] == "0"
    finally:
        await app.state.services.engine.dispose()


# -- the directory ------------------------------------------------------------------------


async def _people(directory: Directory) -> dict[str, uuid.UUID]:
    """A few people of ACME (César also in OTHER and HIDDEN), with teams and a role."""
    return {
        "cesar": await directory.person(
            [ACCOUNT, "OTHER", "HIDDEN"],
            first_name="César",
            last_name="Treutel",
            email_address="c.treutel@acme.example",
            phone_number="+447700900123",
            job_title="Buyer",
            role_name="Admin",
        ),
        "ann": await directory.person(
            [ACCOUNT], first_name="Ann", last_name="Lee", email_address="ann@acme.example"
        ),
        "bob": await directory.person(
            [ACCOUNT],
            first_name="Bob",
            last_name="Cesari",
            email_address="bob@acme.example",
            status="deactivated",
        ),
    }


async def test_search_as_the_people_api_searches_with_accents_ignored(
    page: Page, caller: Client, directory: Directory, client: httpx.AsyncClient
) -> None:
    await _people(directory)
    await page.sign_in(caller)
    found = await page.get(f"/app/accounts/{ACCOUNT}/people?search=cesar")
    assert names_of(found) == ["Bob Cesari", "César Treutel"]
    by_api = await api(client, caller, "/people", search="cesar")
    assert count_of(found) == by_api["count"] == 2
    assert names_of(found) == [f"{r['firstName']} {r['lastName']}" for r in by_api["rows"]]
    assert "2 people" in words(found)
    # The results as the page's script asks for them: a fragment with the count.
    fragment = await page.get(
        f"/app/accounts/{ACCOUNT}/people?search=TREUTEL",
        headers={"HX-Request": "true", "HX-Target": "results"},
    )
    assert "<html" not in fragment.text
    assert names_of(fragment) == ["César Treutel"]
    assert 'hx-swap-oob="innerHTML"' in fragment.text
    assert "1 person" in words(fragment)


@given(search=st.text(alphabet="aceéilnorstuCÉ @.", max_size=6))
@PROPERTY_SETTINGS
async def test_the_page_finds_what_the_people_api_finds(
    page: Page, caller: Client, directory: Directory, client: httpx.AsyncClient, search: str
) -> None:
    if not page.token:
        await _people(directory)
        await page.sign_in(caller)
    url = f"/app/accounts/{ACCOUNT}/people?{httpx.QueryParams(search=search)}"
    shown = await page.get(url)
    by_api = await api(client, caller, "/people", search=search)
    assert await counted(page, url) == by_api["count"]
    if search.strip():
        assert count_of(shown) == by_api["count"]
    assert names_of(shown) == [f"{r['firstName']} {r['lastName']}" for r in by_api["rows"]]


async def test_filters_by_status_team_and_role_as_the_people_api(
    page: Page, caller: Client, directory: Directory, client: httpx.AsyncClient
) -> None:
    people = await _people(directory)
    cesar = await directory.persona(people["cesar"], ACCOUNT)
    team = await directory.team(ACCOUNT, "Buyers", members=[cesar])
    roles = await api(client, caller, "/roles")
    admin = next(r["id"] for r in roles["rows"] if r["name"] == "Admin")
    await page.sign_in(caller)
    base = f"/app/accounts/{ACCOUNT}/people"
    for query, expected in (
        ("status=deactivated", ["Bob Cesari"]),
        (f"teams={team}", ["César Treutel"]),
        (f"roles={admin}", ["César Treutel"]),
        ("status=active&search=lee", ["Ann Lee"]),
        ("status=&teams=&roles=&search=", ["Bob Cesari", "Ann Lee", "César Treutel"]),
    ):
        assert names_of(await page.get(f"{base}?{query}")) == expected, query
    directory_page = await page.get(base)
    assert f'<option value="{team}">Buyers</option>' in directory_page.text
    assert f'<option value="{admin}">Admin</option>' in directory_page.text
    chosen = await page.get(f"{base}?status=invited")
    assert '<option value="invited" selected>' in chosen.text


def choices_of(listed: httpx.Response) -> dict[str, str]:
    """A filter's picker: each choice's name, and where it leads."""
    found = re.findall(r'<li><a href="([^"]+)"[^>]*><span class="name">(.*?)</span>', listed.text)
    return {html.unescape(name): html.unescape(url) for url, name in found}


async def test_past_a_hundred_teams_a_team_is_chosen_on_a_searchable_page(
    page: Page, caller: Client, directory: Directory
) -> None:
    people = await _people(directory)
    cesar = await directory.persona(people["cesar"], ACCOUNT)
    buyers = await directory.team(ACCOUNT, "Buyers", members=[cesar])
    for n in range(CHOICES_LISTED):
        await directory.team(ACCOUNT, f"Team {n:03d}")
    await page.sign_in(caller)
    base = f"/app/accounts/{ACCOUNT}/people"
    shown = await page.get(f"{base}?search=ces&status=active")
    assert '<select id="teams"' not in shown.text
    assert "Team 000" not in shown.text  # no team is listed in the page
    assert '<select id="roles"' in shown.text  # a few roles: still a list
    found = re.search(r'<a id="teams" class="picker" href="([^"]+)"', shown.text)
    assert found, shown.text
    picker = html.unescape(found.group(1))
    assert picker == f"/app/accounts/{ACCOUNT}/filters/teams?search=ces&status=active"
    listed = await page.get(picker)
    assert "101 teams: the first 100 are shown; search to narrow them" in words(listed)
    assert len(choices_of(listed)) == 1 + CHOICES_LISTED
    assert choices_of(listed)["Any team"] == f"{base}?search=ces&status=active"
    # Searched as the People API searches: accents and case ignored.
    narrowed = await page.get(f"{picker}&find=B%C3%9CYERS")
    assert choices_of(narrowed) == {
        "Any team": f"{base}?search=ces&status=active",
        "Buyers": f"{base}?search=ces&status=active&teams={buyers}",
    }
    assert "1 team" in words(narrowed)
    chosen = await page.get(choices_of(narrowed)["Buyers"])
    assert names_of(chosen) == ["César Treutel"]
    assert f'<input type="hidden" name="teams" value="{buyers}">' in chosen.text
    assert re.search(r'<a id="teams" class="picker"[^>]*><span>Buyers</span>', chosen.text)
    # As the page's script asks while typing: the list, and its count out of band.
    fragment = await page.get(
        f"{picker}&find=team+05", headers={"HX-Request": "true", "HX-Target": "choices"}
    )
    assert "<html" not in fragment.text
    expected = [f"Team {n:03d}" for n in range(CHOICES_LISTED) if "05" in f"{n:03d}"]
    assert list(choices_of(fragment))[1:] == expected
    assert f'id="choices-count" hx-swap-oob="innerHTML">{len(expected)} teams<' in fragment.text
    await page.get(f"/app/accounts/{ACCOUNT}/filters/budgets", 404)
    await page.get("/app/accounts/HIDDEN/filters/teams", 404)


async def test_a_bad_query_in_the_address_is_named_beside_its_field(
    page: Page, caller: Client
) -> None:
    await page.sign_in(caller)
    shown = await page.get(f"/app/accounts/{ACCOUNT}/people?status=bogus&teams=nope", 400)
    assert "'bogus' is not one of" in error_beside(shown, "status")
    assert "'nope' is not a UUID" in error_beside(shown, "teams")
    too_long = await page.get(f"/app/accounts/{ACCOUNT}/people?search={'x' * 101}", 400)
    assert "at most 100 characters" in error_beside(too_long, "search")
    count = await page.get(
        f"/app/accounts/{ACCOUNT}/people?status=bogus",
        400,
        headers={"HX-Request": "true", "HX-Target": "count"},
    )
    assert count.text == "Check the search above."


async def test_more_pages_through_the_whole_account_in_name_order(
    page: Page, caller: Client, directory: Directory, client: httpx.AsyncClient
) -> None:
    url = f"/app/accounts/{ACCOUNT}/people"
    for n in range(120):
        await directory.person([ACCOUNT], first_name=f"P{n:03d}", last_name=f"L{n % 7}")
        if n == 49:  # exactly one page: no more
            await page.sign_in(caller)
            one = await page.get(url)
            assert len(names_of(one)) == 50
            assert 'id="more-row"' not in one.text
            assert await counted(page, url) == 50
    first = await page.get(url)
    names = names_of(first)
    assert len(names) == 50
    # The whole account's first page is not counted before it is sent: the page's
    # script asks for the count once the page is shown.
    assert 'data-count="' not in first.text
    asks = f'<p id="count" class="count" role="status" hx-get="{url}" hx-trigger="load"'
    assert asks in first.text
    assert "50 people shown, more below." in words(first)
    assert await counted(page, url) == 120
    more = re.search(r'<tr id="more-row".*?hx-get="([^"]+)"', first.text, re.S)
    while more:
        following = await page.get(
            html.unescape(more.group(1)), headers={"HX-Request": "true", "HX-Target": "more-row"}
        )
        assert "<table" not in following.text
        names += names_of(following)
        more = re.search(r'<tr id="more-row".*?hx-get="([^"]+)"', following.text, re.S)
    by_api = await api(client, caller, "/people", limit=1000)
    assert names == [f"{r['firstName']} {r['lastName']}" for r in by_api["rows"]]


async def test_an_unreachable_account_is_not_found_like_a_missing_one(
    page: Page, caller: Client
) -> None:
    await page.sign_in(caller)
    hidden = await page.get("/app/accounts/HIDDEN/people", 404)
    missing = await page.get("/app/accounts/NOPE/people", 404)
    assert "There is no account 'HIDDEN' that you can reach." in words(hidden)
    assert "There is no account 'NOPE' that you can reach." in words(missing)
    assert "Not found" in words(await page.get("/app/nothing/here", 404))


# -- the card -------------------------------------------------------------------------------


async def test_the_card_shows_every_embed_and_the_other_accounts_this_client_reaches(
    page: Page, caller: Client, directory: Directory
) -> None:
    people = await _people(directory)
    cesar = await directory.persona(people["cesar"], ACCOUNT)
    ann = await directory.persona(people["ann"], ACCOUNT)
    await directory.team(ACCOUNT, "Buyers", members=[cesar])
    await directory.team(ACCOUNT, "Owned team", owner=cesar)
    await directory.budget(ACCOUNT, "Travel", "individual", owner=cesar)
    await directory.address(ACCOUNT, cesar, address_line1="9 Rue Haute", city="Lyon")
    async with unit_of_work(directory.engine, write=True) as conn:
        await conn.execute(
            update(personas).where(personas.c.id == cesar).values(created_by_persona_id=ann)
        )
    await page.sign_in(caller)
    card = await page.get(f"/app/accounts/{ACCOUNT}/people/{people['cesar']}")
    shown = words(card)
    for expected in (
        "César Treutel",
        "c.treutel@acme.example",
        "+447700900123",
        "Buyer",
        "Admin",
        "Buyers",
        "Owned team team",
        "Travel budget",
        "9 Rue Haute",
        "Lyon",
        "Created by Ann Lee",
        "Other Co OTHER",
    ):
        assert expected in shown, expected
    assert "Hidden Co" not in shown  # the client does not reach HIDDEN
    assert f'href="/app/accounts/{ACCOUNT}/people/{people["ann"]}"' in card.text
    await page.get(f"/app/accounts/{ACCOUNT}/people/{uuid.uuid4()}", 404)
    await page.get(f"/app/accounts/{ACCOUNT}/people/not-a-uuid", 404)


async def _edit(page: Page, caller: Client, directory: Directory) -> tuple[uuid.UUID, str]:
    people = await _people(directory)
    await page.sign_in(caller)
    persona = await directory.persona(people["cesar"], ACCOUNT)
    await page.get(f"/app/accounts/{ACCOUNT}/people/{people['cesar']}")
    return people["cesar"], f"/app/accounts/{ACCOUNT}/personas/{persona}"


DETAILS = {
    "status": "active",
    "roleName": "Admin",
    "jobTitle": "Buyer",
    "emailAddress": "",
    "workNumber": "",
}


async def test_editing_shows_the_people_apis_error_beside_the_field_and_changes_nothing(
    page: Page, caller: Client, directory: Directory, client: httpx.AsyncClient
) -> None:
    person, url = await _edit(page, caller, directory)
    bad = {**DETAILS, "emailAddress": "not an email", "jobTitle": "x" * 300}
    shown = await page.post(url, bad, 400, headers={"HX-Request": "true", "HX-Target": "card"})
    persona_id = url.rsplit("/", 1)[1]
    by_api = await client.patch(
        f"/personas/{persona_id}?accountId={ACCOUNT}",
        json={"emailAddress": "not an email", "jobTitle": "x" * 300},
        headers=caller.headers,
    )
    problems = {d["field"]: d["problem"] for d in by_api.json()["error"]["details"]}
    beside = {
        "emailAddress": error_beside(shown, "edit-emailAddress"),
        "jobTitle": error_beside(shown, "edit-jobTitle"),
    }
    assert {k: v.lower() for k, v in beside.items()} == {k: v.lower() for k, v in problems.items()}
    assert 'value="not an email"' in shown.text  # what was typed stays in the field
    row = (await api(client, caller, "/people", people=str(person)))["rows"][0]
    assert row["persona"]["emailAddress"] is None
    assert row["persona"]["jobTitle"] == "Buyer"


async def test_an_unknown_role_is_422_beside_the_role_and_rolls_back_the_rest(
    page: Page, caller: Client, directory: Directory, client: httpx.AsyncClient
) -> None:
    person, url = await _edit(page, caller, directory)
    shown = await page.post(url, {**DETAILS, "roleName": "Wizard", "jobTitle": "Chief"}, 422)
    assert "There is no role 'Wizard'" in error_beside(shown, "edit-roleName")
    row = (await api(client, caller, "/people", people=str(person)))["rows"][0]
    assert row["persona"]["jobTitle"] == "Buyer"


async def test_editing_changes_the_persona_as_the_people_api_would(
    page: Page, caller: Client, directory: Directory, client: httpx.AsyncClient
) -> None:
    person, url = await _edit(page, caller, directory)
    changed = {
        "status": "invited",
        "roleName": "viewer",
        "jobTitle": "Head buyer",
        "emailAddress": "cesar@work.example",
        "workNumber": "020 7946 0000",
    }
    saved = await page.post(url, changed)
    assert saved.headers["location"] == f"/app/accounts/{ACCOUNT}/people/{person}"
    row = (await api(client, caller, "/people", people=str(person), include="persona.roles"))[
        "rows"
    ][0]
    persona = row["persona"]
    assert (persona["status"], persona["jobTitle"]) == ("invited", "Head buyer")
    assert (persona["emailAddress"], persona["workNumber"]) == (
        "cesar@work.example",
        "020 7946 0000",
    )
    assert persona["roles"][0]["name"] == "Viewer"
    # Search sees the new work number at once (the derived columns were refreshed).
    assert count_of(await page.get(f"/app/accounts/{ACCOUNT}/people?search=79460000")) == 1
    # From the page's script, the card itself comes back, saying so.
    again = await page.post(
        url, {**changed, "workNumber": ""}, 200, headers={"HX-Request": "true", "HX-Target": "card"}
    )
    assert again.text.startswith('\n<article id="card"') or '<article id="card"' in again.text
    assert "Saved." in words(again)
    assert "<html" not in again.text


async def test_team_memberships_are_added_and_removed(
    page: Page, caller: Client, directory: Directory, client: httpx.AsyncClient
) -> None:
    person, url = await _edit(page, caller, directory)
    team = await directory.team(ACCOUNT, "Buyers")
    await page.post(f"{url}/teams", {"add": str(team)})
    row = await api(client, caller, "/people", people=str(person), include="persona.teams")
    assert [t["name"] for t in row["rows"][0]["persona"]["teams"]] == ["Buyers"]
    await page.post(f"{url}/teams", {"remove": str(team)})
    row = await api(client, caller, "/people", people=str(person), include="persona.teams")
    assert row["rows"][0]["persona"]["teams"] == []
    missing = await page.post(f"{url}/teams", {"add": str(uuid.uuid4())}, 404)
    assert "There is no team" in error_beside(missing, "add")
    assert "Choose a team" in error_beside(await page.post(f"{url}/teams", {"add": ""}, 400), "add")


def changes_of(card: httpx.Response) -> list[str]:
    """The lines of a card's "Recent changes", newest first, as read."""
    listed = card.text.split('id="changes-heading"', 1)[1].split("</ol>", 1)[0]
    return [
        " ".join(html.unescape(re.sub(r"<[^>]+>", " ", item)).split())
        for item in re.findall(r"<li>(.*?)</li>", listed, re.S)
    ]


async def test_the_card_shows_its_recent_changes_who_what_and_when(
    page: Page, caller: Client, directory: Directory, client: httpx.AsyncClient
) -> None:
    people = await _people(directory)
    editor = await directory.client([ACCOUNT, "OTHER"], name="Zoë the office manager")
    await page.sign_in(editor)
    card_url = f"/app/accounts/{ACCOUNT}/people/{people['cesar']}"
    persona = await directory.persona(people["cesar"], ACCOUNT)
    url = f"/app/accounts/{ACCOUNT}/personas/{persona}"
    await page.get(card_url)
    await page.post(url, {**DETAILS, "jobTitle": "Head buyer", "workNumber": "020 7946 0000"})
    # Neither another person's change nor César's own on another account is his here.
    ann = await directory.persona(people["ann"], ACCOUNT)
    await page.post(f"/app/accounts/{ACCOUNT}/personas/{ann}", {**DETAILS, "jobTitle": "Chef"})
    other = await directory.persona(people["cesar"], "OTHER")
    await page.post(f"/app/accounts/OTHER/personas/{other}", {**DETAILS, "jobTitle": "Elsewhere"})
    card = await page.get(card_url)
    shown = changes_of(card)
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d UTC Zoë the office manager changed them on this "
        r"account: (job title, work number|work number, job title)",
        shown[0],
    ), shown
    assert "created this person" in shown[-1]
    assert not any("Chef" in line or "Elsewhere" in line for line in shown)
    # The same events as the account's feed has about this person, newest first.
    feed = [
        event
        for event in (await api(client, editor, "/events"))["events"]
        if event["resource"]["id"] in (str(people["cesar"]), str(persona))
    ]
    assert len(shown) == len(feed) == 2
    assert 'datetime="' + feed[-1]["occurredAt"] + '"' in card.text
    # The newest ten, of many.
    for n in range(11):
        await page.post(url, {**DETAILS, "jobTitle": f"Buyer {n}"})
    shown = changes_of(await page.get(card_url))
    assert len(shown) == 10
    assert all("changed them on this account: job title" in line for line in shown)


async def test_a_client_without_write_scope_sees_no_form_and_cannot_post_one(
    page: Page, caller: Client, directory: Directory
) -> None:
    people = await _people(directory)
    reader = await directory.client([ACCOUNT], scopes=["read"])
    await page.sign_in(reader)
    card = await page.get(f"/app/accounts/{ACCOUNT}/people/{people['cesar']}")
    assert "Save" not in words(card)
    assert "Add to team" not in words(card)
    persona = await directory.persona(people["cesar"], ACCOUNT)
    refused = await page.post(f"/app/accounts/{ACCOUNT}/personas/{persona}", DETAILS, 403)
    assert "'write' scope" in words(refused)


@given(value=st.text(st.characters(codec="utf-8", exclude_categories=["Cc", "Cs"]), min_size=1))
@PROPERTY_SETTINGS
async def test_any_stored_text_is_shown_as_text_never_as_markup(
    page: Page, caller: Client, directory: Directory, value: str
) -> None:
    if not value.strip():
        return
    if not page.token:
        await page.sign_in(caller)
    title = f"<b>{value[:200]}</b>"
    person = await directory.person([ACCOUNT], first_name="X", last_name="Y", job_title=title)
    card = await page.get(f"/app/accounts/{ACCOUNT}/people/{person}")
    assert "<b>" not in card.text.split('<article id="card"', 1)[1]
    assert " ".join(title.split()) in words(card)  # shown, as the text it is


@pytest.mark.slow
def test_the_wheel_carries_the_pages_templates_and_files(tmp_path: Path) -> None:
    """`pip install .` serves the page: its templates and static files are in the wheel."""
    root = Path(__file__).parents[1]
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(root), "--no-deps", "-q", "-w", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    [wheel] = tmp_path.glob("roster-*.whl")
    packed = set(zipfile.ZipFile(wheel).namelist())
    web = root / "src" / "roster" / "api" / "web"
    needed = {
        f"roster/api/web/{path.relative_to(web).as_posix()}"
        for folder in ("templates", "static")
        for path in (web / folder).iterdir()
    }
    assert needed <= packed, needed - packed
    assert "roster/migrations/versions/20261127_0005_web_sessions.py" in packed
