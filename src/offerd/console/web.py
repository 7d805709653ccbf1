"""What every console page shares: the session (from its cookie), the CSRF check, roles, the
site being looked at, rendering, and the error page.

- Pages need a session; without one a page redirects to ``/console/login`` (an htmx request
  gets ``HX-Redirect`` instead, so the whole page moves, not a fragment).
- Every POST carries the session's CSRF token, as the ``csrf_token`` form field or the
  ``X-CSRF-Token`` header (htmx requests), compared in constant time; a cross-site ``Origin``
  is refused too. Sign-in, before there is a session, uses a double-submit cookie instead.
- Changes need the ``editor`` role: a viewer gets a 403 page.
- Responses are ``no-store``, unframeable, and under a CSP that allows only offerd's own
  scripts and styles (htmx and Chart.js are vendored under ``/console/static``).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from offerd.audit.service import user_actor
from offerd.common.templating import environment
from offerd.console import service
from offerd.console.service import Session
from offerd.edge.deps import Services, services
from offerd.edge.wire import decode_form
from offerd.sites import service as sites
from offerd.sites.models import Site

COOKIE = "offerd_console"
SWITCHER_SITES = 200  # the sites the header's switcher lists
LOGIN_CSRF_COOKIE = "offerd_console_login"
CSRF_HEADER = "x-csrf-token"

HEADERS = {
    "cache-control": "no-store",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
}


class ConsoleError(Exception):
    """A console request that ends in an error page (the app renders it as HTML)."""

    def __init__(self, status: int, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


class SignInRequired(Exception):
    def __init__(self, next_path: str) -> None:
        super().__init__("sign in required")
        self.next_path = next_path


@dataclass(frozen=True, slots=True)
class Page:
    """A signed-in request: its services and session, and for a site's page that site and the
    sites the switcher lists (read with the session, on one connection)."""

    svc: Services
    session: Session
    request: Request
    current: Site | None = None
    sites: tuple[Site, ...] = ()

    @property
    def site(self) -> Site:
        """The site the page is about (a page under ``/console/sites/{site}``)."""
        assert self.current is not None, "a site page is read with page(request, site_id)"
        return self.current

    @property
    def now(self) -> datetime:
        return self.svc.clock.now()

    @property
    def actor(self) -> str:
        return user_actor(self.session.user.email)

    def require_editor(self) -> None:
        if not self.session.user.can_edit:
            raise ConsoleError(
                403, f"Your role ({self.session.user.role}) can look but not change anything."
            )


def secure(request: Request) -> bool:
    return request.url.scheme == "https"


async def page(request: Request, site_id: str | None = None) -> Page:
    """The signed-in session (or a redirect to sign in), with the site ``site_id`` (a 404 page
    when there is none) and the sites for the switcher."""
    svc = services(request)
    async with svc.db.connection() as conn:
        found = await service.session(conn, request.cookies.get(COOKIE), svc.clock.now())
        if found is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise SignInRequired(target)
        if site_id is None:
            return Page(svc, found, request)
        site = await sites.get(conn, site_id)
        if site is None:
            raise ConsoleError(404, f"There is no site {site_id!r}.")
        listed = await sites.list_sites(conn, after=None, limit=SWITCHER_SITES)
    return Page(svc, found, request, site, tuple(listed))


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host", "")


async def form_of(request: Request, expected_token: str) -> dict[str, Any]:
    """The posted form, after its CSRF token (field or header) is checked against
    ``expected_token``."""
    if not _same_origin(request):
        raise ConsoleError(403, "This form was posted from another site.")
    form = decode_form((await request.body()).decode("utf-8", "replace"), json_keys=frozenset())
    given = request.headers.get(CSRF_HEADER) or form.pop("csrf_token", None)
    form.pop("csrf_token", None)
    if not isinstance(given, str) or not secrets.compare_digest(
        given.encode(), expected_token.encode()
    ):
        raise ConsoleError(403, "The form's security token is missing or stale: reload the page.")
    return form


async def posted(request: Request, site_id: str | None = None) -> tuple[Page, dict[str, Any]]:
    """A signed-in POST with a valid CSRF token: the page (as ``page``) and its form."""
    p = await page(request, site_id)
    return p, await form_of(request, p.session.csrf_token)


def _ts(value: int | datetime | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    if value is None:
        return "—"
    if isinstance(value, int | float):
        value = datetime.fromtimestamp(value, UTC)
    return value.astimezone(UTC).strftime(fmt) + " UTC"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def _env() -> Any:
    env = environment("offerd.console")
    env.filters.setdefault("ts", _ts)
    env.filters.setdefault("pct", _pct)
    return env


def render(
    p: Page | None,
    request: Request,
    name: str,
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    if p is not None and p.current is not None:  # a site's page: the header's site and switcher
        context = {"site": p.current, "sites": p.sites, **context}
    html = (
        _env()
        .get_template(name)
        .render(
            request=request,
            session=p.session if p else None,
            user=p.session.user if p else None,
            csrf_token=p.session.csrf_token if p else None,
            **context,
        )
    )
    return HTMLResponse(html, status_code=status, headers={**HEADERS, **(headers or {})})


def redirect(url: str, request: Request) -> Response:
    """After a POST: 303 to ``url`` (htmx follows ``HX-Redirect``)."""
    if request.headers.get("hx-request"):
        return Response(status_code=204, headers={**HEADERS, "hx-redirect": url})
    return RedirectResponse(url, status_code=303, headers=HEADERS)


def sign_in_redirect(request: Request, next_path: str) -> Response:
    url = "/console/login?next=" + quote(next_path, safe="/")
    if request.headers.get("hx-request"):
        return Response(status_code=401, headers={**HEADERS, "hx-redirect": url})
    return RedirectResponse(url, status_code=303, headers=HEADERS)


def error_page(request: Request, status: int, message: str, headers: dict[str, str]) -> Response:
    if request.headers.get("hx-request"):
        html = _env().get_template("_error.html").render(message=message)
        return HTMLResponse(html, status_code=status, headers={**HEADERS, **headers})
    return render(
        None, request, "error.html", status=status, headers=headers, message=message, code=status
    )
