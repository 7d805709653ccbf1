"""The ASGI app: routers, the edge middleware, error rendering, lifespan, OpenAPI and docs."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from importlib.resources import files
from typing import TYPE_CHECKING, Any

import httpx
import psycopg
import psycopg_pool
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import HTMLResponse, Response

from offerd import __version__
from offerd.audit import api as audit_api
from offerd.billing import api as billing_api
from offerd.billing import provider_api as billing_provider_api
from offerd.billing import webhooks_api as billing_webhooks_api
from offerd.billing.ledger import LedgerProvider
from offerd.billing.sites import SiteProviders
from offerd.checkout import api as checkout_api
from offerd.common.clock import Clock, SystemClock
from offerd.common.secrets import box_for
from offerd.console import routes as console_routes
from offerd.console import web as console_web
from offerd.db import Database, resolve_database_url
from offerd.edge import db_errors
from offerd.edge.auth import Authenticator
from offerd.edge.deps import Services
from offerd.edge.errors import (
    APIError,
    AuthenticationFailed,
    MethodNotAllowed,
    NotFound,
    ServiceUnavailable,
)
from offerd.edge.wire import JSONResponse, param_name
from offerd.events import api as events_api
from offerd.fulfillments import api as fulfillments_api
from offerd.fulfillments import pages as fulfillment_pages
from offerd.notifications import api as notifications_api
from offerd.notifications.channels.email import SmtpMailer
from offerd.notifications.hosts import HostSlots
from offerd.observability import Edge, metrics_payload, observe_pool, queue_gauges, sample_pool
from offerd.offers import api as offers_api
from offerd.offers.catalog import Catalog
from offerd.queue import api as jobs_api
from offerd.reporting import api as reporting_api
from offerd.settings import Settings, get_settings
from offerd.sites import api as sites_api

if TYPE_CHECKING:
    from offerd.cli.demo import Inbox

log = structlog.get_logger("offerd.app")

DESCRIPTION = """
offerd implements Chargebee Growth's Offers API. Point an official Chargebee SDK at it, or call
it over HTTP: public endpoints take HTTP Basic auth with an API key as the username and either
JSON or form bodies (Chargebee's bracket notation). Every error is Chargebee's error body.
The admin API (`/admin/v1`) takes `Authorization: Bearer $OFFERD_ADMIN_TOKEN`.
"""


def build_services(settings: Settings, db: Database, clock: Clock) -> Services:
    return Services(
        settings=settings,
        db=db,
        clock=clock,
        auth=Authenticator(db, ttl=settings.auth_cache_seconds, base_domain=settings.base_domain),
        catalog=Catalog(),
        billing=SiteProviders(
            db,
            box_for(settings),
            LedgerProvider(),
            fetch_budget=settings.billing_fetch_budget_seconds,
        ),
        http=httpx.AsyncClient(
            timeout=15.0,
            follow_redirects=False,
            # an idle connection is dropped well before the common 5 s server keep-alive
            # (Node, uvicorn): reusing one the server is closing fails the POST, which is not
            # retried until the next attempt on the schedule (minutes later)
            limits=httpx.Limits(
                max_connections=200, max_keepalive_connections=50, keepalive_expiry=2.0
            ),
        ),
        mailer=SmtpMailer(settings),
        delivery_hosts=HostSlots(settings.delivery_per_host_concurrency),
    )


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    run_worker: bool = False,
    demo: bool = False,
    freeze_heap: bool = False,
) -> FastAPI:
    """``freeze_heap``: for a server process (not tests, which build many apps in one process),
    keep what startup built out of the garbage collector's full passes (see runtime)."""
    settings = settings or get_settings()
    clock = clock or SystemClock()
    # the demo's inbox: where its mailer puts emails and its routes show everything sent
    inbox: Inbox | None = None
    if demo:
        from offerd.cli.demo import Inbox

        inbox = Inbox()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        box_for(settings)  # refuses to start without a key for an external database
        url = resolve_database_url(settings.database_url, settings.home)
        db = Database(
            url,
            min_size=settings.db_pool_min,
            max_size=settings.db_pool_max,
            acquire_timeout=settings.db_acquire_timeout_seconds,
        )
        await db.open()
        pool_gauge = asyncio.create_task(sample_pool(db.pool), name="offerd-pool-gauge")
        services = build_services(settings, db, clock)
        if inbox is not None:
            from offerd.cli.demo import InboxMailer

            services.mailer = InboxMailer(inbox)
        app.state.services = services
        worker_task = None
        if run_worker:
            from offerd.queue.runtime import build_worker

            services.worker = build_worker(services)
            worker_task = asyncio.create_task(services.worker.run(), name="offerd-worker")
        if freeze_heap:
            from offerd.queue.runtime import freeze_startup_heap

            freeze_startup_heap()
        try:
            yield
        finally:
            if services.worker is not None and worker_task is not None:
                services.worker.stop()
                await worker_task
            pool_gauge.cancel()
            await services.aclose()
            await db.close()

    app = FastAPI(
        title="offerd",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.router.redirect_slashes = False
    install_error_handlers(app)
    # Routes are matched in this order, one router after another: the public API first
    for router in (
        offers_api.public,
        fulfillments_api.public,
        events_api.public,
        checkout_api.router,
        fulfillment_pages.router,
        sites_api.router,
        offers_api.admin,
        billing_api.router,
        billing_provider_api.router,
        billing_webhooks_api.router,
        fulfillments_api.admin,
        events_api.admin,
        notifications_api.router,
        jobs_api.router,
        reporting_api.admin,
        audit_api.admin,
    ):
        app.include_router(router)
    console_routes.install(app)
    install_ops(app)
    if inbox is not None:
        from offerd.cli.demo import inbox_router

        app.include_router(inbox_router(inbox))
    app.add_middleware(Edge, max_body_bytes=settings.max_body_bytes)
    return app


def install_error_handlers(app: FastAPI) -> None:
    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, APIError)
        if _is_console(request):  # people get a page, not Chargebee's JSON
            return console_web.error_page(request, exc.status, exc.message, exc.headers)
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    async def console_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, console_web.ConsoleError)
        return console_web.error_page(request, exc.status, exc.message, exc.headers)

    async def sign_in_required(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, console_web.SignInRequired)
        return console_web.sign_in_redirect(request, exc.next_path)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        error: APIError
        if exc.status_code == 405:
            error = MethodNotAllowed(
                f"{request.method} is not supported on {request.url.path}",
                headers=dict(exc.headers or {}),
            )
        elif exc.status_code == 404:
            error = NotFound(f"No such path: {request.url.path}")
        else:
            error = APIError(str(exc.detail))
            error.status = exc.status_code  # type: ignore[misc]
        return await api_error(request, error)

    async def validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        from offerd.edge.errors import ParamWrongValue

        first = exc.errors()[0]
        loc = [p for p in first.get("loc", ()) if p not in ("query", "path", "header", "body")]
        name = param_name(loc)
        message = str(first.get("msg", "invalid value"))
        return await api_error(request, ParamWrongValue(name, message[:1].lower() + message[1:]))

    async def db_down(request: Request, exc: Exception) -> Response:
        log.warning("database.unavailable", error=str(exc))
        services: Services | None = getattr(request.app.state, "services", None)
        if services is not None:
            with contextlib.suppress(Exception):
                await services.db.check()
        return await api_error(
            request,
            ServiceUnavailable(
                "The database is unavailable; nothing was changed. Retry with backoff",
                headers={"retry-after": DB_RETRY_AFTER},
            ),
        )

    async def bad_data(request: Request, exc: Exception) -> Response:
        # A value PostgreSQL refuses (the edge already rejects NUL characters and deep nesting).
        assert isinstance(exc, psycopg.Error)
        log.info("database.bad_data", error=str(exc).splitlines()[0][:200])
        services: Services | None = getattr(request.app.state, "services", None)
        db = services.db if services is not None else None
        return await api_error(request, await db_errors.refused(exc, db))

    async def constraint_violated(request: Request, exc: Exception) -> Response:
        # An admin's value a constraint refuses is the admin's mistake; on the public API the
        # values are offerd's own, so a violation there is a bug and stays a 500.
        if not request.url.path.startswith("/admin/"):
            raise exc
        return await bad_data(request, exc)

    app.add_exception_handler(APIError, api_error)
    app.add_exception_handler(console_web.ConsoleError, console_error)
    app.add_exception_handler(console_web.SignInRequired, sign_in_required)
    app.add_exception_handler(psycopg.DataError, bad_data)
    app.add_exception_handler(psycopg.IntegrityError, constraint_violated)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(psycopg.OperationalError, db_down)
    app.add_exception_handler(psycopg.InterfaceError, db_down)
    app.add_exception_handler(psycopg_pool.PoolTimeout, db_down)


