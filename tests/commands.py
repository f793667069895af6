"""Running the real ``roster`` command from tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROSTER = str(Path(sys.executable).with_name("roster"))


def roster(database_url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "ROSTER_DATABASE_URL": database_url, **env}
    return subprocess.run(
        [ROSTER, *args], env=environment, capture_output=True, text=True, timeout=120, check=False
    )


def succeeds(database_url: str, *args: str) -> str:
    done = roster(database_url, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout
