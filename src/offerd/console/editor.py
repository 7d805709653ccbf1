"""The offer editor (new and existing offers), its live eligibility check, and "try it" (the
explain endpoint's answer for a customer, shown in place)."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from offerd.console import offer_form
from offerd.console.fields import text
from offerd.console.web import (
    ConsoleError,
    Page,
    page,
    posted,
    redirect,
    render,
)
from offerd.edge.errors import APIError
from offerd.edge.headers import Origin, RequestMeta, Suppression
from offerd.offers import service as offers
from offerd.offers.api import PersonalizedOffersParams, ask_from, store_offer
from offerd.sites.models import Site

router = APIRouter(prefix="/console/sites/{site_id}", include_in_schema=False)

_OFFER_ID = r"^[A-Za-z0-9_.-]{1,50}$"


async def _editor(
    p: Page,
    *,
    offer_id: str | None,
    values: dict[str, Any],
    errors: dict[str, str],
    status: int = 200,
) -> Response:
    rule = values.get("eligibility") or ""
    return render(
        p,
        p.request,
        "editor.html",
        status=status,
        nav="offers",
        offer_id=offer_id,
        v=values,
        errors=errors,
        rule_error=offer_form.rule_problem(rule) if errors.get("eligibility") else None,
        expression=rule,
        statuses=offer_form.STATUSES,
        processing_types=offer_form.PROCESSING_TYPES,
        layouts=offer_form.LAYOUTS,
        action_fields=offer_form.ACTION_FIELDS,
        action_params=offer_form.ACTION_PARAMS,
    )


@router.get("/offers/new")
async def new_offer(site_id: str, request: Request) -> Response:
    p = await page(request, site_id)
    p.require_editor()
    return await _editor(p, offer_id=None, values=offer_form.form_values(None), errors={})


@router.get("/offers/{offer_id}/edit")
async def edit_offer(site_id: str, offer_id: str, request: Request) -> Response:
    p = await page(request, site_id)
    p.require_editor()
    site = p.site
    async with p.svc.db.connection() as conn:
        row = await offers.get_offer(conn, site.id, offer_id)
    if row is None:
        raise ConsoleError(404, f"There is no offer {offer_id!r} on {site.id}.")
    values = offer_form.form_values(row["definition"])
    return await _editor(p, offer_id=offer_id, values=values, errors={})


async def _save(p: Page, site: Site, form: dict[str, Any], offer_id: str | None) -> Response:
    new = offer_id is None
    target_id = offer_id or text(form, "offer_id").strip()
    async with p.svc.db.connection() as conn:
        existing = await offers.get_offer(conn, site.id, target_id) if target_id else None
    offer, errors, shown = offer_form.parse(form, existing["definition"] if existing else None)
    if new:
        shown["offer_id"] = target_id
        if not re.match(_OFFER_ID, target_id):
            errors["offer_id"] = "letters, digits, . _ - only, 1 to 50 characters"
        elif existing is not None:
            errors["offer_id"] = "an offer with this id exists already: edit it instead"
    if text(form, "more"):  # "Add another option": show the form again with a new empty one
        return await _editor(p, offer_id=offer_id, values=shown, errors={})
    if offer is not None and not errors:
        try:
            await store_offer(p.svc, site, target_id, offer, actor=p.actor)
        except APIError as exc:
            field, message = offer_form.api_error_field(exc)
            errors[field] = message
        else:
            return redirect(f"/console/sites/{site.id}/offers/{target_id}?saved=1", p.request)
    return await _editor(p, offer_id=offer_id, values=shown, errors=errors, status=400)


@router.post("/offers")
async def create_offer(site_id: str, request: Request) -> Response:
    p, form = await posted(request, site_id)
    p.require_editor()
    site = p.site
    return await _save(p, site, form, None)


@router.post("/offers/{offer_id}/edit")
async def update_offer(site_id: str, offer_id: str, request: Request) -> Response:
    p, form = await posted(request, site_id)
    p.require_editor()
    site = p.site
    return await _save(p, site, form, offer_id)


@router.post("/rules/check")
async def check_rule(site_id: str, request: Request) -> Response:
    """The live check under the eligibility field (htmx, as the editor types)."""
    p, form = await posted(request, site_id)
    expression = text(form, "eligibility")
    return render(
        p,
        request,
        "_rule_check.html",
        expression=expression,
        rule_error=offer_form.rule_problem(expression),
        checked=True,
    )


@router.post("/try")
async def try_it(site_id: str, request: Request) -> Response:
    """What ``personalized_offers`` would answer this customer now, and why (the admin API's
    explain: nothing is recorded), with the offer being looked at picked out."""
    p, form = await posted(request, site_id)
    site = p.site
    customer = text(form, "customer_id").strip()[:50]
    subscription = text(form, "subscription_id").strip()[:50] or None
    focus = text(form, "offer_id").strip() or None
    if not customer:
        return render(p, request, "_error.html", status=400, message="Give a customer id.")
    ask = ask_from(PersonalizedOffersParams(customer_id=customer, subscription_id=subscription))
    meta = RequestMeta(
        origin=Origin(), suppression=Suppression(), business_entity_id=None, idempotency_key=None
    )
    async with p.svc.db.connection() as conn:
        result = await offers.explain(
            conn, site=site, ask=ask, meta=meta, now=p.now, fetch=p.svc.billing
        )
    mine = next((c for c in result["candidates"] if c["offer_id"] == focus), None)
    return render(
        p,
        request,
        "_try_result.html",
        result=result,
        focus=focus,
        mine=mine,
        customer_id=customer,
        subscription_id=subscription,
    )
