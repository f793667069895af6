"""The HTTP/1.1 protocol ``roster serve`` runs: uvicorn's (httptools), with bounds on
the request head and answers in the service's error shape.

uvicorn's httptools protocol keeps a request's URL and headers in memory however large
they are (one worker took a 100 MB header, and four at once doubled its memory), and
answers what its parser refuses, a URL over 65,535 bytes among them, with a plain-text
400. This one counts the head as it arrives and refuses it once it passes the limits of
``roster.api.middleware``: 414 for the URL, 431 for the headers, 400 for anything
else it cannot parse, each as JSON in the error shape, and closes the connection.
"""

from __future__ import annotations

import secrets
from http import HTTPStatus
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from roster.api.middleware import (
    MAX_HEADER_BYTES,
    MAX_TARGET_BYTES,
    error_response_parts,
    headers_too_large,
    target_too_long,
)
from roster.errors import InvalidRequest, RosterError

#: The whole head as it arrives: the request line and the headers with their
#: separators, which the two limits above do not count.
MAX_HEAD_BYTES = MAX_TARGET_BYTES + MAX_HEADER_BYTES + 8 * 1024


class _Refused(Exception):
    """Raised from a parser callback; the parser then fails and uvicorn calls
    ``send_400_response``, which answers the refusal instead."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a bounded request head."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True
        self._head_bytes = 0
        self._header_bytes = 0
        self._heads_completed = 0
        self._refusal: RosterError | None = None

    def data_received(self, data: bytes) -> None:
        in_head, heads = self._in_head, self._heads_completed
        super().data_received(data)
        # httptools keeps a header value until it is complete, so a chunk that arrives
        # within a head and leaves it incomplete is counted. A chunk that completes a
        # head is not (the parser has checked its URL and each header), though it may
        # carry a whole request, body and all; nor is one that ends a body, though a new
        # head may begin after it (both are bounded by the size of one read).
        within_head = in_head and self._in_head and heads == self._heads_completed
        if within_head and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                url = getattr(self, "url", b"")
                self._answer(
                    target_too_long() if len(url) > MAX_TARGET_BYTES else headers_too_large()
                )

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > MAX_TARGET_BYTES:
            self._refusal = target_too_long()
            raise _Refused

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > MAX_HEADER_BYTES:
            self._refusal = headers_too_large()
            raise _Refused
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._heads_completed += 1
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head, self._head_bytes = True, 0

    def send_400_response(self, msg: str) -> None:
        self._answer(self._refusal or InvalidRequest("The request is not valid HTTP/1.1."))

    def _answer(self, error: RosterError) -> None:
        """Write ``error`` in the error shape and close the connection."""
        status, headers, body = error_response_parts(error, secrets.token_hex(12))
        lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}".encode()]
        lines += [name + b": " + value for name, value in headers]
        lines.append(b"connection: close")
        self.transport.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        self.transport.close()


#: uvicorn's options for ``roster serve``.
SERVER_OPTIONS = {"http": f"{__name__}:{BoundedHttpToolsProtocol.__name__}"}
