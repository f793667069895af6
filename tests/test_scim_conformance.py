"""scim2-tester (through ``scim2 ... test`` of scim2-cli) against a real ``roster serve``,
on both backends: every check passes but those docs/scim.md explains, which fail for the
reasons it gives and no other."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.server import serve
from tests.commands import succeeds

SCIM2 = str(Path(sys.executable).with_name("scim2"))
#: Why a check may fail (docs/scim.md, "scim2-tester"): the tester fills every string with
#: a 36-character UUID, and name.middleName is Roster's middle_initials, at most 32; it
#: names a random id as the manager, which is not a User of the account.
EXPLAINED = (
    re.compile(r"Invalid name\.middleName: must be at most 32 characters\."),
    re.compile(r"manager [0-9a-f-]{36} is not a User of this account\."),
)


def run_scim2_tester(database_url: str, tmp: Path) -> tuple[list[str], list[tuple[str, str]]]:
    """The checks that passed, and (check, message) of those that did not."""
    succeeds(database_url, "accounts", "create", "T1", "--name", "Tester")
    made = succeeds(
        database_url,
        *("clients", "create", "--name", "scim2-tester", "--account", "T1"),
        *("--scope", "read", "--scope", "write", "--json"),
    )
    key = json.loads(made)["api_key"]
    with serve(database_url, workers=1, log_dir=tmp) as server:
        done = subprocess.run(
            [SCIM2, "--url", f"{server.base_url}/scim/v2/T1", "test"],
            env={"SCIM_CLI_HEADERS": f"Authorization: Bearer {key}", "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    lines = done.stdout.splitlines()
    passed = [line.split()[1] for line in lines if line.startswith("SUCCESS ")]
    failed = []
    for at, line in enumerate(lines):
        if line.split(" ", 1)[0] in ("ERROR", "CRITICAL"):
            message = lines[at + 1].strip() if at + 1 < len(lines) else ""
            failed.append((line.split()[1], message))
    assert passed, done.stdout + done.stderr
    return passed, failed


@pytest.mark.slow
def test_scim2_tester_passes_but_for_the_explained_checks(
    fresh_database: str, tmp_path: Path
) -> None:
    passed, failed = run_scim2_tester(fresh_database, tmp_path)
    print(f"scim2-tester: {len(passed)} passed, {len(failed)} failed")
    for check, message in failed:
        print(f"  {check}: {message}")
    unexplained = [f for f in failed if not any(reason.search(f[1]) for reason in EXPLAINED)]
    assert unexplained == []
    assert len(passed) >= 82
    assert len(failed) <= 11
