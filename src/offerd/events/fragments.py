"""The event log's SQL that other slices' stores compose into their own statements: the accept
and a fulfillment's transition write their event in the statement that makes the change, with no
extra round trip, while the event log's columns are written down only in this slice."""

from __future__ import annotations

COLUMNS = (
    "id", "site_id", "type", "personalized_offer_id", "offer_id", "option_id", "fulfillment_id",
    "customer_id", "subscription_id", "business_entity_id", "experiment_id", "experiment_arm",
    "origin", "occurred_at",
)  # fmt: skip


def insert_select(source: str, **values: str) -> str:
    """An INSERT of one event per row of ``source``, for another slice's store to put in a CTE of
    the statement that makes the change the event records (the accept, a transition): no extra
    round trip, and the event log's columns are still written down only here. ``values`` are SQL
    expressions, one per column."""
    if set(values) != set(COLUMNS):
        raise ValueError(f"an event needs exactly {COLUMNS}, got {sorted(values)}")
    return (
        f"INSERT INTO offer_events ({', '.join(COLUMNS)}) "
        f"SELECT {', '.join(values[c] for c in COLUMNS)} FROM {source}"
    )
