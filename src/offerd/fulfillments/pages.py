"""``/fulfillment_actions/{token}``: the pages behind the links in fulfillment emails."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from offerd.common.templating import render
from offerd.edge.deps import Svc
from offerd.edge.wire import decode_form
from offerd.fulfillments import links

router = APIRouter(include_in_schema=False)

Token = Annotated[str, Path(min_length=10, max_length=80)]

_HEADERS = {
    "cache-control": "no-store",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "content-security-policy": "frame-ancestors 'none'; form-action 'self'",
}


def _page(link: links.Link | None) -> Response:
    if link is None:
        html = render(
            "offerd.fulfillments", "action.html", heading="Link not valid", state="missing"
        )
        return HTMLResponse(html, status_code=404, headers=_HEADERS)
    row = link.row
    heading = "Mark fulfilled" if row["action"] == "complete" else "Mark failed"
    html = render(
        "offerd.fulfillments",
        "action.html",
        heading=heading,
        state=link.state,
        action=row["action"],
        offer_title=row["offer_content"].get("title", ""),
        customer_id=row["customer_id"],
        subscription_id=row["subscription_id"],
        fulfillment_status=row["fulfillment_status"],
    )
    return HTMLResponse(html, status_code=410 if link.state == "expired" else 200, headers=_HEADERS)


@router.get("/fulfillment_actions/{token}", response_class=HTMLResponse)
async def show(token: Token, svc: Svc) -> Response:
    async with svc.db.connection() as conn:
        link = await links.find(conn, token, svc.clock.now())
    return _page(link)


@router.post("/fulfillment_actions/{token}")
async def submit(token: Token, request: Request, svc: Svc) -> Response:
    form = decode_form((await request.body()).decode("utf-8", "replace"))
    reason = form.get("reason")
    reason = reason.strip()[:100] if isinstance(reason, str) else None
    async with svc.db.connection() as conn:
        link = await links.find(conn, token, svc.clock.now())
        if (
            link is not None
            and link.state == "open"
            and link.row["action"] == "fail"
            and not reason
        ):
            return HTMLResponse(
                "A reason is required to mark a fulfillment failed.", status_code=400
            )
        link = await links.perform(conn, token, reason=reason, now=svc.clock.now())
    if link is None:
        return _page(None)
    return RedirectResponse(f"/fulfillment_actions/{token}", status_code=303)
