"""The real server, started as `roster serve`, and its memory as the kernel reports it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy.engine import make_url


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
        try:
            text = (task / "children").read_text().split()
        except FileNotFoundError:  # a thread that ended meanwhile
            continue
        found += [int(p) for p in text]
    return found


_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User and system CPU a process has used, 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS


def backends_of(database: str, postmaster: int | None = None) -> list[int]:
    """The PostgreSQL backend processes serving ``database`` (by their process title),
    of one server only when its ``postmaster`` is given."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            title = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            parent = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        ours = postmaster is None or parent == postmaster
        if ours and title.startswith("postgres: ") and f" {database} " in title:
            found.append(int(proc.name))
    return found


class CpuTracker:
    """CPU spent while a block runs by the processes ``pids()`` names, sampled every
    ``interval`` seconds, so that a process that ends in the meantime (a connection
    closed) still counts up to its last sample. A sample reads /proc (``backends_of``:
    about 3 ms), in the tracking process: one that measures itself, as the import
    benchmark does, samples less often."""

    def __init__(self, pids: Callable[[], Iterable[int]], interval: float = 0.05) -> None:
        self.pids = pids
        self.interval = interval
        self.baseline: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self._stop = threading.Event()

    def _sample(self) -> None:
        for pid in self.pids():
            if (spent := cpu_seconds(pid)) > 0:
                self.last[pid] = spent

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> CpuTracker:
        self._sample()
        self.baseline = dict(self.last)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    @property
    def seconds(self) -> float:
        return sum(spent - self.baseline.get(pid, 0.0) for pid, spent in self.last.items())


@dataclass
class Server:
    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    #: The database it serves, where its command's environment names it.
    database_url: str = ""

    @property
    def postgres_database(self) -> str | None:
        """The name of the PostgreSQL database it serves (None: SQLite, or unknown)."""
        url = make_url(self.database_url) if self.database_url else None
        return url.database if url is not None and url.get_backend_name() == "postgresql" else None

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
    server = Server(
        f"http://127.0.0.1:{port}", process, log_path, env.get("ROSTER_DATABASE_URL", "")
    )
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
