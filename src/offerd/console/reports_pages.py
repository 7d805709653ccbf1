"""The console's read-only pages over the reports: the site overview (funnel, save rate and
revenue retained over time, a table per offer), the offers list, and one offer (its funnel per
option and per experiment arm, lift against the holdout with its interval drawn, versions).

Every figure comes from the reporting service the report API uses (the rollups and saves),
asked with the same ``ReportQuery``: the console shows what ``GET .../reports/...`` answers.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from offerd.console.web import ConsoleError, Page, page, render
from offerd.offers import service as offers
from offerd.reporting import query, views
from offerd.reporting import service as reports
from offerd.reporting.query import ReportQuery, day_span, period_start
from offerd.sites.models import Site

router = APIRouter(prefix="/console/sites/{site_id}", include_in_schema=False)

RANGES = {7: "7 days", 30: "30 days", 90: "90 days", 365: "1 year"}
COLORS = {"viewed": "#2563eb", "accepted": "#16a34a", "fulfilled": "#9333ea", "failed": "#dc2626"}


def _days(request: Request) -> int:
    raw = request.query_params.get("days", "30")
    return int(raw) if raw.isdigit() and int(raw) in RANGES else 30


def _query(now: datetime, days: int, granularity: str, *group_by: str) -> ReportQuery:
    end = int(now.timestamp()) + 1
    start = end - days * 86400
    return ReportQuery(start, end, granularity, tuple(group_by))  # type: ignore[arg-type]


def _label(seconds: int, granularity: str) -> str:
    day = datetime.fromtimestamp(seconds, UTC)
    return day.strftime("%b %Y") if granularity == "month" else day.strftime("%b %-d")


def _series(rows: list[dict[str, Any]], key: str) -> list[Any]:
    return [r.get(key) for r in rows]


def _periods(q: ReportQuery, tz: str) -> list[int]:
    """Every period of the range (days or ISO weeks, local midnights), for a chart's x axis:
    the reports have rows only where something happened."""
    first, last = day_span(q, tz)
    if q.granularity == "week":
        first -= timedelta(days=first.weekday())
    step = timedelta(days=7 if q.granularity == "week" else 1)
    out = []
    day = first
    while day <= last:
        out.append(period_start(day, q, tz))
        day += step
    return out


def _filled(
    rows: list[dict[str, Any]], periods: list[int], zero: dict[str, Any]
) -> list[dict[str, Any]]:
    """``rows`` with an empty row (``zero``) for each period that has none."""
    by_start = {r["period_start"]: r for r in rows}
    return [by_start.get(p, {**zero, "period_start": p}) for p in periods]


def _revenue(rows: list[dict[str, Any]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for r in rows:
        for currency, amount in (r.get("revenue_retained") or {}).items():
            total[currency] = total.get(currency, 0) + int(amount)
    return total


def _saves_total(rows: list[dict[str, Any]]) -> dict[str, Any]:
    saved = sum(r["saved"] for r in rows)
    lost = sum(r["lost"] for r in rows)
    return {
        "pending": sum(r["pending"] for r in rows),
        "saved": saved,
        "lost": lost,
        "save_rate": round(saved / (saved + lost), 4) if saved + lost else None,
        "revenue_retained": _revenue(rows),
    }


@router.get("")
async def overview(site_id: str, request: Request) -> Response:
    p = await page(request, site_id)
    site = p.site
    days = _days(request)
    grain = "day" if days <= 90 else "week"
    now = p.now
    async with p.svc.db.connection() as conn:
        total = await reports.report(conn, site, "funnel", _query(now, days, "all"))
        series = await reports.report(conn, site, "funnel", _query(now, days, grain))
        by_offer = await reports.report(conn, site, "funnel", _query(now, days, "all", "offer"))
        saves_series = await reports.report(conn, site, "saves", _query(now, days, grain))
        saves_by_offer = await reports.report(
            conn, site, "saves", _query(now, days, "all", "offer")
        )
        catalog = await offers.list_offers(conn, site.id, None)
    periods = _periods(_query(now, days, grain), site.settings.time_zone)
    series = _filled(
        series, periods, dict.fromkeys(("viewed", "accepted", "fulfilled", "failed"), 0)
    )
    saves_series = _filled(
        saves_series,
        periods,
        {"saved": 0, "lost": 0, "pending": 0, "save_rate": None, "revenue_retained": {}},
    )
    names = {o["id"]: o["definition"].get("name", o["id"]) for o in catalog}
    saves_of = {r["offer_id"]: r for r in saves_by_offer}
    offer_rows = [
        {
            **r,
            "name": names.get(r["offer_id"] or "", r["offer_id"]),
            "saves": saves_of.get(r["offer_id"]),
        }
        for r in by_offer
        if r.get("offer_id")
    ]
    offer_rows.sort(key=lambda r: -r["decisions"])
    funnel_chart = {
        "labels": [_label(r["period_start"], grain) for r in series],
        "datasets": [
            {"label": k.capitalize(), "data": _series(series, k), "color": COLORS[k]}
            for k in ("viewed", "accepted", "fulfilled", "failed")
        ],
    }
    currencies = sorted({c for r in saves_series for c in (r.get("revenue_retained") or {})})
    saves_chart = {
        "percent": True,
        "labels": [_label(r["period_start"], grain) for r in saves_series],
        "datasets": [
            {"label": "Save rate", "data": _series(saves_series, "save_rate"), "color": "#16a34a"}
        ],
    }
    revenue_chart = {
        "type": "bar",
        "labels": [_label(r["period_start"], grain) for r in saves_series],
        "datasets": [
            {
                "label": f"Revenue retained ({c}, major units)",
                "data": [(r.get("revenue_retained") or {}).get(c, 0) / 100 for r in saves_series],
            }
            for c in currencies
        ],
    }
    return render(
        p,
        request,
        "overview.html",
        nav="overview",
        days=days,
        ranges=RANGES,
        grain=grain,
        total=total[0] if total else None,
        saves=_saves_total(saves_series),
        series=series,
        saves_series=saves_series,
        offer_rows=offer_rows,
        funnel_chart=funnel_chart,
        saves_chart=saves_chart,
        revenue_chart=revenue_chart,
        label=_label,
    )


@router.get("/offers")
async def offer_list(site_id: str, request: Request) -> Response:
    p = await page(request, site_id)
    site = p.site
    async with p.svc.db.connection() as conn:
        catalog = await offers.list_offers(conn, site.id, None)
    return render(
        p,
        request,
        "offers.html",
        nav="offers",
        offers=[offers.offer_resource(o) for o in catalog],
    )


def _of_offer(rows: list[dict[str, Any]], offer_id: str) -> list[dict[str, Any]]:
    return [r for r in rows if r.get("offer_id") == offer_id]


async def offer_figures(p: Page, site: Site, offer_id: str, days: int) -> dict[str, Any]:
    now = p.now
    async with p.svc.db.connection() as conn:
        funnel_all = await reports.report(conn, site, "funnel", _query(now, days, "all", "offer"))
        by_option = await reports.report(
            conn, site, "funnel", _query(now, days, "all", "offer", "option")
        )
        by_arm = await reports.report(
            conn, site, "funnel", _query(now, days, "all", "offer", "arm")
        )
        saves = await reports.report(
            conn, site, "saves", _query(now, days, "all", "offer", "option")
        )
        experiments = await reports.report(conn, site, "experiments", _query(now, days, "all"))
        experiment_rows = await offers.list_experiments(conn, site.id)
    arms_here = {
        (e["id"], arm["id"])
        for e in experiment_rows
        for arm in e["arms"]
        if arm.get("offer_id") == offer_id
    }
    in_experiments = {e for e, _ in arms_here}
    lift_rows = [
        r
        for r in experiments
        if r["experiment_id"] in in_experiments
        and ((r["experiment_id"], r["experiment_arm"]) in arms_here or r["holdout"])
    ]
    lift_chart = {
        "type": "bar",
        "horizontal": True,
        "labels": [
            f"{r['experiment_id']} / {r['experiment_arm']}" for r in lift_rows if not r["holdout"]
        ],
        "datasets": [
            {
                "label": "95% interval of the lift in save rate (always valid)",
                "data": [
                    [r["interval_low"], r["interval_high"]]
                    if r["interval_low"] is not None
                    else None
                    for r in lift_rows
                    if not r["holdout"]
                ],
                "color": "#2563eb",
                "fill": True,
            },
            {
                "type": "line",
                "showLine": False,
                "label": "Lift",
                "data": [r["lift"] for r in lift_rows if not r["holdout"]],
                "color": "#111827",
                "pointRadius": 5,
            },
        ],
    }
    saves_rows = _of_offer(saves, offer_id)
    return {
        "funnel": next(iter(_of_offer(funnel_all, offer_id)), None),
        "by_option": [r for r in _of_offer(by_option, offer_id) if r.get("option_id")],
        "by_arm": _of_offer(by_arm, offer_id),
        "saves": _saves_total(saves_rows),
        "saves_by_option": {r["option_id"]: r for r in saves_rows},
        "lift_rows": lift_rows,
        "lift_chart": lift_chart,
    }


@router.get("/offers/{offer_id}")
async def offer_page(site_id: str, offer_id: str, request: Request) -> Response:
    p = await page(request, site_id)
    site = p.site
    async with p.svc.db.connection() as conn:
        row = await offers.get_offer(conn, site.id, offer_id)
        versions = await offers.versions(conn, site.id, offer_id)
    if row is None:
        raise ConsoleError(404, f"There is no offer {offer_id!r} on {site.id}.")
    days = _days(request)
    return render(
        p,
        request,
        "offer.html",
        nav="offers",
        offer=offers.offer_resource(row),
        versions=versions,
        days=days,
        ranges=RANGES,
        **await offer_figures(p, site, offer_id, days),
    )


@router.get("/reports/{kind}.csv")
async def report_csv(site_id: str, kind: str, request: Request) -> Response:
    """A report over the page's period as CSV (what ``GET .../reports/{kind}.csv`` answers the
    admin token), for a signed-in person: ``?days=&granularity=&group_by=``."""
    p = await page(request, site_id)
    site = p.site
    now = int(p.now.timestamp()) + 1
    params = request.query_params
    q = query.parse(
        start=str(now - _days(request) * 86400),
        end=str(now),
        granularity=params.get("granularity") or "all",
        group_by=params.get("group_by"),
    )
    async with p.svc.db.connection() as conn:
        rows = await reports.report(conn, site, kind, q)
    return Response(
        views.report_csv(rows, views.columns(kind, q)),
        media_type="text/csv; charset=utf-8",
        headers={
            "content-disposition": f'attachment; filename="{site.id}-{kind}.csv"',
            "cache-control": "no-store",
        },
    )
