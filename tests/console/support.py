"""Console helpers for the HTTP-level tests: users made through the real service, sign-in
through the real form (its CSRF token read from the page, as a browser would)."""

from __future__ import annotations

import re

import httpx

from offerd.console import service
from tests.support.app import TestApp

PASSWORD = "correct horse battery"
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


async def add_user(app: TestApp, email: str, role: str) -> None:
    async with app.services.db.connection() as conn:
        await service.add_user(conn, email=email, password=PASSWORD, role=role, now=app.clock.now())


def token_in(html: str) -> str:
    match = _TOKEN.search(html)
    assert match, "the page has no CSRF token"
    return match.group(1)


async def sign_in(
    client: httpx.AsyncClient, email: str, password: str = PASSWORD
) -> httpx.Response:
    page = await client.get("/console/login")
    assert page.status_code == 200, page.text
    return await client.post(
        "/console/login",
        data={
            "csrf_token": token_in(page.text),
            "email": email,
            "password": password,
            "next": "/console",
        },
    )


async def csrf(client: httpx.AsyncClient, path: str) -> str:
    """The session's CSRF token, from a page that has a form."""
    page = await client.get(path)
    assert page.status_code == 200, page.text
    return token_in(page.text)
