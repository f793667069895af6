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

from limits import RateLimitItem, WindowStats, parse
from limits.aio.storage import RedisStorage, Storage
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


class LocalWindows:
    """Fixed windows counted in this process, the same way ``limits`` counts them.

    Written here because ``limits``' in-memory storage starts a timer thread (or an
    asyncio task) every 10 ms to expire keys, which cost every request of a busy
    server about 60 µs of contention; a window per client in a dict costs nothing.
    """

    def __init__(self, item: RateLimitItem) -> None:
        self.amount = item.amount
        self.seconds = item.get_expiry()
        self.windows: dict[str, tuple[float, int]] = {}

    def spend(self, client_id: str) -> Budget:
        now = time.time()
        started, count = self.windows.get(client_id, (now, 0))
        if now >= started + self.seconds:
            started, count = now, 0
        count += 1
        self.windows[client_id] = (started, count)
        reset_after = max(0, math.ceil(started + self.seconds - now))
        return Budget(self.amount, max(0, self.amount - count), reset_after, count <= self.amount)


class ClientRateLimiter:
    """A fixed window per client id, shared through Redis when configured."""

    def __init__(self, rate: str, redis_url: str | None) -> None:
        self.item = parse(rate)
        self.local = LocalWindows(self.item)
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
                allowed = await self.shared.hit(self.item, "client", client_id)
                stats = await self.shared.get_window_stats(self.item, "client", client_id)
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
                return _budget(self.item, allowed, stats)
        return self.local.spend(client_id)


def _budget(item: RateLimitItem, allowed: bool, stats: WindowStats) -> Budget:
    reset_after = max(0, math.ceil(stats.reset_time - time.time()))
    return Budget(item.amount, stats.remaining, reset_after, allowed)
