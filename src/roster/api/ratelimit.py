"""Each API client's request budget (``ROSTER_RATE_LIMIT``), counted with ``limits``.

Counters live in this process, or in Redis when ``ROSTER_REDIS_URL`` is set so that
every server process shares one budget. If Redis stops answering, requests are
still served (fail open): this process counts alone for a few seconds, logs the
outage once, and tries Redis again, so shared counting resumes by itself.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from limits import parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import FixedWindowRateLimiter

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
            headers["Retry-After"] = str(max(self.reset_after, 1))
        return headers


class ClientRateLimiter:
    """A fixed window per client id, shared through Redis when configured."""

    def __init__(self, rate: str, redis_url: str | None) -> None:
        self.item = parse(rate)
        self.local = FixedWindowRateLimiter(MemoryStorage())
        self.shared: FixedWindowRateLimiter | None = None
        self.shared_storage: Storage | None = None
        if redis_url:
            self.shared_storage = RedisStorage(
                "async+" + redis_url,
                wrap_exceptions=True,
                stream_timeout=0.5,
                connect_timeout=0.5,
            )
            self.shared = FixedWindowRateLimiter(self.shared_storage)
        self._retry_shared_at = 0.0
        self._outage = False

    async def spend(self, client_id: str) -> Budget:
        """Count one request of this client and say whether it is within budget."""
        if self.shared is not None and time.monotonic() >= self._retry_shared_at:
            try:
                budget = await self._spend(self.shared, client_id)
            except Exception as error:  # any storage failure: fail open, count locally
                if not self._outage:
                    log.warning("rate-limit store unreachable, counting locally: %s", error)
                    self._outage = True
                self._retry_shared_at = time.monotonic() + REDIS_RETRY_SECONDS
            else:
                if self._outage:
                    log.warning("rate-limit store is back; counting is shared again")
                    self._outage = False
                return budget
        return await self._spend(self.local, client_id)

    async def _spend(self, limiter: FixedWindowRateLimiter, client_id: str) -> Budget:
        allowed = await limiter.hit(self.item, "client", client_id)
        stats = await limiter.get_window_stats(self.item, "client", client_id)
        reset_after = max(0, math.ceil(stats.reset_time - time.time()))
        return Budget(self.item.amount, stats.remaining, reset_after, allowed)
