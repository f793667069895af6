"""Streaming replicas that serve reads (``ROSTER_DATABASE_REPLICA_URLS``; PostgreSQL
only, docs/scaling.md).

A :class:`ReplicaSet` keeps an engine per replica and polls each, every half second,
for how far it has replayed the primary's WAL: a replica that does not answer, or is
behind by more than ``ROSTER_REPLICA_MAX_LAG_SECONDS``, serves nothing until it answers
and catches up. Read-your-writes: after a client's write commits, the primary's WAL
position is remembered under that client (:class:`WritePositions`, in Redis when
configured so that every process knows it); the client's reads go to a replica that
has replayed that far, else to the primary.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
import time
from dataclasses import dataclass
from typing import Any, Literal

import coredis
from coredis.retry import NoRetryPolicy
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from roster.db.engine import create_engine
from roster.settings import Settings

log = logging.getLogger("roster.replicas")

#: How often each replica is asked how far it has replayed.
POLL_SECONDS = 0.5
#: How long one poll may take before the replica counts as down.
POLL_TIMEOUT_SECONDS = 1.0
#: How long a request waits for a replica's connection (the pool, its ping, the
#: transaction's setup) before it reads the primary instead. A pooler in front of a
#: replica that is gone may hold a statement for as long as it waits for a server
#: (PgBouncer's query_wait_timeout: 120 s by default) rather than fail it.
REPLICA_CONNECT_SECONDS = 1.0

# WAL positions as numbers of bytes (pg_lsn minus 0/0), comparable across servers.
_PRIMARY_POSITION = text("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")
_WRITTEN_POSITION = text("SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn")
_REPLAYED = text(
    "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn() - '0/0'::pg_lsn, "
    "EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())"
)

#: A position no replica reaches: the reads it guards go to the primary.
_EVERYTHING = 2**62

ReplicaState = Literal["starting", "serving", "lagging", "down"]


@dataclass
class Replica:
    """One replica: its engine and what the last poll found."""

    name: str  # host:port/database, no credentials
    engine: AsyncEngine
    state: ReplicaState = "starting"
    lag_seconds: float | None = None
    replayed: int = 0  # bytes of WAL replayed

    def mark_down(self) -> None:
        if self.state != "down":
            log.warning("replica unreachable, reads go elsewhere", extra={"replica": self.name})
        self.state = "down"


def replica_name(url: str) -> str:
    shown = make_url(url.replace("postgres://", "postgresql://", 1))
    return f"{shown.host}:{shown.port or 5432}/{shown.database}"


#: Keeps the greater of the stored and the given position, and renews the expiry.
_REMEMBER = """
local stored = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > stored then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1
"""


class WritePositions:
    """The WAL position of each client's last write, kept for as long as a serving
    replica may still lack it (the maximum lag, and a margin for the polls)."""

    def __init__(self, redis_url: str | None, max_lag_seconds: float) -> None:
        self.ttl = max_lag_seconds + 5 * POLL_SECONDS
        self.local: dict[str, tuple[int, float]] = {}
        self.client: coredis.Redis[Any] | None = None
        if redis_url:
            self.client = coredis.Redis.from_url(
                redis_url, stream_timeout=0.5, connect_timeout=0.5, retry_policy=NoRetryPolicy()
            )
            self.remember_script = self.client.register_script(_REMEMBER)

    @staticmethod
    def key(credential: str) -> str:
        return "roster:written:" + hashlib.sha256(credential.encode()).hexdigest()[:32]

    async def remember(self, credential: str, position: int) -> None:
        key = self.key(credential)
        stored, _ = self.local.get(key, (0, 0.0))
        self.local[key] = (max(stored, position), time.monotonic() + self.ttl)
        if self.client is not None:
            try:
                await self.remember_script(keys=[key], args=[position, int(self.ttl * 1000)])
            except Exception as error:  # the reads of this client then go to the primary
                log.warning("write positions unreachable", extra={"error": type(error).__name__})

    async def needed(self, credential: str) -> int | None:
        """How far a replica must have replayed to show this client its writes (0:
        any serving replica); None when that cannot be known now (read the primary)."""
        key = self.key(credential)
        position, until = self.local.get(key, (0, 0.0))
        position = position if until > time.monotonic() else 0
        if self.client is None:
            return position
        try:
            shared = await self.client.get(key)
        except Exception:  # unknown: the primary has every write
            return None
        return max(position, int(shared or 0))


class ReplicaSet:
    """The replicas of the primary, their health, and which one serves a read."""

    def __init__(self, settings: Settings, primary: AsyncEngine) -> None:
        self.primary = primary
        self.max_lag = settings.replica_max_lag_seconds
        self.positions = WritePositions(settings.redis_url, settings.replica_max_lag_seconds)
        timeout = settings.database_statement_timeout_seconds
        self.replicas = [
            Replica(
                replica_name(url),
                create_engine(
                    settings.model_copy(update={"database_url": url}),
                    statement_timeout=timeout,
                    pool_pre_ping=True,  # a replica restarted: its connections are dead
                ),
            )
            for url in settings.database_replica_urls
        ]
        self._turn = itertools.count()
        self._task: asyncio.Task[None] | None = None

    async def poll(self) -> None:
        """Ask the primary where its WAL is, and each replica how far it has replayed."""
        try:
            async with self.primary.connect() as conn:
                primary = int(await conn.scalar(_PRIMARY_POSITION) or 0)
        except Exception:
            primary = None  # lag is then judged by replay time alone
        await asyncio.gather(*(self._poll_one(replica, primary) for replica in self.replicas))

    async def _poll_one(self, replica: Replica, primary: int | None) -> None:
        try:
            async with asyncio.timeout(POLL_TIMEOUT_SECONDS):
                async with replica.engine.connect() as conn:
                    row = (await conn.execute(_REPLAYED)).one()
        except Exception:
            replica.mark_down()
            return
        in_recovery, replayed, age = row
        replica.replayed = int(replayed or 0)
        if not in_recovery:
            lag = None  # promoted, or not a replica: never serve reads from it
        elif primary is not None and replica.replayed >= primary:
            lag = 0.0  # caught up: an idle primary's last commit may be old
        else:
            lag = float(age) if age is not None else None
        replica.lag_seconds = lag
        serving = lag is not None and lag <= self.max_lag
        if serving and replica.state != "serving":
            log.warning("replica serving reads", extra={"replica": replica.name})
        replica.state = "serving" if serving else "lagging"

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(Exception):
                await self.poll()
            await asyncio.sleep(POLL_SECONDS)

    async def start(self) -> None:
        if self.replicas:
            await self.poll()
            self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for replica in self.replicas:
            await replica.engine.dispose()

    async def for_reading(self, credential: str | None) -> Replica | None:
        """A serving replica that has replayed this client's writes, in turn; None: read
        the primary."""
        serving = [r for r in self.replicas if r.state == "serving"]
        if not serving:
            return None
        needed = await self.positions.needed(credential or "")
        if needed is None:
            return None
        ready = [r for r in serving if r.replayed >= needed]
        return ready[next(self._turn) % len(ready)] if ready else None

    async def written(self, credential: str | None) -> None:
        """After a write committed: remember the primary's WAL position for this client."""
        if not self.replicas:
            return
        try:
            async with self.primary.connect() as conn:
                position = int(await conn.scalar(_WRITTEN_POSITION) or 0)
        except Exception:
            # The write is committed; where it ends is unknown: this client reads the
            # primary until the positions expire.
            position = _EVERYTHING
        await self.positions.remember(credential or "", position)
