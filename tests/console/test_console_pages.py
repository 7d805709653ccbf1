"""Every console page over HTTP against a real workload: the figures it shows are the report
API's, the editor marks a bad field in place and saves a good offer (audited), "try it" answers
for a customer, settings/keys/channels/fulfilments/deliveries do what their buttons say."""

from __future__ import annotations

import csv
import io
import re
from typing import Any

import pytest

from offerd.reporting.sweeps import fold_experiments
from tests.console.support import add_user, csrf, sign_in
from tests.notifications.flows import put_channel, work
from tests.support.app import TestApp
from tests.support.catalog import personalized_offer, seed
from tests.support.receiver import Receiver


async def _workload(app: TestApp, receiver: Receiver) -> dict[str, Any]:
    keys = await seed(app, url_redirect_auto_complete=True)
    await put_channel(
        app,
        "ops-hook",
        {"type": "webhook", "url": receiver.url_for("/hook"), "event_types": ["offer_accepted"]},
    )
    pub = keys["publishable"]
    fulfilments = []
    for _ in range(3):
        po = await personalized_offer(app, pub)
        r = await app.post(
            "/api/v2/offer_events", pub, json={"personalized_offer_id": po["id"], "type": "viewed"}
        )
        assert r.status_code == 200, r.text
        r = await app.post(
            "/api/v2/offer_fulfillments",
            pub,
            json={"personalized_offer_id": po["id"], "option_id": "talk"},
        )
        assert r.status_code == 202, r.text
        fulfilments.append(r.json()["offer_fulfillment"]["id"])
    po = await personalized_offer(app, pub)
    r = await app.post(
        "/api/v2/offer_fulfillments",
        pub,
        json={"personalized_offer_id": po["id"], "option_id": "gift"},
    )
    assert r.status_code == 202, r.text
    stuck = r.json()["offer_fulfillment"]["id"]
    await work(app)
    return {"keys": keys, "fulfilments": fulfilments, "stuck": stuck}


@pytest.fixture
async def world(app: TestApp, receiver: Receiver) -> dict[str, Any]:
    data = await _workload(app, receiver)
    await add_user(app, "ed@example.com", "editor")
    assert (await sign_in(app.client, "ed@example.com")).status_code == 303
    return data


def _cells(html: str, table_id: str) -> str:
    match = re.search(rf'<table id="{table_id}".*?</table>', html, re.S)
    assert match, f"no table {table_id}"
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", match.group(0)))


async def test_overview_shows_the_funnel_the_report_api_gives(
    app: TestApp, world: dict[str, Any]
) -> None:
    r = await app.client.get("/console/sites/acme")
    assert r.status_code == 200, r.text
    now = int(app.clock.now().timestamp())
    report = await app.admin(
        "GET", f"/sites/acme/reports/funnel?from={now - 86400}&to={now + 1}&granularity=all"
    )
    (total,) = report.json()["rows"]
    assert total["accepted"] == 4 and total["fulfilled"] == 3
    assert f'id="kpi-fulfilled">{total["fulfilled"]}<' in r.text
    row = _cells(r.text, "offer-table")
    assert "Stay" in row and " 4 " in row  # decisions 4 ... accepted 4
    # the charts are drawn by the vendored library from data in the page, not a CDN
    assert 'src="/console/static/chart.umd.min.js"' in r.text
    assert "https://" not in re.sub(r'https://merchant\.example[^"<]*', "", r.text)
    static = await app.client.get("/console/static/chart.umd.min.js")
    assert static.status_code == 200 and "Chart" in static.text[:2000]


async def test_offer_page_has_option_table_and_versions(
    app: TestApp, world: dict[str, Any]
) -> None:
    r = await app.client.get("/console/sites/acme/offers/stay")
    assert r.status_code == 200, r.text
    options = _cells(r.text, "option-table")
    assert "talk" in options and "gift" in options
    assert "Version 1" in r.text
    missing = await app.client.get("/console/sites/acme/offers/nope")
    assert missing.status_code == 404 and "There is no offer" in missing.text


