"""``roster demo``: a realistic account full of fake people, so every filter and embed of
``GET /people`` has something to show.

People come from Faker in several locales (accented names, local phone formats and
addresses) and are written through the writer (core/writer.py), like an import, so their
derived columns are right. Around them: personas of every status, the six core
roles and two custom ones, teams with members and primary owners, budgets of every
type, postal addresses, and ``createdBy`` links. The same seed gives the same
people (names, emails, values); ids are random.
"""

from __future__ import annotations

import random
import unicodedata
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, TypeVar

from faker import Faker
from sqlalchemy import Column, Table, func, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from roster.core.accounts import create_account
from roster.core.clock import now
from roster.core.events import append_events, created_event
from roster.core.matching import phone_key
from roster.core.people.embeds import Address
from roster.core.people.roles import Role
from roster.core.people.teams_and_budgets import BUDGETS, TEAMS, Budget, Team
from roster.core.writer import (
    LOOKUP_COLUMNS,
    MAX_BATCH,
    LoadStatistics,
    PersonaById,
    PersonWrite,
    Written,
    analyze_persons,
    write_persons,
)
from roster.db.backends import backend_for
from roster.db.engine import unit_of_work
from roster.db.tables import (
    CORE_ROLES,
    PERSONA_STATUSES,
    accounts,
    addresses,
    budget_members,
    budgets,
    events,
    personas,
    persons,
    roles,
    team_members,
    teams,
)
from roster.errors import Conflict, InvalidRequest
from roster.settings import Settings

T = TypeVar("T")

DEFAULT_ACCOUNT = "DEMO"
DEFAULT_PEOPLE = 1000
DEFAULT_SEED = 2026
CUSTOM_ROLES = ("Travel Booker", "Team Lead")
#: The tables the demo fills, analyzed once it has: without statistics PostgreSQL plans
#: for empty tables until autovacuum gets round to them (a SCIM ``emails[value eq ...]``
#: filter took ~500 ms instead of 5 ms), and SQLite misjudges its indexes.
FILLED = (
    accounts,
    persons,
    personas,
    roles,
    teams,
    team_members,
    budgets,
    budget_members,
    addresses,
    events,
)
#: Locale, ISO country code, nationality.
LOCALES = (
    ("en_GB", "GB", "British"),
    ("fr_FR", "FR", "French"),
    ("de_DE", "DE", "German"),
    ("es_ES", "ES", "Spanish"),
    ("it_IT", "IT", "Italian"),
    ("pt_PT", "PT", "Portuguese"),
    ("pl_PL", "PL", "Polish"),
    ("sv_SE", "SE", "Swedish"),
    ("cs_CZ", "CZ", "Czech"),
)
#: Mostly active people; every other status appears too.
STATUS_WEIGHTS = {
    "active": 70,
    "invited": 10,
    "created": 8,
    "deactivated": 7,
    "inviteExpired": 5,
}
ROLE_WEIGHTS = {
    "User": 60,
    "Viewer": 8,
    "Payer": 6,
    "Accountant": 5,
    "Admin": 5,
    "Owner": 2,
    "Travel Booker": 8,
    "Team Lead": 6,
}
TEAM_NAMES = (
    "Finance",
    "Sales",
    "Engineering",
    "Operations",
    "Marketing",
    "People",
    "Legal",
    "Support",
    "Procurement",
    "Research",
)
ADDRESS_TYPES = ("home", "work", "billing", "delivery")
DOMAINS = ("acme.example", "globex.example", "initech.example", "umbrella.example")

assert set(STATUS_WEIGHTS) == set(PERSONA_STATUSES)
assert set(ROLE_WEIGHTS) == set(CORE_ROLES) | set(CUSTOM_ROLES)


@dataclass(frozen=True)
class DemoSummary:
    account_id: str
    account_created: bool
    people: int
    teams: int
    budgets: int
    addresses: int
    custom_roles: int


class RealAccount(Conflict):
    """The account holds people who are not demo data; fake ones would be mixed in."""

    type = "real_account"


