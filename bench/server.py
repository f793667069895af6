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
