"""SQL for offer fulfillments."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from offerd.db import Conn, fetchall, fetchone
from offerd.events import fragments as events
from offerd.queue import jobs

# What accepting needs of a personalized offer (not its context or origin: large, and only a
# notification uses them, which reads the whole row when there is one to send), and whether a
# channel of the site listens to offer_accepted.
PERSONALIZED_OFFER = """
SELECT id, site_id, offer_id, customer_id, subscription_id, business_entity_id, options,
       expires_at, experiment_id, experiment_arm, n.notify,
       -- what the notifications tell of the offer, only when someone listens
       CASE WHEN n.notify THEN po.content END AS content,
       CASE WHEN n.notify THEN po.context END AS context
FROM personalized_offers po,
     LATERAL (SELECT EXISTS (SELECT 1 FROM notification_channels c
                             WHERE c.site_id = po.site_id AND c.enabled
                               AND 'offer_accepted' = ANY(c.event_types)) AS notify) n
WHERE id = %s AND site_id = %s
"""

# A personalized offer's live (in progress or completed) fulfillment.
LIVE_FULFILLMENT = """
SELECT id, option_id FROM offer_fulfillments
WHERE personalized_offer_id = %s AND status <> 'failed'
LIMIT 1
"""

# The accept's writes in one statement: the fulfillment, its accepted event and its job; and the
# channels that subscribe to offer_accepted, for the fan-out. Concurrent accepts of one
# personalized offer are settled by the unique index offer_fulfillments_one_live: the second
# insert waits for the first transaction, then does nothing (no event, no job) when it committed.
INSERT_ACCEPTED = (
    """
WITH f AS (
    INSERT INTO offer_fulfillments (id, site_id, personalized_offer_id, offer_id, option_id,
        processing_type, status, redirect_url, customer_id, subscription_id, business_entity_id,
        suppress_actions, suppress_webhook, suppress_email, origin, created_at, completed_at,
        deadline_at, experiment_id, experiment_arm)
    VALUES (%(id)s, %(site_id)s, %(personalized_offer_id)s, %(offer_id)s, %(option_id)s,
        %(processing_type)s, %(status)s, %(redirect_url)s, %(customer_id)s, %(subscription_id)s,
        %(business_entity_id)s, %(suppress_actions)s, %(suppress_webhook)s, %(suppress_email)s,
        %(origin)s, %(created_at)s, %(completed_at)s, %(deadline_at)s, %(experiment_id)s,
        %(experiment_arm)s)
    ON CONFLICT (personalized_offer_id) WHERE status <> 'failed' DO NOTHING
    RETURNING id
), e AS (
    """
    + events.insert_select(
        "f",
        id="%(event_id)s",
        site_id="%(site_id)s",
        type="'accepted'",
        personalized_offer_id="%(personalized_offer_id)s",
        offer_id="%(offer_id)s",
        option_id="%(option_id)s",
        fulfillment_id="f.id",
        customer_id="%(customer_id)s",
        subscription_id="%(subscription_id)s",
        business_entity_id="%(business_entity_id)s",
        experiment_id="%(experiment_id)s",
        experiment_arm="%(experiment_arm)s",
        origin="%(event_origin)s",
        occurred_at="%(created_at)s",
    )
    + """
), j AS (
    """
    + jobs.enqueue_select(
        kind="%(job_kind)s",
        payload="jsonb_build_object('fulfillment_id', f.id)",
        run_at="%(created_at)s",
        source="f WHERE %(job_kind)s::text IS NOT NULL",
    )
    + """
)
SELECT
    (SELECT count(*) FROM f) AS created,
    (SELECT coalesce(jsonb_agg(c ORDER BY c.id), '[]'::jsonb) FROM notification_channels c
     WHERE c.site_id = %(site_id)s AND c.enabled AND 'offer_accepted' = ANY(c.event_types))
        AS channels
"""
)

GET = "SELECT * FROM offer_fulfillments WHERE id = %s AND site_id = %s"
GET_FOR_UPDATE = GET + " FOR UPDATE"

# A transition, its event and the channels listening to it, in one statement: the update only
# if the fulfillment is still in progress (then the event is written too), the row as updated.
APPLY_TRANSITION = (
    """
WITH u AS (
    UPDATE offer_fulfillments
    SET status = %(status)s,
        completed_at = CASE WHEN %(status)s = 'completed' THEN %(now)s END,
        failed_at = CASE WHEN %(status)s = 'failed' THEN %(now)s END,
        error_code = %(error_code)s,
        error_message = %(error_message)s
    WHERE id = %(id)s AND status = 'in_progress'
    RETURNING *
), e AS (
    """
    + events.insert_select(
        "u",
        id="%(event_id)s",
        type="%(event_type)s",
        origin="%(origin)s",
        occurred_at="%(now)s",
        **{c: f"u.{c}" for c in events.COLUMNS if c not in ("id", "type", "origin", "occurred_at")}
        | {"fulfillment_id": "u.id"},
    )
    + """
), ch AS (
    SELECT coalesce(jsonb_agg(c ORDER BY c.id), '[]'::jsonb) AS channels
    FROM notification_channels c, u
    WHERE c.site_id = u.site_id AND c.enabled AND %(notification)s = ANY(c.event_types)
)
SELECT u.*, ch.channels,
    -- what the notifications tell of the offer, only when someone listens
    CASE WHEN ch.channels <> '[]'::jsonb THEN (
        SELECT jsonb_build_object('id', p.id, 'offer_id', p.offer_id, 'content', p.content,
            'options', p.options, 'customer_id', p.customer_id,
            'subscription_id', p.subscription_id, 'context', p.context)
        FROM personalized_offers p WHERE p.id = u.personalized_offer_id
    ) END AS personalized_offer
