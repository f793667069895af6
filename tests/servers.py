"""Throwaway PostgreSQL and Redis servers that a test owns, starts and stops.

Fault tests must never stop the machine's shared servers; these run on their own
ports, in temporary directories, and are removed afterwards.
"""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

import asyncpg


class _Stoppable(Protocol):
    def stop(self) -> None: ...


_Server = TypeVar("_Server", bound=_Stoppable)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(port: int, *, up: bool, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            probe.settimeout(0.2)
            reachable = probe.connect_ex(("127.0.0.1", port)) == 0
        if reachable == up:
            return
        time.sleep(0.05)
    raise TimeoutError(f"port {port} did not go {'up' if up else 'down'} in {timeout}s")


def wait_for(condition: Callable[[], bool], timeout: float = 20) -> None:
    """Returns once ``condition()`` holds (asked every 0.1 s); TimeoutError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.1)


def fetchval(url: str, statement: str) -> object:
    """The first value of one statement, on its own connection (no prepared statement
    kept: ``url`` may be a PgBouncer's)."""

    async def run() -> object:
        conn = await asyncpg.connect(url, statement_cache_size=0)
        try:
            return await conn.fetchval(statement)
        finally:
            await conn.close()

    return asyncio.run(run())


def _postgres_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path is None:
        raise FileNotFoundError(f"{name} (PostgreSQL server binaries) not found")
    return path


def _as_postgres(command: list[str]) -> list[str]:
    """initdb and pg_ctl refuse to run as root: run them as the postgres user then."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@dataclass
class ThrowawayPostgres:
    """A private PostgreSQL cluster (initdb + pg_ctl) on its own port, trust auth."""

    root: Path
    port: int = field(default_factory=free_port)
    #: Server settings given at start (``-c name=value``).
    settings: dict[str, str] = field(default_factory=dict)

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def create(self) -> None:
        self._made_by(
            _postgres_bin("initdb"),
            *("-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"),
        )

    def create_replica(self, primary: ThrowawayPostgres) -> None:
        """A streaming replica of ``primary`` (pg_basebackup -R), started."""
        self._made_by(
            _postgres_bin("pg_basebackup"),
            *("-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres"),
            # A fast checkpoint: a spread one waits for minutes after a large restore.
            *("-D", str(self.data), "-R", "-X", "stream", "--no-sync", "--checkpoint=fast"),
        )

    def _made_by(self, *command: str) -> None:
        """The data folder, made by ``command`` (as the postgres user), then started."""
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        subprocess.run(_as_postgres(list(command)), check=True, capture_output=True)
        self.start()

    def log(self) -> str:
        return (self.root / "log").read_text(errors="replace")

    def fetchval(self, statement: str) -> object:
        """One statement's first value, on this server directly."""
        return fetchval(self.url, statement)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        options += "".join(f" -c {name}={value}" for name, value in self.settings.items())
        subprocess.run(
            _as_postgres(
                [
                    _postgres_bin("pg_ctl"),
                    "-D",
                    str(self.data),
                    "-o",
                    options,
                    "-l",
                    str(self.root / "log"),
                    "-w",
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
        )
        wait_for_port(self.port, up=True)

    def stop(self) -> None:
        subprocess.run(
            _as_postgres(
                [_postgres_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"]
            ),
            check=False,
            capture_output=True,
        )
        wait_for_port(self.port, up=False)


@contextmanager
def throwaway_postgres(settings: dict[str, str] | None = None) -> Iterator[ThrowawayPostgres]:
    """A private cluster, started, and removed afterwards (share one per test module:
    initdb takes a few seconds)."""
    # Not under pytest's tmp_path: that is private to root, and the server runs as postgres.
    root = Path(tempfile.mkdtemp(prefix="roster-pg-"))
    server = ThrowawayPostgres(root, settings=settings or {})
    yield from _running(server, server.create, root)


@contextmanager
def throwaway_replica(
    primary: ThrowawayPostgres, settings: dict[str, str] | None = None
) -> Iterator[ThrowawayPostgres]:
    """A streaming replica of ``primary`` on its own port, removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="roster-replica-"))
    server = ThrowawayPostgres(root, settings=settings or {})
    yield from _running(server, lambda: server.create_replica(primary), root)


def _running(server: _Server, start: Callable[[], None], root: Path) -> Iterator[_Server]:
    """``server``, started, then stopped and its folder removed when the caller is done."""
    try:
        start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


class _OwnProcess:
    """A server this test runs as a child process, listening on ``port``."""

    port: int
    process: subprocess.Popen[bytes] | None

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None
        wait_for_port(self.port, up=False)


@dataclass
class ThrowawayRedis(_OwnProcess):
    """A private Redis on its own port that keeps nothing on disk."""

    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, up=True)


@contextmanager
def throwaway_redis() -> Iterator[ThrowawayRedis]:
    """A private Redis, started, and stopped afterwards."""
    server = ThrowawayRedis()
    server.start()
    try:
        yield server
    finally:
        server.stop()


PGBOUNCER = "/usr/sbin/pgbouncer"


@dataclass
class ThrowawayPgBouncer(_OwnProcess):
    """PgBouncer in transaction pooling mode on its own port, in front of a PostgreSQL
    server (every database of it, by name), with ``server_pool_size`` server connections
    per database however many clients connect."""

    root: Path
    server_port: int
    server_pool_size: int = 2
    #: Seconds a statement may wait for a server connection before PgBouncer fails it
    #: (its default is 120).
    query_wait_timeout: int = 120
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        (self.root / "users.txt").write_text('"postgres" ""\n')
        (self.root / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"* = host=127.0.0.1 port={self.server_port}\n"
            "[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {self.port}\n"
            "unix_socket_dir =\n"
            "auth_type = trust\n"
            f"auth_file = {self.root / 'users.txt'}\n"
            "admin_users = postgres\n"
            "pool_mode = transaction\n"
            # Each transaction to the server connection used longest ago, not the last
            # one: a client whose statement depended on its previous server fails at once.
            "server_round_robin = 1\n"
            f"default_pool_size = {self.server_pool_size}\n"
            # A server that was down is tried again after a second, not the default 15:
            # a replica that returns serves reads through its PgBouncer at once.
            "server_login_retry = 1\n"
            f"query_wait_timeout = {self.query_wait_timeout}\n"
            "max_client_conn = 500\n"
            f"logfile = {self.root / 'pgbouncer.log'}\n"
        )
        # PgBouncer refuses to run as root; it drops to the postgres user itself then.
        user = ["-u", "postgres"] if os.geteuid() == 0 else []
        if os.geteuid() == 0:
            for path in (self.root, *self.root.iterdir()):
                shutil.chown(path, "postgres", "postgres")
        self.process = subprocess.Popen(
            [PGBOUNCER, *user, str(self.root / "pgbouncer.ini")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, up=True)

    def show(self, what: str) -> list[dict[str, str]]:
        """The rows of the admin console's ``SHOW what`` (POOLS, STATS, ...)."""
        done = subprocess.run(
            [
                *("psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"),
                *("-d", "pgbouncer", "-A", "-F", "\t", "-P", "footer=off", "-c", f"SHOW {what}"),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        header, *rows = done.stdout.splitlines()
        names = header.split("\t")
        return [dict(zip(names, row.split("\t"), strict=True)) for row in rows]

    def log(self) -> str:
        return (self.root / "pgbouncer.log").read_text(errors="replace")


@contextmanager
def throwaway_pgbouncer(
    server_port: int, server_pool_size: int = 2, query_wait_timeout: int = 120
) -> Iterator[ThrowawayPgBouncer]:
    """PgBouncer (transaction mode) in front of the PostgreSQL on ``server_port``, stopped
    and removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="roster-pgbouncer-"))
    bouncer = ThrowawayPgBouncer(root, server_port, server_pool_size, query_wait_timeout)
    yield from _running(bouncer, bouncer.start, root)
