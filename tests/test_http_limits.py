"""Bounded request heads: a URL over 65,535 bytes is 414, headers over 32 KiB are 431,
a head that is not HTTP is 400, each in the error shape; a real `roster serve` refuses
them before reading them whole, and any ASGI server gets the same answers from the app.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench.server import Server, serve
from roster.api.middleware import MAX_HEADER_BYTES, MAX_TARGET_BYTES
from roster.protocol import MAX_HEAD_BYTES
from tests.commands import succeeds
from tests.factories import Client, Directory


def assert_error(response: httpx.Response, status: int, kind: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["type"] == kind, response.text
    assert response.headers["x-request-id"]


# -- any ASGI server: the app's own check -------------------------------------------------


async def test_the_app_refuses_a_url_over_the_limit(
    client: httpx.AsyncClient, directory: Directory
) -> None:
    await directory.account("H1")
    caller: Client = await directory.client(["H1"])
    prefix = "/people?accountId=H1&search="
    at_limit = prefix + "a" * (MAX_TARGET_BYTES - len(prefix))
    assert len(at_limit) == MAX_TARGET_BYTES
    # At the limit the URL reaches the endpoint, whose own rule refuses the long search.
    answered = await client.get(at_limit, headers=caller.headers)
    assert_error(answered, 400, "invalid_request")
    assert "search" in answered.text
    assert_error(await client.get(at_limit + "a", headers=caller.headers), 414, "uri_too_long")


async def test_the_app_refuses_headers_over_the_limit(client: httpx.AsyncClient) -> None:
    filler = {f"x-filler-{n}": "f" * 1000 for n in range(MAX_HEADER_BYTES // 1000 + 1)}
    response = await client.get("/healthz", headers=filler)
    assert_error(response, 431, "request_header_fields_too_large")
    assert (
        await client.get("/healthz", headers=dict(list(filler.items())[:20]))
    ).status_code == 200


# -- roster serve: refused before it is read whole ----------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    work = tmp_path_factory.mktemp("limits")
    url = f"sqlite:///{work / 'roster.db'}"
    succeeds(url, "migrate")
    with serve(url, workers=1, log_dir=work) as running:
        yield running


def raw_exchange(server: Server, head: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``head`` on a socket of its own; the status, headers and body answered."""
    host, port = server.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    status_line, _, rest = received.partition(b"\r\n")
    header_block, _, body = rest.partition(b"\r\n\r\n")
    headers = {
        name.decode().lower(): value.decode().strip()
        for name, _, value in (line.partition(b":") for line in header_block.split(b"\r\n"))
    }
    return int(status_line.split()[1]), headers, body


@pytest.mark.slow
def test_roster_serve_answers_a_url_over_the_limit_with_414(server: Server) -> None:
    target = b"/people?accountId=H1&search=" + b"a" * MAX_TARGET_BYTES
    status, headers, body = raw_exchange(
        server, b"GET " + target + b" HTTP/1.1\r\nHost: roster\r\n\r\n"
    )
    assert status == 414
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    assert json.loads(body)["error"]["type"] == "uri_too_long"


@pytest.mark.slow
def test_roster_serve_answers_headers_over_the_limit_with_431(server: Server) -> None:
    one_big = b"X-Big: " + b"b" * (MAX_HEADER_BYTES + 1) + b"\r\n"
    many = b"".join(b"X-Filler-%d: %s\r\n" % (n, b"f" * 1000) for n in range(40))
    for headers_sent in (one_big, many):
        status, headers, body = raw_exchange(
            server, b"GET /healthz HTTP/1.1\r\nHost: roster\r\n" + headers_sent + b"\r\n"
        )
        assert status == 431
        assert json.loads(body)["error"]["type"] == "request_header_fields_too_large"
        assert headers["x-request-id"]


@pytest.mark.slow
@pytest.mark.parametrize("padding", [MAX_HEAD_BYTES + 1000, 400_000])
def test_a_large_body_sent_with_its_head_is_no_large_head(server: Server, padding: int) -> None:
    """A head and a body larger than a head may be, in one write (as clients send a
    large upsert), reach the app: only the head counts against the head's limits,
    whether the request arrives in one chunk (the smaller) or in several."""
    body = b'{"first_name": "' + b"a" * 300 + b'", "padding": "' + b"p" * padding + b'"}'
    head = (
        b"POST /persons/find/ HTTP/1.1\r\nHost: roster\r\nConnection: close\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
    )
    status, _, answer = raw_exchange(server, head + body)
    # The app read the body: no credential is the Persons API's 400 missing_authorization.
    assert status == 400, answer
    assert json.loads(answer)["error"]["type"] == "missing_authorization"


@pytest.mark.slow
def test_roster_serve_answers_what_is_not_http_in_the_error_shape(server: Server) -> None:
    status, headers, body = raw_exchange(server, b"GET /healthz NOT-HTTP\r\n\r\n")
    assert status == 400
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["error"]["type"] == "invalid_request"


@pytest.mark.slow
def test_roster_serve_stops_reading_a_100_mb_header(server: Server) -> None:
    """The header is refused once the head passes its limit: the server closes the
    connection instead of keeping 100 MB in memory (it did), and serves on."""
    host, port = server.base_url.removeprefix("http://").split(":")
    chunk = b"b" * 65536
    sent = 0
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: roster\r\nX-Huge: ")
        try:
            while sent < 100 * 1024 * 1024:
                sock.sendall(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
    assert sent < 16 * 1024 * 1024, f"{sent} bytes of one header were taken"
    assert time.monotonic() - started < 10
    assert httpx.get(server.base_url + "/healthz", timeout=5).status_code == 200


def test_the_limits_are_documented() -> None:
    http = (Path(__file__).parents[1] / "docs" / "http.md").read_text()
    assert f"{MAX_TARGET_BYTES:,}" in http
    assert f"{MAX_HEADER_BYTES // 1024} KiB" in http
