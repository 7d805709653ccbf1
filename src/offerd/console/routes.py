"""The console's routers, in matching order, and its static files (vendored htmx and
Chart.js, the stylesheet and the one script: nothing from a CDN)."""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles

from offerd.console import editor, operations, reports_pages, settings_pages, signin

ROUTERS: tuple[APIRouter, ...] = (
    signin.router,
    editor.router,  # /offers/new before /offers/{offer_id}
    reports_pages.router,
    operations.router,
    settings_pages.router,
)


def install(app: FastAPI) -> None:
    static = files("offerd.console") / "static"
    app.mount("/console/static", StaticFiles(directory=str(static)), name="console-static")
    for router in ROUTERS:
        app.include_router(router)
