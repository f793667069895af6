"""The open SCIM conformance tools against a real ``roster serve``, on both backends:
scim2-tester (``scim2 ... test`` of scim2-cli): every check passes; ``scim-sanity probe``:
every finding is one docs/scim.md shows to be a false alarm, and no other."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from bench.server import serve
from tests.commands import succeeds

BIN = Path(sys.executable).parent
#: scim-sanity's findings that are false alarms (docs/scim.md, "scim-sanity"): a Group
#: PATCH answers 204, which RFC 7644 §3.5.2 allows; a member must be a User of the account.
SANITY_EXPLAINED = {
    "PATCH /Groups/{id}",
    "PATCH /Groups/{id} add member",
    "PATCH /Groups/{id} remove members",
}


@contextmanager
def scim_server(database_url: str, tmp: Path) -> Iterator[tuple[str, str]]:
    """A served account's SCIM base URL, and an API key reaching it (read and write)."""
    succeeds(database_url, "accounts", "create", "T1", "--name", "Tester")
    made = succeeds(
        database_url,
        *("clients", "create", "--name", "conformance", "--account", "T1"),
        *("--scope", "read", "--scope", "write", "--json"),
    )
    with serve(database_url, workers=1, log_dir=tmp) as server:
        yield f"{server.base_url}/scim/v2/T1", json.loads(made)["api_key"]


def _run(command: list[str], **env: str) -> str:
    done = subprocess.run(
        command,
        env={"PATH": "/usr/bin:/bin", "HOME": "/tmp", **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return done.stdout + done.stderr


def scim2_tester(url: str, key: str) -> tuple[list[str], list[tuple[str, str]]]:
    """The checks that passed, and (check, message) of those that did not."""
    output = _run(
        [str(BIN / "scim2"), "--url", url, "test"],
        SCIM_CLI_HEADERS=f"Authorization: Bearer {key}",
    )
    lines = output.splitlines()
    passed = [line.split()[1] for line in lines if line.startswith("SUCCESS ")]
    failed = []
    for at, line in enumerate(lines):
        if line.split(" ", 1)[0] in ("ERROR", "CRITICAL"):
            message = lines[at + 1].strip() if at + 1 < len(lines) else ""
            failed.append((line.split()[1], message))
    assert passed, output
    return passed, failed


@pytest.mark.slow
def test_every_scim2_tester_check_passes_and_scim_sanity_finds_only_false_alarms(
    fresh_database: str, tmp_path: Path
) -> None:
    with scim_server(fresh_database, tmp_path) as (url, key):
        passed, failed = scim2_tester(url, key)
        print(f"scim2-tester: {len(passed)} passed, {len(failed)} failed")
        for check, message in failed:
            print(f"  {check}: {message}")
        probe = _run(
            [str(BIN / "scim-sanity"), "probe", url, "--token", key, "--i-accept-side-effects"]
        )
    assert failed == []
    assert len(passed) >= 93
    summary = re.search(r"(\d+) passed, (\d+) failed, (\d+) skipped", probe)
    assert summary is not None, probe
    print(f"scim-sanity probe: {summary.group(0)}")
    findings = set(re.findall(r"\[FAIL\] (.+?)\s*$", probe, re.MULTILINE))
    assert findings == SANITY_EXPLAINED, probe
    assert int(summary.group(1)) >= 25