async def generate_demo(
    engine: AsyncEngine,
    settings: Settings,
    account_id: str = DEFAULT_ACCOUNT,
    people: int = DEFAULT_PEOPLE,
    seed: int = DEFAULT_SEED,
    *,
    into_real_account: bool = False,
) -> DemoSummary:
    """Create (if missing) the account and fill it with ``people`` generated people and their
    teams, budgets, addresses and roles, in one unit of work.

    Only what is missing is added, so running it again duplicates nothing: the same seed
    gives the same people (matched by their external refs), teams and shared budgets are
    matched by name, and memberships, individual budgets, addresses and creators are
    given only to people new to the account. Raises :class:`RealAccount` for
    an account with people who are not demo data, unless ``into_real_account``. The
    tables it fills are analyzed (:data:`FILLED`), so the first queries are planned
    for what they hold.
    """
    if people < 1:
        raise InvalidRequest.field("people", "must be at least 1")
    async with unit_of_work(engine, write=True) as conn:
        created = await _ensure_account(conn, account_id)
        if not into_real_account and (real := await real_people(conn, account_id)):
            who = "1 person who is" if real == 1 else f"{real:,} people who are"
            raise RealAccount(
                f"The account {account_id!r} has {who} not demo data; "
                "demo people would be mixed in with them."
            )
        demo = _Demo(conn, account_id, random.Random(seed), now())
        custom = await demo.custom_roles()
        persona_ids = await demo.people(
            _fake_people(account_id, people, seed, settings.default_phone_region),
            settings.default_phone_region,
        )
        await demo.created_by(persona_ids, settings.default_phone_region)
        team_count = await demo.teams(persona_ids)
        budget_count = await demo.budgets(persona_ids)
        address_count = await demo.addresses(persona_ids, seed)
        await backend_for(conn).analyze(conn, FILLED)
    return DemoSummary(
        account_id, created, len(persona_ids), team_count, budget_count, address_count, custom
    )


def _demo_ref_pattern(account_id: str) -> str:
    """The external refs of an account's demo people (``demo-ACCOUNT-000001``), as LIKE
    matches them (``_`` and ``%`` in an account id escaped)."""
    escaped = account_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"demo-{escaped}-%"


async def real_people(conn: AsyncConnection, account_id: str) -> int:
    """How many people of the account are not demo data (their external ref is not the
    demo's ``demo-ACCOUNT-NNNNNN``)."""
    is_demo = persons.c.external_ref.like(_demo_ref_pattern(account_id), escape="\\")
    count = await conn.scalar(
        select(func.count())
        .select_from(personas.join(persons, persons.c.id == personas.c.person_id))
        .where(
            personas.c.account_id == account_id,
            or_(persons.c.external_ref.is_(None), ~is_demo),
        )
    )
    return int(count or 0)


async def sample_person(conn: AsyncConnection, account_id: str) -> tuple[str, str] | None:
    """The email and last name of the account's first person with an email, for examples."""
    row = (
        await conn.execute(
            select(persons.c.email_address, persons.c.last_name)
            .join(personas, personas.c.person_id == persons.c.id)
            .where(personas.c.account_id == account_id, persons.c.email_address.is_not(None))
            .order_by(personas.c.seq)
            .limit(1)
        )
    ).first()
    return (row.email_address, row.last_name) if row else None


async def _ensure_account(conn: AsyncConnection, account_id: str) -> bool:
    if await conn.scalar(select(accounts.c.id).where(accounts.c.id == account_id)) is not None:
        return False
    await create_account(conn, account_id, f"Demo company {account_id}")
    return True


def _slug(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if c.isascii() and c.isalnum()).lower() or "x"


def _unique_mobile(fake: Faker, taken: set[str], region: str) -> str:
    while True:
        number: str = fake.phone_number()
        key = phone_key(number, region)
        if key is None:
            return number  # matches no one
        if key not in taken:
            taken.add(key)
            return number


def _fakes(seed: int) -> dict[str, Faker]:
    fakes = {}
    for locale, _, _ in LOCALES:
        fake = Faker(locale)
        fake.seed_instance(seed)
        fakes[locale] = fake
    return fakes


def _fake_people(account_id: str, count: int, seed: int, region: str) -> list[PersonWrite]:
    """``count`` people, the same for the same seed: person fields, persona fields.

    No two share a mobile number: by the matching rules the second would join the first.
    """
    rng = random.Random(seed)
    mobiles: set[str] = set()
    fakes = _fakes(seed)
    statuses = list(STATUS_WEIGHTS)
    role_names = list(ROLE_WEIGHTS)
    items = []
    for n in range(count):
        locale, country, nationality = rng.choice(LOCALES)
        fake = fakes[locale]
        first, last = fake.first_name(), fake.last_name()
        domain = rng.choice(DOMAINS)
        # Every status and the first roles appear even in a small demo.
        status = (
            statuses[n]
            if n < len(statuses)
            else rng.choices(statuses, weights=list(STATUS_WEIGHTS.values()))[0]
        )
        role = (
            "Owner" if n == 0 else rng.choices(role_names, weights=list(ROLE_WEIGHTS.values()))[0]
        )
        person: dict[str, Any] = {
            "first_name": first,
            "last_name": last,
            "email_address": f"{_slug(first)}.{_slug(last)}.{_slug(account_id)}{n}@{domain}",
            "phone_number": _unique_mobile(fake, mobiles, region),
            "external_ref": f"demo-{account_id}-{n:06d}",
            "nationality": nationality,
            "country_of_residence": country,
        }
        if rng.random() < 0.6:
            person["dob"] = fake.date_of_birth(minimum_age=18, maximum_age=75)
        if rng.random() < 0.5:
            person["title"] = rng.choice(("Mr", "Ms", "Mrs", "Dr", "Mx"))
        if rng.random() < 0.5:
            person["gender"] = rng.choice(("female", "male", "non-binary"))
        if rng.random() < 0.2:
            person["middle_initials"] = rng.choice("ABCDEFGHJKLMNPRSTW")
        persona: dict[str, Any] = {
            "status": status,
            "role_name": role,
            "employee_number": f"E{n + 1:05d}",
            "job_title": fake.job()[:200],
        }
        if rng.random() < 0.3:
            persona["work_number"] = fake.phone_number()
        items.append(PersonWrite(person, frozenset((account_id,)), persona))
    return items


