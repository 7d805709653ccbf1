"""``POST /estimates/update_subscription_for_items``: what a change would bill, without making it.

Simple but consistent with the state machine (it runs the very same ``Store.updated``): changed
immediately with ``prorate`` (the default) on an active term, the new items are charged for the
rest of the term (``invoice_estimate``) and the old ones credited (``credit_note_estimates``),
each after its coupons; ``next_invoice_estimate`` is the first full invoice after the change.
"""

from __future__ import annotations

from tests.fakes.chargebee import forms
from tests.fakes.chargebee.store import Obj, Store


def update_subscription_for_items(store: Store, params: forms.Params) -> Obj:
    sub_id = forms.text(params, "subscription[id]", required=True)
    assert sub_id is not None
    sub = store.subscription(sub_id, "subscription[id]")
    new, scheduled = store.updated(sub, params)
    now = store.clock.now
    estimate: Obj = {
        "created_at": now,
        "object": "estimate",
        "subscription_estimate": {
            "id": sub_id,
            "status": new["status"],
            "currency_code": new["currency_code"],
            "next_billing_at": new.get("next_billing_at"),
            "object": "subscription_estimate",
        },
    }
    start, end = sub.get("current_term_start"), sub.get("current_term_end")
    if (
        not scheduled
        and forms.boolean(params, "prorate", default=True)
        and sub["status"] in ("active", "non_renewing")
        and new["status"] == "active"
        and start is not None
        and end is not None
        and end > now
    ):
        fraction = (end - now) / (end - start)
        charge = _invoice(store, new, now, end, fraction)
        if charge["total"] > 0:
            estimate["invoice_estimate"] = charge
        credit = _invoice(store, sub, now, end, fraction)
        if credit["total"] > 0:
            estimate["credit_note_estimates"] = [_credit_note(credit)]
    next_at = new.get("next_billing_at") or new.get("current_term_end")
    if new["status"] != "cancelled" and next_at is not None:
        term = next_at - (new.get("current_term_start") or now)
        estimate["next_invoice_estimate"] = _invoice(store, new, next_at, next_at + term, 1.0)
    return {"estimate": {k: v for k, v in estimate.items() if v is not None}}


def _invoice(store: Store, sub: Obj, date_from: int, date_to: int, fraction: float) -> Obj:
    lines = [
        {
            "id": f"li_{sub['id']}_{n}",
            "date_from": date_from,
            "date_to": date_to,
            "unit_amount": item["unit_price"],
            "quantity": item["quantity"],
            "amount": round(item["amount"] * fraction),
            "pricing_model": "flat_fee",
            "is_taxed": False,
            "tax_amount": 0,
            "object": "line_item",
            "subscription_id": sub["id"],
            "customer_id": sub["customer_id"],
            "description": item["item_price_id"],
            "entity_type": f"{item['item_type']}_item_price",
            "entity_id": item["item_price_id"],
            "discount_amount": 0,
            "item_level_discount_amount": 0,
        }
        for n, item in enumerate(sub["subscription_items"])
    ]
    sub_total = sum(line["amount"] for line in lines)
    discounts = [
        {
            "object": "discount",
            "entity_type": "document_level_coupon",
            "entity_id": coupon["id"],
            "discount_type": coupon["discount_type"],
            "description": coupon["name"],
            "amount": off,
        }
        for coupon, off in store.discount(sub, sub_total)
    ]
    total = sub_total - sum(d["amount"] for d in discounts)
    return {
        "recurring": True,
        "price_type": "tax_exclusive",
        "currency_code": sub["currency_code"],
        "sub_total": sub_total,
        "total": total,
        "credits_applied": 0,
        "amount_paid": 0,
        "amount_due": total,
        "line_items": lines,
        "discounts": discounts,
        "taxes": [],
        "line_item_taxes": [],
        "line_item_discounts": [],
        "round_off_amount": 0,
        "customer_id": sub["customer_id"],
        "object": "invoice_estimate",
    }


def _credit_note(unused: Obj) -> Obj:
    return {
        "reference_invoice_id": "inv_current_term",
        "type": "adjustment",
        "price_type": "tax_exclusive",
        "currency_code": unused["currency_code"],
        "sub_total": unused["sub_total"],
        "total": unused["total"],
        "amount_allocated": 0,
        "amount_available": unused["total"],
        "line_items": unused["line_items"],
        "discounts": unused["discounts"],
        "taxes": [],
        "line_item_taxes": [],
        "line_item_discounts": [],
        "round_off_amount": 0,
        "customer_id": unused["customer_id"],
        "object": "credit_note_estimate",
    }
