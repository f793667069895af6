"""The delay from a commit to its webhook delivery, through a real ``roster serve``.

    python -m bench.webhooks                      # PostgreSQL at 127.0.0.1:5432
    python -m bench.webhooks --sqlite --changes 100 --rate 20

A scratch database, ``roster serve --workers N`` on it (its deliverer elected among the
workers), a receiver on 127.0.0.1 in this process that verifies every delivery's
signature with the ``standardwebhooks`` library. A writer makes ``--changes`` changes
at ``--rate`` a second through ``POST /people``; for each, the time from its answer
(the commit) to the receiver getting its event: median, p99, max. Exit status 1 on any
failed change, unverified, missing, duplicated or out-of-order delivery.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.import_rate import scratch_postgres
from bench.receiver import receiving
from bench.same_person import prepare
from bench.server import serve
from roster.core.deliverer import RECHECK_SECONDS

ACCOUNT = "HOOKS1"
#: The targets (bench/suite.py reports against them).
MEDIAN_TARGET_MS = 100
P99_TARGET_MS = 1000


async def measure(
    url: str, changes: int, rate: float, workers: int, log_dir: Path
) -> dict[str, Any]:
    """Run the benchmark on the database at ``url``: the delays (seconds, sorted) and the
    problems found."""
    api_key = await prepare(url, ACCOUNT, "webhooks", ("read", "write", "admin"))
    headers = {"Authorization": f"ApiKey {api_key}"}
    problems: list[str] = []
    environment = {"ROSTER_WEBHOOK_ALLOW_PRIVATE": "true"}
    with serve(url, workers=workers, log_dir=log_dir, **environment) as server:
        async with (
            receiving() as receiver,
            httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=30) as http,
        ):
            hook = {"accountId": ACCOUNT, "url": receiver.url("/hook"), "types": ["person.*"]}
            registered = await http.post("/webhooks", json=hook)
            if registered.status_code != 201:
                return {"delays": [], "problems": [f"POST /webhooks: {registered.text}"]}
            secret = registered.json()["secret"]
            # Registered on one worker, the webhook is served by the lease holder, which
            # may be the other: from its next look at the webhooks (docs/events.md). The
            # figure is the steady state's, once the webhook exists there.
            await asyncio.sleep(RECHECK_SECONDS + 0.5)
            committed: dict[str, float] = {}
            for n in range(changes):
                started = time.perf_counter()
                body = {
                    "accountId": ACCOUNT,
                    "firstName": "W",
                    "lastName": f"L{n}",
                    "roleName": "User",
                }
                answer = await http.post("/people", json=body)
                if answer.status_code != 201:
                    problems.append(f"POST /people: {answer.status_code} {answer.text[:200]}")
                    continue
                committed[answer.json()["id"]] = time.time()
                await asyncio.sleep(max(0.0, 1 / rate - (time.perf_counter() - started)))
            try:
                await receiver.wait_for("/hook", len(committed), within=60)
            except AssertionError as missing:
                problems.append(str(missing))
            await asyncio.sleep(0.5)  # anything sent twice arrives too
    got = receiver.received["/hook"]
    unverified = [r for r in got if not r.verified_by(secret)]
    if unverified:
        problems.append(f"{len(unverified)} deliveries did not verify")
    ids = [int(r.headers["webhook-id"]) for r in got]
    if ids != sorted(set(ids)):
        problems.append("deliveries out of id order or sent twice")
    arrived = {r.event["resource"]["id"]: r.at for r in got}
    lost = set(committed) - set(arrived)
    if lost:
        problems.append(f"{len(lost)} changes were never delivered")
    delays = sorted(arrived[p] - at for p, at in committed.items() if p in arrived)
    return {"delays": delays, "problems": problems}


def report(delays: list[float]) -> tuple[float, float]:
    """Print the figures; the median and p99 in milliseconds."""
    if not delays:
        print("no delivery measured")
        return float("inf"), float("inf")
    p99 = delays[min(len(delays) - 1, int(len(delays) * 0.99))] * 1000
    median = statistics.median(delays) * 1000
    print(
        f"{len(delays)} changes: commit to webhook delivery median {median:.0f} ms, "
        f"p99 {p99:.0f} ms, max {delays[-1] * 1000:.0f} ms "
        f"(targets: median < {MEDIAN_TARGET_MS} ms, p99 < {P99_TARGET_MS} ms)"
    )
    return median, p99


async def _on_postgres(changes: int, rate: float, workers: int, log_dir: Path) -> dict[str, Any]:
    async with scratch_postgres() as url:
        return await measure(url, changes, rate, workers, log_dir)


def run(
    sqlite: bool, changes: int, rate: float, workers: int, log_dir: Path | None = None
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as directory:
        log_dir = log_dir or Path(directory) / "logs"
        if sqlite:
            url = f"sqlite:///{directory}/bench.db"
            return asyncio.run(measure(url, changes, rate, workers, log_dir))
        return asyncio.run(_on_postgres(changes, rate, workers, log_dir))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--changes", type=int, default=500)
    parser.add_argument("--rate", type=float, default=50.0, help="changes a second")
    parser.add_argument("--workers", type=int, default=2, help="roster serve --workers")
    parser.add_argument("--sqlite", action="store_true", help="a SQLite file instead")
    parser.add_argument("--log-dir", type=Path, help="keep the server's log there")
    args = parser.parse_args()
    found = run(args.sqlite, args.changes, args.rate, args.workers, args.log_dir)
    report(found["delays"])
    for problem in found["problems"]:
        print(f"error: {problem}", file=sys.stderr)
    if found["problems"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
