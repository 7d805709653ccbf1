"""Hand-built event histories: personalized offers, fulfillments and events written straight
into their tables with chosen times (out of order when a test wants), so that the rollups'
triggers count them as they count the API's writes."""

from __future__ import annotations

from datetime import datetime, timedelta

from psycopg.types.json import Jsonb

from offerd.db import Conn


class History:
    def __init__(self, conn: Conn, site: str) -> None:
        self.conn = conn
        self.site = site
        self.n = 0

    def _id(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}_{self.site}_{self.n}"

    async def issue(
        self,
        at: datetime,
        *,
        offer: str = "stay",
        arm: str | None = None,
        entity: str | None = None,
        brand: str | None = None,
    ) -> str:
        po = self._id("po")
        await self.conn.execute(
            """INSERT INTO personalized_offers (id, site_id, offer_id, offer_version, customer_id,
                subscription_id, business_entity_id, brand_id, content, options, context, origin,
                experiment_id, experiment_arm, created_at, expires_at)
            VALUES (%s, %s, %s, 1, 'cus_1', 'sub_1', %s, %s, '{}', '[]', '{}', '{}', %s, %s,
                %s, %s)""",
            (po, self.site, offer, entity, brand, "exp_1" if arm else None, arm, at,
             at + timedelta(days=1)),
        )  # fmt: skip
        return po

    async def event(
        self,
        po: str,
        type: str,
        at: datetime,
        *,
        fulfillment: str | None = None,
        option: str | None = None,
    ) -> None:
        row = await (
            await self.conn.execute(
                "SELECT offer_id, business_entity_id FROM personalized_offers WHERE id = %s",
                (po,),
            )
        ).fetchone()
        assert row is not None
        await self.conn.execute(
            """INSERT INTO offer_events (id, site_id, type, personalized_offer_id, offer_id,
                option_id, fulfillment_id, customer_id, subscription_id, business_entity_id,
                origin, occurred_at)
            VALUES (%s, %s, %s, %s, %s, %s, %s, 'cus_1', 'sub_1', %s, %s, %s)""",
            (self._id("ev"), self.site, type, po, row["offer_id"], option, fulfillment,
             row["business_entity_id"], Jsonb({}), at),
        )  # fmt: skip

    async def accept(
        self, po: str, at: datetime, *, option: str = "talk", processing_type: str = "url_redirect"
    ) -> str:
        f = self._id("ful")
        await self.conn.execute(
            """INSERT INTO offer_fulfillments (id, site_id, personalized_offer_id, offer_id,
                option_id, processing_type, status, customer_id, subscription_id, origin,
                created_at, deadline_at)
            SELECT %s, site_id, id, offer_id, %s, %s, 'in_progress', customer_id,
                subscription_id, '{}', %s, %s FROM personalized_offers WHERE id = %s""",
            (f, option, processing_type, at, at + timedelta(days=7), po),
        )
        await self.event(po, "accepted", at, fulfillment=f, option=option)
        return f

    async def complete(self, po: str, f: str, at: datetime) -> None:
        await self.conn.execute(
            "UPDATE offer_fulfillments SET status = 'completed', completed_at = %s WHERE id = %s",
            (at, f),
        )
        await self.event(po, "fulfilled", at, fulfillment=f)

    async def fail(self, po: str, f: str, at: datetime, code: str) -> None:
        await self.conn.execute(
            """UPDATE offer_fulfillments SET status = 'failed', failed_at = %s, error_code = %s,
                error_message = 'x' WHERE id = %s""",
            (at, code, f),
        )
        await self.event(po, "failed", at, fulfillment=f)
