"""The console's settings page (site settings, notification channels with a test send, the
billing provider's status, API keys created and revoked) and the audit log."""

from __future__ import annotations

import types
import typing
from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.responses import Response

from offerd.audit import service as audit
from offerd.billing.provider_api import provider_status
from offerd.common.secrets import box_for
from offerd.console.fields import mapping, text
from offerd.console.offer_form import field_errors, message_of
from offerd.console.web import (
    Page,
    page,
    posted,
    redirect,
    render,
)
from offerd.edge.errors import APIError
from offerd.edge.paging import numeric_cursor
from offerd.edge.wire import validation_error
from offerd.notifications import service as notifications
from offerd.notifications.api import test_send_as
from offerd.sites import service as sites
from offerd.sites.api import KeyIn, add_key, key_resource, remove_key, store_site
from offerd.sites.models import SiteIn, SiteSettings

router = APIRouter(prefix="/console/sites/{site_id}", include_in_schema=False)


def _kind(annotation: Any) -> str:
    """How a setting is edited: ``bool`` (checkbox), ``int``, ``list`` (one per line), ``text``."""
    base = annotation
    if typing.get_origin(base) in (typing.Union, types.UnionType):
        base = next(a for a in typing.get_args(base) if a is not type(None))
    if base is bool:
        return "bool"
    if base is int:
        return "int"
    if typing.get_origin(base) is list:
        return "list"
    return "text"


# the settings form, from the model: one field per setting, its description as the hint
SETTING_FIELDS = [
    {"name": name, "kind": _kind(field.annotation), "hint": field.description or ""}
    for name, field in SiteSettings.model_fields.items()
]


def _settings_from(form: dict[str, Any]) -> dict[str, Any]:
    raw = mapping(form, "settings")
    out: dict[str, Any] = {}
    for f in SETTING_FIELDS:
        value = raw.get(f["name"])
        if f["kind"] == "bool":
            # a checkbox after its hidden "false": ["false", "true"] when ticked
            out[f["name"]] = value == "true" or (isinstance(value, list) and "true" in value)
        elif f["kind"] == "list":
            text = value if isinstance(value, str) else ""
            out[f["name"]] = [line.strip() for line in text.splitlines() if line.strip()]
        elif isinstance(value, str) and value.strip():
            out[f["name"]] = value.strip()
        elif f["kind"] == "int":
            out[f["name"]] = None
    return {k: v for k, v in out.items() if v is not None or k == "rate_limit_per_minute"}


async def _settings_page(
    p: Page,
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
    new_key: dict[str, Any] | None = None,
    flash: str | None = None,
    flash_kind: str = "ok",
) -> Response:
    site = p.site
    async with p.svc.db.connection() as conn:
        keys = [key_resource(k) for k in await sites.list_keys(conn, site.id)]
        channels = [
            notifications.channel_resource(c, box_for(p.svc.settings))
            for c in await notifications.list_channels(conn, site.id)
        ]
    provider = await provider_status(p.svc, site.id)
    return render(
        p,
        p.request,
        "settings.html",
        status=status,
        nav="settings",
        fields=SETTING_FIELDS,
        values=values or site.settings.model_dump(),
        errors=errors or {},
        keys=keys,
        channels=channels,
        provider=provider,
        new_key=new_key,
        flash=flash or _done(p.request),
        flash_kind=flash_kind,
    )


def _done(request: Request) -> str | None:
    return {
        "saved": "Settings saved.",
        "revoked": "The API key was revoked (every process refuses it within seconds).",
        "tested": "A test event was queued for the channel: see it in Deliveries.",
    }.get(request.query_params.get("done", ""))


@router.get("/settings")
async def settings_page(site_id: str, request: Request) -> Response:
    p = await page(request, site_id)
    return await _settings_page(p)


@router.post("/settings")
async def save_settings(site_id: str, request: Request) -> Response:
    p, form = await posted(request, site_id)
    p.require_editor()
    site = p.site
    values = _settings_from(form)
    current = site.as_dict()
    data = {
        "name": current["name"],
        "settings": values,
        **({"brand": current["brand"]} if current["brand"] else {}),
        **({"brands": current["brands"]} if current["brands"] else {}),
    }
    try:
        body = SiteIn.model_validate(data)
    except ValidationError as exc:
        errors = field_errors(exc, data)
        return await _settings_page(p, status=400, errors=errors, values=values)
    await store_site(p.svc, site.id, body, actor=p.actor)
    return redirect(f"/console/sites/{site.id}/settings?done=saved", request)


@router.post("/api_keys")
async def create_key(site_id: str, request: Request) -> Response:
    p, form = await posted(request, site_id)
    p.require_editor()
    site = p.site
    try:
        body = KeyIn.model_validate(
            {"kind": text(form, "kind"), "name": text(form, "name").strip()}
        )
    except ValidationError as exc:
        return await _settings_page(
            p, status=400, flash=message_of(validation_error(exc, form)), flash_kind="bad"
        )
    row, secret = await add_key(p.svc, site.id, body, actor=p.actor)
    # the secret is in this response only: never in a redirect's URL, never stored
    return await _settings_page(p, new_key={**key_resource(row), "key": secret})


@router.post("/api_keys/{key_id}/revoke")
async def revoke_key(site_id: str, key_id: str, request: Request) -> Response:
    p, _ = await posted(request, site_id)
    p.require_editor()
    site = p.site
    await remove_key(p.svc, site.id, key_id, actor=p.actor)
    return redirect(f"/console/sites/{site.id}/settings?done=revoked", request)


@router.post("/channels/{channel_id}/test")
async def test_channel(site_id: str, channel_id: str, request: Request) -> Response:
    p, _ = await posted(request, site_id)
    p.require_editor()
    site = p.site
    try:
        await test_send_as(p.svc, site.id, channel_id, actor=p.actor)
    except APIError as exc:
        return await _settings_page(p, status=exc.status, flash=exc.message, flash_kind="bad")
    return redirect(f"/console/sites/{site.id}/settings?done=tested", request)


@router.get("/audit")
async def audit_page(site_id: str, request: Request) -> Response:
    p = await page(request, site_id)
    site = p.site
    target = request.query_params.get("target", "").strip()[:120] or None
    cursor = request.query_params.get("cursor")
    async with p.svc.db.connection() as conn:
        rows = await audit.entries(
            conn, site.id, target=target, before_id=numeric_cursor(cursor), limit=51
        )
    entries = [audit.entry_resource(r) for r in rows[:50]]
    return render(
        p,
        request,
        "audit.html",
        nav="audit",
        entries=entries,
        target=target,
        next_cursor=entries[-1]["id"] if len(rows) > 50 else None,
    )
