"""Signing in and out of the console, the landing page and the site picker."""

from __future__ import annotations

import secrets
from datetime import timedelta
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from starlette.responses import Response

from offerd.console import service
from offerd.console.fields import text
from offerd.console.service import TooManyAttempts
from offerd.console.web import (
    COOKIE,
    LOGIN_CSRF_COOKIE,
    ConsoleError,
    form_of,
    page,
    posted,
    redirect,
    render,
    secure,
)
from offerd.edge.deps import services
from offerd.sites import service as sites

router = APIRouter(prefix="/console", include_in_schema=False)


def _safe_next(value: object) -> str:
    """Only a console path: never another host (an open redirect)."""
    text = value if isinstance(value, str) else ""
    parts = urlsplit(text)
    if parts.scheme or parts.netloc or not text.startswith("/console") or "\\" in text:
        return "/console"
    return text


def _login_page(
    request: Request,
    *,
    status: int = 200,
    error: str | None = None,
    email: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    token = secrets.token_urlsafe(32)
    response = render(
        None,
        request,
        "login.html",
        status=status,
        headers=headers,
        login_token=token,
        next=_safe_next(request.query_params.get("next") or "/console"),
        error=error,
        email=email,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=secure(request),
        path="/console/login",
        max_age=3600,
    )
    return response


@router.get("/login")
async def login_form(request: Request) -> Response:
    return _login_page(request)


@router.post("/login")
async def login(request: Request) -> Response:
    svc = services(request)
    form = await form_of(request, request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_hex(8))
    email = text(form, "email")
    password = text(form, "password")
    address = request.client.host if request.client else None
    try:
        async with svc.db.connection() as conn:
            signed = await service.sign_in(
                conn,
                email=email,
                password=password,
                address=address,
                now=svc.clock.now(),
                ttl=timedelta(hours=svc.settings.console_session_hours),
                attempts=svc.settings.console_login_attempts,
            )
    except TooManyAttempts as exc:
        minutes = max(1, round(exc.retry_after / 60))
        return _login_page(
            request,
            status=429,
            error=f"Too many failed sign-ins. Try again in about {minutes} minute(s).",
            email=email,
            headers={"retry-after": str(exc.retry_after)},
        )
    if signed is None:
        return _login_page(request, status=401, error="Wrong email or password.", email=email)
    token, _ = signed
    response = redirect(_safe_next(form.get("next")), request)
    response.set_cookie(
        COOKIE,
        token,
        httponly=True,
        samesite="lax",
        secure=secure(request),
        path="/console",
        max_age=int(svc.settings.console_session_hours * 3600),
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/console/login")
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    p, _ = await posted(request)
    async with p.svc.db.connection() as conn:
        await service.sign_out(conn, request.cookies.get(COOKIE))
    response = redirect("/console/login", request)
    response.delete_cookie(COOKIE, path="/console")
    return response


@router.get("")
async def home(request: Request) -> Response:
    p = await page(request)
    async with p.svc.db.connection() as conn:
        found = await sites.list_sites(conn, after=None, limit=1)
    if not found:
        return render(p, request, "no_sites.html")
    return redirect(f"/console/sites/{found[0].id}", request)


@router.get("/switch")
async def switch(request: Request) -> Response:
    await page(request)
    site = request.query_params.get("site", "")
    if not site or len(site) > 63 or not all(c.isalnum() or c == "-" for c in site):
        raise ConsoleError(404, "Pick a site from the list.")
    return redirect(f"/console/sites/{site}", request)