async def test_the_editor_marks_a_bad_rule_in_place_then_saves_and_audits(
    app: TestApp, world: dict[str, Any]
) -> None:
    token = await csrf(app.client, "/console/sites/acme/offers/new")
    form = {
        "csrf_token": token,
        "offer_id": "winback",
        "name": "Win back",
        "status": "active",
        "priority": "20",
        "content[title]": "Come back",
        "content[description]": "",
        "eligibility": 'subscription.status == "active" &&',
        "options[0][id]": "pause",
        "options[0][label]": "Pause 2 months",
        "options[0][processing_type]": "billing_update",
        "options[0][processing_layout]": "full_page",
        "options[0][billing_action][type]": "pause_subscription",
        "options[0][billing_action][pause_months]": "2",
        "options[1][id]": "",
        "options[1][label]": "",
        "options[1][processing_type]": "",
    }
    bad = await app.client.post("/console/sites/acme/offers", data=form)
    assert bad.status_code == 400
    assert 'id="eligibility"' in bad.text and 'aria-invalid="true"' in bad.text
    assert "line 1, column" in bad.text and 'class="caret"' in bad.text
    assert 'value="Pause 2 months"' in bad.text  # what was typed is kept
    assert (await app.admin("GET", "/sites/acme/offers/winback")).status_code == 404

    # the live check says the same while typing, and clears when fixed
    check = await app.client.post(
        "/console/sites/acme/rules/check",
        data={"eligibility": form["eligibility"]},
        headers={"x-csrf-token": token, "hx-request": "true"},
    )
    assert check.status_code == 200 and "column" in check.text
    fixed_rule = 'subscription.status == "active"'
    check = await app.client.post(
        "/console/sites/acme/rules/check",
        data={"eligibility": fixed_rule},
        headers={"x-csrf-token": token, "hx-request": "true"},
    )
    assert "compiles" in check.text

    # a billing action without its parameter is marked on that field
    missing = await app.client.post(
        "/console/sites/acme/offers",
        data={**form, "eligibility": fixed_rule, "options[0][billing_action][pause_months]": ""},
    )
    assert missing.status_code == 400
    assert 'id="err-options-0-billing_action-pause_months"' in missing.text

    good = await app.client.post(
        "/console/sites/acme/offers", data={**form, "eligibility": fixed_rule}
    )
    assert good.status_code == 303, good.text
    assert good.headers["location"].startswith("/console/sites/acme/offers/winback")
    saved = (await app.admin("GET", "/sites/acme/offers/winback")).json()
    assert saved["eligibility"] == fixed_rule
    assert saved["options"] == [
        {
            "id": "pause",
            "label": "Pause 2 months",
            "processing_type": "billing_update",
            "processing_layout": "full_page",
            "billing_action": {"type": "pause_subscription", "pause_months": 2},
        }
    ]
    audit = (await app.admin("GET", "/sites/acme/audit_log?target=offer:winback")).json()
    (entry,) = audit["audit_log"]
    assert entry["actor"] == "user:ed@example.com" and entry["action"] == "offer.save"
    assert entry["before"] is None and entry["after"]["name"] == "Win back"

    # edit it: the audit entry has the before
    token = await csrf(app.client, "/console/sites/acme/offers/winback/edit")
    edit = await app.client.post(
        "/console/sites/acme/offers/winback/edit",
        data={**form, "csrf_token": token, "eligibility": fixed_rule, "name": "Win them back"},
    )
    assert edit.status_code == 303, edit.text
    entries = (await app.admin("GET", "/sites/acme/audit_log?target=offer:winback")).json()
    newest = entries["audit_log"][0]
    assert newest["before"]["name"] == "Win back" and newest["after"]["name"] == "Win them back"
    page = await app.client.get("/console/sites/acme/audit")
    assert "offer:winback" in page.text and "user:ed@example.com" in page.text


async def test_try_it_answers_for_a_customer(app: TestApp, world: dict[str, Any]) -> None:
    token = await csrf(app.client, "/console/sites/acme/offers/stay")
    r = await app.client.post(
        "/console/sites/acme/try",
        data={"customer_id": "cus_1", "subscription_id": "sub_1", "offer_id": "stay"},
        headers={"x-csrf-token": token, "hx-request": "true"},
    )
    assert r.status_code == 200, r.text
    assert "offerd would show" in r.text and "eligible" in r.text


