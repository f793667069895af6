"""The web page in a real browser: Debian's Chromium driven by Playwright, against a real
`roster serve` on each backend (spec/web.md, issue 16).

Every screen is checked with axe-core (tests/vendor/axe-core: no serious or critical
violation) and photographed at 1280 and 375 px wide into tests/screenshots/. Every request
a page makes is recorded: none may leave the server's own host. Without Chromium or
Playwright these tests are skipped, saying so; with CI=true they fail instead.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bench import data
from bench.browser import in_ci, sign_in
from bench.server import serve
from roster.api.web.pages import CHOICES_LISTED
from roster.core.accounts import create_account
from roster.core.auth import ClientCredentials, create_client
from roster.core.people.addresses import add_address
from roster.core.people.teams_and_budgets import create_budget, create_team
from roster.core.writer import PersonWrite, write_persons
from roster.db.engine import create_engine, unit_of_work
from roster.db.tables import personas
from roster.settings import Settings
from tests.browser import chromium
from tests.commands import succeeds
from tests.conftest import BACKENDS
from tests.factories import reset_database

try:
    from playwright.sync_api import expect
except ImportError:  # pragma: no cover - depends on the machine
    if in_ci():
        raise
    pytest.skip(
        "BROWSER TESTS SKIPPED: Playwright is not installed (pip install -e '.[dev]')",
        allow_module_level=True,
    )

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page, Route

pytestmark = pytest.mark.slow

SCREENSHOTS = Path(__file__).parent / "screenshots"
AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
WIDTHS = (1280, 375)
#: The spec's narrowest screen: readable, with nothing to scroll sideways.
NARROWEST = 320
ACME = "ACME"
#: Several thousand: paged to the end 50 at a time.
PEOPLE = 2345
BRANCHES = [f"B{n:02d}" for n in range(1, 12)]


@dataclass
class Site:
    """A served directory and what the tests know about it."""

    backend: str
    database_url: str
    base_url: str
    writer: ClientCredentials
    reader: ClientCredentials
    revocable: ClientCredentials
    cesar: uuid.UUID
    buyers: uuid.UUID

    def api(self, path: str, **params: Any) -> Any:
        answer = httpx.get(
            self.base_url + path,
            params={"accountId": ACME, **params},
            headers={"Authorization": f"ApiKey {self.writer.api_key}"},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        return answer.json()


def in_database(database_url: str, work: Callable[[AsyncEngine], Any]) -> Any:
    async def run() -> Any:
        engine = create_engine(Settings(_env_file=None, database_url=database_url))
        try:
            return await work(engine)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _items() -> list[PersonWrite]:
    """ACME's people: the benchmark's generated ones, and a few the tests look for."""
    special = [
        ({"first_name": "César", "last_name": "Treutel", "email_address": "c.treutel@acme.example",
          "phone_number": "+447700900123"}, {ACME, "OTHER", "HIDDEN"},
         {"job_title": "Buyer", "role_name": "Admin"}),
        ({"first_name": "Ann", "last_name": "Lee", "email_address": "ann.lee@acme.example"},
         {ACME}, {}),
        ({"first_name": "Bob", "last_name": "Cesari", "email_address": "bob@acme.example"},
         {ACME}, {"status": "deactivated"}),
        ({"first_name": "Zoë", "last_name": "Ångström", "email_address": "zoe@acme.example"},
         {ACME}, {"job_title": "Analyst"}),
    ]  # fmt: skip
    generated = data.people(ACME, PEOPLE - len(special), data.name_pools())
    items = [
        PersonWrite(person, frozenset(accounts), persona) for person, accounts, persona in special
    ]
    for row in generated:
        person = {k: row[k] for k in ("first_name", "last_name", "email_address", "external_ref")}
        persona = {k: row[k] or None for k in data.COLUMNS[5:]}
        items.append(
            PersonWrite({**person, "phone_number": row["phone_number"]}, frozenset([ACME]), persona)
        )
    return items


async def _build(engine: AsyncEngine) -> dict[str, Any]:
    await reset_database(engine)
    async with unit_of_work(engine, write=True) as conn:
        for account, name in (
            (ACME, "Acme Ltd"),
            ("OTHER", "Other Co"),
            ("HIDDEN", "Hidden Co"),
            *((b, f"Branch {b}") for b in BRANCHES),
        ):
            await create_account(conn, account, name)
        outcomes = await write_persons(conn, _items(), region="GB")
        assert all(o.error is None for o in outcomes), [o.error for o in outcomes if o.error]
        cesar, ann = outcomes[0].person_id, outcomes[1].person_id
        assert cesar is not None
        assert ann is not None
        persona_of: dict[uuid.UUID, uuid.UUID] = {}
        for person in (cesar, ann):
            found = await conn.scalar(
                select(personas.c.id).where(
                    personas.c.person_id == person, personas.c.account_id == ACME
                )
            )
            assert found is not None
            persona_of[person] = found
        buyers = await create_team(conn, ACME, "Buyers", None, [persona_of[cesar]])
        await create_team(conn, ACME, "Support", persona_of[cesar], [])
        for n in range(CHOICES_LISTED):  # more than the team filter lists: a picker
            await create_team(conn, ACME, f"Team {n:03d}", None, [])
        await create_budget(conn, ACME, "Travel of César", "individual", persona_of[cesar], [])
        address = {
            "type": "work",
            "address_line1": "9 Rue Haute",
            "city": "Lyon",
            "postcode": "69001",
            "country_code": "FR",
        }
        await add_address(conn, ACME, persona_of[cesar], address)
        await conn.execute(
            update(personas)
            .where(personas.c.id == persona_of[cesar])
            .values(created_by_persona_id=persona_of[ann])
        )
        reach = [ACME, "OTHER", *BRANCHES]
        return {
            "writer": await create_client(conn, "Office manager", ["read", "write"], reach),
            "reader": await create_client(conn, "Reader", ["read"], [ACME]),
            "revocable": await create_client(conn, "Soon revoked", ["read", "write"], [ACME]),
            "cesar": cesar,
            "buyers": buyers.id,
        }


@pytest.fixture(scope="module")
def browser(site: Site) -> Iterator[Browser]:
    """A browser per site: Playwright's loop must be gone while the next site is built."""
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module", params=BACKENDS)
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    database_url = str(request.getfixturevalue(f"{request.param}_url"))
    made = in_database(database_url, _build)
    logs = tmp_path_factory.mktemp(f"web-{request.param}")
    with serve(database_url, workers=1, log_dir=logs) as server:
        yield Site(request.param, database_url, server.base_url, **made)


