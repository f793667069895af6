"""The web page in a real browser: Debian's Chromium, driven by Playwright.

The test suite (tests/test_web_browser.py) and the benchmark share the launch: Playwright's
own browser downloads are not used (``playwright install`` needs the internet), only the
``chromium`` package's binary. The benchmark measures what a person waits for: the page's
load, and the time from the last key typed in the search box to its results painted.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

    from bench.suite import Report

CHROMIUM = os.environ.get("ROSTER_CHROMIUM", "/usr/bin/chromium")
#: Headless, and nothing of its own on the network (updates, sync, field trials).
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
)
#: A quick typist: about eight keys a second.
KEY_DELAY_MS = 120
#: Signing in answers at once; past this the key was refused (the form shows why).
SIGN_IN_TIMEOUT_MS = 15_000


class BrowserMissing(RuntimeError):
    """Chromium or Playwright is not installed; the message says how to install it."""


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless Chromium, or :class:`BrowserMissing` saying what to install."""
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        raise BrowserMissing(
            "Playwright is not installed: pip install -e '.[dev]' (or pip install playwright)"
        ) from None
    if not Path(CHROMIUM).exists():
        raise BrowserMissing(
            f"Chromium is not at {CHROMIUM}: apt-get install chromium "
            "(or set ROSTER_CHROMIUM to a Chromium binary)"
        )
    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS))
        except Error as error:
            raise BrowserMissing(f"Chromium at {CHROMIUM} did not start: {error}") from None
        try:
            yield browser
        finally:
            browser.close()


def sign_in(page: Page, base_url: str, api_key: str) -> None:
    """Sign in through the form, as a person does."""
    page.goto(base_url + "/")
    page.get_by_label("API key").fill(api_key)
    page.get_by_role("button", name="Sign in", exact=True).click()
    # A refused key answers the form again, at /app/sign-in: that is no way in.
    page.wait_for_url(
        lambda url: url.startswith(base_url + "/app/") and url != base_url + "/app/sign-in",
        timeout=SIGN_IN_TIMEOUT_MS,
    )


def navigation_ms(page: Page) -> dict[str, float]:
    """The last navigation's timings (ms from its start: first byte, DOM ready, loaded),
    and how many requests it sent (a file the browser kept is not sent again)."""
    timings: dict[str, float] = page.evaluate(
        """() => {
            const n = performance.getEntriesByType("navigation")[0];
            const sent = performance.getEntriesByType("resource").filter((r) => r.transferSize);
            return {firstByte: n.responseStart, ready: n.domContentLoadedEventEnd,
                    loaded: n.loadEventEnd, requests: 1 + sent.length};
        }"""
    )
    return timings


#: Records the time of each key pressed, and of the first frame painted after the results
#: of ``query`` arrive (a frame's callback runs before it paints; the task after it, once
#: it has).
_WATCH = """(query) => {
    window.__lastKey = 0;
    if (!window.__keys) {
        window.__keys = true;
        document.addEventListener("keydown", () => { window.__lastKey = performance.now(); },
                                  true);
    }
    window.__painted = new Promise((resolve) => {
        const seen = () => {
            const results = document.getElementById("results");
            return results && results.dataset.search === query;
        };
        const observer = new MutationObserver(() => {
            if (!seen()) return;
            observer.disconnect();
            requestAnimationFrame(() => setTimeout(() => resolve(performance.now())));
        });
        observer.observe(document.querySelector("main"), {childList: true, subtree: true});
    });
}"""


def keystroke_to_paint_ms(page: Page, query: str) -> float:
    """Type ``query`` into an empty search box; ms from its last key to its results painted."""
    search = page.get_by_label("Search people")
    search.fill("")
    page.wait_for_selector('#results[data-search=""]', state="attached")
    page.evaluate(_WATCH, query)
    search.press_sequentially(query, delay=KEY_DELAY_MS)
    painted: float = page.evaluate("() => window.__painted")
    last_key: float = page.evaluate("() => window.__lastKey")
    return painted - last_key


def measure_browser(
    report: Report,
    database_url: str,
    api_key: str,
    names: Sequence[str],
    work: Path,
    account: str,
) -> None:
    """The page's load time and search-as-you-type latency, in Chromium, on the benchmark's
    data; without a browser, a row saying why (and a failure under CI)."""
    from bench.server import serve
    from bench.suite import Figure, check

    try:
        from playwright.sync_api import Error as PageError
    except ImportError:  # chromium() below says what to install
        PageError = BrowserMissing  # type: ignore[assignment,misc]

    scale = report.scale
    postgres = report.database == "postgres"
    try:
        with chromium() as browser, serve(database_url, workers=2, log_dir=work) as server:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            try:
                page = context.new_page()
                page.goto(server.base_url + "/")
                first_visit = navigation_ms(page)["requests"]  # nothing kept yet
                sign_in(page, server.base_url, api_key)
                directory = f"{server.base_url}/app/accounts/{account}/people"
                loads: list[dict[str, float]] = []
                for _ in range(min(20, scale.sequential)):
                    page.goto(directory)
                    loads.append(navigation_ms(page))
                typed = [
                    keystroke_to_paint_ms(page, name) for name in names[: scale.slow_sequential]
                ]
            finally:  # a kept-alive page would hold the server's shutdown
                context.close()
    except BrowserMissing as missing:
        if in_ci():
            raise
        report.add(Figure("browser: page load and search as you type", "", note=f"{missing}"))
        return
    except PageError as error:  # the page did not do what a person does (a refused key...)
        failed = f"{type(error).__name__}: {str(error).splitlines()[0]}"
        report.add(Figure("browser: page load and search as you type", "", failures={failed: 1}))
        return
    loaded = [t["loaded"] for t in loads]
    first_byte = statistics.median(t["firstByte"] for t in loads)
    report.add(
        Figure(
            f"page load: /app/accounts/{account}/people",
            "median <= 100 ms",
            statistics.median(loaded),
            max(loaded),
            met=check(statistics.median(loaded), 100) if postgres else None,
            note=f"n={len(loaded)}, first byte after {first_byte:.1f} ms; "
            f"{statistics.median(t['requests'] for t in loads):.0f} request(s) a load "
            f"({first_visit:.0f} on a first visit)",
            tool="chromium",
        )
    )
    report.add(
        Figure(
            "search as you type: last key to results painted",
            "median <= 150 ms",
            statistics.median(typed),
            max(typed),
            met=check(statistics.median(typed), 150) if postgres else None,
            note=f"n={len(typed)} full names typed at {KEY_DELAY_MS} ms a key",
            tool="chromium",
        )
    )
