"""Rules of GET /people that hold for all data: paging is complete and ordered, a
client sees no other account's rows, and search follows its rule on both backends.
"""

from __future__ import annotations

import re
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any
from unittest.mock import patch

import httpx
from hypothesis import example, given
from hypothesis import strategies as st

from roster.core.matching import name_key, phone_key, search_fold, search_terms
from roster.core.people import listing
from roster.core.writer import PersonWrite
from tests.factories import PROPERTY_SETTINGS, Client, Directory

ACCOUNTS = ("A1", "A2", "A3")
STATUSES = ("active", "deactivated", "created", "invited", "inviteExpired")
NAMES = (
    "César",
    "cesar",
    "CESAR",
    "Émile",
    "Zoë",
    "zoe",
    "Straße",
    "O'Neil",
    "100%",
    "a_b",
    "x\\y",
)
DOMAINS = ("acme.com", "ACME.com", "exämple.org")
PHONES = (None, "07700 900123", "+44 20 7946 0000", "555-0100")
PHONE_FORMATS = (None, "07700 9001{:02}", "+44 20 7946 00{:02}", "555-01{:02}")
NUMBERS = (None, "948", "E-17", "a%1")


@dataclass(frozen=True)
class Someone:
    first_name: str
    last_name: str
    domain: str | None
    phone_format: str | None
    employee_number: str | None
    work_number: str | None
    status: str
    accounts: frozenset[str]

    def email(self, n: int) -> str | None:
        return f"{search_fold(self.first_name)[:3]}.{n}@{self.domain}" if self.domain else None

    def phone(self, n: int) -> str | None:
        """Each person's own number (persons sharing one would be matched as one)."""
        return self.phone_format.format(n) if self.phone_format else None


people = st.lists(
    st.builds(
        Someone,
        first_name=st.sampled_from(NAMES),
        last_name=st.sampled_from(NAMES),
        domain=st.none() | st.sampled_from(DOMAINS),
        phone_format=st.sampled_from(PHONE_FORMATS),
        employee_number=st.sampled_from(NUMBERS),
        work_number=st.sampled_from(PHONES),
        status=st.sampled_from(STATUSES),
        accounts=st.frozensets(st.sampled_from(ACCOUNTS), max_size=3),
    ),
    max_size=12,
)


@dataclass(frozen=True)
class Loaded:
    """The people as stored: each one's person id, and a client reaching ``reach``."""

    someone: list[Someone]
    ids: list[uuid.UUID]
    caller: Client


async def load(
    directory: Directory, someone: list[Someone], reach: frozenset[str] | None = None
) -> Loaded:
    ids = await directory.fresh(
        ACCOUNTS,
        [
            PersonWrite(
                {
                    "external_ref": f"p{n}",
                    "first_name": s.first_name,
                    "last_name": s.last_name,
                    "email_address": s.email(n),
                    "phone_number": s.phone(n),
                },
                s.accounts,
                {
                    "status": s.status,
                    "employee_number": s.employee_number,
                    "work_number": s.work_number,
                },
            )
            for n, s in enumerate(someone)
        ],
    )
    caller = await directory.client(ACCOUNTS if reach is None else reach)
    return Loaded(someone, ids, caller)


def in_order(loaded: Loaded, indexes: list[int]) -> list[str]:
    """Person ids in the spec's order: last name, first name (ignoring case), person id."""
    return [
        str(loaded.ids[n])
        for n in sorted(
            indexes,
            key=lambda n: (
                name_key(loaded.someone[n].last_name) or "",
                name_key(loaded.someone[n].first_name) or "",
                loaded.ids[n].hex,
            ),
        )
    ]


