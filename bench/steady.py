"""A steady load: mixed traffic at a fixed request rate, with errors and memory watched."""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx

from bench.server import Server


@dataclass(frozen=True)
class Steady:
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


def _request(rng: random.Random, sample: list[dict[str, str]]) -> tuple[str, dict[str, Any]]:
    row = rng.choice(sample)
    roll = rng.random()
    if roll < 0.4:
        return "find", {
            "method": "POST",
            "url": "/persons/find/",
            "json": {"email_address": row["email_address"]},
        }
    if roll < 0.65:
        query = {"accountId": "BIG", "limit": 20, "offset": rng.randrange(0, 2000)}
        return "list", {"method": "GET", "url": "/people?" + urlencode(query)}
    if roll < 0.9:
        word = max(row["last_name"].split(), key=len)
        query = {"accountId": "BIG", "search": word[:5], "include": "persona.teams"}
        return "search", {"method": "GET", "url": "/people?" + urlencode(query)}
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
    return "write", {"method": "POST", "url": "/persons/multiple/", "json": {"persons": [item]}}


def steady_load(
    server: Server,
    headers: dict[str, str],
    sample: list[dict[str, str]],
    *,
    seconds: float,
    rate: float,
) -> Steady:
    return asyncio.run(_steady(server, headers, sample, seconds, rate))


async def _steady(
    server: Server,
    headers: dict[str, str],
    sample: list[dict[str, str]],
    seconds: float,
    rate: float,
) -> Steady:
    rng = random.Random(7)
    times: list[float] = []
    kinds: dict[str, int] = {}
    failures: list[str] = []
    warm_after = max(1.0, seconds * 0.15)
    rss_warm = 0

    async def one(http: httpx.AsyncClient, kind: str, request: dict[str, Any]) -> None:
        started = time.perf_counter()
        try:
            response = await http.request(**request, headers=headers)
            failure = _failure(response, kind)
        except httpx.HTTPError as error:
            failure = f"{type(error).__name__} after {time.perf_counter() - started:.1f} s"
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
            kind, request = _request(rng, sample)
            kinds[kind] = kinds.get(kind, 0) + 1
            tasks.append(asyncio.create_task(one(http, kind, request)))
            n += 1
        await asyncio.gather(*tasks)
        total = time.perf_counter() - began
    times.sort()
    return Steady(
        statistics.median(times),
        times[int(len(times) * 0.99)],
        len(times) / total,
        len(times),
        len(failures),
        rss_warm or server.rss(),
        server.rss(),
        kinds,
        failures,
    )


def _failure(response: httpx.Response, kind: str) -> str | None:
    """Why an answer counts as an error (a status of 400 or more, or a write of which an
    item failed), or None."""
    if response.status_code >= 400:
        try:
            kind_of = json.loads(response.content)["error"]["type"]
        except (ValueError, KeyError, TypeError):
            kind_of = "(no error body)"
        return f"{response.status_code} {kind_of}"
    if kind == "write":
        for entry in json.loads(response.content).get("persons", []):
            if not entry.get("success", True) or entry.get("failure_type"):
                return f"item failed: {entry.get('failure_type')} {entry.get('failure_reason')}"
    return None
