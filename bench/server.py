"""The real server, started as `roster serve`, and its memory as the kernel reports it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def rss_bytes(pid: int) -> int:
    """Resident memory of one process (VmRSS), 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except FileNotFoundError:
        return 0
    return 0


def children(pid: int) -> list[int]:
    """The direct children of a process (uvicorn's workers)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        text = (task / "children").read_text().split()
        found += [int(p) for p in text]
    return found


def cpu_ticks(pid: int) -> int:
    """User and system CPU of one process so far, in clock ticks (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0
    return int(fields[11]) + int(fields[12])


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU of these processes so far (those gone count 0)."""
    return sum(cpu_ticks(pid) for pid in pids) / os.sysconf("SC_CLK_TCK")


def postgres_processes() -> list[int]:
    """The PostgreSQL server processes of this machine (none when it runs elsewhere)."""
    found: list[int] = []
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() == "postgres":
                found.append(int(comm.parent.name))
        except (FileNotFoundError, ProcessLookupError):
            continue
    return found


@dataclass
class Server:
    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def workers(self) -> list[int]:
        return children(self.process.pid) or [self.process.pid]

    def rss(self) -> int:
        return sum(rss_bytes(p) for p in self.workers())


@dataclass
class CpuMeter:
    """The CPU a block cost the server's processes and this machine's PostgreSQL (every
    backend: the block's own and any other that ran meanwhile)."""

    server: Server
    server_seconds: float = 0.0
    #: None: no PostgreSQL process is on this machine (or visible from here).
    postgres_seconds: float | None = None

    def __enter__(self) -> CpuMeter:
        self._server = self.server.workers()
        self._started = cpu_seconds(self._server)
        self._postgres = {pid: cpu_ticks(pid) for pid in postgres_processes()}
        return self

    def __exit__(self, *_: object) -> None:
        self.server_seconds = cpu_seconds(self._server) - self._started
        # A backend that started in the block counts from its start; one that ended in
        # it, up to its reading at the start (one that did both is not seen at all).
        ticks = 0
        for pid in set(self._postgres) | set(postgres_processes()):
            before = self._postgres.get(pid, 0)
            ticks += max(cpu_ticks(pid), before) - before
        if self._postgres:
            self.postgres_seconds = ticks / os.sysconf("SC_CLK_TCK")


@dataclass
class RssSampler:
    """Samples a server's total RSS every few milliseconds while a block runs."""

    server: Server
    interval: float = 0.01
    peak: int = 0
    baseline: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> RssSampler:
        self.baseline = self.peak = self.server.rss()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.server.rss())
            time.sleep(self.interval)

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.server.rss())


@contextmanager
def serve(database_url: str, *, workers: int, log_dir: Path, **env: str) -> Iterator[Server]:
    """`roster serve --workers N` on a free port, ready when /readyz says so."""
    environment = {
        "ROSTER_DATABASE_URL": database_url,
        "ROSTER_RATE_LIMIT": "10000000/minute",
        "ROSTER_AUTH_FAILURE_LIMIT": "10000000/minute",
        "ROSTER_LOG_LEVEL": "WARNING",
        **env,
    }
    roster = str(Path(sys.executable).with_name("roster"))
    command = [roster, "serve", "--host", "127.0.0.1", "--workers", str(workers)]
    with _serving("roster serve", command, environment, log_dir) as server:
        yield server


@contextmanager
def serve_floor(database_url: str, *, workers: int, log_dir: Path) -> Iterator[Server]:
    """The floor (bench/floor.py) with ``workers`` workers on a free port, ready when its
    /readyz answers."""
    command = [sys.executable, "-m", "bench.floor", "--database-url", database_url]
    command += ["--host", "127.0.0.1", "--workers", str(workers)]
    with _serving("the floor", command, {}, log_dir) as server:
        yield server


@contextmanager
def _serving(what: str, command: list[str], env: dict[str, str], log_dir: Path) -> Iterator[Server]:
    """A server started with ``command`` (and ``--port``) on a free port; stopped after."""
    port = free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"server-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*command, "--port", str(port)],
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = Server(f"http://127.0.0.1:{port}", process, log_path)
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{what} exited; see {log_path}")
            try:
                if httpx.get(server.base_url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} not ready; see {log_path}")
            time.sleep(0.2)
        yield server
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