async def page(client: httpx.AsyncClient, loaded: Loaded, **params: Any) -> dict[str, Any]:
    response = await client.get(
        "/people", params={"accountId": "A1", **params}, headers=loaded.caller.headers
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@PROPERTY_SETTINGS
@given(
    someone=people,
    statuses=st.frozensets(st.sampled_from(STATUSES), max_size=2),
    limit=st.integers(min_value=1, max_value=5),
    offset=st.integers(min_value=0, max_value=14),
)
async def test_paging_returns_every_match_once_in_order(
    client: httpx.AsyncClient,
    directory: Directory,
    someone: list[Someone],
    statuses: frozenset[str],
    limit: int,
    offset: int,
) -> None:
    loaded = await load(directory, someone)
    expected = in_order(
        loaded,
        [
            n
            for n, s in enumerate(someone)
            if "A1" in s.accounts and (not statuses or s.status in statuses)
        ],
    )
    filters = {"status": ",".join(sorted(statuses))} if statuses else {}
    one = await page(client, loaded, limit=limit, offset=offset, **filters)
    assert one["count"] == len(expected)
    assert [row["id"] for row in one["rows"]] == expected[offset : offset + limit]
    walked: list[str] = []
    at = 0
    while True:
        body = await page(client, loaded, limit=limit, offset=at, **filters)
        assert body["count"] == len(expected)
        walked += [row["id"] for row in body["rows"]]
        at += limit
        if at >= body["count"]:
            break
    assert walked == expected


@PROPERTY_SETTINGS
@given(
    someone=people,
    reach=st.frozensets(st.sampled_from(ACCOUNTS), min_size=1),
    account=st.sampled_from(ACCOUNTS),
    search=st.none() | st.sampled_from(["", "a", "acme", "e"]),
)
async def test_no_request_returns_a_row_of_another_account(
    client: httpx.AsyncClient,
    directory: Directory,
    someone: list[Someone],
    reach: frozenset[str],
    account: str,
    search: str | None,
) -> None:
    loaded = await load(directory, someone, reach)
    params: dict[str, Any] = {"accountId": account, "include": "persona.createdBy,persona.teams"}
    if search is not None:
        params["search"] = search
    response = await client.get("/people", params=params, headers=loaded.caller.headers)
    if account not in reach:
        assert response.status_code == 404
        assert response.json()["error"]["type"] == "account_not_found"
        return
    assert response.status_code == 200
    members = {str(loaded.ids[n]) for n, s in enumerate(someone) if account in s.accounts}
    for row in response.json()["rows"]:
        assert row["persona"]["accountId"] == account
        assert row["id"] in members


def _digits(text: str) -> str:
    return re.sub(r"\D+", "", text)


def reference_matches(someone: Someone, n: int, search: str) -> bool:
    """The spec's rule, written out: every term, folded, is a substring of one field."""
    terms = [term for raw in search.split() for term in search_fold(raw).split()]
    texts = [
        search_fold(value)
        for value in (someone.first_name, someone.last_name, someone.email(n))
        if value
    ]
    texts += [search_fold(someone.employee_number or "")]
    for phone in (someone.phone(n), someone.work_number):
        if phone:
            texts += [search_fold(phone), _digits(phone), phone_key(phone, "GB") or ""]
    return all(any(term in text for text in texts if text) for term in terms)


SEARCH_ALPHABET = "aceéÉrsßzZ%_\\'@.-0 179+"


@PROPERTY_SETTINGS
@given(someone=people, data=st.data())
async def test_search_follows_its_rule_on_both_backends(
    client: httpx.AsyncClient, directory: Directory, someone: list[Someone], data: st.DataObject
) -> None:
    loaded = await load(directory, someone)
    fields = [
        value
        for n, s in enumerate(someone)
        for value in (s.first_name, s.last_name, s.email(n), s.phone(n), s.employee_number)
        if value
    ]
    pieces = st.text(SEARCH_ALPHABET, min_size=1, max_size=6)
    if fields:
        pieces = pieces | st.sampled_from(fields).flatmap(
            lambda value: st.tuples(
                st.integers(0, len(value) - 1), st.integers(1, len(value)), st.booleans()
            ).map(
                lambda cut: (
                    (value[cut[0] : cut[0] + cut[1]]).upper()
                    if cut[2]
                    else value[cut[0] : cut[0] + cut[1]]
                )
            )
        )
    search = " ".join(data.draw(st.lists(pieces, min_size=1, max_size=3)))[:100]
    expected = {
        str(loaded.ids[n])
        for n, s in enumerate(someone)
        if "A1" in s.accounts and reference_matches(s, n, search)
    }
    body = await page(client, loaded, search=search, limit=100000)
    assert {row["id"] for row in body["rows"]} == expected, search
    assert body["count"] == len(expected)
    # A small page is read by one statement (search_page): its matches gathered, or,
    # above GATHER_FIRST, all counted and the page walked from the ordered index.
    limit, offset = data.draw(st.integers(1, 4)), data.draw(st.integers(0, 8))
    gather_first = data.draw(st.sampled_from([listing.GATHER_FIRST, -1]))
    with patch.multiple(listing, GATHER_FIRST=gather_first, _MANY_MATCHES=OrderedDict()):
        small = await page(client, loaded, search=search, limit=limit, offset=offset)
    ordered = in_order(loaded, [n for n, _ in enumerate(someone) if str(loaded.ids[n]) in expected])
    assert [row["id"] for row in small["rows"]] == ordered[offset : offset + limit], search
    assert small["count"] == len(expected)


#: Letters that fold to more than one, or that NFC joins: Hangul (a leading consonant, a
#: vowel, a trailing consonant, a compatibility letter, syllables with and without a
#: trailing consonant), a Bengali and a Tamil two-part vowel sign and their parts, a
#: combining accent and ypogegrammeni, a fullwidth digit, ß, İ, a ligature, a and a space.
JOINING = (
    "\u1102\u1162\u11ab\u3134\ub0b4\ub0b8"
    "\u09c7\u09be\u09cb\u0bc6\u0bbe\u0bca"
    "\u0301\u0345\uff11\u00df\u0130\ufb01a "
)
texts = st.text(st.sampled_from(JOINING)) | st.text()


@given(texts, texts)
@example("\u1102", "\u1162")  # the first two jamo of 낸: NFC joins them
@example("\ub0b4", "\u11ab")  # 내 and the last jamo of 낸
@example("\u0995\u09c7", "\u09be")  # কে and the second part of ো
def test_a_texts_fold_is_its_parts_folds_one_after_the_other(before: str, after: str) -> None:
    """Folding joins nothing back, so a value that holds a term as written holds the
    term's fold in its fold, whatever the composition of either: the search index may
    narrow every comparison of ``co``, ``sw`` and ``ew``, and a syllable typed a jamo at
    a time finds the names it begins."""
    assert search_fold(before + after) == search_fold(before) + search_fold(after)
    assert search_fold(search_fold(before)) == search_fold(before)


@given(texts, st.integers(0, 40), st.integers(0, 40), st.sampled_from(["as", "lower", "upper"]))
@example("\u1102\u1162\u11ab\u1109\u1175", 0, 2, "as")  # 낸시 decomposed; 내
@example("\u0995\u09c7\u09be", 0, 2, "as")  # কো decomposed; কে
def test_a_value_holding_a_sent_text_holds_its_terms_folded(
    value: str, start: int, length: int, case: str
) -> None:
    """What lets a SCIM ``co``, ``sw`` or ``ew`` (case ignored) be narrowed by the search
    index: a text the value holds, case ignored, gives terms that are all in the value's
    folded text."""
    sent = value[start : start + length]
    sent = {"as": sent, "lower": sent.lower(), "upper": sent.upper()}[case]
    if sent.lower() in value.lower():  # the comparison, case ignored as lower() does
        for term in search_terms(sent):
            assert term in search_fold(value), (value, sent, term)
