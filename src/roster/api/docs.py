"""``/docs``: Swagger UI served entirely by Roster, so it works on a machine with no
internet (``static/swagger-ui``: swagger-ui-dist's own files, see its VERSION)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

SWAGGER_UI = Path(__file__).parent / "static" / "swagger-ui"
ASSETS = "/docs/assets"


def install_docs(app: FastAPI) -> None:
    """Serve Swagger UI at ``/docs`` with its scripts, styles and icon from ``/docs/assets``."""
    app.mount(ASSETS, StaticFiles(directory=SWAGGER_UI), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title}: API",
            swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS}/favicon-32x32.png",
            # No badge from validator.swagger.io: nothing is fetched from elsewhere.
            swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": True},
        )
