"""Pure ASGI middleware: request ids, the body limit, and the last line of defence for 500s."""

from __future__ import annotations

import logging
import re
import secrets
import time
from typing import Any

import orjson
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from roster.api.metrics import Metrics
from roster.api.scim.errors import MEDIA_TYPE as SCIM_MEDIA_TYPE
from roster.api.scim.errors import is_scim_path, scim_error_parts
from roster.errors import (
    Naming,
    PayloadTooLarge,
    RequestHeaderFieldsTooLarge,
    RosterError,
    UriTooLong,
    as_is,
)

log = logging.getLogger("roster.http")
access_log = logging.getLogger("roster.access")

REQUEST_ID_HEADER = "x-request-id"
#: The longest request target (path and query) served: what uvicorn's URL parser
#: (httptools) can take; 1,000 ids in one list parameter need about 40,000 bytes.
MAX_TARGET_BYTES = 65_535
#: The most bytes of header names and values in one request. A bearer token is a few
#: hundred; browsers' cookies for one site rarely pass 8 KiB.
MAX_HEADER_BYTES = 32 * 1024


def target_too_long() -> UriTooLong:
    return UriTooLong(f"The request's URL (path and query) is over {MAX_TARGET_BYTES} bytes.")


def headers_too_large() -> RequestHeaderFieldsTooLarge:
    return RequestHeaderFieldsTooLarge(
        f"The request's header names and values are over {MAX_HEADER_BYTES} bytes in all."
    )


#: A request id the caller sends is echoed only when it is short and printable.
_ACCEPTABLE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:/+=-]{1,128}$")


def request_id_of(scope: Scope) -> str:
    return str(scope.get("state", {}).get("request_id", ""))


def error_response_parts(
    error: RosterError, request_id: str, naming: Naming = as_is, path: str = ""
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """An error's status, headers and body, naming fields as ``naming`` does; on a SCIM
    ``path``, in SCIM's error body (RFC 7644 §3.12)."""
    status, media_type = error.status_code, "application/json"
    extra = dict(error.headers)
    if is_scim_path(path):
        status, scim_headers, body = scim_error_parts(error, naming)
        media_type = SCIM_MEDIA_TYPE
        extra.update(scim_headers)
    else:
        body = orjson.dumps(error.body(naming))
    headers = [
        (b"content-type", media_type.encode()),
        (b"content-length", str(len(body)).encode()),
        (REQUEST_ID_HEADER.encode(), request_id.encode()),
        *((k.lower().encode(), v.encode()) for k, v in extra.items()),
    ]
    return status, headers, body


async def send_error(send: Send, error: RosterError, request_id: str, path: str = "") -> None:
    status, headers, body = error_response_parts(error, request_id, path=path)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class RequestContextMiddleware:
    """Sees every request and every answer, so that nothing leaves without its context.

    It gives each request an id and puts it on the answer, adds the client's
    RateLimit-* headers, logs one JSON line and records the metrics. It wraps
    everything else, so a fault anywhere still gets the error shape and the
    request id, never a stack trace.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started_at = time.perf_counter()
        sent = dict(scope["headers"]).get(REQUEST_ID_HEADER.encode(), b"").decode("latin-1")
        request_id = sent if _ACCEPTABLE_REQUEST_ID.match(sent) else secrets.token_hex(12)
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        status = 500
        started = False

        async def send_with_context(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
                headers = MutableHeaders(scope=message)
                headers[REQUEST_ID_HEADER] = request_id
                budget = state.get("rate_limit")
                if budget is not None:
                    for name, value in budget.headers().items():
                        headers[name] = value
            await send(message)

        try:
            await self.app(scope, receive, send_with_context)
        except Exception:
            log.exception("unhandled fault", extra={"request_id": request_id})
            if started:
                raise
            await send_error(
                send,
                RosterError(f"Something went wrong on our side. Request id: {request_id}."),
                request_id,
                scope.get("path", ""),
            )
        finally:
            self._record(scope, status, time.perf_counter() - started_at)

    def _record(self, scope: Scope, status: int, seconds: float) -> None:
        route = getattr(scope.get("route"), "path", None) or "unmatched"
        state = scope["state"]
        self.metrics.observe(scope["method"], route, status, seconds)
        access_log.info(
            "request",
            extra={
                "method": scope["method"],
                "route": route,
                "status": status,
                "duration_ms": round(seconds * 1000, 2),
                "request_id": state.get("request_id"),
                "client_id": state.get("client_id"),
            },
        )


class RequestLimitsMiddleware:
    """414 for a URL and 431 for headers over their limits; 413 for bodies over the
    limit, without reading them whole.

    ``roster serve`` refuses an oversized URL or head before it is read whole
    (roster/protocol.py); this holds the same limits under any ASGI server. A declared
    ``Content-Length`` over the body limit is refused before the app runs; a chunked
    body is counted as it arrives and refused once it passes the limit.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refused = self._head_refusal(scope)
        if refused is not None:
            await send_error(send, refused, request_id_of(scope), scope.get("path", ""))
            return
        declared = dict(scope["headers"]).get(b"content-length")
        too_large = PayloadTooLarge(
            f"The request body is over this server's limit of {self.max_body_bytes} bytes."
        )
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await send_error(send, too_large, request_id_of(scope), scope.get("path", ""))
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

    @staticmethod
    def _head_refusal(scope: Scope) -> RosterError | None:
        query = len(scope["query_string"])
        target = len(scope.get("raw_path") or scope["path"].encode()) + (query + 1 if query else 0)
        if target > MAX_TARGET_BYTES:
            return target_too_long()
        if sum(len(name) + len(value) for name, value in scope["headers"]) > MAX_HEADER_BYTES:
            return headers_too_large()
        return None


#: Set in a request's state when a read met a replica's outage (the replica died under
#: it): :class:`ReplicaRetryMiddleware` serves it again on the primary.
RETRY_ON_PRIMARY = "retry_on_primary"


class ReplicaRetryMiddleware:
    """A read that met a replica's outage after it began (the replica stopped under its
    statements, ``deps.on_replica_or_primary`` marks it down) is served once more, on
    the primary or another replica, before anything of its answer is sent: the body
    the route read is replayed and the 503 it would have had is never sent. A read is
    safe to run twice; a write never reads a replica. Installed only when replicas are
    configured. An answer already streaming (a long GET /people) cannot be taken back:
    it ends short, as it would on the primary."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        received: list[Message] = []
        held = False

        async def recording() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                received.append(message)
            return message

        async def holding(message: Message) -> None:
            nonlocal held
            if message["type"] == "http.response.start":
                held = bool(scope.get("state", {}).get(RETRY_ON_PRIMARY))
            if not held:
                await send(message)

        await self.app(scope, recording, holding)
        if not held:
            return
        state = scope["state"]
        state[RETRY_ON_PRIMARY] = False
        state.pop("read_from", None)
        log.warning("read retried after a replica failed under it")
        replay = iter(received)

        async def replaying() -> Message:
            return next(replay, None) or await receive()

        await self.app(scope, replaying, send)
