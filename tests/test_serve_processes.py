"""`roster serve` as real processes: a budget shared through Redis, a graceful SIGTERM,
workers that share the connections.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from uvicorn.config import STARTUP_FAILURE

from bench.server import Server, free_port, serve
from roster.listeners import FAIR_SHARING, listening
from tests.commands import roster, succeeds
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


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def _sockets_on(port: int, state: str) -> set[int]:
    """The inodes of TCP sockets in ``state`` (01 established, 0A listening) whose local
    port is ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == state:
                found.add(int(fields[9]))
    return found


def _worker_pids(server: Server) -> list[int]:
    return [
        pid
        for pid in server.workers()
        if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]


@pytest.mark.skipif(not FAIR_SHARING, reason="needs SO_REUSEPORT (Linux)")
def test_connections_opened_at_once_are_shared_by_the_workers(
    operator: tuple[str, str], tmp_path: Path
) -> None:
    # A client's pool opening its connections together. From one shared socket, the
    # first worker to wake accepted them all.
    connections = 32
    with serve(operator[0], workers=2, log_dir=tmp_path) as server:
        port = int(server.base_url.rsplit(":", 1)[1])
        # Ready means one worker answered; wait until both listen.
        deadline = time.monotonic() + 30
        while len(_sockets_on(port, "0A")) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        workers = _worker_pids(server)
        assert len(workers) == 2
        # Each worker listens on a socket of its own; the supervisor on none.
        listeners = _sockets_on(port, "0A")
        assert [len(_socket_inodes(pid) & listeners) for pid in workers] == [1, 1]
        assert not _socket_inodes(server.process.pid) & listeners
        clients = [socket.socket() for _ in range(connections)]
        try:
            for client in clients:
                client.setblocking(False)
                client.connect_ex(("127.0.0.1", port))
            for client in clients:
                client.setblocking(True)
                client.settimeout(10)
                client.sendall(b"GET /healthz HTTP/1.1\r\nHost: roster\r\n\r\n")
            answers = [client.recv(64) for client in clients]
            assert all(a.startswith(b"HTTP/1.1 200") for a in answers), answers
            held = _sockets_on(port, "01")
            shares = [len(_socket_inodes(pid) & held) for pid in workers]
        finally:
            for client in clients:
                client.close()
    assert sum(shares) == connections
    # Each connection goes to a worker by a hash of its ports: an even share is 16, and
    # fewer than 4 for either worker has a chance of about 3 in a million.
    assert min(shares) >= 4, shares


@pytest.mark.skipif(not FAIR_SHARING, reason="needs SO_REUSEPORT (Linux)")
def test_a_port_in_use_is_one_clear_error(operator: tuple[str, str], tmp_path: Path) -> None:
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        done = roster(operator[0], "serve", "--workers", "2", "--port", str(port))
    assert done.returncode == 1
    assert f"Cannot listen on 127.0.0.1:{port}: Address already in use." in done.stderr
    assert "Traceback" not in done.stderr
    # A second Roster on a port the first serves fails the same way: the listeners'
    # SO_REUSEPORT must not let it share the port silently.
    with serve(operator[0], workers=2, log_dir=tmp_path) as server:
        port = int(server.base_url.rsplit(":", 1)[1])
        second = roster(operator[0], "serve", "--workers", "2", "--port", str(port))
    assert second.returncode == 1
    assert f"Cannot listen on 127.0.0.1:{port}: Address already in use." in second.stderr


@pytest.mark.skipif(not FAIR_SHARING, reason="needs SO_REUSEPORT (Linux)")
def test_a_worker_that_cannot_listen_exits_as_failing_to_start() -> None:
    # uvicorn's supervisor stops on this exit status instead of restarting the worker.
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        with pytest.raises(SystemExit) as exited:
            listening("127.0.0.1", port, 16)
    assert exited.value.code == STARTUP_FAILURE