@dataclass
class Visit:
    """One browser context on the site: its page, and every request the page made."""

    site: Site
    page: Page
    requested: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)

    def sign_in(self, credentials: ClientCredentials | None = None) -> None:
        sign_in(self.page, self.site.base_url, (credentials or self.site.writer).api_key)

    def go(self, path: str) -> None:
        self.page.goto(self.site.base_url + path)

    def screen(self, name: str) -> None:
        """axe-core finds no serious or critical violation on this screen, at either width;
        a screenshot at each width is kept; at 320 px nothing is wider than the screen."""
        page = self.page
        page.set_viewport_size({"width": NARROWEST, "height": 900})
        wide = page.evaluate("() => document.documentElement.scrollWidth")
        assert wide <= NARROWEST, f"{name} is {wide} px wide on a {NARROWEST} px screen"
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 900})
            violations = axe_violations(page)
            assert not violations, f"{name} at {width}px: {violations}"
            SCREENSHOTS.mkdir(exist_ok=True)
            page.screenshot(
                path=SCREENSHOTS / f"{name}-{width}.png",
                full_page=True,
                caret="initial",
                animations="disabled",
            )
        page.set_viewport_size({"width": WIDTHS[0], "height": 900})

    def results(self, search: str) -> list[str]:
        """The names listed once the results of ``search`` are shown."""
        self.page.wait_for_selector(f'#results[data-search="{search}"]', state="attached")
        return [" ".join(n.split()) for n in self.page.locator("#rows a.person").all_inner_texts()]


def axe_violations(page: Page) -> list[dict[str, Any]]:
    if page.evaluate("() => typeof window.axe") == "undefined":
        page.evaluate(AXE.read_text())
    found: list[dict[str, Any]] = page.evaluate(
        """async () => (await axe.run(document, {resultTypes: ["violations"]})).violations
            .filter((v) => v.impact === "serious" || v.impact === "critical")
            .map((v) => ({id: v.id, impact: v.impact, help: v.help,
                          nodes: v.nodes.slice(0, 5).map((n) => n.target.join(" "))}))"""
    )
    return found


