"""Pure ASGI middleware: request ids, the body limit, and the last line of defence for 500s."""

from __future__ import annotations

import logging
import re
import secrets
from typing import Any

import orjson
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from roster.errors import PayloadTooLarge, RosterError

log = logging.getLogger("roster.http")

REQUEST_ID_HEADER = "x-request-id"
#: A request id the caller sends is echoed only when it is short and printable.
_ACCEPTABLE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:/+=-]{1,128}$")


def request_id_of(scope: Scope) -> str:
    return str(scope.get("state", {}).get("request_id", ""))


def error_response_parts(
    error: RosterError, request_id: str
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    body = orjson.dumps(error.body())
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (REQUEST_ID_HEADER.encode(), request_id.encode()),
        *((k.lower().encode(), v.encode()) for k, v in error.headers.items()),
    ]
    return error.status_code, headers, body


async def send_error(send: Send, error: RosterError, request_id: str) -> None:
    status, headers, body = error_response_parts(error, request_id)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class RequestContextMiddleware:
    """Gives every request an id, puts it on every answer, and answers unhandled faults.

    It wraps everything else, so even a fault in another middleware gets the error
    shape and the request id, never a stack trace.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = dict(scope["headers"]).get(REQUEST_ID_HEADER.encode(), b"").decode("latin-1")
        request_id = sent if _ACCEPTABLE_REQUEST_ID.match(sent) else secrets.token_hex(12)
        scope.setdefault("state", {})["request_id"] = request_id
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = MutableHeaders(scope=message)
                headers[REQUEST_ID_HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled fault", extra={"request_id": request_id})
            if started:
                raise
            await send_error(
                send,
                RosterError(f"Something went wrong on our side. Request id: {request_id}."),
                request_id,
            )


class BodyLimitMiddleware:
    """413 for bodies over the limit, without reading them whole.

    A declared ``Content-Length`` over the limit is refused before the app runs; a
    chunked body is counted as it arrives and refused once it passes the limit.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        too_large = PayloadTooLarge(
            f"The request body is over this server's limit of {self.max_body_bytes} bytes."
        )
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await send_error(send, too_large, request_id_of(scope))
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message: dict[str, Any] = dict(await receive())
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise too_large
            return message

        await self.app(scope, counting_receive, send)
