"""Request budgets: each API client's (``ROSTER_RATE_LIMIT``) and each client address's
failed authentications (``ROSTER_AUTH_FAILURE_LIMIT``), counted in fixed windows.

Counters live in this process, or in Redis when ``ROSTER_REDIS_URL`` is set so that
every server process shares them. If Redis stops answering, requests are still served
(fail open): this process counts alone for a few seconds, logs the outage once, and
tries Redis again, so shared counting resumes by itself.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import coredis
from coredis.retry import NoRetryPolicy
from limits import parse

log = logging.getLogger("roster.ratelimit")

#: How long to count locally after Redis failed before trying it again.
REDIS_RETRY_SECONDS = 5.0


@dataclass(frozen=True)
class Budget:
    """Where a client stands after one request: the RateLimit-* headers."""

    limit: int
    remaining: int
    reset_after: int  # seconds until the window resets
    allowed: bool

    def headers(self) -> dict[str, str]:
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_after),
        }
        if not self.allowed:
            headers["Retry-After"] = self.retry_after
        return headers

    @property
    def retry_after(self) -> str:
        return str(max(self.reset_after, 1))


@dataclass(frozen=True)
class Rate:
    """So many requests per window of so many seconds (``1200/minute``)."""

    amount: int
    seconds: int

    @classmethod
    def parse(cls, text: str) -> Rate:
        item = parse(text)
        return cls(item.amount, item.get_expiry())

    def budget(self, count: int, reset_after: float) -> Budget:
        """The budget after the window's ``count``-th request."""
        reset = max(0, math.ceil(reset_after))
        return Budget(self.amount, max(0, self.amount - count), reset, count <= self.amount)


class LocalWindows:
    """Fixed windows counted in this process, the way Redis counts them below.

    Written here because ``limits``' in-memory storage starts a timer thread (or an
    asyncio task) every 10 ms to expire keys, which cost every request of a busy
    server about 60 µs of contention; a window per key in a dict costs nothing. It
    counts and reads in one step (no await between), so concurrent requests are each
    told their own count.
    """

    #: Past this many keys, windows that have ended are dropped (keys are client ids and
    #: the addresses that failed to authenticate: an attacker's addresses are many).
    PRUNE_ABOVE = 10_000

    def __init__(self, rate: Rate) -> None:
        self.rate = rate
        self.windows: dict[str, tuple[float, int]] = {}

    def spend(self, key: str) -> Budget:
        now = time.time()
        if len(self.windows) > self.PRUNE_ABOVE:
            ended = now - self.rate.seconds
            self.windows = {k: w for k, w in self.windows.items() if w[0] > ended}
        started, count = self.windows.get(key, (now, 0))
        if now >= started + self.rate.seconds:
            started, count = now, 0
        count += 1
        self.windows[key] = (started, count)
        return self.rate.budget(count, started + self.rate.seconds - now)


#: Counts a hit and reads its window's remaining time in one round trip: the count a
#: request is told of is its own (reading it separately told concurrent requests the
#: counts of others: five of fifty said 0). The first hit of a window starts its expiry.
_HIT = """
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
"""


class SharedWindows:
    """Fixed windows counted in Redis, shared by every server process."""

    def __init__(self, redis_url: str) -> None:
        self.client: coredis.Redis[Any] = coredis.Redis.from_url(
            redis_url, stream_timeout=0.5, connect_timeout=0.5, retry_policy=NoRetryPolicy()
        )
        self.hit = self.client.register_script(_HIT)

    async def spend(self, key: str, rate: Rate) -> Budget:
        answer = await self.hit(keys=[key], args=[rate.seconds * 1000])
        if not isinstance(answer, list) or len(answer) != 2:
            raise TypeError(f"unexpected answer from Redis: {type(answer).__name__}")
        count, ttl_ms = (int(value) for value in answer)
        return rate.budget(count, ttl_ms / 1000)


class Windows:
    """One budget per key (a client id, an address), shared through Redis when
    configured, counted locally while Redis is away."""

    def __init__(self, name: str, rate: str, shared: SharedWindows | None) -> None:
        self.name = name
        self.rate = Rate.parse(rate)
        self.local = LocalWindows(self.rate)
        self.shared = shared
        self._retry_shared_at = 0.0
        self._outage = False

    async def spend(self, key: str) -> Budget:
        """Count one request under ``key`` and say whether it is within budget."""
        if self.shared is not None and time.monotonic() >= self._retry_shared_at:
            try:
                budget = await self.shared.spend(
                    f"roster:{self.name}:{self.rate.amount}/{self.rate.seconds}:{key}", self.rate
                )
            except Exception as error:  # any storage failure: fail open, count locally
                if not self._outage:
                    log.warning(
                        "rate-limit store unreachable, counting locally",
                        extra={"error": type(error).__name__},
                    )
                    self._outage = True
                self._retry_shared_at = time.monotonic() + REDIS_RETRY_SECONDS
            else:
                if self._outage:
                    log.warning("rate-limit store is back; counting is shared again")
                    self._outage = False
                return budget
        return self.local.spend(key)


class ClientRateLimiter(Windows):
    """A fixed window per client id (``ROSTER_RATE_LIMIT``)."""

    def __init__(self, rate: str, shared: SharedWindows | None) -> None:
        super().__init__("budget", rate, shared)


class AuthFailureLimiter(Windows):
    """A fixed window of failed authentications per client address
    (``ROSTER_AUTH_FAILURE_LIMIT``). Once an address is over it, every authentication
    from it is refused until its window ends, whatever credential it sends: otherwise
    guessing would go on, each wrong guess refused and the right one let through.

    The refusal is known in this process from the failure that went over the limit;
    another process learns it at its own next failure from that address (each costs a
    guess at most), so that a request that authenticates costs no trip to Redis.
    """

    def __init__(self, rate: str, shared: SharedWindows | None) -> None:
        super().__init__("auth-failures", rate, shared)
        self._refused_until: dict[str, float] = {}

    def refusal(self, address: str) -> Budget | None:
        """The exhausted budget of an address that may not authenticate now, if it is."""
        until = self._refused_until.get(address)
        if until is None:
            return None
        left = until - time.monotonic()
        if left <= 0:
            del self._refused_until[address]
            return None
        return self.rate.budget(self.rate.amount + 1, left)

    async def failed(self, address: str) -> Budget:
        """Count a failed authentication from ``address``."""
        budget = await self.spend(address)
        if not budget.allowed:
            self._refused_until[address] = time.monotonic() + max(budget.reset_after, 1)
        return budget
