"""`roster serve` as real processes: a budget shared through Redis, a graceful SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench.server import serve
from tests.commands import succeeds
from tests.servers import ThrowawayRedis

pytestmark = pytest.mark.slow


@pytest.fixture
def operator(tmp_path: Path) -> tuple[str, str]:
    """A SQLite directory made with the CLI: an account, one person-less client's key."""
    url = f"sqlite:///{tmp_path / 'roster.db'}"
    succeeds(url, "accounts", "create", "P1", "--name", "Processes")
    made = json.loads(
        succeeds(url, "clients", "create", "--name", "p", "--account", "P1", "--json")
    )
    return url, str(made["api_key"])


@pytest.fixture
def redis() -> Iterator[ThrowawayRedis]:
    server = ThrowawayRedis()
    server.start()
    yield server
    server.stop()


def test_two_servers_share_one_budget_through_redis(
    operator: tuple[str, str], redis: ThrowawayRedis, tmp_path: Path
) -> None:
    url, key = operator
    headers = {"Authorization": f"ApiKey {key}"}
    # An hour's window, so that the test never straddles a window boundary in practice.
    env = {"ROSTER_REDIS_URL": redis.url, "ROSTER_RATE_LIMIT": "6/hour"}
    with (
        serve(url, workers=1, log_dir=tmp_path / "a", **env) as first,
        serve(url, workers=1, log_dir=tmp_path / "b", **env) as second,
    ):
        answers = [
            httpx.post(server.base_url + "/persons/find/", json={}, headers=headers, timeout=10)
            for server in (first, second) * 5
        ]
    statuses = [a.status_code for a in answers]
    assert statuses == [404] * 6 + [429] * 4  # no persons yet: not_found, but counted
    remaining = [int(a.headers["RateLimit-Remaining"]) for a in answers]
    assert remaining == [5, 4, 3, 2, 1, 0, 0, 0, 0, 0]
    assert {a.headers["RateLimit-Limit"] for a in answers} == {"6"}
    refused = answers[-1]
    assert refused.json()["error"]["type"] == "rate_limited"
    assert int(refused.headers["Retry-After"]) > 0


def test_sigterm_lets_an_in_flight_request_finish(
    operator: tuple[str, str], tmp_path: Path
) -> None:
    url, key = operator
    headers = {"Authorization": f"ApiKey {key}", "Content-Type": "application/json"}
    started = threading.Event()

    def slow_body() -> Iterator[bytes]:
        yield b'{"email_address":'
        started.set()
        time.sleep(1.5)  # SIGTERM arrives while the body is still coming
        yield b' "nobody@example.com"}'

    answer: list[httpx.Response] = []

    def call(base_url: str) -> None:
        answer.append(
            httpx.post(
                base_url + "/persons/find/", content=slow_body(), headers=headers, timeout=30
            )
        )

    with serve(url, workers=1, log_dir=tmp_path) as server:
        caller = threading.Thread(target=call, args=(server.base_url,))
        caller.start()
        assert started.wait(10)
        time.sleep(0.3)
        server.process.send_signal(signal.SIGTERM)
        caller.join(30)
        # Uvicorn re-raises the signal once it has drained, as a process killed by it exits.
        assert server.process.wait(30) in (0, -signal.SIGTERM)
        # The server is gone now: new connections are refused.
        with pytest.raises(httpx.ConnectError):
            httpx.get(server.base_url + "/healthz", timeout=2)
    assert answer, "the in-flight request got no answer"
    assert answer[0].status_code == 404, answer[0].text
    assert answer[0].json()["error"]["type"] == "not_found"


def test_a_server_process_tunes_its_garbage_collector(tmp_path: Path) -> None:
    """The app uvicorn's workers build freezes what is alive at start and collects after
    50,000 new objects (docs/operations.md); an app built for a test changes nothing."""
    script = (
        "import gc\n"
        "from roster.api.app import app_from_environment\n"
        "before = gc.get_threshold()\n"
        "app_from_environment()\n"
        "print(before, gc.get_threshold(), gc.get_freeze_count() > 0)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "ROSTER_DATABASE_URL": f"sqlite:///{tmp_path / 'gc.db'}"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.split("\n")[0] == "(700, 10, 10) (50000, 20, 10) True"