async def test_fulfilments_search_detail_and_expire(app: TestApp, world: dict[str, Any]) -> None:
    listing = await app.client.get("/console/sites/acme/fulfillments?status=in_progress")
    assert world["stuck"] in listing.text
    assert world["fulfilments"][0] not in listing.text  # completed ones are filtered out
    detail = await app.client.get(f"/console/sites/acme/fulfillments/{world['stuck']}")
    assert "event: accepted" in detail.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', detail.text).group(1)  # type: ignore[union-attr]
    r = await app.client.post(
        f"/console/sites/acme/fulfillments/{world['stuck']}/expire", data={"csrf_token": token}
    )
    assert r.status_code == 303
    after = await app.client.get(r.headers["location"])
    assert 'id="fulfillment-status">failed<' in after.text
    assert "fulfillment_expired" in after.text
    audit = (await app.admin("GET", "/sites/acme/audit_log")).json()["audit_log"]
    assert audit[0]["action"] == "fulfillment.expire"


async def test_deliveries_and_replay(
    app: TestApp, world: dict[str, Any], receiver: Receiver
) -> None:
    listing = await app.client.get("/console/sites/acme/deliveries?status=succeeded")
    ids = re.findall(r"/console/sites/acme/deliveries/(dl_\w+)", listing.text)
    assert len(set(ids)) == 4  # the four offer_accepted notifications to the receiver
    detail = await app.client.get(f"/console/sites/acme/deliveries/{ids[0]}")
    assert 'id="delivery-status">succeeded<' in detail.text
    before = len(receiver.received("POST", "/hook"))
    token = re.search(r'name="csrf_token" value="([^"]+)"', detail.text).group(1)  # type: ignore[union-attr]
    r = await app.client.post(
        f"/console/sites/acme/deliveries/{ids[0]}/replay", data={"csrf_token": token}
    )
    assert r.status_code == 303
    await work(app)
    assert len(receiver.received("POST", "/hook")) == before + 1


async def test_settings_keys_and_channel_test_send(
    app: TestApp, world: dict[str, Any], receiver: Receiver
) -> None:
    token = await csrf(app.client, "/console/sites/acme/settings")
    # a bad value is shown by its field; nothing changes
    bad = await app.client.post(
        "/console/sites/acme/settings",
        data={
            "csrf_token": token,
            "settings[time_zone]": "Mars/Olympus",
            "settings[save_window_days]": "30",
        },
    )
    assert bad.status_code == 400 and "IANA" in bad.text
    good = await app.client.post(
        "/console/sites/acme/settings",
        data={
            "csrf_token": token,
            "settings[time_zone]": "Europe/Paris",
            "settings[save_window_days]": "45",
            "settings[url_redirect_auto_complete]": ["false", "true"],
        },
    )
    assert good.status_code == 303, good.text
    site = (await app.admin("GET", "/sites/acme")).json()
    assert site["settings"]["time_zone"] == "Europe/Paris"
    assert site["settings"]["save_window_days"] == 45
    assert site["settings"]["url_redirect_auto_complete"] is True

    created = await app.client.post(
        "/console/sites/acme/api_keys",
        data={"csrf_token": token, "name": "zapier", "kind": "publishable"},
    )
    secret = re.search(r'id="new-key-secret">(pk_\w+)<', created.text).group(1)  # type: ignore[union-attr]
    r = await app.post("/api/v2/personalized_offers", secret, json={"customer_id": "cus_1"})
    assert r.status_code == 200
    # shown once: the settings page never shows it again
    assert secret not in (await app.client.get("/console/sites/acme/settings")).text
    key_id = next(
        k["id"]
        for k in (await app.admin("GET", "/sites/acme/api_keys")).json()["api_keys"]
        if k["name"] == "zapier"
    )
    revoke = await app.client.post(
        f"/console/sites/acme/api_keys/{key_id}/revoke", data={"csrf_token": token}
    )
    assert revoke.status_code == 303
    app.services.catalog_changed()
    r = await app.post("/api/v2/personalized_offers", secret, json={"customer_id": "cus_1"})
    assert r.status_code == 401

    test = await app.client.post(
        "/console/sites/acme/channels/ops-hook/test", data={"csrf_token": token}
    )
    assert test.status_code == 303
    await work(app)
    sent = [r for r in receiver.received("POST", "/hook") if "ev_test_" in r.text]
    assert len(sent) == 1 and "Test send from offerd" in sent[0].text
    actions = [
        e["action"] for e in (await app.admin("GET", "/sites/acme/audit_log")).json()["audit_log"]
    ]
    assert actions[:4] == ["channel.test_send", "api_key.revoke", "api_key.create", "site.save"]