@pytest.fixture
def visit(site: Site, browser: Browser) -> Iterator[Visit]:
    context: BrowserContext = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    own = urlsplit(site.base_url).netloc
    seen = Visit(site, context.new_page())
    context.on("request", lambda request: seen.requested.append(request.url))

    def only_this_host(route: Route) -> None:
        url = route.request.url
        if urlsplit(url).netloc == own:
            route.continue_()
        else:
            seen.blocked.append(url)
            route.abort()

    context.route("**/*", only_this_host)
    yield seen
    context.close()
    assert not seen.blocked, f"requests to other hosts: {seen.blocked}"
    elsewhere = [u for u in seen.requested if urlsplit(u).netloc not in (own, "")]
    assert not elsewhere, elsewhere


def focus_is_visible(page: Page) -> dict[str, Any]:
    """The focused element, and whether its focus ring shows."""
    found: dict[str, Any] = page.evaluate(
        """() => {
            const e = document.activeElement;
            const style = getComputedStyle(e);
            return {id: e.id, text: e.innerText || e.value || "", tag: e.tagName,
                    ring: style.outlineStyle !== "none" && parseFloat(style.outlineWidth) > 0};
        }"""
    )
    assert found["ring"], f"no visible focus on {found}"
    return found


# -- the tests ------------------------------------------------------------------------------


def test_sign_in_choose_an_account_search_with_accents_and_filter(visit: Visit) -> None:
    page = visit.page
    visit.go("/")
    visit.screen("sign-in")
    page.get_by_label("API key").fill("rk_not_a_key")
    page.get_by_role("button", name="Sign in", exact=True).click()
    assert "wrong, or its client was revoked" in page.locator("#apiKey-error").inner_text()
    visit.screen("sign-in-error")
    visit.sign_in()
    assert page.url.endswith("/app/")
    # The key stayed on the server: no script can read the cookie, no storage holds it
    # (htmx keeps only the current address there: its page cache is off).
    cookie, stored, shown = page.evaluate(
        """() => [document.cookie,
                  Object.entries({...localStorage, ...sessionStorage}),
                  document.documentElement.outerHTML]"""
    )
    assert cookie == ""
    assert [name for name, _ in stored] == ["htmx-current-path-for-history"]
    assert visit.site.writer.api_key not in str(stored) + shown
    visit.screen("accounts")
    expect(page.locator("#accounts-count")).to_have_text(f"{len(BRANCHES) + 2} accounts")
    page.get_by_label("Search accounts").press_sequentially("acme")
    expect(page.locator("#accounts-count")).to_have_text("1 account")
    page.locator("#accounts a").filter(has_text="Acme Ltd").click()
    page.wait_for_url(f"**/app/accounts/{ACME}/people")
    expect(page.locator("#count")).to_have_text(f"{PEOPLE:,} people")  # asked after loading
    visit.screen("people")

    entries = page.evaluate("() => history.length")
    page.get_by_label("Search people").press_sequentially("cesar", delay=120)
    found = visit.results("cesar")
    # Each key's results replaced the address: typing adds no step to Back.
    assert page.evaluate("() => history.length") == entries
    assert {"César Treutel", "Bob Cesari"} <= set(found)  # accents and case ignored
    by_api = visit.site.api("/people", search="cesar", limit=50)
    assert found == [f"{r['firstName']} {r['lastName']}" for r in by_api["rows"]]
    assert page.locator("#count").inner_text() == f"{by_api['count']} people"
    assert "search=cesar" in page.url
    visit.screen("search")

    page.get_by_label("Status").select_option("deactivated")
    page.wait_for_url("**status=deactivated**")
    assert page.evaluate("() => history.length") == entries + 1  # a filter is a step
    deactivated = visit.site.api("/people", search="cesar", status="deactivated", limit=50)
    assert "Bob Cesari" in visit.results("cesar")
    assert visit.results("cesar") == [
        f"{r['firstName']} {r['lastName']}" for r in deactivated["rows"]
    ]
    page.go_back()
    page.wait_for_url(re.compile(r".*search=cesar$"))
    assert visit.results("cesar") == found
    assert page.get_by_label("Status").input_value() == ""

    search = page.get_by_label("Search people")
    search.fill("zzqq")
    assert visit.results("zzqq") == []
    assert page.locator("#count").inner_text() == "No one matches “zzqq”."
    visit.screen("no-match")

    # A team, of more than the filter lists: chosen on a searchable page of the account's
    # teams, the search typed so far kept.
    search.fill("treu")
    assert visit.results("treu") == ["César Treutel"]
    page.get_by_label("Team").click()
    page.wait_for_url(f"**/app/accounts/{ACME}/filters/teams?search=treu")
    expect(page.locator("#choices-count")).to_contain_text(
        f"{CHOICES_LISTED + 2} teams: the first {CHOICES_LISTED} are shown"
    )
    visit.screen("choose-team")
    page.get_by_label("Search teams").press_sequentially("BÜY")  # accents and case ignored
    expect(page.locator("#choices-count")).to_have_text("1 team")
    page.locator("#choices a").filter(has_text="Buyers").click()
    page.wait_for_url(f"**/people?search=treu&teams={visit.site.buyers}")
    assert visit.results("treu") == ["César Treutel"]
    expect(page.get_by_label("Team")).to_contain_text("Buyers")
    by_api = visit.site.api("/people", search="treu", teams=str(visit.site.buyers))
    assert [r["lastName"] for r in by_api["rows"]] == ["Treutel"]
    visit.screen("team-chosen")
    page.get_by_label("Team").click()
    page.locator("#choices a").filter(has_text="Any team").click()
    page.wait_for_url("**/people?search=treu")
    assert visit.results("treu") == ["César Treutel"]

    # A bookmarked query: the address alone gives the same page.
    visit.go(f"/app/accounts/{ACME}/people?search=TREUTEL&teams={visit.site.buyers}")
    assert visit.results("TREUTEL") == ["César Treutel"]
    expect(page.get_by_label("Team")).to_contain_text("Buyers")


