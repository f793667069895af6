"""Reproducible, realistic people for the benchmark: accents, mixed phone formats, fast.

Faker is used once to build pools of names; the rows are then combined from the
pools with a seeded random generator, which makes a million rows in seconds.
"""

from __future__ import annotations

import csv
import random
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from faker import Faker

SEED = 20261122
#: The creation time of everything the benchmark adds outside the import.
STAMP = datetime(2026, 1, 2, 13, 47, 1, tzinfo=UTC)
LOCALES = ("en_GB", "fr_FR", "de_DE", "es_ES", "it_IT", "pt_PT", "pl_PL", "sv_SE", "nl_NL", "cs_CZ")
STATUSES = ("active",) * 14 + ("invited", "created", "deactivated", "inviteExpired")
ROLES = ("User",) * 12 + ("Admin", "Viewer", "Payer", "Accountant", "Owner")
#: About 5% of an account's people have an address at this domain: the broad search.
BROAD_DOMAIN = "northwind.example"
BROAD_SHARE = 0.05
DOMAINS = ("acme.example", "globex.example", "initech.example", "umbrella.example", "hooli.example")
COLUMNS = (
    "first_name",
    "last_name",
    "email_address",
    "phone_number",
    "external_ref",
    "status",
    "role_name",
    "employee_number",
    "job_title",
    "work_number",
)


@dataclass(frozen=True)
class NamePools:
    first: tuple[str, ...]
    last: tuple[str, ...]
    jobs: tuple[str, ...]


def name_pools(seed: int = SEED) -> NamePools:
    """A few thousand first and last names from many locales (so, many accents)."""
    first: set[str] = set()
    last: set[str] = set()
    jobs: set[str] = set()
    for locale in LOCALES:
        fake = Faker(locale)
        fake.seed_instance(seed)
        for _ in range(400):
            first.add(fake.first_name())
            last.add(fake.last_name())
        if locale == "en_GB":
            jobs.update(fake.job()[:60] for _ in range(300))
    return NamePools(tuple(sorted(first)), tuple(sorted(last)), tuple(sorted(jobs)))


def ascii_slug(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if c.isascii() and (c.isalnum())).lower()


def _phone(rng: random.Random, n: int) -> str:
    """A number unique within the account (n is the row), in one of five formats."""
    number = f"{n:07d}"
    style = rng.randrange(5)
    if style == 0:
        return f"+44 7700 {number[:3]} {number[3:]}"
    if style == 1:
        return f"07700{number}"
    if style == 2:
        return f"(0161) {number[:3]} {number[3:]}"
    if style == 3:
        return f"+33 6 {number[:1]} {number[1:3]} {number[3:5]} {number[5:]}"
    return f"+44 20 {number[:3]} {number[3:]}"


def people(
    account: str, count: int, pools: NamePools, seed: int = SEED, phone_base: int = 0
) -> Iterator[dict[str, str]]:
    """``count`` people of one account, the same ones for the same arguments. Phone
    numbers are unique from ``phone_base`` on: give each account its own range, as different
    people in different accounts do not share a number."""
    rng = random.Random(f"{seed}:{account}")
    for n in range(count):
        first = rng.choice(pools.first)
        last = rng.choice(pools.last)
        domain = BROAD_DOMAIN if rng.random() < BROAD_SHARE else rng.choice(DOMAINS)
        email = f"{ascii_slug(first)}.{ascii_slug(last)}.{account.lower()}{n}@{domain}"
        yield {
            "first_name": first,
            "last_name": last,
            "email_address": email,
            "phone_number": _phone(rng, phone_base + n),
            "external_ref": f"{account}-{n:07d}",
            "status": rng.choice(STATUSES),
            "role_name": rng.choice(ROLES),
            "employee_number": f"E{rng.randrange(10**7):07d}",
            "job_title": rng.choice(pools.jobs),
            "work_number": f"+44 20 7946 {rng.randrange(10**4):04d}" if rng.random() < 0.3 else "",
        }


def write_csv(path: Path, rows: Iterator[dict[str, str]], columns: Sequence[str] = COLUMNS) -> int:
    """Write rows with a header; returns how many."""
    path.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow(row)
            written += 1
    return written
