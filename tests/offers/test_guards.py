"""Frequency guards: pure tables with fixed datetimes, then through the public API with the app's
injected clock (``app.clock.advance``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from offerd.offers.guards import Guards, Limit, Seen, blocked
from tests.support.app import TestApp
from tests.support.catalog import offer, seed

NOW = datetime(2030, 6, 15, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
SECOND = timedelta(seconds=1)


def ago(kind: str, delta: timedelta) -> Seen:
    return Seen(kind, NOW - delta)


def many(kind: str, *deltas: timedelta) -> list[Seen]:
    return [ago(kind, d) for d in deltas]


DISMISS_7 = Guards(dismiss_cooldown_days=7)
ACCEPT_30 = Guards(accept_cooldown_days=30)
VIEWS_3_IN_7 = Guards(max_views=Limit(3, 7))
ACCEPTS_2_IN_30 = Guards(max_acceptances=Limit(2, 30))


def assert_held_back_by(reason: str | None, expected: str | None) -> None:
    """No guard when none is expected, else one whose reason names ``expected``."""
    if expected is None:
        assert reason is None
    else:
        assert reason is not None and expected in reason


@pytest.mark.unit
@pytest.mark.parametrize(
    ("guards", "events", "expected"),
    [
        # --- no guards --------------------------------------------------------------------------
        # an offer without guards is never held back, whatever the history
        (None, many("dismissed", SECOND), None),
        (Guards(), many("dismissed", SECOND) + many("viewed", *[SECOND] * 50), None),
        # --- dismiss cool-down: 7 days ------------------------------------------------------------
        # dismissed a second ago: inside the cool-down
        (DISMISS_7, many("dismissed", SECOND), "dismissed"),
        # dismissed 6 days 23:59:59 ago: still inside
        (DISMISS_7, many("dismissed", 7 * DAY - SECOND), "dismissed"),
        # dismissed exactly 7 days ago: the 7 days are over, the offer may be shown again
        (DISMISS_7, many("dismissed", 7 * DAY), None),
        # dismissed 8 days ago: outside
        (DISMISS_7, many("dismissed", 8 * DAY), None),
        # an old and a recent dismissal: the recent one counts
        (DISMISS_7, many("dismissed", 30 * DAY, DAY), "dismissed"),
        # views and acceptances are not dismissals
        (DISMISS_7, many("viewed", SECOND) + many("accepted", SECOND), None),
        # --- accept cool-down: 30 days ------------------------------------------------------------
        (ACCEPT_30, many("accepted", DAY), "accepted"),
        (ACCEPT_30, many("accepted", 30 * DAY - SECOND), "accepted"),
        # exactly 30 days after the acceptance the offer may come back
        (ACCEPT_30, many("accepted", 30 * DAY), None),
        (ACCEPT_30, many("accepted", 31 * DAY), None),
        # a dismissal is not an acceptance
        (ACCEPT_30, many("dismissed", DAY), None),
        # --- at most 3 views per 7 days ----------------------------------------------------------
        # 2 views: below the limit
        (VIEWS_3_IN_7, many("viewed", DAY, 2 * DAY), None),
        # 3 views: at the limit, a 4th would exceed it
        (VIEWS_3_IN_7, many("viewed", DAY, 2 * DAY, 3 * DAY), "max_views"),
        # 4 views (e.g. two tabs): above the limit
        (VIEWS_3_IN_7, many("viewed", *[DAY] * 4), "max_views"),
        # 3 views, but one exactly 7 days ago: only 2 are inside the period
        (VIEWS_3_IN_7, many("viewed", DAY, 2 * DAY, 7 * DAY), None),
        # ... and one a second less than 7 days ago: 3 inside
        (VIEWS_3_IN_7, many("viewed", DAY, 2 * DAY, 7 * DAY - SECOND), "max_views"),
        # 10 views long ago: none counts
        (VIEWS_3_IN_7, many("viewed", *[8 * DAY] * 10), None),
        # dismissals and acceptances are not views
        (VIEWS_3_IN_7, many("dismissed", DAY, DAY, DAY) + many("accepted", DAY, DAY, DAY), None),
        # --- at most 2 acceptances per 30 days ---------------------------------------------------
        (ACCEPTS_2_IN_30, many("accepted", DAY), None),
        (ACCEPTS_2_IN_30, many("accepted", DAY, 29 * DAY), "max_acceptances"),
        (ACCEPTS_2_IN_30, many("accepted", DAY, 2 * DAY, 3 * DAY), "max_acceptances"),
        # the older one is exactly 30 days old: one acceptance in the period
        (ACCEPTS_2_IN_30, many("accepted", DAY, 30 * DAY), None),
        (ACCEPTS_2_IN_30, many("viewed", DAY, DAY, DAY), None),
    ],
)
def test_each_guard(guards: Guards | None, events: list[Seen], expected: str | None) -> None:
    assert_held_back_by(blocked(guards, events, NOW), expected)


@pytest.mark.unit
@pytest.mark.parametrize(
    ("events", "expected"),
    [
        # nothing happened: nothing holds the offer back
        ([], None),
        # each guard alone, with the others satisfied
        (many("dismissed", DAY), "cool-down 7 days"),
        (many("accepted", DAY), "no re-offer for 30 days"),
        (many("viewed", DAY, DAY, DAY), "max_views"),
        # two acceptances 40 and 45 days ago: past the 30-day cool-down but 2 in the 60-day period
        (many("accepted", 40 * DAY, 45 * DAY), "max_acceptances"),
        # one acceptance 40 days ago: past the cool-down, 1 of 2 in the period
        (many("accepted", 40 * DAY), None),
        # dismissal and too many views: the dismissal is named (checked first; either is right,
        # but the answer must be stable)
        (many("dismissed", DAY) + many("viewed", DAY, DAY, DAY), "cool-down 7 days"),
    ],
)
def test_several_guards_at_once(events: list[Seen], expected: str | None) -> None:
    guards = Guards(
        dismiss_cooldown_days=7,
        max_views=Limit(3, 7),
        accept_cooldown_days=30,
        max_acceptances=Limit(2, 60),
    )
    assert_held_back_by(blocked(guards, events, NOW), expected)


@pytest.mark.unit
@pytest.mark.parametrize(
    ("guards", "days"),
    [
        # no guard: no history is needed
        (Guards(), 0),
        # one guard: its own window
        (Guards(dismiss_cooldown_days=7), 7),
        (Guards(max_views=Limit(3, 14)), 14),
        # the longest window wins, whichever guard it belongs to
        (Guards(dismiss_cooldown_days=7, accept_cooldown_days=90, max_views=Limit(5, 30)), 90),
        (Guards(accept_cooldown_days=10, max_acceptances=Limit(1, 365)), 365),
    ],
)
def test_lookback_days(guards: Guards, days: int) -> None:
    assert guards.lookback_days == days


@pytest.mark.unit
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # absent or empty: no guards at all
        (None, None),
        ({}, None),
        # each key maps to its field; the others stay unset
        ({"dismiss_cooldown_days": 3}, Guards(dismiss_cooldown_days=3)),
        (
            {"max_views": {"count": 2, "period_days": 5}, "accept_cooldown_days": 9},
            Guards(max_views=Limit(2, 5), accept_cooldown_days=9),
        ),
        (
            {"max_acceptances": {"count": 1, "period_days": 30}},
            Guards(max_acceptances=Limit(1, 30)),
        ),
    ],
)
def test_from_definition(raw: dict[str, Any] | None, expected: Guards | None) -> None:
    assert Guards.from_definition(raw) == expected


# --- through the public API, with the app's clock --------------------------------------------

PO = "/api/v2/personalized_offers"


async def ask(app: TestApp, key: str, customer: str = "cus_1") -> list[dict[str, Any]]:
    r = await app.post(PO, key, json={"customer_id": customer})
    assert r.status_code == 200, r.text
    offers: list[dict[str, Any]] = r.json()["personalized_offers"]
    return offers


async def event(app: TestApp, key: str, po_id: str, kind: str) -> None:
    r = await app.post(
        "/api/v2/offer_events", key, json={"personalized_offer_id": po_id, "type": kind}
    )
    assert r.status_code == 200, r.text


async def accept(app: TestApp, key: str, po_id: str) -> None:
    r = await app.post(
        "/api/v2/offer_fulfillments",
        key,
        json={"personalized_offer_id": po_id, "option_id": "talk"},
    )
    assert r.status_code == 202, r.text


async def guarded(app: TestApp, **guards: Any) -> dict[str, str]:
    keys = await seed(app)
    await app.put("acme", "offers/stay", offer(guards=guards))
    return keys


async def test_dismissed_offer_is_not_offered_again_for_n_days(app: TestApp) -> None:
    keys = await guarded(app, dismiss_cooldown_days=3)
    key = keys["publishable"]
    (po,) = await ask(app, key)
    await event(app, key, po["id"], "dismissed")
    assert await ask(app, key) == []
    # another customer is not affected by cus_1's dismissal
    assert len(await ask(app, key, "cus_other")) == 1
    app.clock.advance(3 * DAY - timedelta(minutes=5))
    assert await ask(app, key) == []
    app.clock.advance(timedelta(minutes=10))
    (again,) = await ask(app, key)
    assert again["offer_id"] == "stay"


async def test_views_are_capped_per_period(app: TestApp) -> None:
    keys = await guarded(app, max_views={"count": 2, "period_days": 7})
    key = keys["publishable"]
    for _ in range(2):
        (po,) = await ask(app, key)
        await event(app, key, po["id"], "viewed")
        app.clock.advance(timedelta(hours=1))
    assert await ask(app, key) == []
    # 7 days after the first view it leaves the period: one view left in it, so one more allowed
    app.clock.advance(7 * DAY - timedelta(hours=2) + timedelta(minutes=5))
    (po,) = await ask(app, key)
    await event(app, key, po["id"], "viewed")
    assert await ask(app, key) == []


async def test_no_re_offer_for_n_days_after_an_acceptance(app: TestApp) -> None:
    keys = await guarded(app, accept_cooldown_days=30)
    key = keys["publishable"]
    (po,) = await ask(app, key)
    # a view alone holds nothing back
    await event(app, key, po["id"], "viewed")
    assert len(await ask(app, key)) == 1
    await accept(app, key, po["id"])
    assert await ask(app, key) == []
    app.clock.advance(29 * DAY)
    assert await ask(app, key) == []
    app.clock.advance(DAY + timedelta(minutes=5))
    assert len(await ask(app, key)) == 1


async def test_acceptances_are_capped_per_period(app: TestApp) -> None:
    keys = await guarded(app, max_acceptances={"count": 2, "period_days": 30})
    key = keys["publishable"]
    (po,) = await ask(app, key)
    await accept(app, key, po["id"])
    app.clock.advance(DAY)
    # one acceptance of two: still offered
    (po,) = await ask(app, key)
    await accept(app, key, po["id"])
    assert await ask(app, key) == []
    app.clock.advance(28 * DAY)
    assert await ask(app, key) == []
    # the first acceptance is now more than 30 days old
    app.clock.advance(DAY + timedelta(minutes=5))
    assert len(await ask(app, key)) == 1


async def test_a_guarded_offer_gives_way_to_the_next_one(app: TestApp) -> None:
    """A guard only holds back its own offer: the next eligible offer wins instead."""
    keys = await guarded(app, dismiss_cooldown_days=7)
    await app.put("acme", "offers/fallback", offer(priority=1, content={"title": "Fallback"}))
    key = keys["publishable"]
    (po,) = await ask(app, key)
    assert po["offer_id"] == "stay"
    await event(app, key, po["id"], "dismissed")
    (po,) = await ask(app, key)
    assert po["offer_id"] == "fallback"


async def test_a_guard_added_after_the_events_applies_to_them(app: TestApp) -> None:
    """Guards read the event log, so the history before the guard existed counts."""
    keys = await seed(app)
    key = keys["publishable"]
    (po,) = await ask(app, key)
    await event(app, key, po["id"], "dismissed")
    assert len(await ask(app, key)) == 1  # no guard yet
    await app.put("acme", "offers/stay", offer(guards={"dismiss_cooldown_days": 2}))
    assert await ask(app, key) == []


@pytest.mark.parametrize(
    ("guards", "param"),
    [
        # a cool-down of 0 days is no cool-down: refused rather than silently ignored
        ({"dismiss_cooldown_days": 0}, "guards[dismiss_cooldown_days]"),
        ({"max_views": {"count": 0, "period_days": 7}}, "guards[max_views][count]"),
        ({"max_acceptances": {"count": 1}}, "guards[max_acceptances][period_days]"),
        # unknown keys are typos, not options
        ({"max_view": {"count": 1, "period_days": 1}}, "guards[max_view]"),
    ],
)
async def test_guard_definitions_are_validated(
    app: TestApp, guards: dict[str, Any], param: str
) -> None:
    await app.create_site()
    r = await app.admin("PUT", "/sites/acme/offers/stay", offer(guards=guards))
    assert r.status_code == 400, r.text
    assert r.json()["param"] == param


async def test_the_guard_history_query_can_use_its_index(app: TestApp) -> None:
    """The customer's recent views, dismissals and acceptances are read through the partial
    index ``offer_events_guards`` (with sequential scans priced out, the planner must be able to
    answer the query from the index at all)."""
    from offerd.offers import store

    await seed(app)
    async with app.services.db.connection() as conn, conn.transaction():
        await conn.execute("SET LOCAL enable_seqscan = off")
        # the history is read in the same statement as the ledger (one round trip)
        cur = await conn.execute(
            "EXPLAIN " + store.LEDGER[(True, True)],
            {
                "site": "acme",
                "customer": "cus_1",
                "subscription": "sub_1",
                "since": NOW - timedelta(days=30),
            },
        )
        plan = "\n".join(str(next(iter(row.values()))) for row in await cur.fetchall())
    assert "offer_events_guards" in plan, plan
