"""Schemathesis against a live `roster serve` and its own /openapi.json, with real credentials.

Bounded by time (a couple of minutes per backend): no 5xx, every answer's status,
content type, headers and body as documented; every request the document calls valid
is accepted (or meets a documented business answer: an id that names nothing, a taken
value, a broken rule). NUL bytes are generated, the examples, coverage, fuzzing and
stateful phases all run, and ``accountId`` names the real account the run fills, so
requests get past it to the parameters behind it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.server import serve
from tests.commands import succeeds

pytestmark = pytest.mark.slow

SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))
CHECKS = ",".join(
    (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "positive_data_acceptance",
        "negative_data_rejection",
    )
)
#: Where a valid request still meets a business answer: an id or account that names
#: nothing this client reaches (404), a value another record holds (409), a rule of the
#: directory (422), an old cursor (410).
CONFIG = """
[generation]
allow-x00 = true

[parameters]
accountId = "DEMO"
# The admin API's client operations work on a client made for them: never the run's own
# client, which a generated revoke or rotate would otherwise lock out of the rest.
clientId = "{victim}"
# GET /events holds a request open up to `wait` seconds when no event comes: a fuzzer's
# every empty read would cost its budget of time (tests/test_events_feed.py tests wait).
wait = 0

[checks.positive_data_acceptance]
expected-statuses = ["2xx", 404, 409, 410, 422]

# No generated client id and secret is a real client's: invalid_client is the answer.
[[operations]]
include-path = "/oauth2/token"
checks.positive_data_acceptance.expected-statuses = ["2xx", 401]
"""
SECONDS = os.environ.get("ROSTER_SCHEMATHESIS_SECONDS", "90")


def test_the_live_api_keeps_its_documented_contract(fresh_database: str, tmp_path: Path) -> None:
    url = fresh_database
    succeeds(url, "demo", "--people", "150", "--account", "DEMO")
    credentials = json.loads(
        succeeds(
            url,
            "clients",
            "create",
            "--name",
            "fuzz",
            "--all-accounts",
            "--scope",
            "read",
            "--scope",
            "write",
            "--scope",
            "admin",
            "--json",
        )
    )
    victim = json.loads(
        succeeds(url, "clients", "create", "--name", "victim", "--all-accounts", "--json")
    )
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG.replace("{victim}", victim["client_id"]))
    with serve(url, workers=1, log_dir=tmp_path) as server:
        done = subprocess.run(
            [
                SCHEMATHESIS,
                "--config-file",
                str(config),
                "run",
                f"{server.base_url}/openapi.json",
                "-H",
                f"Authorization: ApiKey {credentials['api_key']}",
                "--checks",
                CHECKS,
                "--phases",
                "examples,coverage,fuzzing,stateful",
                "--max-examples",
                "25",
                "--max-time",
                SECONDS,
                "--seed",
                "20261123",
                "--no-color",
            ],
            capture_output=True,
            text=True,
            cwd=tmp_path,  # its cache (.schemathesis/) stays out of the repository
            timeout=int(SECONDS) + 120,
            check=False,
        )
        log = server.log_path.read_text()
    report = done.stdout + done.stderr
    (Path(os.environ.get("ROSTER_SCHEMATHESIS_REPORT", tmp_path / "schemathesis.txt"))).write_text(
        report
    )
    generated = re.search(r"(\d+) generated", report)
    failures = report.partition("= WARNINGS =")[0]  # each failure, with how to reproduce it
    assert done.returncode == 0, failures[-12000:] + report[-2000:]
    assert generated, report[-2000:]
    assert int(generated.group(1)) > 200, report[-2000:]
    assert "internal_error" not in log
