"""The audit log through the admin API: every change the admin token makes (offers,
experiments, the site, keys, channels, the billing provider, expiring, replaying) is recorded
with its before and after, newest first, filtered by target and paged; no secret ever enters it."""

from __future__ import annotations

from tests.billing.test_billing_provider_admin import STRIPE, assert_no_secret
from tests.support.app import TestApp
from tests.support.catalog import offer, seed

WEBHOOK_SECRET = "whsec_" + "Q" * 32


async def test_admin_changes_are_audited_with_before_and_after(app: TestApp) -> None:
    await seed(app)
    await app.put("acme", "offers/stay", offer(name="Stay longer"))
    await app.put(
        "acme",
        "experiments/exp1",
        {
            "name": "Stay test",
            "arms": [{"id": "a", "offer_id": "stay", "weight": 1}, {"id": "hold", "weight": 1}],
        },
    )
    await app.put(
        "acme",
        "notification_channels/hook",
        {
            "type": "webhook",
            "url": "https://merchant.example/h",
            "event_types": ["offer_accepted"],
            "secret": WEBHOOK_SECRET,
        },
    )
    assert (await app.admin("DELETE", "/sites/acme/notification_channels/hook")).status_code == 200
    assert (await app.admin("PUT", "/sites/acme/billing_provider", STRIPE)).status_code in (
        200,
        201,
    )
    r = await app.admin("GET", "/sites/acme/audit_log?limit=100")
    assert r.status_code == 200, r.text
    assert_no_secret(r.text)
    assert WEBHOOK_SECRET not in r.text
    entries = r.json()["audit_log"]
    assert all(e["actor"] == "admin_api" for e in entries)
    actions = [e["action"] for e in entries]
    assert actions[:6] == [
        "billing_provider.save",
        "channel.delete",
        "channel.save",
        "experiment.save",
        "offer.save",
        "offer.save",  # the seed's creation
    ]
    assert "site.save" in actions and actions.count("api_key.create") == 2
    stay = [e for e in entries if e["target"] == "offer:stay"]
    assert stay[0]["before"]["name"] == "Stay" and stay[0]["after"]["name"] == "Stay longer"
    assert stay[1]["before"] is None
    provider = entries[0]
    assert provider["before"]["type"] == "ledger" and provider["after"]["type"] == "stripe"

    # an unchanged offer saved again is not a change
    await app.put("acme", "offers/stay", offer(name="Stay longer"))
    again = (await app.admin("GET", "/sites/acme/audit_log?target=offer:stay")).json()
    assert len(again["audit_log"]) == 2


async def test_the_audit_log_pages_newest_first(app: TestApp) -> None:
    await seed(app)
    for n in range(5):
        await app.put("acme", "offers/stay", offer(priority=n + 100))
    first = (await app.admin("GET", "/sites/acme/audit_log?target=offer:stay&limit=2")).json()
    second = (
        await app.admin(
            "GET", f"/sites/acme/audit_log?target=offer:stay&limit=2&cursor={first['next_cursor']}"
        )
    ).json()
    priorities = [e["after"]["priority"] for e in first["audit_log"] + second["audit_log"]]
    assert priorities == [104, 103, 102, 101]
    bad = await app.admin("GET", "/sites/acme/audit_log?cursor=abc")
    assert bad.status_code == 400 and bad.json()["param"] == "cursor"
    missing = await app.admin("GET", "/sites/nope/audit_log")
    assert missing.status_code == 404
