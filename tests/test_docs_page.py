"""/docs in a real browser: Swagger UI renders every operation with nothing loaded from
anywhere but Roster itself (the page must work on a machine with no internet)."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from bench.server import serve
from tests.browser import chromium

pytestmark = pytest.mark.slow


def test_docs_render_every_operation_from_roster_alone(fresh_database: str, tmp_path: Path) -> None:
    with serve(fresh_database, workers=1, log_dir=tmp_path) as server, chromium() as browser:
        page = browser.new_page()
        requested: list[str] = []
        failed: list[str] = []
        page.on("request", lambda request: requested.append(request.url))
        page.on("requestfailed", lambda request: failed.append(request.url))
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"{server.base_url}/docs")
        page.wait_for_selector(".opblock-summary-path", timeout=30_000)
        paths = {
            element.inner_text().replace("\u200b", "")
            for element in page.query_selector_all(".opblock-summary-path")
        }
        authorize = page.query_selector("button.authorize")
        page.screenshot(path=str(Path(os.environ.get("ROSTER_SCREENSHOTS", tmp_path)) / "docs.png"))
    own = urlsplit(server.base_url).netloc
    elsewhere = [url for url in requested if urlsplit(url).netloc != own]
    assert elsewhere == [], elsewhere
    assert failed == []
    assert errors == []
    assert {
        f"{server.base_url}/docs/assets/swagger-ui-bundle.js",
        f"{server.base_url}/openapi.json",
    } <= set(requested)
    assert {"/persons/find/", "/persons/multiple/", "/people", "/oauth2/token"} <= paths, paths
    assert authorize is not None  # the security schemes give an Authorize button
