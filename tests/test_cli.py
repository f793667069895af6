"""The real ``roster`` command, run as an operator runs it, on both backends."""

from __future__ import annotations

import json
import re
import socket
import time
from pathlib import Path

import httpx
import pytest
from alembic.script import ScriptDirectory

from bench.server import free_port, serve
from roster import __version__ as roster_version
from roster.db.migrate import alembic_config
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


def test_version_prints_the_version(fresh_database: str) -> None:
    done = roster(fresh_database, "--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"roster {roster_version}"


def test_a_port_in_use_is_one_line_before_anything_starts(fresh_database: str) -> None:
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        done = roster(fresh_database, "serve", "--port", str(port), "--demo")
    assert done.returncode == 1
    assert done.stderr == f"error: Cannot listen on 127.0.0.1:{port}: Address already in use.\n"
    assert done.stdout == ""  # no demo key, nothing said to have started
    assert json.loads(succeeds(fresh_database, "accounts", "list", "--json")) == []


def test_a_sqlite_url_with_two_slashes_says_how_to_write_one(fresh_database: str) -> None:
    done = roster(fresh_database, "accounts", "list", ROSTER_DATABASE_URL="sqlite://roster.db")
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("error: invalid configuration: ROSTER_DATABASE_URL: ")
    assert "sqlite:///roster.db" in done.stderr
    assert "sqlite:////" in done.stderr


def test_export_to_a_missing_folder_names_the_path_not_the_database(
    fresh_database: str, tmp_path: Path
) -> None:
    succeeds(fresh_database, "accounts", "create", "A1", "--name", "One")
    target = tmp_path / "missing" / "people.csv"
    done = roster(fresh_database, "export", "--account", "A1", "-o", str(target))
    assert done.returncode == 1
    assert done.stderr == f"error: cannot write {str(target)!r}: No such file or directory\n"


@pytest.mark.parametrize("to_file", [True, False])
def test_export_of_an_unknown_account_writes_nothing(
    fresh_database: str, tmp_path: Path, to_file: bool
) -> None:
    target = tmp_path / "people.csv"
    done = roster(
        fresh_database, "export", "--account", "NOPE", *(["-o", str(target)] if to_file else [])
    )
    assert done.returncode == 1
    assert done.stderr == "error: There is no account 'NOPE'.\n"
    assert done.stdout == ""
    assert list(tmp_path.iterdir()) == []


def test_migrate_says_what_it_applied(empty_database: str) -> None:
    scripts = ScriptDirectory.from_config(alembic_config())
    head = scripts.get_current_head()
    every = [Path(s.path).stem for s in reversed(list(scripts.walk_revisions()))]
    assert every[0] == "20261122_0001_initial_schema"
    first = succeeds(empty_database, "migrate")
    assert f"from an empty database to revision {head}: applied {', '.join(every)}." in first
    assert "up to date" not in first
    again = succeeds(empty_database, "migrate")
    assert f"is up to date (revision {head}); nothing to apply." in again
    as_json = json.loads(succeeds(empty_database, "migrate", "--json"))
    assert (as_json["from_revision"], as_json["to_revision"], as_json["applied"]) == (
        head,
        head,
        [],
    )


def _plain(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


@pytest.mark.parametrize(
    "terminal",
    [
        {"COLUMNS": "60"},  # piped: plain lines
        {"TTY_COMPATIBLE": "1", "COLUMNS": "40"},  # a narrow terminal: plain lines too
        {"TTY_COMPATIBLE": "1", "COLUMNS": "200"},  # a wide one: a table
    ],
)
def test_clients_list_shows_whole_ids_that_revoke_takes(
    fresh_database: str, terminal: dict[str, str]
) -> None:
    url = fresh_database
    succeeds(url, "accounts", "create", "A1", "--name", "One")
    made = json.loads(
        succeeds(
            url,
            "clients",
            "create",
            "--name",
            "a rather long name for a client",
            "--account",
            "A1",
            "--json",
        )
    )
    listed = roster(url, "clients", "list", **terminal)
    assert listed.returncode == 0, listed.stderr
    shown = _plain(listed.stdout)
    assert ("┃" in shown) == (terminal["COLUMNS"] == "200"), shown
    assert "a rather long name for a client" in shown, shown
    ids = re.findall(r"cl_[0-9a-f]+", shown)
    assert ids == [made["client_id"]]
    assert made["client_id"] in succeeds(url, "clients", "revoke", ids[0])


def test_demo_into_an_account_with_real_people_needs_yes(
    fresh_database: str, tmp_path: Path
) -> None:
    url = fresh_database
    succeeds(url, "accounts", "create", "A1", "--name", "One")
    real = tmp_path / "real.csv"
    real.write_text(
        "first_name,last_name,email_address,phone_number,external_ref\nAda,Lee,ada@x.io,,r-1\n",
        encoding="utf-8",
    )
    succeeds(url, "import", str(real), "--account", "A1")
    refused = roster(url, "demo", "--people", "5", "--account", "A1")
    assert refused.returncode == 1
    assert refused.stderr == (
        "error: The account 'A1' has 1 person who is not demo data; demo people would be "
        "mixed in with them. Pass --yes to add them anyway.\n"
    )
    exported = json.loads(succeeds(url, "import", str(real), "--account", "A1", "--json"))
    assert exported["unchanged"] == 1  # still only the real person
    assert succeeds(url, "demo", "--people", "5", "--account", "A1", "--yes").startswith(
        "Demo data in A1: 5 people, "
    )
    # Twice into a demo account: nothing duplicated, no --yes needed.
    first = json.loads(succeeds(url, "demo", "--people", "30", "--account", "D1", "--json"))
    again = json.loads(succeeds(url, "demo", "--people", "30", "--account", "D1", "--json"))
    assert first["teams"] >= 2
    assert (again["people"], again["teams"], again["budgets"], again["addresses"]) == (30, 0, 0, 0)
