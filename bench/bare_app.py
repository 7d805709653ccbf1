"""The bare endpoint the accept benchmark compares against: the same stack (uvicorn, FastAPI,
psycopg pool, orjson) doing only the fulfillment and event INSERTs, in one transaction, with no
auth, validation, locking, idempotency or job.

Run: OFFERD_DATABASE_URL=... uvicorn bench.bare_app:app --port 8090 --loop uvloop --http httptools
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import orjson
from fastapi import FastAPI, Request
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool
from starlette.responses import Response

from offerd.common.ids import new_id

INSERT_FULFILLMENT = """
INSERT INTO offer_fulfillments (id, site_id, personalized_offer_id, offer_id, option_id,
    processing_type, status, customer_id, subscription_id, origin, created_at, deadline_at)
VALUES (%s, 'bench', %s, 'stay', %s, 'billing_update', 'in_progress', 'cus_1', 'sub_1', %s, %s, %s)
"""
INSERT_EVENT = """
INSERT INTO offer_events (id, site_id, type, personalized_offer_id, offer_id, option_id,
    fulfillment_id, customer_id, subscription_id, origin, occurred_at)
VALUES (%s, 'bench', 'accepted', %s, 'stay', %s, %s, 'cus_1', 'sub_1', %s, %s)
"""


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    pool = AsyncConnectionPool(
        os.environ["OFFERD_DATABASE_URL"],
        min_size=2,
        max_size=20,
        kwargs={"autocommit": True, "row_factory": dict_row},
        open=False,
    )
    await pool.open(wait=True)
    app.state.pool = pool
    yield
    await pool.close()


app = FastAPI(lifespan=lifespan)


@app.post("/bare/offer_fulfillments")
async def accept(request: Request) -> Response:
    body = orjson.loads(await request.body())
    now = datetime.now(UTC)
    fid = new_id("of")
    origin = Jsonb({"ip": None, "user": None, "device": None})
    async with request.app.state.pool.connection() as conn, conn.transaction():
        await conn.execute(
            INSERT_FULFILLMENT,
            (
                fid,
                body["personalized_offer_id"],
                body["option_id"],
                origin,
                now,
                now + timedelta(days=7),
            ),
        )
        await conn.execute(
            INSERT_EVENT,
            (new_id("ev"), body["personalized_offer_id"], body["option_id"], fid, origin, now),
        )
    out = {"offer_fulfillment": {"id": fid, "object": "offer_fulfillment", "status": "in_progress"}}
    return Response(orjson.dumps(out), status_code=202, media_type="application/json")


LEDGER = """
SELECT to_jsonb(c) AS customer, to_jsonb(s) AS subscription
FROM (SELECT 1) AS one
LEFT JOIN customers c ON c.site_id = 'bench' AND c.id = %(customer)s
LEFT JOIN subscriptions s ON s.site_id = 'bench' AND s.id = %(subscription)s
"""
HISTORY = """
SELECT offer_id, type, occurred_at FROM offer_events
WHERE site_id = 'bench' AND customer_id = %s AND type IN ('viewed', 'dismissed', 'accepted')
  AND occurred_at > %s
"""
INSERT_PO = """
INSERT INTO personalized_offers (id, site_id, offer_id, offer_version, customer_id,
    subscription_id, content, options, context, origin, created_at, expires_at)
VALUES (%s, 'bench', 'fallback', 1, %s, %s, %s, '[]', '{}', '{}', %s, %s)
"""


@app.post("/bare/personalized_offers")
async def personalized_offers(request: Request) -> Response:
    """The DB work of personalized_offers (the ledger, the guard history, the snapshot), with no
    rule evaluated: what any implementation pays before deciding anything."""
    body = orjson.loads(await request.body())
    now = datetime.now(UTC)
    po_id = new_id("po")
    content = {"title": "Before you go", "description": ""}
    async with request.app.state.pool.connection() as conn:
        await conn.execute(
            LEDGER, {"customer": body["customer_id"], "subscription": body.get("subscription_id")}
        )
        await conn.execute(HISTORY, (body["customer_id"], now - timedelta(days=30)))
        await conn.execute(
            INSERT_PO,
            (
                po_id,
                body["customer_id"],
                body.get("subscription_id"),
                Jsonb(content),
                now,
                now + timedelta(days=1),
            ),
        )
    out = {
        "personalized_offers": [
            {"id": po_id, "offer_id": "fallback", "content": content, "options": []}
        ],
        "expires_at": int((now + timedelta(days=1)).timestamp()),
    }
    return Response(orjson.dumps(out), media_type="application/json")
