"""The real ``roster`` command, run as an operator runs it, on both backends."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from bench.server import serve
from tests.commands import roster, succeeds

pytestmark = pytest.mark.slow


def test_end_to_end_over_http(fresh_database: str, tmp_path: Path) -> None:
    url = fresh_database
    assert "Created account E2E" in succeeds(url, "accounts", "create", "E2E", "--name", "End")
    accounts = json.loads(succeeds(url, "accounts", "list", "--json"))
    assert [(a["id"], a["name"]) for a in accounts] == [("E2E", "End")]
    credentials = json.loads(
        succeeds(
            url,
            "clients",
            "create",
            "--name",
            "e2e",
            "--account",
            "E2E",
            "--scope",
            "read",
            "--scope",
            "write",
            "--json",
        )
    )
    assert set(credentials) == {"client_id", "client_secret", "api_key"}
    listed = json.loads(succeeds(url, "clients", "list", "--json"))
    assert [c["client_id"] for c in listed] == [credentials["client_id"]]
    assert credentials["client_secret"] not in json.dumps(listed)

    with (
        serve(url, workers=1, log_dir=tmp_path, ROSTER_TOKEN_TTL_SECONDS="2") as server,
        httpx.Client(base_url=server.base_url, timeout=10) as http,
    ):
        token = http.post(
            "/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "client_id": credentials["client_id"],
                "client_secret": credentials["client_secret"],
            },
        )
        assert token.status_code == 200, token.text
        assert token.json()["expires_in"] == 2
        bearer = {"Authorization": f"Bearer {token.json()['access_token']}"}
        person = {"first_name": "Ada", "last_name": "Lovelace", "email_address": "ada@e2e.io"}
        upserted = http.post(
            "/persons/multiple/",
            json={"persons": [{**person, "group_ids": ["E2E"]}]},
            headers=bearer,
        )
        assert upserted.status_code == 200, upserted.text
        identifier = upserted.json()["persons"][0]["identifier"]
        found = http.post("/persons/find/", json={"email_address": "ADA@e2e.io"}, headers=bearer)
        assert found.status_code == 200, found.text
        assert [p["identifier"] for p in found.json()["persons"]] == [identifier]
        assert found.headers["X-Request-ID"]

        time.sleep(3)
        expired = http.post("/persons/find/", json={}, headers=bearer)
        assert expired.status_code == 401
        assert expired.json()["error"]["type"] == "expired_token"
        by_key = http.post(
            "/persons/find/",
            json={"email_address": "ada@e2e.io"},
            headers={"Authorization": f"ApiKey {credentials['api_key']}"},
        )
        assert [p["identifier"] for p in by_key.json()["persons"]] == [identifier]

        assert credentials["client_id"] in succeeds(
            url, "clients", "revoke", credentials["client_id"]
        )
        revoked = http.post(
            "/persons/find/", json={}, headers={"Authorization": credentials["api_key"]}
        )
        assert revoked.status_code == 401
        assert revoked.json()["error"]["type"] == "invalid_authorization"
    # One JSON access line per request, with the client id and never the key.
    log = server.log_path.read_text()
    assert credentials["api_key"] not in log
    assert credentials["client_secret"] not in log


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (("accounts", "create", "bad id!", "--name", "x"), {}, "id: must be 1 to 36"),
        (("clients", "create", "--name", "x", "--account", "NOPE"), {}, "No account 'NOPE'"),
        (("clients", "create", "--name", "x", "--all-accounts", "--scope", "root"), {}, "scope"),
        (("clients", "create", "--name", "x"), {}, "--account ID"),
        (("clients", "revoke", "cl_nobody"), {}, "no API client 'cl_nobody'"),
        (
            ("accounts", "list"),
            {"ROSTER_DEFAULT_PHONE_REGION": "XX"},
            "ROSTER_DEFAULT_PHONE_REGION",
        ),
        (
            ("accounts", "list"),
            {"ROSTER_DATABASE_URL": "postgresql://nobody:hunter2@127.0.0.1:9/x"},
            "cannot reach the database at postgresql://nobody:***@127.0.0.1:9/x",
        ),
    ],
)
def test_errors_are_one_line_without_a_traceback(
    fresh_database: str, args: tuple[str, ...], env: dict[str, str], message: str
) -> None:
    done = roster(fresh_database, *args, **env)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ")
    assert message in lines[0]
    assert "hunter2" not in done.stderr
    assert json.loads(succeeds(fresh_database, "clients", "list", "--json")) == []


def test_duplicate_account_is_refused_and_changes_nothing(fresh_database: str) -> None:
    succeeds(fresh_database, "accounts", "create", "A1", "--name", "One")
    done = roster(fresh_database, "accounts", "create", "A1", "--name", "Other")
    assert done.returncode == 1
    assert "already exists" in done.stderr
    listed = json.loads(succeeds(fresh_database, "accounts", "list", "--json"))
    assert [(a["id"], a["name"]) for a in listed] == [("A1", "One")]


def test_import_export_and_demo_through_the_command(fresh_database: str, tmp_path: Path) -> None:
    url = fresh_database
    made = succeeds(url, "demo", "--people", "40", "--account", "D1")
    assert made.startswith("Demo data in D1: 40 people, ")
    exported = tmp_path / "d1.csv"
    succeeds(url, "export", "--account", "D1", "-o", str(exported))
    lines = exported.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 41
    assert lines[0].startswith("first_name,last_name,email_address,phone_number,external_ref")
    assert not exported.with_name("d1.csv.partial").exists()

    again = json.loads(succeeds(url, "import", str(exported), "--account", "D1", "--json"))
    assert (again["rows"], again["created"], again["updated"], again["failed"]) == (40, 0, 0, 0)
    assert again["unchanged"] == 40

    broken = tmp_path / "broken.csv"
    broken.write_text(
        "first_name,last_name,email_address,phone_number,external_ref,status\n"
        "Ada,Lovelace,ada@new.example,,new-1,active\n"
        "Bad,Status,bad@new.example,,new-2,asleep\n",
        encoding="utf-8",
    )
    done = roster(url, "import", str(broken), "--account", "D1")
    assert done.returncode == 2, done.stderr
    assert "2 rows: 1 created, 0 updated, 0 unchanged, 1 failed." in done.stdout
    assert "line 3:" in done.stdout
    assert "asleep" in done.stdout

    unknown = tmp_path / "unknown.csv"
    unknown.write_text("first_name,last_name,nickname\nA,B,C\n", encoding="utf-8")
    refused = roster(url, "import", str(unknown), "--account", "D1")
    assert refused.returncode == 1
    assert "nickname" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