def test_more_pages_to_the_end_of_an_account_of_several_thousand(visit: Visit) -> None:
    page = visit.page
    visit.sign_in()
    visit.go(f"/app/accounts/{ACME}/people")
    names = page.locator("#rows a.person")
    more = page.locator("#more-row a")
    shown = names.count()
    assert shown == 50
    while more.count():
        more.click()
        expected = min(shown + 50, PEOPLE)
        names.nth(expected - 1).wait_for()
        shown = names.count()
        assert shown == expected
    assert shown == PEOPLE
    last = visit.site.api("/people", offset=PEOPLE - 1, limit=1)["rows"][0]
    assert " ".join(names.last.inner_text().split()) == f"{last['firstName']} {last['lastName']}"


def test_a_card_and_an_edit_with_the_error_beside_the_field(visit: Visit) -> None:
    page = visit.page
    visit.sign_in()
    visit.go(f"/app/accounts/{ACME}/people?search=treutel")
    page.get_by_role("link", name="César Treutel").click()
    page.wait_for_url(f"**/people/{visit.site.cesar}")
    card = page.locator("#card")
    for shown in ("9 Rue Haute", "Lyon", "Buyers", "Travel of César", "Ann Lee", "Other Co"):
        assert shown in card.inner_text(), shown
    assert "Hidden Co" not in card.inner_text()
    visit.screen("card")

    page.get_by_label("Work email").fill("not an email")
    page.get_by_role("button", name="Save").click()
    error = page.locator("#edit-emailAddress-error")
    error.wait_for()
    assert error.inner_text() == "Must be an email address (name@domain)"
    field = page.get_by_label("Work email")
    assert field.get_attribute("aria-invalid") == "true"
    expect(field).to_be_focused()  # the field at fault takes the focus
    visit.screen("card-error")

    field.fill("cesar.treutel@work.example")
    page.get_by_label("Job title").fill("Head buyer")
    page.get_by_role("button", name="Save").click()
    page.locator("#saved").wait_for()
    page.reload()
    assert page.get_by_label("Work email").input_value() == "cesar.treutel@work.example"
    assert "Head buyer" in page.locator(".summary").inner_text()
    # The card's recent changes: who (the signed-in client), what, when; newest first.
    newest = page.locator("ol.changes > li").first.inner_text()
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d UTC Office manager changed them on this account: "
        r"(job title, work email|work email, job title)",
        " ".join(newest.split()),
    ), newest
    visit.screen("card-changes")

    page.get_by_label("Add to team").select_option(label="Support")
    page.get_by_role("button", name="Add", exact=True).click()
    remove = page.get_by_role("button", name="Remove from Support")
    remove.click()
    expect(remove).to_have_count(0)
    assert "Support" not in page.locator(".teams").inner_text()
    expect(page.locator("#saved")).to_be_focused()  # the focus is not lost


