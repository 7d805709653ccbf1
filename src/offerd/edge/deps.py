"""What route handlers get injected: the process's services, the authenticated caller, the admin."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated

import httpx
from fastapi import Depends, Request

from offerd.billing.sites import SiteProviders
from offerd.common.clock import Clock
from offerd.db import Database
from offerd.edge.auth import Authenticator, Caller, check_admin_token
from offerd.edge.errors import NotFound
from offerd.edge.headers import RequestMeta, read_meta
from offerd.edge.ratelimit import RateLimiter
from offerd.notifications.channels.email import Mailer
from offerd.notifications.hosts import HostSlots
from offerd.offers.catalog import Catalog
from offerd.settings import Settings
from offerd.sites import service as sites
from offerd.sites.models import Site

if TYPE_CHECKING:
    from offerd.queue.worker import Worker


@dataclass
class Services:
    """Everything a process shares across requests and jobs."""

    settings: Settings
    db: Database
    clock: Clock
    auth: Authenticator
    catalog: Catalog
    billing: SiteProviders
    http: httpx.AsyncClient
    mailer: Mailer
    delivery_hosts: HostSlots
    # the process's own worker, when it runs one (``offerd serve`` without ``--no-worker``)
    worker: Worker | None = None
    rate_limiter: RateLimiter = field(default_factory=RateLimiter)

    async def aclose(self) -> None:
        await self.http.aclose()

    def catalog_changed(self) -> None:
        """Something an API key, site or offer lookup may have cached changed in this process."""
        self.auth.invalidate()


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


# Dependencies are coroutines: FastAPI runs a plain ``def`` dependency in a thread pool, which
# costs more than the dependency itself on every request.
async def _services(request: Request) -> Services:
    return services(request)


Svc = Annotated[Services, Depends(_services)]


async def public_caller(request: Request) -> Caller:
    svc = services(request)
    caller = await svc.auth.authenticate(
        request.headers.get("authorization"), request.headers.get("host")
    )
    request.state.site_id = caller.site.id
    limit = caller.site.settings.rate_limit_per_minute
    if limit is not None:  # unset (the default): no query at all
        async with svc.db.connection() as conn:
            await svc.rate_limiter.check(conn, caller.site.id, limit)
    return caller


async def full_access_caller(request: Request) -> Caller:
    caller = await public_caller(request)
    caller.require_full_access()
    return caller


@dataclass(frozen=True, slots=True)
class Call:
    """What a public API handler needs, from one dependency (each dependency FastAPI solves
    costs on every request, and these are the hot endpoints)."""

    svc: Services
    caller: Caller
    meta: RequestMeta


async def public_post(request: Request) -> Call:
    caller = await public_caller(request)
    return Call(services(request), caller, read_meta(request.headers, post=True))


async def full_access_post(request: Request) -> Call:
    caller = await full_access_caller(request)
    return Call(services(request), caller, read_meta(request.headers, post=True))


async def full_access_get(request: Request) -> Call:
    caller = await full_access_caller(request)
    return Call(services(request), caller, read_meta(request.headers, post=False))


PublicPost = Annotated[Call, Depends(public_post)]
FullAccessPost = Annotated[Call, Depends(full_access_post)]
FullAccessGet = Annotated[Call, Depends(full_access_get)]


async def admin(request: Request) -> None:
    token = services(request).settings.admin_token
    check_admin_token(
        request.headers.get("authorization"), token.get_secret_value() if token else None
    )


Admin = Depends(admin)


async def admin_site(site: str, request: Request) -> Site:
    """The site named in an admin path, read fresh (admin writes may come from any process)."""
    async with services(request).db.connection() as conn:
        found = await sites.get(conn, site)
    if found is None:
        raise NotFound(f"Site {site!r} not found", param="site")
    return found


AdminSite = Annotated[Site, Depends(admin_site)]