def install_ops(app: FastAPI) -> None:
    static = files("fastapi_offline") / "static"
    app.mount("/static/docs", StaticFiles(directory=str(static)), name="docs-static")

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> Response:
        return JSONResponse({"status": "ok"})

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> Response:
        services: Services = request.app.state.services
        # the pool gives up after the same time; this also bounds a connection that hangs
        wait = services.settings.db_acquire_timeout_seconds
        try:
            async with asyncio.timeout(wait), services.db.connection() as conn:
                await conn.execute("SELECT 1")
        except Exception as exc:
            with contextlib.suppress(Exception):  # drop dead idle connections, as db_down does
                await services.db.check()
            return JSONResponse(
                {"status": "unavailable", "database": str(exc)[:200] or type(exc).__name__},
                status_code=503,
                headers={"retry-after": DB_RETRY_AFTER},
            )
        return JSONResponse({"status": "ready"})

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        services: Services = request.app.state.services
        token = services.settings.metrics_token
        if token is not None and not bearer_matches(
            request.headers.get("authorization"), token.get_secret_value()
        ):
            raise AuthenticationFailed(
                "/metrics needs Authorization: Bearer $OFFERD_METRICS_TOKEN",
                headers={"www-authenticate": "Bearer"},
            )
        observe_pool(services.db.pool)
        payload, content_type = metrics_payload()
        payload += await queue_gauges(services.db)
        return Response(payload, media_type=content_type)

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi() -> Response:
        return JSONResponse(openapi_document(app))

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="offerd API",
            swagger_js_url="/static/docs/swagger-ui-bundle.js",
            swagger_css_url="/static/docs/swagger-ui.css",
            swagger_favicon_url="/static/docs/favicon.png",
        )


