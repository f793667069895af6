"""/metrics in Prometheus format and one JSON access-log line per request."""

from __future__ import annotations

import json
import logging

import httpx
import pytest

from roster.logs import JsonFormatter
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
