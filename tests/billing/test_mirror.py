"""The billing mirror against the fake Stripe through the unmodified SDK: a re-read writes the
provider's state (and first the customer and price it needs), reads land in the order they were
made whatever order they are written in, deletions drop rows, and offerd's own change is
written from the provider's answer."""

from __future__ import annotations

from datetime import timedelta

from offerd.billing import mirror_store
from offerd.billing.mirror import service as mirror
from offerd.billing.mirror.objects import MirroredCustomer, MirrorSource
from tests.billing.test_stripe_site import accepted, stripe_site, work
from tests.fakes.stripe_api import FakeStripe
from tests.support.app import TestApp

SITE = "shop"


async def source_of(app: TestApp) -> MirrorSource:
    async with app.services.db.connection() as conn:
        source = await app.services.billing.source(conn, SITE)
    assert source is not None
    return source


async def row(app: TestApp, table: str, oid: str) -> dict[str, object] | None:
    rows = await app.fetch(f"SELECT * FROM {table} WHERE site_id = %s AND id = %s", SITE, oid)
    return dict(rows[0]) if rows else None


async def test_a_refresh_writes_the_subscription_with_its_customer_and_price(
    app: TestApp, fake_stripe: FakeStripe
) -> None:
    await stripe_site(app, fake_stripe)
    fake_stripe.seed_price(id="price_pro", unit_amount=4900, nickname="Pro")
    fake_stripe.seed_coupon(id="HALF", percent_off=50, duration="repeating", duration_in_months=3)
    customer = fake_stripe.seed_customer(email="ada@example.test", name="Ada Lovelace")
    sub = fake_stripe.seed_subscription(customer, "price_pro", quantity=2)

    source = await source_of(app)
    assert await mirror.refresh(app.services.db, source, SITE, "subscription", sub["id"])
    assert await mirror.refresh(app.services.db, source, SITE, "coupon", "HALF")

    s = await row(app, "subscriptions", sub["id"])
    assert s is not None
    assert (s["customer_id"], s["plan_id"], s["quantity"], s["status"]) == (
        customer["id"],
        "price_pro",
        2,
        "active",
    )
    c = await row(app, "customers", customer["id"])
    assert c is not None and (c["email"], c["first_name"], c["last_name"]) == (
        "ada@example.test",
        "Ada",
        "Lovelace",
    )
    p = await row(app, "plans", "price_pro")
    assert p is not None and (p["price"], p["currency"], p["period_unit"], p["name"]) == (
        4900,
        "USD",
        "month",
        "Pro",
    )
    k = await row(app, "coupons", "HALF")
    assert k is not None and (k["discount_type"], k["duration_type"], k["duration_months"]) == (
        "percentage",
        "limited_period",
        3,
    )
    assert await mirror.counts(app.services.db, SITE) == {
        "customers": 1,
        "subscriptions": 1,
        "plans": 1,
        "coupons": 2,  # and SAVE10, checked when the site's offer was saved
    }


async def test_an_older_read_written_late_does_not_overwrite_a_newer_one(
    app: TestApp, fake_stripe: FakeStripe
) -> None:
    await app.create_site(SITE)
    db = app.services.db
    newer_at = await mirror.read_time(db)
    older_at = newer_at - timedelta(seconds=5)
    async with db.connection() as conn:
        await mirror_store.write(
            conn, SITE, [MirroredCustomer("cus_1", "new@x.test", None, None)], newer_at
        )
        await mirror_store.write(
            conn, SITE, [MirroredCustomer("cus_1", "old@x.test", None, None)], older_at
        )
    c = await row(app, "customers", "cus_1")
    assert c is not None and c["email"] == "new@x.test"


async def test_a_deleted_customer_leaves_the_mirror_with_its_subscriptions(
    app: TestApp, fake_stripe: FakeStripe
) -> None:
    await stripe_site(app, fake_stripe)
    fake_stripe.seed_price(id="price_pro", unit_amount=4900)
    customer = fake_stripe.seed_customer(email="ada@example.test")
    sub = fake_stripe.seed_subscription(customer, "price_pro")
    source = await source_of(app)
    await mirror.refresh(app.services.db, source, SITE, "subscription", sub["id"])
    assert await row(app, "subscriptions", sub["id"]) is not None

    fake_stripe.client().v1.customers.delete(customer["id"])
    assert not await mirror.refresh(app.services.db, source, SITE, "customer", customer["id"])

    assert await row(app, "customers", customer["id"]) is None
    assert await row(app, "subscriptions", sub["id"]) is None


async def test_offerds_own_change_is_written_to_the_mirror_from_stripes_answer(
    app: TestApp, fake_stripe: FakeStripe
) -> None:
    keys = await stripe_site(app, fake_stripe)  # its offer applies the coupon SAVE10
    fake_stripe.seed_price(id="price_basic", unit_amount=2000)
    customer = fake_stripe.seed_customer(email="ada@example.test")
    sub = fake_stripe.seed_subscription(customer, "price_basic")
    source = await source_of(app)
    await mirror.refresh(app.services.db, source, SITE, "subscription", sub["id"])

    await accepted(app, keys, {"customer_id": customer["id"], "subscription_id": sub["id"]})
    await work(app)

    s = await row(app, "subscriptions", sub["id"])
    assert s is not None and s["coupon_ids"] == ["SAVE10"]