def _is_console(request: Request) -> bool:
    return request.url.path == "/console" or request.url.path.startswith("/console/")


# What a 503 db_connection_failure (and /readyz's 503) asks clients to wait, in seconds: the pool
# reconnects in the background, so a retry a second later may well succeed.
DB_RETRY_AFTER = "1"


def bearer_matches(header: str | None, token: str) -> bool:
    """Whether ``Authorization`` is ``Bearer <token>`` (compared in constant time)."""
    scheme, _, given = (header or "").partition(" ")
    return scheme.lower() == "bearer" and secrets.compare_digest(
        given.strip().encode(), token.encode()
    )


def _json_only(operation: dict[str, Any]) -> None:
    """The admin API takes JSON bodies only (edge.endpoint.is_admin): document just that."""
    body = operation.get("requestBody")
    if body is None:
        return
    body.get("content", {}).pop("application/x-www-form-urlencoded", None)
    body["description"] = "JSON (send content-type: application/json)."


def openapi_document(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    doc = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for path, item in doc.get("paths", {}).items():
        for method, operation in item.items():
            schemas.update(operation.pop("x-offerd-schemas", {}))
            if path.startswith("/admin/"):
                operation["security"] = [{"adminToken": []}]
                _json_only(operation)
            elif path.startswith("/api/"):
                operation["security"] = [{"apiKey": []}]
            if method in ("post", "put") and path.startswith("/api/"):
                _document_headers(operation, post=True)
            elif path.startswith("/api/"):
                _document_headers(operation, post=False)
    components["securitySchemes"] = {
        "apiKey": {
            "type": "http",
            "scheme": "basic",
            "description": "The API key as the username, an empty password",
        },
        "adminToken": {"type": "http", "scheme": "bearer"},
    }
    app.openapi_schema = doc
    return doc


_ORIGIN_HEADERS = {
    "chargebee-request-origin-ip": "End user's IP address",
    "chargebee-request-origin-user": "End user's email (ASCII)",
    "chargebee-request-origin-user-encoded": "End user's email, Base64 (wins over -user)",
    "chargebee-request-origin-device": "End user's device",
    "chargebee-business-entity-id": "Business entity context (<= 50 chars)",
}
_POST_HEADERS = {
    "chargebee-idempotency-key": "Idempotency key (<= 100 chars); replays within 30 minutes",
    "chargebee-event-actions": "all-disabled: no notifications for the events this call causes",
    "chargebee-event-webhook": "all-disabled: no webhooks for the events this call causes",
    "chargebee-event-email": "all-disabled: no emails for the events this call causes",
}


def _document_headers(operation: dict[str, Any], *, post: bool) -> None:
    params = operation.setdefault("parameters", [])
    names = dict(_ORIGIN_HEADERS)
    if post:
        names.update(_POST_HEADERS)
    for name, description in names.items():
        schema: dict[str, Any] = {"type": "string"}
        if name.startswith("chargebee-event-"):
            schema["enum"] = ["all-disabled"]
        params.append(
            {
                "name": name,
                "in": "header",
                "required": False,
                "schema": schema,
                "description": description,
            }
        )
