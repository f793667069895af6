"""A real browser for the tests: Debian's Chromium driven by Playwright.

Playwright's own browser download cannot run here, so the suite launches the system's
Chromium, as the benchmark does (one launch: ``bench.browser.chromium``, which says what
to install when something is missing). Without it a browser test says so and is
skipped; with ``CI=true`` it fails instead, so CI never passes without having run it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import pytest

from bench.browser import BrowserMissing, in_ci
from bench.browser import chromium as launch

if TYPE_CHECKING:
    from playwright.sync_api import Browser


def _cannot_run(problem: str) -> None:
    message = f"BROWSER TEST NOT RUN: {problem}"
    if in_ci():
        pytest.fail(f"{message} (CI=true: browser tests are required)")
    pytest.skip(message)


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless Chromium, closed afterwards."""
    try:
        with launch() as browser:
            yield browser
    except BrowserMissing as missing:
        _cannot_run(str(missing))
