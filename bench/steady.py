"""A steady load: mixed traffic at a fixed request rate, with errors and memory watched."""

from __future__ import annotations

import asyncio
import random
import statistics
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx

from bench.answers import every_item_written, people_page, person_found
from bench.load import Expect, problem
from bench.server import Server


@dataclass(frozen=True)
class Steady:
    """Latencies, rate and requests count what was sent after the warm-up; errors and
    failures count every request, the warm-up's too."""

    median_ms: float
    p99_ms: float
    rate: float
    requests: int
    errors: int
    rss_warm: int
    rss_end: int
    by_kind: dict[str, int]
    #: What each failed request got: "kind: status error-type", or the client's error.
    failures: list[str]


def _request(
    rng: random.Random, sample: list[dict[str, str]], listed: int
) -> tuple[str, dict[str, Any], Expect]:
    """A request of the mix: its kind, what httpx sends, and what it must answer (BIG has
    ``listed`` people)."""
    row = rng.choice(sample)
    roll = rng.random()
    if roll < 0.4:
        email = row["email_address"]
        find = {"method": "POST", "url": "/persons/find/", "json": {"email_address": email}}
        return "find", find, person_found("email_address", email)
    if roll < 0.65:
        offset = rng.randrange(0, max(1, min(2000, listed - 20)))
        query = {"accountId": "BIG", "limit": 20, "offset": offset}
        listing = {"method": "GET", "url": "/people?" + urlencode(query)}
        return "list", listing, people_page(query, at_least=min(listed, offset + 20))
    if roll < 0.9:
        word = max(row["last_name"].split(), key=len)
        query = {"accountId": "BIG", "search": word[:5], "include": "persona.teams"}
        search = {"method": "GET", "url": "/people?" + urlencode(query)}
        return "search", search, people_page(query, at_least=1)
    item: dict[str, Any]
    if roll < 0.95:
        item = {
            key: row[key] for key in ("first_name", "last_name", "email_address", "external_ref")
        }
        item["group_ids"] = ["BIG"]
    else:
        tag = uuid.uuid4().hex[:12]
        item = {
            "first_name": "Load",
            "last_name": tag,
            "email_address": f"{tag}@load.example",
            "group_ids": ["S0001"],
        }
    write = {"method": "POST", "url": "/persons/multiple/", "json": {"persons": [item]}}
    return "write", write, every_item_written


def steady_load(
    server: Server,
    headers: dict[str, str],
    sample: list[dict[str, str]],
    *,
    listed: int,
    seconds: float,
    rate: float,
) -> Steady:
    """``rate`` requests a second for ``seconds`` on BIG (``listed`` people, ``sample``
    among them); new people are written to S0001."""
    return asyncio.run(_steady(server, headers, sample, listed, seconds, rate))


async def _steady(
    server: Server,
    headers: dict[str, str],
    sample: list[dict[str, str]],
    listed: int,
    seconds: float,
    rate: float,
) -> Steady:
    rng = random.Random(7)
    times: list[float] = []
    kinds: dict[str, int] = {}
    failures: list[str] = []
    warm_after = max(1.0, seconds * 0.15)
    rss_warm = 0

    async def one(
        http: httpx.AsyncClient, kind: str, request: dict[str, Any], expect: Expect, counted: bool
    ) -> None:
        started = time.perf_counter()
        try:
            response = await http.request(**request, headers=headers)
            failure = problem(response, expect)
        except httpx.HTTPError as error:
            failure = f"{type(error).__name__} after {time.perf_counter() - started:.1f} s"
        if counted:
            times.append((time.perf_counter() - started) * 1000)
        if failure:
            failures.append(f"{kind}: {failure}")

    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30, limits=limits) as http:
        tasks: list[asyncio.Task[None]] = []
        began = time.perf_counter()
        n = 0
        while (elapsed := time.perf_counter() - began) < seconds:
            if not rss_warm and elapsed >= warm_after:
                rss_warm = server.rss()
            due = began + n / rate
            if due > time.perf_counter():
                await asyncio.sleep(due - time.perf_counter())
            kind, request, expect = _request(rng, sample, listed)
            kinds[kind] = kinds.get(kind, 0) + 1
            counted = bool(rss_warm)
            tasks.append(asyncio.create_task(one(http, kind, request, expect, counted)))
            n += 1
        await asyncio.gather(*tasks)
        measured = time.perf_counter() - began - warm_after
    times.sort()
    return Steady(
        statistics.median(times),
        times[int(len(times) * 0.99)],
        len(times) / measured,
        len(times),
        len(failures),
        rss_warm or server.rss(),
        server.rss(),
        kinds,
        failures,
    )