async def test_offer_page_draws_the_lift_against_the_holdout(
    app: TestApp, world: dict[str, Any]
) -> None:
    r = await app.admin(
        "PUT",
        "/sites/acme/experiments/exp",
        {
            "name": "Stay or not",
            "status": "running",
            "arms": [{"id": "show", "offer_id": "stay", "weight": 1}, {"id": "hold", "weight": 1}],
        },
    )
    assert r.status_code == 201, r.text
    for n in range(12):
        r = await app.post(
            "/api/v2/personalized_offers",
            world["keys"]["publishable"],
            json={"customer_id": f"cus_x{n}"},
        )
        assert r.status_code == 200, r.text
    async with app.services.db.connection() as conn, conn.transaction():
        assert await fold_experiments(conn, app.clock.now()) > 0
    page = await app.client.get("/console/sites/acme/offers/stay")
    lift = _cells(page.text, "lift-table")
    assert "exp / show" in lift and "exp / hold (holdout)" in lift
    assert 'id="lift-chart"' in page.text


async def test_add_another_option_keeps_what_was_typed_and_saves_nothing(
    app: TestApp, world: dict[str, Any]
) -> None:
    token = await csrf(app.client, "/console/sites/acme/offers/new")
    form = {
        "csrf_token": token,
        "offer_id": "two",
        "name": "Two options",
        "content[title]": "Pick one",
        "options[0][id]": "pause",
        "options[0][label]": "Pause",
        "options[0][processing_type]": "billing_update",
        "options[0][billing_action][type]": "pause_subscription",
        "options[0][billing_action][pause_months]": "1",
        "more": "1",
    }
    r = await app.client.post("/console/sites/acme/offers", data=form)
    assert r.status_code == 200, r.text
    assert 'id="option-0"' in r.text and 'id="option-1"' in r.text
    assert 'value="Pause"' in r.text and 'value="two"' in r.text
    assert "problem" not in r.text  # not validated as a save
    assert (await app.admin("GET", "/sites/acme/offers/two")).status_code == 404
    del form["more"]
    form.update(
        {
            "options[1][id]": "talk",
            "options[1][label]": "Talk to us",
            "options[1][processing_type]": "url_redirect",
            "options[1][redirect_url]": "https://merchant.example/talk",
        }
    )
    saved = await app.client.post("/console/sites/acme/offers", data=form)
    assert saved.status_code == 303, saved.text
    body = (await app.admin("GET", "/sites/acme/offers/two")).json()
    assert [o["id"] for o in body["options"]] == ["pause", "talk"]


async def test_reports_download_as_csv_for_a_signed_in_person(
    app: TestApp, world: dict[str, Any]
) -> None:
    overview = await app.client.get("/console/sites/acme")
    link = re.search(r'href="(/console/sites/acme/reports/funnel\.csv[^"]+)"', overview.text)
    assert link
    r = await app.client.get(link.group(1).replace("&amp;", "&"))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    talk = [row for row in rows if row["option_id"] == "talk"]
    assert talk and sum(int(row["accepted"]) for row in talk) == 3
    bad = await app.client.get("/console/sites/acme/reports/funnel.csv?group_by=color")
    assert bad.status_code == 400 and "group_by" in bad.text
    app.client.cookies.clear()
    assert (await app.client.get(link.group(1))).status_code == 303  # signed out: sign in first
