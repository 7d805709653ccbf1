"""What another slice may compose into its own statement to read a customer and subscription
in the same round trip (decisioning: ``offers/store.py``). The billing slice owns these tables
(the ledger's, and the mirror of a remote provider's): the SQL that reads them lives here.

The fragment reads ``%(site)s``, ``%(customer)s`` and ``%(subscription)s`` and aliases the
tables ``c`` and ``s``; columns come out as ``c_<field>`` and ``s_<field>``.
"""

from __future__ import annotations

CUSTOMER_FIELDS = ("id", "email", "first_name", "last_name", "business_entity_id")
SUBSCRIPTION_FIELDS = (
    "id",
    "customer_id",
    "plan_id",
    "quantity",
    "status",
    "coupon_ids",
    "trial_end",
    "current_term_start",
    "current_term_end",
    "pause_until",
    "cancel_at",
    "cancelled_at",
    "business_entity_id",
    "brand_id",
)

COLUMNS = [f"c.{f} AS c_{f}" for f in CUSTOMER_FIELDS] + [
    f"s.{f} AS s_{f}" for f in SUBSCRIPTION_FIELDS
]


def customer_and_subscription(*, by_subscription: bool) -> str:
    """``LEFT JOIN``s for the customer and either the given subscription or the customer's
    current one (not cancelled first, then the most recently changed)."""
    subscription = (
        "LEFT JOIN subscriptions s ON s.site_id = %(site)s AND s.id = %(subscription)s"
        if by_subscription
        else """LEFT JOIN LATERAL (
    SELECT * FROM subscriptions
    WHERE site_id = %(site)s AND customer_id = %(customer)s
    ORDER BY status = 'cancelled', updated_at DESC, id
    LIMIT 1
) s ON true"""
    )
    return "LEFT JOIN customers c ON c.site_id = %(site)s AND c.id = %(customer)s\n" + subscription
