"""The page's static files (its script, styles and icon), served by Roster itself.

They ship inside the package (``roster/api/web/static``) and are read once per process.
A page names each with its content's digest (``/app/static/app.css?v=1a2b3c4d5e6f``),
so a browser keeps it for a year and asks again only when the file changes.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

from fastapi import Request
from fastapi.responses import Response

from roster.errors import NotFound

#: The files served, by extension (anything else in the folder, such as a licence, is not).
_MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
_FOREVER = "public, max-age=31536000, immutable"


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes
    media_type: str
    version: str


@cache
def assets() -> dict[str, Asset]:
    """Every static file by name, with its gzipped form and version (read once)."""
    found: dict[str, Asset] = {}
    for entry in files("roster.api.web").joinpath("static").iterdir():
        media_type = _MEDIA_TYPES.get("." + entry.name.rpartition(".")[2])
        if media_type is None:
            continue
        body = entry.read_bytes()
        version = hashlib.sha256(body).hexdigest()[:12]
        found[entry.name] = Asset(body, gzip.compress(body, mtime=0), media_type, version)
    return found


def static_url(name: str) -> str:
    """The address of a static file, naming its version (templates call this)."""
    return f"/app/static/{name}?v={assets()[name].version}"


def static_file(request: Request, name: str) -> Response:
    """A static file: gzipped when the browser takes it, kept for a year when its
    version is named."""
    asset = assets().get(name)
    if asset is None:
        raise NotFound(f"There is no file {name!r} here.")
    headers = {
        "Cache-Control": _FOREVER if request.query_params.get("v") == asset.version else "no-cache",
        "ETag": f'"{asset.version}"',
        "Vary": "Accept-Encoding",
        "X-Content-Type-Options": "nosniff",
    }
    if request.headers.get("if-none-match") == headers["ETag"]:
        return Response(status_code=304, headers=headers)
    body = asset.body
    if "gzip" in request.headers.get("accept-encoding", ""):
        body = asset.gzipped
        headers["Content-Encoding"] = "gzip"
    return Response(body, media_type=asset.media_type, headers=headers)