def _as(kind: type[T], row: Mapping[str, Any]) -> T:
    """A core dataclass from the values of a row written (its other keys left out)."""
    return kind(**{f.name: row[f.name] for f in fields(kind)})  # type: ignore[arg-type]


class _Demo:
    def __init__(
        self, conn: AsyncConnection, account_id: str, rng: random.Random, at: datetime
    ) -> None:
        self.conn = conn
        self.account_id = account_id
        self.rng = rng
        self.at = at
        self.fresh: set[uuid.UUID] = set()

    def _stamped(self, **values: Any) -> dict[str, Any]:
        return {"id": uuid.uuid4(), **values, "created_at": self.at, "updated_at": self.at}

    async def custom_roles(self) -> int:
        existing = set(
            await self.conn.scalars(
                select(roles.c.name_key).where(roles.c.account_id == self.account_id)
            )
        )
        missing = [name for name in CUSTOM_ROLES if name.casefold() not in existing]
        rows = [
            self._stamped(
                account_id=self.account_id, name=name, name_key=name.casefold(), type=None
            )
            for name in missing
        ]
        if rows:
            await self.conn.execute(insert(roles), rows)
            made = [Role(**{f.name: row[f.name] for f in fields(Role)}) for row in rows]
            await append_events(
                self.conn, [created_event(self.account_id, "role", r) for r in made]
            )
        return len(missing)

    async def people(self, items: Sequence[PersonWrite], region: str) -> list[uuid.UUID]:
        """Write the people; their persona ids in the order given. Those new to the account
        are kept in :attr:`fresh`: only they are given teams, budgets, addresses and a
        creator, so that running the demo again adds nothing to the others."""
        outcomes: list[Written] = []
        statistics = LoadStatistics()
        columns: Sequence[Column[Any]] | None = None
        for start in range(0, len(items), MAX_BATCH):
            outcomes += await write_persons(
                self.conn, items[start : start + MAX_BATCH], region=region
            )
            if (columns := statistics.due(len(outcomes))) is not None:
                await analyze_persons(self.conn, columns)
        for outcome in outcomes:
            if outcome.error is not None:  # an email or ref already held by someone else
                raise outcome.error
        if columns is None:  # the creators are then found by persona: with all of these
            await analyze_persons(self.conn, LOOKUP_COLUMNS)
        rows = await self.conn.execute(
            select(personas.c.person_id, personas.c.id).where(
                personas.c.account_id == self.account_id
            )
        )
        by_person = dict(rows.all())
        self.fresh = {
            by_person[o.person_id]
            for o in outcomes
            if any(p.change == "created" for p in o.personas)
        }
        return [by_person[o.person_id] for o in outcomes if o.person_id is not None]

    async def created_by(self, persona_ids: list[uuid.UUID], region: str) -> None:
        """Most people were created by one of the first few (the account's admins)."""
        creators = persona_ids[: max(1, min(5, len(persona_ids) // 10))]
        links = [
            PersonWrite(
                {},
                frozenset((self.account_id,)),
                {"created_by_persona_id": self.rng.choice(creators)},
                target=PersonaById(persona_id),
            )
            for persona_id in persona_ids[1:]
            if self.rng.random() < 0.7 and persona_id in self.fresh
        ]
        for written in await write_persons(self.conn, links, region=region):
            if written.error is not None:
                raise written.error

    async def _names(self, table: Table) -> set[str]:
        return set(
            await self.conn.scalars(
                select(table.c.name).where(table.c.account_id == self.account_id)
            )
        )

    async def teams(self, persona_ids: list[uuid.UUID]) -> int:
        count = min(len(TEAM_NAMES), max(2, len(persona_ids) // 25))
        existing = await self._names(teams)
        team_rows = [
            self._stamped(
                account_id=self.account_id,
                name=TEAM_NAMES[n],
                primary_owner_persona_id=self.rng.choice(persona_ids),
            )
            for n in range(count)
            if TEAM_NAMES[n] not in existing
        ]
        if team_rows:
            await self.conn.execute(insert(teams), team_rows)
        every_team = [
            {"id": team_id, "primary_owner_persona_id": owner}
            for team_id, owner in await self.conn.execute(
                select(teams.c.id, teams.c.primary_owner_persona_id).where(
                    teams.c.account_id == self.account_id, teams.c.name.in_(TEAM_NAMES)
                )
            )
        ]
        # Most people in one team, some in two, some in none (not every row has teams).
        members: set[tuple[uuid.UUID, uuid.UUID]] = set()
        for persona_id in persona_ids:
            how_many = min(len(every_team), self.rng.choice((0, 1, 1, 2)))
            chosen = self.rng.sample(every_team, k=how_many)
            if persona_id in self.fresh:
                members.update((team["id"], persona_id) for team in chosen)
        members.update((team["id"], team["primary_owner_persona_id"]) for team in team_rows)
        if members:
            await self.conn.execute(
                insert(team_members),
                [{"team_id": t, "persona_id": p} for t, p in sorted(members, key=str)],
            )
        new = [row["id"] for row in team_rows]
        joined: defaultdict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
        for team_id, persona_id in sorted(members, key=str):
            if team_id not in set(new):
                joined[team_id].append(persona_id)
        added = [(team_id, "member_added", ids) for team_id, ids in joined.items()]
        await TEAMS.log(self.conn, self.account_id, Team.of, created=new, changed=added)
        return len(team_rows)

    async def budgets(self, persona_ids: list[uuid.UUID]) -> int:
        """An account balance, a few shared budgets with members, individual budgets for
        about a third of the people (so ``withoutIndividualBudget`` splits them)."""
        existing = await self._names(budgets)
        rows = [
            self._stamped(
                account_id=self.account_id,
                name="Account balance",
                type="accountBalance",
                primary_owner_persona_id=persona_ids[0],
            )
        ]
        members: list[dict[str, Any]] = []
        for n in range(max(1, len(persona_ids) // 100)):
            shared = self._stamped(
                account_id=self.account_id,
                name=f"Shared budget {n + 1}",
                type="shared",
                primary_owner_persona_id=self.rng.choice(persona_ids),
            )
            rows.append(shared)
            chosen = self.rng.sample(persona_ids, k=min(len(persona_ids), 12))
            members.extend({"budget_id": shared["id"], "persona_id": p} for p in chosen)
        rows = [row for row in rows if row["name"] not in existing]
        added = {row["id"] for row in rows}
        members = [member for member in members if member["budget_id"] in added]
        owners = [p for n, p in enumerate(persona_ids) if n % 3 == 1 and p in self.fresh]
        taken = len([name for name in existing if name.startswith("Individual budget ")])
        rows.extend(
            self._stamped(
                account_id=self.account_id,
                name=f"Individual budget {taken + n + 1}",
                type="individual",
                primary_owner_persona_id=owner,
            )
            for n, owner in enumerate(owners)
        )
        if rows:
            await self.conn.execute(insert(budgets), rows)
        if members:
            await self.conn.execute(insert(budget_members), members)
        await BUDGETS.log(self.conn, self.account_id, Budget.of, created=[r["id"] for r in rows])
        return len(rows)

    def _floor(self) -> str | None:
        return f"Floor {self.rng.randint(1, 9)}" if self.rng.random() < 0.3 else None

    async def addresses(self, persona_ids: list[uuid.UUID], seed: int) -> int:
        """One address for most people, two for some, none for the rest."""
        rows = []
        for n, persona_id in enumerate(persona_ids):
            locale, country, _ = LOCALES[n % len(LOCALES)]
            count = self.rng.choice((0, 1, 1, 1, 2))
            for kind in self.rng.sample(ADDRESS_TYPES, k=count):
                if persona_id in self.fresh:
                    rows.append((persona_id, kind, locale, country))
        fakes = _fakes(seed + 1)
        values = [
            self._stamped(
                persona_id=persona_id,
                type=kind,
                address_line1=fakes[locale].street_address()[:256],
                address_line2=self._floor(),
                address_line3=None,
                city=fakes[locale].city()[:128],
                region=None,
                postcode=fakes[locale].postcode()[:32],
                country_code=country,
            )
            for persona_id, kind, locale, country in rows
        ]
        if values:
            await self.conn.execute(insert(addresses), values)
            person_of = dict(
                (
                    await self.conn.execute(
                        select(personas.c.id, personas.c.person_id).where(
                            personas.c.account_id == self.account_id
                        )
                    )
                ).all()
            )
            logged = [
                created_event(
                    self.account_id,
                    "address",
                    _as(Address, value),
                    person_of[value["persona_id"]],
                    persona_id=value["persona_id"],
                )
                for value in values
            ]
            await append_events(self.conn, logged)
        return len(values)
