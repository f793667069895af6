"""A webhook receiver on 127.0.0.1 (uvicorn, in the caller's event loop) that records
every delivery and answers as it is told: the benchmark's (bench/webhooks.py) and the
tests' (tests/webhooks.py)."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import orjson
import uvicorn
from standardwebhooks import Webhook


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: str
    at: float  # time.time()

    @property
    def event(self) -> dict[str, Any]:
        found: dict[str, Any] = orjson.loads(self.body)
        return found

    def verified_by(self, secret: str) -> bool:
        try:
            Webhook(secret).verify(self.body, self.headers)
        except Exception:
            return False
        return True


#: How a receiver answers the n-th request (0 first) to a path: a status, after a wait.
Answer = Callable[[str, int], Awaitable[int]]


async def always_ok(path: str, n: int) -> int:
    return 200


class Receiver:
    """An HTTP endpoint on 127.0.0.1 recording what it is sent, by path."""

    def __init__(self, answer: Answer = always_ok) -> None:
        self.answer = answer
        self.received: dict[str, list[Received]] = defaultdict(list)
        self.port = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        path = scope["path"]
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        got = self.received[path]
        n = len(got)
        got.append(Received(path, headers, body.decode(), time.time()))
        status = await self.answer(path, n)
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def wait_for(self, path: str, count: int, within: float = 15.0) -> list[Received]:
        """The deliveries to ``path`` once there are ``count``; fails after ``within`` s."""
        deadline = time.monotonic() + within
        while len(self.received[path]) < count:
            assert time.monotonic() < deadline, (
                f"{path}: {len(self.received[path])} of {count} deliveries"
            )
            await asyncio.sleep(0.02)
        return self.received[path]


@asynccontextmanager
async def receiving(answer: Answer = always_ok) -> AsyncIterator[Receiver]:
    receiver = Receiver(answer)
    config = uvicorn.Config(
        receiver, host="127.0.0.1", port=0, log_level="warning", lifespan="off", access_log=False
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn's flag, no event)
        await asyncio.sleep(0.01)
    receiver.port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield receiver
    finally:
        server.should_exit = True
        await serving
