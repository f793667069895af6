"""``python -m bench.cpu_per_request``: the server's CPU per answer, for comparing two
versions of Roster on a busy machine.

Wall-clock latency moves with whatever else the machine runs; the CPU time the server's
processes spend per answer moves far less. This builds a small demo account with the
given ``roster`` (any installed version: ``--roster PATH``), serves it with one worker,
sends N sequential requests of each case, checks every answer, and prints the worker's
user+system CPU per request beside the wall time. Run it for each version, interleaved,
against the same PostgreSQL.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable

import httpx

from bench.server import children, cpu_seconds

#: Requests per case: enough that one answer's jitter does not show.
CASES = {
    "find by email": 2000,
    "SCIM userName eq": 2000,
    "SCIM emails[value eq]": 2000,
    "search, last name": 1000,
    "page of 100, five embeds": 300,
}
EMBEDS = "persona.addresses,persona.createdBy,persona.teams,persona.primaryOwnerOf,persona.roles"


def server_cpu(pid: int) -> float:
    """User and system CPU of ``pid`` and its children (the supervisor's worker)."""
    return sum(cpu_seconds(each) for each in (pid, *children(pid)))


def roster_command(roster: str, url: str, *args: str) -> str:
    env = {**os.environ, "ROSTER_DATABASE_URL": url}
    done = subprocess.run([roster, *args], env=env, check=True, capture_output=True, text=True)
    return done.stdout


def measure(roster: str, url: str, port: int, people: int) -> dict[str, dict[str, float]]:
    roster_command(roster, url, "migrate")
    roster_command(roster, url, "demo", "--people", str(people), "--account", "DEMO")
    created = roster_command(
        roster, url, "clients", "create", "--name", f"cpu-{time.time_ns()}",
        "--all-accounts", "--scope", "read", "--json",
    )  # fmt: skip
    key = json.loads(created)["api_key"]
    env = {**os.environ, "ROSTER_DATABASE_URL": url, "ROSTER_RATE_LIMIT": "1000000/minute"}
    server = subprocess.Popen(
        [roster, "serve", "--port", str(port), "--workers", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        return _cases(server.pid, f"http://127.0.0.1:{port}", key)
    finally:
        server.terminate()
        server.wait()


def _cases(pid: int, base: str, key: str) -> dict[str, dict[str, float]]:
    for _ in range(100):
        try:
            httpx.get(base + "/healthz")
            break
        except httpx.TransportError:
            time.sleep(0.2)
    bearer, api_key = {"Authorization": f"Bearer {key}"}, {"Authorization": f"ApiKey {key}"}
    with httpx.Client(base_url=base, timeout=30) as http:
        listed = http.get("/people", params={"accountId": "DEMO", "limit": 500}, headers=api_key)
        rows = listed.json()["rows"]
        emails = [r["primaryEmailAddress"] for r in rows if r.get("primaryEmailAddress")]
        names = [r["lastName"] for r in rows]

        def find(i: int) -> httpx.Response:
            body = {"email_address": emails[i % len(emails)]}
            return http.post("/persons/find/", json=body, headers=bearer)

        def user_name(i: int) -> httpx.Response:
            query = {"filter": f'userName eq "{emails[i % len(emails)]}"'}
            return http.get("/scim/v2/DEMO/Users", params=query, headers=bearer)

        def email(i: int) -> httpx.Response:
            query = {"filter": f'emails[value eq "{emails[i % len(emails)].upper()}"]'}
            return http.get("/scim/v2/DEMO/Users", params=query, headers=bearer)

        def search(i: int) -> httpx.Response:
            query = {"accountId": "DEMO", "search": names[i % len(names)]}
            return http.get("/people", params=query, headers=api_key)

        def page(i: int) -> httpx.Response:
            offset = str((i * 100) % 400)
            query = {"accountId": "DEMO", "limit": "100", "offset": offset, "include": EMBEDS}
            return http.get("/people", params=query, headers=api_key)

        calls: dict[str, Callable[[int], httpx.Response]] = {
            "find by email": find,
            "SCIM userName eq": user_name,
            "SCIM emails[value eq]": email,
            "search, last name": search,
            "page of 100, five embeds": page,
        }
        figures: dict[str, dict[str, float]] = {}
        for name, call in calls.items():
            for i in range(50):  # warm-up, not counted
                _checked(call(i), name)
            count = CASES[name]
            cpu, started = server_cpu(pid), time.perf_counter()
            for i in range(count):
                _checked(call(i), name)
            figures[name] = {
                "cpu_ms_per_request": round((server_cpu(pid) - cpu) * 1000 / count, 3),
                "wall_ms_per_request": round((time.perf_counter() - started) * 1000 / count, 3),
            }
        return figures


def _checked(response: httpx.Response, name: str) -> None:
    """Every answer a 200 that found something: a SCIM filter exactly one User."""
    if response.status_code != 200:
        raise SystemExit(f"{name}: {response.status_code} {response.text[:200]}")
    body = response.json()
    found = body.get("totalResults", len(body.get("persons", body.get("rows", []))))
    if found == 0 or (name.startswith("SCIM") and found != 1):
        raise SystemExit(f"{name}: found {found}: {response.text[:200]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True, help="an empty database")
    parser.add_argument("--roster", default=shutil.which("roster") or "roster")
    parser.add_argument("--port", type=int, default=8390)
    parser.add_argument("--people", type=int, default=3000)
    args = parser.parse_args(argv)
    figures = measure(args.roster, args.database_url, args.port, args.people)
    print(json.dumps({"roster": args.roster, **figures}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
