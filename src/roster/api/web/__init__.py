"""The directory in a browser (spec/web.md): pages rendered on the server over the same
core functions as the People API, with a little script (htmx, served from the package).
None of its routes is part of the OpenAPI document.
"""

from __future__ import annotations

from roster.api.web.pages import router

__all__ = ["router"]
