"""Webhook tests' helpers: the loopback receiver (bench/receiver.py) and the admin API's
calls."""

from __future__ import annotations

from typing import Any

import httpx

from bench.receiver import Received, Receiver, always_ok, receiving
from tests.factories import Client

__all__ = ["Received", "Receiver", "always_ok", "receiving", "register", "send"]


async def send(
    client: httpx.AsyncClient, caller: Client, method: str, path: str, body: Any = None
) -> httpx.Response:
    return await client.request(method, path, json=body, headers=caller.headers)


async def register(
    client: httpx.AsyncClient, caller: Client, account: str, url: str, **more: Any
) -> dict[str, Any]:
    response = await send(
        client, caller, "POST", "/webhooks", {"accountId": account, "url": url, **more}
    )
    assert response.status_code == 201, response.text
    found: dict[str, Any] = response.json()
    return found
