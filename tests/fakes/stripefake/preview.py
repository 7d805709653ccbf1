"""``POST /v1/invoices/create_preview``: the invoice a subscription change would produce.

Simple but consistent arithmetic, so a test can predict it: proration is linear in seconds over
the item's current period, from ``proration_date`` (default now): a credit line for the unused
time on the old price and a charge for the same time on the new one. ``always_invoice`` previews
the proration invoice alone; otherwise the next period's charge follows the prorations (none
with ``proration_behavior=none``). Coupons apply to the subtotal (percent, then amount off).
"""

from __future__ import annotations

from typing import Any

from tests.fakes.stripefake import objects as o
from tests.fakes.stripefake.params import integer, invalid, missing, one_of
from tests.fakes.stripefake.store import INTERVAL_SECONDS, Ctx, Store, _copy


def create_preview(store: Store, p: dict[str, Any]) -> dict[str, Any]:
    sid, cid = p.get("subscription"), p.get("customer")
    if not sid and not cid:
        raise missing("customer")
    now = store.now()
    old = store.get("subscription", sid, param="subscription", status=400) if sid else None
    if old is not None and cid and cid != old["customer"]:
        raise invalid("customer", f"The subscription {sid} does not belong to customer {cid}.")
    customer = store.get("customer", cid or (old or {})["customer"], param="customer", status=400)
    details = p.get("subscription_details") or {}
    behavior = (
        one_of(
            details,
            "proration_behavior",
            ("always_invoice", "create_prorations", "none"),
            label="subscription_details[proration_behavior]",
        )
        or "create_prorations"
    )
    when = integer(details, "proration_date", now, label="subscription_details[proration_date]")
    assert when is not None
    if old is None:
        if "items" not in details:
            raise missing("subscription_details[items]")
        old = {
            "id": None,
            "customer": customer["id"],
            "currency": "usd",
            "discounts": [],
            "status": "incomplete",
            "items": {"data": []},
        }
    new = _copy(old)
    if "items" in details:
        store.apply_items(new, details["items"], now, "subscription_details[items]")

    lines: list[dict[str, Any]] = []
    before = {it["id"]: it for it in old["items"]["data"]}
    after = {it["id"]: it for it in new["items"]["data"]}
    if behavior != "none" and old["status"] != "trialing" and old["id"] is not None:
        for item_id in before.keys() | after.keys():
            was, now_item = before.get(item_id), after.get(item_id)
            if (
                was
                and now_item
                and (was["price"]["id"], was["quantity"])
                == (now_item["price"]["id"], now_item["quantity"])
            ):
                continue
            if was:
                lines.append(_prorated(old, was, when, credit=True))
            if now_item:
                lines.append(_prorated(old, now_item, when, credit=False))
    if behavior != "always_invoice":
        for item in new["items"]["data"]:
            start = item["current_period_end"] if old["id"] else now
            step = INTERVAL_SECONDS[item["price"]["recurring"]["interval"]]
            amount = item["price"]["unit_amount"] * item["quantity"]
            lines.append(
                _line(
                    old,
                    item,
                    amount,
                    f"{item['quantity']} × {_name(item)}",
                    (start, start + step),
                    proration=False,
                )
            )

    subtotal = sum(line["amount"] for line in lines)
    ctx = Ctx()  # never committed: the discounts a preview would create stay in ctx.pending
    discount_ids = (
        new["discounts"]
        if "discounts" not in p
        else store.discounts_for(new, p["discounts"], now, ctx, "discounts")
    )
    off: list[dict[str, Any]] = []
    remaining = max(subtotal, 0)
    for did in discount_ids:
        disc = store.discounts.get(did) or ctx.pending[did]
        coupon = store.objects["coupon"][disc["source"]["coupon"]]
        amount = (
            round(remaining * coupon["percent_off"] / 100)
            if coupon["percent_off"] is not None
            else min(remaining, coupon["amount_off"] or 0)
        )
        remaining -= amount
        off.append({"amount": amount, "discount": did})
    total = subtotal - sum(d["amount"] for d in off)

    inv = o.invoice(customer["id"], old["id"], created=now, currency=new["currency"])
    inv.update(
        subtotal=subtotal,
        subtotal_excluding_tax=subtotal,
        total=total,
        total_excluding_tax=total,
        amount_due=max(total, 0),
        amount_remaining=max(total, 0),
        amount_paid=0,
        starting_balance=0,
        ending_balance=min(total, 0) if total < 0 else 0,
        total_discount_amounts=off,
        discounts=list(discount_ids),
        customer_email=customer["email"],
        customer_name=customer["name"],
        total_taxes=[],
    )
    if lines:
        inv["period_start"] = min(line["period"]["start"] for line in lines)
        inv["period_end"] = max(line["period"]["end"] for line in lines)
    inv["lines"] = {
        "object": "list",
        "data": lines,
        "has_more": False,
        "url": f"/v1/invoices/{inv['id']}/lines",
    }
    return inv


def _name(item: dict[str, Any]) -> str:
    return str(item["price"]["nickname"] or item["price"]["id"])


def _prorated(
    sub: dict[str, Any], item: dict[str, Any], when: int, *, credit: bool
) -> dict[str, Any]:
    start, end = item["current_period_start"], item["current_period_end"]
    fraction = min(max((end - when) / (end - start), 0.0), 1.0) if end > start else 0.0
    amount = round(item["price"]["unit_amount"] * item["quantity"] * fraction)
    text = "Unused time on" if credit else "Remaining time on"
    return _line(
        sub,
        item,
        -amount if credit else amount,
        f"{text} {_name(item)}",
        (max(when, start), end),
        proration=True,
    )


def _line(
    sub: dict[str, Any],
    item: dict[str, Any],
    amount: int,
    text: str,
    period: tuple[int, int],
    *,
    proration: bool,
) -> dict[str, Any]:
    return o.invoice_line(
        amount=amount,
        currency=item["price"]["currency"],
        description=text,
        period=period,
        quantity=item["quantity"],
        sub_id=sub["id"],
        item_id=item["id"],
        price_id=item["price"]["id"],
        proration=proration,
    )
