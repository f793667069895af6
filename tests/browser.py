"""A real browser for the tests: Debian's Chromium driven by Playwright.

Playwright's own browser download cannot run here, so the suite launches the system's
Chromium. Without it (or without Playwright) a browser test says so and is skipped;
with ``CI=true`` it fails instead, so CI never passes without having run it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def chromium_path() -> str | None:
    found = os.environ.get("ROSTER_TEST_CHROMIUM") or shutil.which("chromium")
    return found or shutil.which("chromium-browser")


def _cannot_run(problem: str) -> None:
    message = f"BROWSER TEST NOT RUN: {problem}"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{message} (CI=true: browser tests are required)")
    pytest.skip(message)


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless Chromium, closed afterwards."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _cannot_run("Playwright is not installed (pip install -e '.[dev]')")
    path = chromium_path()
    if path is None:
        _cannot_run("no Chromium found (apt-get install chromium, or set ROSTER_TEST_CHROMIUM)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
