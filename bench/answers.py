"""What each measured request must answer, beyond a 2xx status: a body check per call
(``bench.load.Expect``), cheap enough to run on every answer the Python clients get."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
import orjson

from bench.load import Call, Expect

#: The spec's default page size of GET /people.
DEFAULT_LIMIT = 100


def people_page(params: Mapping[str, Any], at_least: int = 0) -> Expect:
    """A page of GET /people with these query parameters: ``count`` of at least
    ``at_least`` rows, and exactly the rows of the page asked for."""
    limit, offset = int(params.get("limit", DEFAULT_LIMIT)), int(params.get("offset", 0))

    def check(body: Any) -> str | None:
        count = body.get("count") if isinstance(body, dict) else None
        rows = body.get("rows") if isinstance(body, dict) else None
        if not isinstance(count, int) or not isinstance(rows, list):
            return "no count and rows"
        if count < at_least:
            return f"count {count} (at least {at_least} expected)"
        expected = max(0, min(limit, count - offset))
        return None if len(rows) == expected else f"{len(rows)} rows ({expected} expected)"

    return check


def person_found(criterion: str, value: str) -> Expect:
    """A find's answer: persons, one with this value of the criterion (compared ignoring
    case, as emails are found)."""

    def check(body: Any) -> str | None:
        persons = body.get("persons") if isinstance(body, dict) else None
        if not isinstance(persons, list) or not persons:
            return "no persons"
        if any(str(p.get(criterion)).casefold() == value.casefold() for p in persons):
            return None
        return f"no person with that {criterion}"

    return check


def every_item_written(body: Any) -> str | None:
    """A bulk upsert's answer: an entry per item, each a success."""
    entries = body.get("persons") if isinstance(body, dict) else None
    if not isinstance(entries, list) or not entries:
        return "no persons"
    for entry in entries:
        if entry.get("success") is not True or entry.get("failure_type"):
            return f"item failed: {entry.get('failure_type')} {entry.get('failure_reason')}"
    return None


def floor_differs(
    roster_url: str, floor_url: str, calls: Sequence[Call], headers: dict[str, str]
) -> Counter[str]:
    """Each distinct call sent to Roster and to the floor (bench/floor.py): how many
    answers differed, by how (the status, or the body as parsed JSON). The floor's
    figures are only worth comparing with answers that are Roster's."""
    differs: Counter[str] = Counter()
    with (
        httpx.Client(base_url=roster_url, timeout=120) as roster,
        httpx.Client(base_url=floor_url, timeout=120) as floor,
    ):
        for call in dict.fromkeys(calls):
            ours, least = call.send(roster, headers), call.send(floor, headers)
            if ours.status_code != least.status_code:
                differs[f"the floor answered {least.status_code}, Roster {ours.status_code}"] += 1
            elif ours.status_code < 300 and orjson.loads(ours.content) != orjson.loads(
                least.content
            ):
                differs["the floor's answer differs from Roster's"] += 1
    return differs
