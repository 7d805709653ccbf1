"""The funnel report through the API: counted live by the real accept, report and transition
statements, read back as JSON and CSV; bad parameters are clear 400s."""

from __future__ import annotations

import csv
import io
import time

import pytest

from offerd.reporting import service
from offerd.sites import service as sites
from tests.support.app import TestApp
from tests.support.catalog import personalized_offer, seed

REPORT = "/sites/acme/reports/funnel"


async def _workload(app: TestApp) -> None:
    keys = await seed(app, url_redirect_auto_complete=False)
    pub, full = keys["publishable"], keys["full_access"]
    pos = [await personalized_offer(app, pub) for _ in range(4)]

    async def event(po: dict[str, str], type: str) -> None:
        r = await app.post(
            "/api/v2/offer_events", pub, json={"personalized_offer_id": po["id"], "type": type}
        )
        assert r.status_code == 200, r.text

    async def accept(po: dict[str, str]) -> str:
        r = await app.post(
            "/api/v2/offer_fulfillments",
            pub,
            json={"personalized_offer_id": po["id"], "option_id": "talk"},
        )
        assert r.status_code == 202, r.text
        fid: str = r.json()["offer_fulfillment"]["id"]
        return fid

    async def outcome(fid: str, status: str) -> None:
        body = {"id": fid, "status": status}
        if status == "failed":
            body["failure_reason"] = "merchant gave up"
        r = await app.post(f"/api/v2/offer_fulfillments/{fid}", full, json=body)
        assert r.status_code == 200, r.text

    # po0: viewed twice (one viewer), accepted, completed 90 s later
    await event(pos[0], "viewed")
    await event(pos[0], "viewed")
    f0 = await accept(pos[0])
    app.clock.advance(90)
    await outcome(f0, "completed")
    # po1: dismissed before it was viewed, then accepted and failed
    await event(pos[1], "dismissed")
    await event(pos[1], "viewed")
    await outcome(await accept(pos[1]), "failed")
    # po2: accepted before the view arrived; still in progress
    await accept(pos[2])
    await event(pos[2], "viewed")
    # po3: shown only


async def test_funnel_json_counts_the_live_paths(app: TestApp) -> None:
    await _workload(app)
    now = int(time.time()) + 3600
    r = await app.admin("GET", f"{REPORT}?from={now - 86400 * 2}&to={now}&granularity=all")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "report"
    assert body["report"] == "funnel"
    assert body["granularity"] == "all"
    assert body["group_by"] == []
    (row,) = body["rows"]
    assert row["period_start"] == now - 86400 * 2
    counts = {k: row[k] for k in ("decisions", "viewed", "dismissed", "accepted", "fulfilled")}
    assert counts == {"decisions": 4, "viewed": 3, "dismissed": 1, "accepted": 3, "fulfilled": 1}
    assert row["failed"] == 1
    (code,) = row["failed_by_code"]
    assert row["failed_by_code"][code] == 1
    assert row["view_to_accept_rate"] == 1.0
    assert row["accept_to_fulfil_rate"] == 0.3333
    # one 90 s fulfilment: in the (60, 120] bucket, interpolated
    assert row["time_to_fulfil_p50"] == 90.0
    assert row["time_to_fulfil_p90"] == 114.0


async def test_group_by_option_splits_offer_level_from_option_counts(app: TestApp) -> None:
    await _workload(app)
    now = int(time.time()) + 3600
    r = await app.admin(
        "GET", f"{REPORT}?from={now - 86400}&to={now}&granularity=day&group_by=offer,option"
    )
    assert r.status_code == 200, r.text
    rows = r.json()["rows"]
    by_option = {row["option_id"]: row for row in rows}
    assert set(by_option) == {None, "talk"}
    assert by_option[None]["decisions"] == 4 and by_option[None]["accepted"] == 0
    assert by_option["talk"]["accepted"] == 3 and by_option["talk"]["decisions"] == 0
    assert all(row["offer_id"] == "stay" for row in rows)


