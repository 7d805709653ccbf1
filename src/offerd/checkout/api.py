"""``/hosted_pages/{id}``: the hosted checkout page (HTML), and the subscriber's answer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from markupsafe import Markup
from starlette.responses import HTMLResponse, RedirectResponse, Response

from offerd.checkout import service
from offerd.common import urls
from offerd.common.templating import render
from offerd.edge.deps import Svc
from offerd.edge.wire import decode_form
from offerd.sites.models import Site, frame_ancestor_problem

router = APIRouter(include_in_schema=False)

PageId = Annotated[str, Path(min_length=10, max_length=70)]


def _origins(site: Site) -> list[str]:
    """The site's framing origins that are origins: a value stored before they were checked on
    save (a ``;``, a quote, CR/LF) never reaches the header."""
    allow_http = site.settings.test_mode
    return [
        source
        for source in site.settings.checkout_frame_ancestors
        if frame_ancestor_problem(source, allow_http=allow_http) is None
    ]


def _headers(layout: str, site: Site | None) -> dict[str, str]:
    headers = {
        "cache-control": "no-store",
        "referrer-policy": "no-referrer",
        "x-content-type-options": "nosniff",
    }
    if layout == "in_app":
        ancestors = " ".join(["'self'", *(_origins(site) if site else [])])
        headers["content-security-policy"] = f"frame-ancestors {ancestors}; form-action 'self'"
    else:
        headers["content-security-policy"] = "frame-ancestors 'none'; form-action 'self'"
        headers["x-frame-options"] = "DENY"
    return headers


_HEADINGS = {
    "succeeded": "You're all set",
    "expired": "This page has expired",
    "declined": "No changes made",
    "failed": "We couldn't apply this offer",
    "used": "This page has already been used",
}


def _not_found() -> Response:
    html = render(
        "offerd.checkout",
        "page.html",
        heading="Page not found",
        state="missing",
        site_name="offerd",
    )
    return HTMLResponse(html, status_code=404, headers=_headers("full_page", None))


def _message(status: int, heading: str, message: str) -> Response:
    """An answer that is not the page itself (a bad form, billing down), styled and framed alike."""
    html = render(
        "offerd.checkout",
        "page.html",
        heading=heading,
        message=message,
        state="message",
        site_name="offerd",
    )
    return HTMLResponse(html, status_code=status, headers=_headers("full_page", None))


@router.get("/hosted_pages/{page_id}", response_class=HTMLResponse)
async def show(page_id: PageId, svc: Svc) -> Response:
    view = await service.open_page(svc.db, page_id, billing=svc.billing, now=svc.clock.now())
    if view is None:
        return _not_found()
    page = view.page
    site = await svc.auth.site(page["site_id"])
    option = page["option"]
    content: dict[str, Any] = page["content"] or {}
    title = _text(page["offer_content"].get("title", ""))
    reason = content.get("reason")
    if page["state"] == "requested":
        heading = title
    elif page["state"] == "succeeded":
        heading = _HEADINGS["succeeded"]
    else:
        heading = _HEADINGS.get(reason or ("failed" if content.get("error") else "used"), title)
    context = {
        "heading": heading,
        "title": title,
        "description": _text(page["offer_content"].get("description", "")),
        "state": page["state"],
        "reason": reason,
        "error": content.get("error"),
        "problem": view.problem,
        "before": view.preview.before if view.preview else None,
        "after": view.preview.after if view.preview else None,
        "token": page["form_token"],
        "action": f"/hosted_pages/{page['id']}",
        "confirm_label": option.get("label") or "Confirm",
        "return_url": _return_url(page) if page["layout"] == "full_page" else None,
        "site_name": site.name if site else "the site",
    }
    status = 410 if content.get("reason") == "expired" else 200
    return HTMLResponse(
        render("offerd.checkout", "page.html", **context),
        status_code=status,
        headers=_headers(page["layout"], site),
    )


@router.post("/hosted_pages/{page_id}")
async def answer(page_id: PageId, request: Request, svc: Svc) -> Response:
    form = decode_form((await request.body()).decode("utf-8", "replace"))
    decision = form.get("decision")
    token = form.get("token")
    if decision not in ("confirm", "cancel") or not isinstance(token, str):
        return _message(
            400, "Something went wrong", "The form was incomplete. Go back and try again."
        )
    result = await service.decide(
        svc.db, page_id, decision=decision, token=token, billing=svc.billing, now=svc.clock.now()
    )
    if result is None:
        return _not_found()
    if result == "bad_token":
        return _message(
            403,
            "This form doesn't match this page",
            "Open the offer's link again and answer from there. Nothing has changed.",
        )
    if result == "retry":
        return _message(
            503,
            "We can't reach billing right now",
            "Nothing has changed. Please try again in a moment.",
        )
    # Post/Redirect/Get: reloading the result never submits again.
    return RedirectResponse(f"/hosted_pages/{page_id}", status_code=303)


def _return_url(page: Mapping[str, Any]) -> str | None:
    template = page["option"].get("redirect_url")
    if not template:
        return None
    return urls.fill(
        template,
        customer_id=page["customer_id"],
        subscription_id=page["subscription_id"],
        personalized_offer_id=page["personalized_offer_id"],
        fulfillment_id=page["fulfillment_id"],
        option_id=page["option_id"],
    )


def _text(html: str) -> str:
    """Offer content is HTML for the merchant's own UI; on this page it is shown as text."""
    return str(Markup(html).striptags())