def test_everything_by_keyboard_alone(visit: Visit) -> None:
    page = visit.page
    keyboard = page.keyboard
    visit.go("/")
    assert focus_is_visible(page)["id"] == "apiKey"  # the form's field has the focus
    keyboard.type(visit.site.writer.api_key)
    keyboard.press("Enter")
    page.wait_for_url("**/app/")
    keyboard.press("/")
    assert focus_is_visible(page)["id"] == "account-search"
    keyboard.type("acme")
    expect(page.locator("#accounts-count")).to_have_text("1 account")
    keyboard.press("ArrowDown")
    assert "Acme Ltd" in focus_is_visible(page)["text"]
    keyboard.press("Enter")
    page.wait_for_url(f"**/app/accounts/{ACME}/people")

    keyboard.press("/")
    assert focus_is_visible(page)["id"] == "search"
    keyboard.type("treutel")
    assert visit.results("treutel") == ["César Treutel"]
    keyboard.press("ArrowDown")
    assert "César" in focus_is_visible(page)["text"]
    keyboard.press("ArrowUp")
    assert focus_is_visible(page)["id"] == "search"
    keyboard.press("ArrowDown")
    keyboard.press("Enter")
    page.wait_for_url(f"**/people/{visit.site.cesar}")

    for _ in range(80):  # Tab through the card to the edit form's work number
        keyboard.press("Tab")
        if focus_is_visible(page)["id"] == "edit-workNumber":
            break
    else:
        pytest.fail("Tab never reached the work number")
    keyboard.press("Control+A")
    keyboard.type("+44 20 7946 0999")
    keyboard.press("Enter")
    page.locator("#saved").wait_for()
    assert page.get_by_label("Work number").input_value() == "+44 20 7946 0999"

    page.go_back()  # the browser's Back (its Alt+Left is the browser's, not the page's)
    page.wait_for_url(re.compile(r".*/people\?search=treutel$"))
    assert visit.results("treutel") == ["César Treutel"]
    assert page.get_by_label("Search people").input_value() == "treutel"


def test_sign_out_and_a_revoked_keys_session(visit: Visit) -> None:
    page = visit.page
    visit.sign_in()
    visit.go(f"/app/accounts/{ACME}/people")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/?signed-out")
    assert "You have signed out." in page.locator("main").inner_text()
    visit.screen("signed-out")
    page.go_back()
    page.get_by_label("API key").wait_for()  # the page asked for needs signing in again

    visit.sign_in(visit.site.revocable)
    visit.go(f"/app/accounts/{ACME}/people")
    expect(page.locator("#count")).to_have_text(f"{PEOPLE:,} people")  # its last request
    succeeds(visit.site.database_url, "clients", "revoke", visit.site.revocable.client_id)
    page.get_by_label("Search people").press_sequentially("lee")
    page.get_by_text("Your session has ended: sign in again.").wait_for()
    assert page.get_by_label("API key").is_visible()
    visit.screen("session-ended")


def test_an_error_is_a_page_too(visit: Visit) -> None:
    visit.sign_in()
    visit.go("/app/accounts/NOPE/people")
    assert "There is no account 'NOPE' that you can reach." in visit.page.inner_text("main")
    visit.screen("not-found")


def test_a_read_only_client_sees_the_card_without_its_forms(visit: Visit) -> None:
    visit.sign_in(visit.site.reader)
    visit.go(f"/app/accounts/{ACME}/people/{visit.site.cesar}")
    assert visit.page.get_by_role("button", name="Save").count() == 0
    visit.screen("card-read-only")
