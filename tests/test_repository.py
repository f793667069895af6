"""What the test suite generates stays out of git (schemathesis's cache, browsers' files)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=False
    )


@pytest.mark.skipif(
    shutil.which("git") is None or not (ROOT / ".git").exists(), reason="not a git checkout"
)
def test_generated_files_are_neither_tracked_nor_unignored() -> None:
    assert _git("ls-files", ".schemathesis").stdout == ""
    assert (
        _git("check-ignore", "-q", ".schemathesis/default/cache/crashes/manifest.json").returncode
        == 0
    )
    # No tracked file is one that .gitignore says is generated.
    assert _git("ls-files", "--cached", "--ignored", "--exclude-standard").stdout == ""
