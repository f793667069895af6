"""How the page answers: templates, its headers, redirects, and errors as pages.

A request from the page's script (``HX-Request``) gets the fragment it asked for; any
other gets a whole page. Every answer forbids caching (it shows one client's data) and
carries a Content-Security-Policy that lets the page load nothing from elsewhere.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from roster.api.errors import DATABASE_FAULTS, fault_error
from roster.api.middleware import request_id_of
from roster.api.people.models import field_name
from roster.api.web.assets import static_url
from roster.api.web.session import (
    SESSION_COOKIE,
    SIGN_IN_COOKIE,
    SIGN_IN_SECONDS,
    SignedOut,
    clear_cookie,
    cookie,
    secure_cookies,
    set_cookie,
    sign_in_token,
)
from roster.errors import Problem, RosterError

#: Nothing from anywhere else: scripts, styles, images, requests and forms stay on this site.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Cache-Control": "no-store",
    "Vary": "HX-Request, HX-Target, Cookie",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}
STATUS_LABELS = {
    "active": "Active",
    "deactivated": "Deactivated",
    "created": "Created",
    "invited": "Invited",
    "inviteExpired": "Invite expired",
}
#: What an event on a person's card says was done (spec/events.md's types).
CHANGE_WORDS = {
    "person.created": "created this person",
    "person.updated": "changed the person",
    "person.erased": "erased the person",
    "persona.created": "added them to this account",
    "persona.updated": "changed them on this account",
    "persona.deleted": "removed them from this account",
    "address.created": "added an address",
    "address.updated": "changed an address",
    "address.deleted": "removed an address",
}
_TITLES = {
    401: "Sign in",
    403: "Not allowed",
    404: "Not found",
    429: "Too many requests",
    503: "The directory is unavailable",
}

templates = Environment(
    loader=PackageLoader("roster.api.web", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    auto_reload=False,
)
templates.globals.update(static=static_url, status_labels=STATUS_LABELS, change_words=CHANGE_WORDS)
templates.filters["number"] = lambda n: f"{n:,}"


def _when(timestamp: str | None) -> str | None:
    """``2026-01-02T13:47:01.000Z`` (as the API writes it) -> ``2026-01-02 13:47 UTC``."""
    return f"{timestamp[:10]} {timestamp[11:16]} UTC" if timestamp else None


templates.filters["when"] = _when
templates.filters["sentence"] = lambda text: text[:1].upper() + text[1:]
#: A changed field, by its People API name, as the card labels it; any other name as words
#: (``jobTitle`` -> ``job title``).
FIELD_WORDS = {
    "emailAddress": "work email",
    "primaryEmailAddress": "email",
    "primaryMobileNumber": "mobile",
    "roleId": "role",
    "dob": "date of birth",
}


def _field_words(name: str) -> str:
    return FIELD_WORDS.get(name) or re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name).lower()


templates.filters["field_words"] = _field_words


def from_script(request: Request) -> bool:
    """A request of the page's own script, for a fragment (a history restore wants a page)."""
    return (
        request.headers.get("hx-request") == "true"
        and request.headers.get("hx-history-restore-request") != "true"
    )


def target_of(request: Request) -> str | None:
    """The element a script's request will fill, if it is one."""
    return request.headers.get("hx-target") if from_script(request) else None


def html(
    request: Request,
    template: str,
    context: Mapping[str, Any],
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    body = templates.get_template(template).render(
        request_id=request_id_of(request.scope), **context
    )
    return HTMLResponse(body, status_code=status, headers={**PAGE_HEADERS, **(headers or {})})


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers=PAGE_HEADERS)


def sign_in_page(
    request: Request,
    status: int = 200,
    problems: list[Problem] | None = None,
    message: str | None = None,
    next_url: str = "",
) -> Response:
    """The sign-in form, with its token (set in a cookie too) and any complaint."""
    token = sign_in_token(request)
    context = {
        "token": token,
        "problems": {p.field: p.problem for p in problems or ()},
        "message": message,
        "next_url": next_url,
        "insecure": request.url.scheme != "https" and secure_cookies(request),
    }
    response = html(request, "sign_in.html", context, status)
    set_cookie(response, request, SIGN_IN_COOKIE, token, SIGN_IN_SECONDS)
    return response


def signed_out(request: Request) -> Response:
    """401: the sign-in form in place of the page asked for, which it leads back to. The
    page's script reloads instead, so that the whole page shows the form."""
    if from_script(request):
        return Response(status_code=401, headers={**PAGE_HEADERS, "HX-Refresh": "true"})
    ended = cookie(request, SESSION_COOKIE) is not None
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    message = "Your session has ended: sign in again." if ended else None
    response = sign_in_page(request, 401, message=message, next_url=here)
    if ended:
        clear_cookie(response, request, SESSION_COOKIE)
    return response


def error_page(request: Request, error: RosterError) -> Response:
    """An error as a page (or, for the page's script, as the message it shows)."""
    context = {
        "status": error.status_code,
        "title": _TITLES.get(error.status_code, "Something went wrong"),
        "message": error.message_in(field_name),
    }
    template = "_notice.html" if from_script(request) else "error.html"
    return html(request, template, context, error.status_code, error.headers)


class PageRoute(APIRoute):
    """A route of the page: what goes wrong is answered as a page, not as JSON."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def page(request: Request) -> Response:
            try:
                return await handle(request)
            except SignedOut:
                return signed_out(request)
            except RosterError as error:
                return error_page(request, error)
            except DATABASE_FAULTS as fault:
                return error_page(request, fault_error(request, fault))

        return page