FROM u, ch
"""
)

# The fulfillment, locked, with the option as it was when the offer was issued.
LOCK_WITH_OPTION = """
SELECT f.*,
    (SELECT o FROM personalized_offers po, jsonb_array_elements(po.options) o
     WHERE po.id = f.personalized_offer_id AND o->>'id' = f.option_id) AS option
FROM offer_fulfillments f WHERE f.id = %s
FOR UPDATE OF f
"""


async def personalized_offer(conn: Conn, site_id: str, po_id: str) -> DictRow | None:
    return await fetchone(conn, PERSONALIZED_OFFER, (po_id, site_id))


async def live_fulfillment(conn: Conn, po_id: str) -> DictRow | None:
    """After an insert that yielded to a live fulfillment: a new statement sees it committed."""
    return await fetchone(conn, LIVE_FULFILLMENT, (po_id,))


async def insert_accepted(
    conn: Conn,
    values: dict[str, Any],
    *,
    event_id: str,
    event_origin: dict[str, Any],
    job_kind: str | None,
) -> tuple[DictRow | None, list[dict[str, Any]]]:
    """The new fulfillment's row (None when a live one exists), and the subscribed channels."""
    row = await fetchone(
        conn,
        INSERT_ACCEPTED,
        {
            **values,
            "origin": Jsonb(values["origin"]),
            "event_id": event_id,
            "event_origin": Jsonb(event_origin),
            "job_kind": job_kind,
        },
    )
    assert row is not None
    if not row["created"]:
        return None, []
    stored = {"error_code": None, "error_message": None, "failed_at": None, **values}
    return stored, list(row["channels"])


async def get(
    conn: Conn, site_id: str, fulfillment_id: str, *, lock: bool = False
) -> DictRow | None:
    return await fetchone(conn, GET_FOR_UPDATE if lock else GET, (fulfillment_id, site_id))


async def apply_transition(
    conn: Conn,
    fulfillment_id: str,
    *,
    status: str,
    error_code: str | None,
    error_message: str | None,
    now: datetime,
    event_id: str,
    event_type: str,
    origin: dict[str, Any],
    notification: str,
) -> tuple[DictRow | None, list[dict[str, Any]], dict[str, Any] | None]:
    """The updated row, the listening channels and (when there are any) what the notifications
    need of the personalized offer; or (None, [], None) when it was no longer in progress."""
    row = await fetchone(
        conn,
        APPLY_TRANSITION,
        {
            "id": fulfillment_id,
            "status": status,
            "error_code": error_code,
            "error_message": error_message,
            "now": now,
            "event_id": event_id,
            "event_type": event_type,
            "origin": Jsonb(origin),
            "notification": notification,
        },
    )
    if row is None:
        return None, [], None
    channels = list(row.pop("channels"))
    return row, channels, row.pop("personalized_offer")


async def lock_with_option(conn: Conn, fulfillment_id: str) -> DictRow | None:
    """The fulfillment row, locked, and its option (``option``) as issued."""
    return await fetchone(conn, LOCK_WITH_OPTION, (fulfillment_id,))


LOCK = "SELECT * FROM offer_fulfillments WHERE id = %s FOR UPDATE"


async def lock(conn: Conn, fulfillment_id: str) -> DictRow | None:
    """The fulfillment row, locked: whoever moves it next holds this lock until commit."""
    return await fetchone(conn, LOCK, (fulfillment_id,))


OVERDUE = """
SELECT * FROM offer_fulfillments
WHERE status = 'in_progress' AND deadline_at <= %s
ORDER BY deadline_at
LIMIT %s
FOR UPDATE SKIP LOCKED
"""


async def lock_overdue(conn: Conn, *, now: datetime, limit: int) -> list[DictRow]:
    """In-progress fulfillments past their deadline, locked (others' locked ones skipped)."""
    return await fetchall(conn, OVERDUE, (now, limit))


# The admin list: newest first (ids are time-ordered), from before the cursor.
LIST = """
SELECT * FROM offer_fulfillments
WHERE site_id = %(site)s
  AND (%(status)s::text IS NULL OR status = %(status)s)
  AND (%(customer)s::text IS NULL OR customer_id = %(customer)s)
  AND (%(subscription)s::text IS NULL OR subscription_id = %(subscription)s)
  AND (%(offer)s::text IS NULL OR offer_id = %(offer)s)
  AND (%(after)s::timestamptz IS NULL OR created_at >= %(after)s)
  AND (%(until)s::timestamptz IS NULL OR created_at < %(until)s)
  AND (%(before)s::text IS NULL OR id < %(before)s)
ORDER BY id DESC
LIMIT %(limit)s
"""


async def list_fulfillments(conn: Conn, site_id: str, **filters: Any) -> list[DictRow]:
    return await fetchall(conn, LIST, {"site": site_id, **filters})
