"""The Stripe provider's apply path against the fake Stripe API (unmodified SDK, real HTTP) and a
real PostgreSQL: each action applies once, and faults (a 500, a lost response, a 429, a 401, a
refusal) never make a change apply twice or silently not at all."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import stripe

from offerd.billing import calls_store
from offerd.billing.actions import SubscriptionState, add_months, parse_action
from offerd.billing.provider import (
    Applied,
    PermanentProviderError,
    Preview,
    ProviderUnauthorized,
    TransientProviderError,
)
from offerd.billing.stripe.provider import StripeBackend, StripeProvider
from offerd.db import transaction
from tests.fakes.stripe_api import FakeStripe
from tests.support.app import TestApp

SITE = "site_a"
DAY = 86400


@pytest.fixture
def seeded(fake_stripe: FakeStripe) -> dict[str, Any]:
    fake_stripe.seed_price(id="price_basic", unit_amount=2000, nickname="Basic")
    fake_stripe.seed_price(id="price_pro", unit_amount=3000, nickname="Pro")
    fake_stripe.seed_price(id="price_euro", unit_amount=3000, currency="eur")
    fake_stripe.seed_coupon(id="SAVE10", percent_off=10)
    fake_stripe.seed_coupon(id="OLD", percent_off=5)
    return {"customer": fake_stripe.seed_customer(email="ada@example.test")}


@pytest.fixture
def provider(app: TestApp, fake_stripe: FakeStripe) -> StripeProvider:
    client = fake_stripe.client(http_client=stripe.HTTPXClient())
    return StripeProvider(client, app.services.db)


def _sub(fake: FakeStripe, seeded: dict[str, Any], **fields: Any) -> str:
    sub_id: str = fake.seed_subscription(seeded["customer"], "price_basic", **fields)["id"]
    return sub_id


async def _apply(
    app: TestApp, provider: StripeProvider, sub_id: str, action: dict[str, Any], key: str = "ful_1"
) -> Applied:
    async with app.services.db.connection() as conn, transaction(conn):
        return await provider.apply(
            conn,
            site_id=SITE,
            subscription_id=sub_id,
            action=parse_action(action),
            idempotency_key=key,
            now=datetime.now(UTC),
        )


async def _calls(app: TestApp, sub_id: str) -> list[tuple[int, str]]:
    async with app.services.db.connection() as conn:
        rows = await calls_store.for_subscription(conn, SITE, sub_id)
    return [(r["generation"], r["state"]) for r in rows]


async def _recorded_not_answered(
    app: TestApp,
    sub_id: str,
    action: dict[str, Any],
    before: SubscriptionState,
    target: SubscriptionState,
) -> None:
    """Generation 1 of change ``ful_1`` as a crash leaves it: recorded 'sent', never answered."""
    async with app.services.db.connection() as conn:
        await calls_store.record(
            conn,
            site_id=SITE,
            provider="stripe",
            subscription_id=sub_id,
            base_key="ful_1",
            step="apply",
            generation=1,
            idempotency_key="ful_1:apply:1",
            action=action,
            before=before.as_dict(),
            target=target.as_dict(),
            now=datetime.now(UTC),
        )


def _posts(fake: FakeStripe) -> int:
    return sum(1 for r in fake.requests if r.method in ("POST", "DELETE"))


def _secs(at: datetime | None) -> int | None:
    return int(at.timestamp()) if at is not None else None


Check = Callable[[SubscriptionState, SubscriptionState], bool]

ACTIONS: list[tuple[str, dict[str, Any], dict[str, Any], Check]] = [
    (
        "apply_coupon keeps the discounts there",
        {"coupons": ["OLD"]},
        {"type": "apply_coupon", "coupon_id": "SAVE10"},
        lambda _b, s: s.coupon_ids == ("OLD", "SAVE10"),
    ),
    (
        "change_plan",
        {},
        {"type": "change_plan", "plan_id": "price_pro", "quantity": 2},
        lambda _b, s: (s.plan_id, s.quantity) == ("price_pro", 2),
    ),
    (
        "pause_subscription",
        {},
        {"type": "pause_subscription", "pause_months": 2},
        lambda _b, s: (
            s.status == "paused"
            and abs(_secs(s.pause_until) - _secs(add_months(datetime.now(UTC), 2))) < 120  # type: ignore[operator]
        ),
    ),
    (
        "resume_subscription (pause_collection)",
        {"pause_collection": {"behavior": "void", "resumes_at": None}},
        {"type": "resume_subscription"},
        lambda _b, s: s.status == "active" and s.pause_until is None,
    ),
    (
        "resume_subscription (Stripe paused)",
        {"status": "paused"},
        {"type": "resume_subscription"},
        lambda _b, s: s.status == "active",
    ),
    (
        "extend_trial",
        {"status": "trialing"},
        {"type": "extend_trial", "days": 7},
        lambda b, s: s.trial_end == b.trial_end + timedelta(days=7),  # type: ignore[operator]
    ),
    (
        "convert_trial",
        {"status": "trialing"},
        {"type": "convert_trial", "plan_id": "price_pro", "coupon_id": "SAVE10"},
        lambda _b, s: (s.status, s.plan_id, s.coupon_ids) == ("active", "price_pro", ("SAVE10",)),
    ),
    (
        "cancel_subscription at the end of term",
        {},
        {"type": "cancel_subscription", "end_of_term": True},
        lambda b, s: s.status == "non_renewing" and s.cancel_at == b.current_term_end,
    ),
    (
        "cancel_subscription now",
        {},
        {"type": "cancel_subscription", "end_of_term": False},
        lambda _b, s: s.status == "cancelled",
    ),
    (
        "remove_scheduled_cancellation",
        {"cancel_at_period_end": True},
        {"type": "remove_scheduled_cancellation"},
        lambda _b, s: s.status == "active" and s.cancel_at is None,
    ),
]


@pytest.mark.parametrize(
    ("seed", "action", "check"), [a[1:] for a in ACTIONS], ids=[a[0] for a in ACTIONS]
)
async def test_each_action_applies_once(
    app: TestApp,
    provider: StripeProvider,
    fake_stripe: FakeStripe,
    seeded: dict[str, Any],
    seed: dict[str, Any],
    action: dict[str, Any],
    check: Check,
) -> None:
    sub_id = _sub(fake_stripe, seeded, **seed)
    applied = await _apply(app, provider, sub_id, action)
    assert not applied.replayed
    now = (await provider.backend.read(sub_id)).state
    assert check(applied.before, now), now
    assert applied.after == now
    (change,) = fake_stripe.history(sub_id)
    cancel_now = action.get("end_of_term") is False  # a DELETE: Stripe drops the key
    assert change.idempotency_key == (None if cancel_now else "ful_1:apply:1")
    assert await _calls(app, sub_id) == [(1, "applied")]
    # the job ran again (its transaction rolled back after apply): nothing is sent, not even a read
    posts = len(fake_stripe.requests)
    again = await _apply(app, provider, sub_id, action)
    assert again.replayed and len(fake_stripe.requests) == posts
    assert len(fake_stripe.history(sub_id)) == 1


async def test_a_500_then_200_applies_once_under_a_new_generation(
    app: TestApp,
    provider: StripeProvider,
    fake_stripe: FakeStripe,
    seeded: dict[str, Any],
) -> None:
    sub_id = _sub(fake_stripe, seeded)
    action = {"type": "apply_coupon", "coupon_id": "SAVE10"}
    fake_stripe.fail_next(1, 500)
    with pytest.raises(TransientProviderError):
        await _apply(app, provider, sub_id, action)
    assert fake_stripe.history(sub_id) == []
    # Stripe stored the 500 against the first key: sending it again would replay the 500
    with pytest.raises(stripe.APIError):
        fake_stripe.client().v1.subscriptions.update(
            sub_id,
            {"discounts": [{"coupon": "SAVE10"}], "expand": ["discounts"]},
            {"idempotency_key": "ful_1:apply:1"},
        )
    applied = await _apply(app, provider, sub_id, action)
    assert not applied.replayed and applied.after.coupon_ids == ("SAVE10",)
    assert [c.idempotency_key for c in fake_stripe.history(sub_id)] == ["ful_1:apply:2"]
    assert await _calls(app, sub_id) == [(1, "failed"), (2, "applied")]


@pytest.mark.parametrize(
    "action",
    [
        {"type": "cancel_subscription", "end_of_term": True},
        {"type": "cancel_subscription", "end_of_term": False},  # DELETE: Stripe ignores the key
        {"type": "pause_subscription", "pause_months": 1},
    ],
    ids=["update", "cancel now", "pause"],
)
async def test_applied_but_the_connection_dropped_the_retry_sends_nothing(
    app: TestApp,
    provider: StripeProvider,
    fake_stripe: FakeStripe,
    seeded: dict[str, Any],
    action: dict[str, Any],
) -> None:
    sub_id = _sub(fake_stripe, seeded)
    fake_stripe.apply_then_drop_connection(1)
    with pytest.raises(TransientProviderError):
        await _apply(app, provider, sub_id, action)
    assert len(fake_stripe.history(sub_id)) == 1
    posts = _posts(fake_stripe)
    applied = await _apply(app, provider, sub_id, action)
    assert applied.replayed and _posts(fake_stripe) == posts
    assert len(fake_stripe.history(sub_id)) == 1
    assert await _calls(app, sub_id) == [(1, "applied")]


@pytest.mark.parametrize("fault", ["drop", "500 after applying"])
async def test_extend_trial_retried_after_it_landed_extends_once(
    app: TestApp,
    provider: StripeProvider,
    fake_stripe: FakeStripe,
    seeded: dict[str, Any],
    fault: str,
) -> None:
    sub_id = _sub(fake_stripe, seeded, status="trialing")
    trial_end = fake_stripe.subscription(sub_id)["trial_end"]
    if fault == "drop":
        fake_stripe.apply_then_drop_connection(1)
    else:
        fake_stripe.fail_next(1, 500, apply=True)
    action = {"type": "extend_trial", "days": 7}
    with pytest.raises(TransientProviderError):
        await _apply(app, provider, sub_id, action)
    for _ in range(2):
        assert (await _apply(app, provider, sub_id, action)).replayed
    assert fake_stripe.subscription(sub_id)["trial_end"] == trial_end + 7 * DAY
    assert len(fake_stripe.history(sub_id)) == 1


async def test_a_domain_refusal_is_permanent_with_stripes_message_and_never_resent(
    app: TestApp,
    provider: StripeProvider,
    fake_stripe: FakeStripe,
    seeded: dict[str, Any],
) -> None:
    sub_id = _sub(fake_stripe, seeded)
    action = {"type": "change_plan", "plan_id": "price_euro"}
    with pytest.raises(PermanentProviderError) as info:
        await _apply(app, provider, sub_id, action)
    assert str(info.value) == "All prices on a subscription must have the same currency."
    assert info.value.request_id is not None and info.value.request_id.startswith("req_")
    posts = _posts(fake_stripe)
    with pytest.raises(PermanentProviderError, match="same currency"):
        await _apply(app, provider, sub_id, action)
    assert _posts(fake_stripe) == posts and fake_stripe.history(sub_id) == []
    assert await _calls(app, sub_id) == [(1, "refused")]


async def test_an_action_the_subscription_cannot_take_is_refused_before_any_call(
    app: TestApp,
    provider: StripeProvider,
    fake_stripe: FakeStripe,
    seeded: dict[str, Any],
) -> None:
    sub_id = _sub(fake_stripe, seeded)
    for action, message in [
        ({"type": "extend_trial", "days": 3}, "extend_trial needs an in_trial subscription"),
        ({"type": "apply_coupon", "coupon_id": "NOPE"}, "coupon 'NOPE' does not exist"),
    ]:
        with pytest.raises(PermanentProviderError, match=message):
            await _apply(app, provider, sub_id, action)
    assert _posts(fake_stripe) == 0 and await _calls(app, sub_id) == []


async def test_a_429_is_transient_and_carries_retry_after(
    app: TestApp,
    provider: StripeProvider,
    fake_stripe: FakeStripe,
    seeded: dict[str, Any],
) -> None:
    sub_id = _sub(fake_stripe, seeded)
    action = {"type": "pause_subscription", "pause_months": 1}
    fake_stripe.fail_next(1, 429, retry_after=7)
    with pytest.raises(TransientProviderError) as info:
        await _apply(app, provider, sub_id, action)
    assert info.value.retry_after == 7.0
    assert (await _apply(app, provider, sub_id, action)).after.status == "paused"
    assert len(fake_stripe.history(sub_id)) == 1


async def test_stripe_should_retry_false_is_permanent(
    app: TestApp,
    provider: StripeProvider,
    fake_stripe: FakeStripe,
    seeded: dict[str, Any],
) -> None:
    sub_id = _sub(fake_stripe, seeded)
    fake_stripe.fail_next(1, 500, should_retry=False)
    with pytest.raises(PermanentProviderError) as info:
        await _apply(app, provider, sub_id, {"type": "pause_subscription", "pause_months": 1})
    assert not isinstance(info.value, ProviderUnauthorized)


async def test_a_401_is_provider_unauthorized(
    app: TestApp,
    provider: StripeProvider,
    fake_stripe: FakeStripe,
    seeded: dict[str, Any],
) -> None:
    sub_id = _sub(fake_stripe, seeded)
    fake_stripe.invalidate_key()
    with pytest.raises(ProviderUnauthorized, match="Invalid API Key"):
        await _apply(app, provider, sub_id, {"type": "pause_subscription", "pause_months": 1})
    fake_stripe.invalidate_key(False)
    assert (
        await _apply(app, provider, sub_id, {"type": "pause_subscription", "pause_months": 1})
    ).after.status == "paused"


async def _preview(
    app: TestApp, provider: StripeProvider, sub_id: str, action: dict[str, Any]
) -> Preview:
    async with app.services.db.connection() as conn:
        return await provider.preview(
            conn,
            site_id=SITE,
            subscription_id=sub_id,
            action=parse_action(action),
            now=datetime.now(UTC),
        )


async def test_a_preview_takes_the_next_charge_from_stripes_invoice_preview(
    app: TestApp, provider: StripeProvider, fake_stripe: FakeStripe, seeded: dict[str, Any]
) -> None:
    sub_id = _sub(fake_stripe, seeded, coupons=["OLD"])
    preview = await _preview(app, provider, sub_id, {"type": "change_plan", "plan_id": "price_pro"})
    assert (preview.before.plan_name, preview.before.list_price) == ("Basic", 2000)
    assert preview.before.next_charge == 1900  # 5 % off
    assert (preview.after.plan_name, preview.after.list_price) == ("Pro", 3000)
    invoice = fake_stripe.client().v1.invoices.create_preview(
        {
            "subscription": sub_id,
            "subscription_details": {
                "items": [
                    {
                        "id": fake_stripe.subscription(sub_id)["items"]["data"][0]["id"],
                        "price": "price_pro",
                        "quantity": 1,
                    }
                ],
                "proration_behavior": "create_prorations",
            },
        }
    )
    assert preview.after.next_charge == invoice.amount_due != 2850  # prorations included
    assert fake_stripe.history(sub_id) == []  # a preview changes nothing


async def test_a_preview_without_a_price_change_asks_stripe_nothing_more(
    app: TestApp, provider: StripeProvider, fake_stripe: FakeStripe, seeded: dict[str, Any]
) -> None:
    sub_id = _sub(fake_stripe, seeded)
    preview = await _preview(
        app, provider, sub_id, {"type": "pause_subscription", "pause_months": 1}
    )
    assert (preview.before.status, preview.after.status) == ("active", "paused")
    assert _posts(fake_stripe) == 0
    with pytest.raises(PermanentProviderError, match="needs an in_trial"):
        await _preview(app, provider, sub_id, {"type": "convert_trial"})


async def test_a_generation_recorded_but_never_answered_is_sent_again_under_its_key(
    app: TestApp, provider: StripeProvider, fake_stripe: FakeStripe, seeded: dict[str, Any]
) -> None:
    """The crash between recording a generation and sending it (or before its answer): the retry
    re-reads, finds the change missing, and sends the target recorded at the first attempt under
    the same key — had the first request been on its way, Stripe would replay it, not apply it
    twice."""
    sub_id = _sub(fake_stripe, seeded, status="trialing")
    trial_end = fake_stripe.subscription(sub_id)["trial_end"]
    action = {"type": "extend_trial", "days": 7}
    snapshot = await provider.backend.read(sub_id)
    target = replace(snapshot.state, trial_end=snapshot.state.trial_end + timedelta(days=7))  # type: ignore[operator]
    await _recorded_not_answered(app, sub_id, action, snapshot.state, target)
    applied = await _apply(app, provider, sub_id, action)
    assert not applied.replayed and applied.before == snapshot.state
    assert fake_stripe.subscription(sub_id)["trial_end"] == trial_end + 7 * DAY
    assert [c.idempotency_key for c in fake_stripe.history(sub_id)] == ["ful_1:apply:1"]
    assert await _calls(app, sub_id) == [(1, "applied")]


async def test_an_incomplete_subscription_takes_no_action(
    app: TestApp, provider: StripeProvider, fake_stripe: FakeStripe, seeded: dict[str, Any]
) -> None:
    sub_id = _sub(fake_stripe, seeded, status="incomplete")
    with pytest.raises(PermanentProviderError, match="'incomplete' takes no actions"):
        await _apply(app, provider, sub_id, {"type": "cancel_subscription", "end_of_term": False})
    assert _posts(fake_stripe) == 0 and await _calls(app, sub_id) == []


async def test_a_key_stripe_kept_for_other_parameters_moves_to_the_next_generation(
    app: TestApp, provider: StripeProvider, fake_stripe: FakeStripe, seeded: dict[str, Any]
) -> None:
    """The first attempt's request was answered and kept under its key with parameters the retry
    no longer builds (the subscription changed in between): Stripe refuses the key for the new
    parameters. That key is spent and nothing under it is in flight, so the retry is the next
    generation — not a refusal of the whole change."""
    sub_id = _sub(fake_stripe, seeded)
    snapshot = await provider.backend.read(sub_id)
    target = replace(snapshot.state, coupon_ids=("SAVE10",))
    action = {"type": "apply_coupon", "coupon_id": "SAVE10"}
    await _recorded_not_answered(app, sub_id, action, snapshot.state, target)
    # what Stripe kept under that key: a request with other parameters
    fake_stripe.client().v1.subscriptions.update(
        sub_id, {"metadata": {"note": "x"}}, {"idempotency_key": "ful_1:apply:1"}
    )

    with pytest.raises(TransientProviderError):
        await _apply(app, provider, sub_id, action)
    applied = await _apply(app, provider, sub_id, action)

    assert not applied.replayed and applied.after.coupon_ids == ("SAVE10",)
    assert await _calls(app, sub_id) == [(1, "failed"), (2, "applied")]
    assert [c.idempotency_key for c in fake_stripe.history(sub_id)][-1] == "ful_1:apply:2"


async def test_a_resend_refused_because_the_first_request_landed_meanwhile_is_applied(
    app: TestApp, provider: StripeProvider, fake_stripe: FakeStripe, seeded: dict[str, Any]
) -> None:
    """A cancel whose first DELETE got no answer is sent again after a re-read that found the
    subscription still live; the first DELETE lands just before the second (Stripe keys no
    DELETE), which then gets a 404. The change is made, once: the refusal is checked against a
    re-read, and the fulfillment is not failed."""
    sub_id = _sub(fake_stripe, seeded)
    snapshot = await provider.backend.read(sub_id)
    action = {"type": "cancel_subscription", "end_of_term": False}
    target = replace(snapshot.state, status="cancelled")
    await _recorded_not_answered(app, sub_id, action, snapshot.state, target)
    first_request = fake_stripe.client()

    class LateFirstRequest(StripeBackend):
        async def send(self, *args: Any, **kwargs: Any) -> Any:
            first_request.v1.subscriptions.cancel(sub_id)  # the dead worker's DELETE lands
            return await super().send(*args, **kwargs)

    provider.backend = LateFirstRequest(provider.backend.client)

    applied = await _apply(app, provider, sub_id, action)

    assert applied.replayed and applied.after.status == "cancelled"
    assert [c.action for c in fake_stripe.history(sub_id)] == ["cancel"]
    assert await _calls(app, sub_id) == [(1, "applied")]
