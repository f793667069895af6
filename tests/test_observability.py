"""/metrics in Prometheus format, one JSON access-log line per request, and logs that
never quote what a client sent."""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from roster.api.app import create_app
from roster.db.engine import unit_of_work
from roster.logs import JsonFormatter
from roster.settings import Settings
from tests.factories import Directory


async def test_metrics_count_requests_by_route_and_status(
    client: httpx.AsyncClient, directory: Directory
) -> None:
    await directory.account("F50091")
    caller = await directory.client(["F50091"])
    for _ in range(3):
        await client.post("/persons/find/", json={}, headers=caller.headers)
    await client.get("/nowhere")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert (
        'roster_http_requests_total{method="POST",route="/persons/find/",status="404"} 3.0' in text
    )
    assert 'roster_http_requests_total{method="GET",route="unmatched",status="404"} 1.0' in text
    assert (
        'roster_http_request_duration_seconds_count{method="POST",route="/persons/find/"} 3.0'
        in text
    )
    assert "roster_db_pool_checked_out" in text


async def test_each_request_logs_one_json_line_with_ids(
    client: httpx.AsyncClient, directory: Directory, caplog: pytest.LogCaptureFixture
) -> None:
    await directory.account("F50091")
    caller = await directory.client(["F50091"])
    caplog.set_level(logging.INFO, logger="roster.access")
    await client.post(
        "/persons/find/", json={}, headers={**caller.headers, "X-Request-ID": "trace-1"}
    )
    [record] = [r for r in caplog.records if r.name == "roster.access"]
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "request"
    assert line["request_id"] == "trace-1"
    assert line["client_id"] == caller.client_id
    assert (line["method"], line["route"], line["status"]) == ("POST", "/persons/find/", 404)
    assert line["duration_ms"] >= 0
    assert caller.api_key not in json.dumps(line)


METRICS_TOKEN = "a metrics token of some length"


@pytest.fixture
async def guarded(settings: Settings, app: object) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app whose /metrics needs ROSTER_METRICS_TOKEN."""
    guarding = create_app(settings.model_copy(update={"metrics_token": SecretStr(METRICS_TOKEN)}))
    transport = httpx.ASGITransport(app=guarding)
    async with httpx.AsyncClient(transport=transport, base_url="http://roster.test") as http:
        yield http
    await guarding.state.services.engine.dispose()


async def test_a_metrics_token_guards_the_metrics(
    guarded: httpx.AsyncClient, client: httpx.AsyncClient, directory: Directory
) -> None:
    await directory.account("F50091")
    caller = await directory.client(["F50091"])
    missing = await guarded.get("/metrics")
    assert missing.status_code == 401
    assert missing.json()["error"]["type"] == "missing_authorization"
    assert missing.headers["www-authenticate"].startswith("Bearer")
    for wrong in (f"Bearer {METRICS_TOKEN}x", METRICS_TOKEN, f"ApiKey {caller.api_key}"):
        refused = await guarded.get("/metrics", headers={"Authorization": wrong})
        assert refused.status_code == 403, wrong
        assert refused.json()["error"]["type"] == "invalid_authorization"
        assert "roster_http_requests" not in refused.text
    allowed = await guarded.get("/metrics", headers={"Authorization": f"bearer {METRICS_TOKEN}"})
    assert allowed.status_code == 200
    assert "roster_http_requests_total" in allowed.text
    # Without the setting (the default) the metrics are open, as before.
    assert (await client.get("/metrics")).status_code == 200


def test_a_short_metrics_token_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 16 characters"):
        Settings(_env_file=None, metrics_token="short")


async def test_a_logged_database_error_names_its_kind_and_quotes_no_value(
    directory: Directory, backend: str
) -> None:
    """The database's message quotes the value it refused; the logged traceback keeps
    the frames and the error codes only."""
    mark = f"zqlog{secrets.token_hex(6)}"
    refused = (
        "SELECT CAST(CAST(:value AS text) AS integer)"
        if backend == "postgresql"
        else "SELECT rowid FROM personas_search WHERE personas_search MATCH :value"
    )
    with pytest.raises(DBAPIError) as caught:
        async with unit_of_work(directory.engine, write=False) as conn:
            await conn.execute(text(refused), {"value": f"{mark}:"})
    error = caught.value
    assert mark in str(error)  # what a traceback printed
    record = logging.makeLogRecord(
        {
            "name": "roster.http",
            "msg": "database fault",
            "exc_info": (type(error), error, error.__traceback__),
        }
    )
    formatted = JsonFormatter().format(record)
    assert mark not in formatted
    exception = json.loads(formatted)["exception"]
    assert "in test_a_logged_database_error_names_its_kind_and_quotes_no_value" in exception
    if backend == "postgresql":
        assert "asyncpg.exceptions.InvalidTextRepresentationError (sqlstate=22P02)" in exception
    else:
        assert "sqlite3.OperationalError (sqlite_errorname=SQLITE_ERROR)" in exception