async def test_funnel_csv_by_accept_header_and_suffix(app: TestApp) -> None:
    await _workload(app)
    now = int(time.time()) + 3600
    query = f"?from={now - 86400}&to={now}&granularity=all&group_by=option"
    plain = await app.client.get(
        f"/admin/v1{REPORT}{query}",
        headers={"authorization": "Bearer " + _token(app), "accept": "text/csv"},
    )
    suffixed = await app.admin("GET", f"{REPORT}.csv{query}")
    for r in (plain, suffixed):
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/csv")
    assert plain.text == suffixed.text
    rows = list(csv.DictReader(io.StringIO(plain.text)))
    talk = next(row for row in rows if row["option_id"] == "talk")
    assert talk["accepted"] == "3" and talk["fulfilled"] == "1"
    assert talk["failed_by_code"].startswith("{")
    offer_level = next(row for row in rows if row["option_id"] == "")
    assert offer_level["decisions"] == "4" and offer_level["viewed"] == "3"
    assert talk["view_to_accept_rate"] == ""  # no views on the option row: no rate, not 0


def _token(app: TestApp) -> str:
    token = app.services.settings.admin_token
    assert token is not None
    return token.get_secret_value() if hasattr(token, "get_secret_value") else str(token)


async def test_bad_parameters_are_400_naming_the_parameter(app: TestApp) -> None:
    await seed(app)
    cases = {
        "to=100&granularity=day": "from",
        "from=abc&to=100": "from",
        "from=100": "to",
        "from=200&to=100": "to",
        "from=0&to=100&granularity=year": "granularity",
        "from=0&to=100&group_by=offer,color": "group_by",
        "from=0&to=100&group_by=offer,offer": "group_by",
    }
    for query, param in cases.items():
        r = await app.admin("GET", f"{REPORT}?{query}")
        assert r.status_code == 400, (query, r.text)
        body = r.json()
        assert body["param"] == param, query
        assert body["api_error_code"] == "param_wrong_value"
        assert body["type"] == "invalid_request"


async def test_unknown_reports_are_404(app: TestApp) -> None:
    await seed(app)
    for kind in ("nope", "savez"):
        r = await app.admin("GET", f"/sites/acme/reports/{kind}?from=0&to=100")
        assert r.status_code == 404, r.text


async def test_reports_need_the_admin_token(app: TestApp) -> None:
    await seed(app)
    r = await app.client.get(f"/admin/v1{REPORT}?from=0&to=100")
    assert r.status_code == 401


async def test_rebuild_gives_the_live_numbers(app: TestApp) -> None:
    await _workload(app)
    async with app.services.db.connection() as conn:
        from offerd.reporting import store

        live = await store.summed(conn, "acme")
        site = await sites.get(conn, "acme")
        assert site is not None
        await service.rebuild(conn, site, batch_days=1)
        rebuilt = await store.summed(conn, "acme")
    assert live and rebuilt == live


async def test_the_time_zone_setting_must_be_an_iana_zone(app: TestApp) -> None:
    r = await app.admin(
        "PUT", "/sites/acme", {"name": "Acme", "settings": {"time_zone": "Mars/Olympus"}}
    )
    assert r.status_code == 400, r.text
    assert "time_zone" in r.text
    r = await app.admin(
        "PUT", "/sites/acme", {"name": "Acme", "settings": {"time_zone": "Europe/Paris"}}
    )
    assert r.status_code in (200, 201), r.text
    assert r.json()["settings"]["time_zone"] == "Europe/Paris"


async def test_a_report_past_the_row_cap_is_a_400_saying_what_to_change(
    app: TestApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _workload(app)
    monkeypatch.setattr(service, "MAX_ROWS", 1)
    now = int(app.clock.now().timestamp())
    window = f"from={now - 86400}&to={now + 60}"
    small = await app.admin("GET", f"{REPORT}?{window}&granularity=all")
    assert small.status_code == 200 and len(small.json()["rows"]) == 1
    big = await app.admin("GET", f"{REPORT}?{window}&granularity=all&group_by=offer,option")
    assert big.status_code == 400, big.text
    assert big.json()["param"] == "group_by"
    assert "more than 1 rows" in big.json()["message"]
