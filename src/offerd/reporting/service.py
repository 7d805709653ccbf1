"""The reports: which kinds there are (``REPORTS``); the funnel, saves and experiments reports,
each read from its rollups only; and the rebuild of the rollups."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from offerd.db import Conn, transaction
from offerd.edge.errors import NotFound, ParamWrongValue
from offerd.reporting import sequential, store
from offerd.reporting.metrics import Counts, funnel_metrics
from offerd.reporting.query import (
    MAX_ROWS,
    ReportQuery,
    day_span,
    midnight,
    period_start,
    whole_periods,
)
from offerd.sites.models import Site

Row = dict[str, Any]
ReportFn = Callable[[Conn, Site, ReportQuery], Awaitable[list[Row]]]


async def funnel(conn: Conn, site: Site, q: ReportQuery) -> list[Row]:
    """The funnel's rows: one per period and asked dimensions, from the rollups only."""
    tz = site.settings.time_zone
    first, last = day_span(q, tz)
    found = await store.funnel(
        conn,
        site.id,
        granularity=q.granularity,
        columns=q.columns,
        first=first,
        last=last,
        limit=MAX_ROWS + 1,
        whole=whole_periods(q.granularity, first, last),
    )
    too_big(q, len(found))
    return funnel_rows(found, q, tz)


def funnel_rows(found: Sequence[Mapping[str, Any]], q: ReportQuery, tz: str) -> list[Row]:
    """The report's rows from the summed counters (pure: thousands of rows go through here, so
    each period's start is computed once)."""
    columns = q.columns  # a property: built once, not per row
    rows: list[Row] = []
    starts: dict[Any, int] = {}
    for r in found:
        period = r["period"]
        start = starts.get(period)
        if start is None:
            start = starts[period] = period_start(period, q, tz)
        fulfilled = r["fulfilled"]
        counts = Counts(
            decisions=r["decisions"],
            viewed=r["viewed"],
            dismissed=r["dismissed"],
            accepted=r["accepted"],
            fulfilled=fulfilled,
            failed=r["failed"],
            fulfil_seconds=r["fulfil_seconds"] or 0.0,
            # no fulfilment, no histogram (its sums are NULL); otherwise bigint sums
            fulfil_hist=r["fulfil_hist"] if fulfilled else [],
        )
        if r["failed_by_code"]:
            counts.add_codes(r["failed_by_code"])
        row: Row = {"period_start": start}
        for column in columns:
            row[column] = r[column] or None  # '' is "none": offer-level counts have no option
        row.update(funnel_metrics(counts))
        rows.append(row)
    return rows


def too_big(q: ReportQuery, rows: int) -> None:
    """Refuse a report of more than ``MAX_ROWS`` rows (a 400 naming what to change)."""
    if rows > MAX_ROWS:
        raise ParamWrongValue(
            "group_by" if q.group_by else "granularity",
            f"the report would have more than {MAX_ROWS:,} rows: ask for a coarser granularity, "
            "fewer group_by dimensions or a shorter range",
        )


async def saves(conn: Conn, site: Site, q: ReportQuery) -> list[Row]:
    """Saves per period of acceptance and the asked dimensions (any of the funnel's):
    ``pending``, ``saved``, ``lost``,
    ``save_rate`` (saved / settled) and ``revenue_retained`` per currency (monthly, minor
    units). Settled by the ``settle_saves`` sweep."""
    tz = site.settings.time_zone
    columns = q.columns
    first, last = day_span(q, tz)
    counts, revenue = await store.saves_report(
        conn,
        site.id,
        granularity=q.granularity,
        columns=columns,
        first=first,
        last=last,
        limit=MAX_ROWS + 1,
        whole=whole_periods(q.granularity, first, last),
    )
    too_big(q, len(counts))
    money: dict[tuple[Any, ...], dict[str, int]] = {}
    for r in revenue:
        key = (r["period"], *(r[c] for c in columns))
        money.setdefault(key, {})[r["currency"]] = int(r["revenue"])
    rows: list[Row] = []
    for r in counts:
        key = (r["period"], *(r[c] for c in columns))
        settled = r["saved"] + r["lost"]
        row: Row = {"period_start": period_start(r["period"], q, tz)}
        for column in columns:
            row[column] = r[column] or None
        row.update(
            pending=r["pending"],
            saved=r["saved"],
            lost=r["lost"],
            save_rate=round(r["saved"] / settled, 4) if settled else None,
            revenue_retained=money.get(key, {}),
        )
        rows.append(row)
    return rows


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


async def experiments(conn: Conn, site: Site, q: ReportQuery) -> list[Row]:
    """Each experiment's arms over the subscribers first assigned on the range's days (in the
    site's time zone; cumulative: the granularity and group_by do not apply), from the
    assignments the ``fold_experiments`` sweep keeps: assigned, accepted and their rate; pending,
    saved and lost (as the saves report counts them) and the save rate; and for each arm against
    the experiment's holdout, the lift in save rate and in acceptance rate with its always-valid
    95 % interval and verdict (``reporting.sequential``)."""
    if q.columns:
        raise ParamWrongValue("group_by", "the experiments report is per experiment and arm")
    first, last = day_span(q, site.settings.time_zone)
    found = await store.experiments(conn, site.id, first=first, last=last)
    holdouts = {r["experiment_id"]: r for r in found if r["holdout"]}
    rows: list[Row] = []
    for r in found:
        settled = r["saved"] + r["lost"]
        row: Row = {
            "period_start": q.start,
            "experiment_id": r["experiment_id"],
            "experiment_arm": r["experiment_arm"],
            "holdout": r["holdout"],
            "assigned": r["assigned"],
            "accepted": r["accepted"],
            "acceptance_rate": _rate(r["accepted"], r["assigned"]),
            "pending": r["pending"],
            "saved": r["saved"],
            "lost": r["lost"],
            "save_rate": _rate(r["saved"], settled),
            "lift": None,
            "interval_low": None,
            "interval_high": None,
            "verdict": None,
            "acceptance_lift": None,
            "acceptance_interval_low": None,
            "acceptance_interval_high": None,
            "acceptance_verdict": None,
        }
        holdout = holdouts.get(r["experiment_id"])
        if holdout is not None and not r["holdout"]:
            result = sequential.lift(
                settled, r["saved"], holdout["saved"] + holdout["lost"], holdout["saved"]
            )
            row.update(
                lift=None if result.lift is None else round(result.lift, 4),
                interval_low=round(result.interval_low, 4),
                interval_high=round(result.interval_high, 4),
                verdict=result.verdict,
            )
            # the same test on acceptance: of the subscribers assigned, how many accepted
            accepted = sequential.lift(
                r["assigned"], r["accepted"], holdout["assigned"], holdout["accepted"]
            )
            row.update(
                acceptance_lift=None if accepted.lift is None else round(accepted.lift, 4),
                acceptance_interval_low=round(accepted.interval_low, 4),
                acceptance_interval_high=round(accepted.interval_high, 4),
                acceptance_verdict=accepted.verdict,
            )
        rows.append(row)
    return rows


REPORTS: dict[str, ReportFn] = {"funnel": funnel, "saves": saves, "experiments": experiments}


async def report(conn: Conn, site: Site, kind: str, q: ReportQuery) -> list[Row]:
    fn = REPORTS.get(kind)
    if fn is None:
        raise NotFound(f"There is no report {kind!r}: one of funnel, saves, experiments")
    return await fn(conn, site, q)


# --- rebuild --------------------------------------------------------------------------------

REBUILD_BATCH_DAYS = 31


async def rebuild_batches(conn: Conn, site: Site, *, batch_days: int = REBUILD_BATCH_DAYS) -> int:
    """How many batches a rebuild of the site takes (for a progress bar)."""
    first, last = await _span(conn, site)
    if first is None or last is None:
        return 0
    return (last - first).days // batch_days + 1


async def _span(conn: Conn, site: Site) -> tuple[date | None, date | None]:
    tz = ZoneInfo(site.settings.time_zone)
    lo, hi = await store.span(conn, site.id, site.settings.time_zone)
    if lo is None or hi is None:
        return None, None
    return lo.astimezone(tz).date(), hi.astimezone(tz).date()


async def rebuild(
    conn: Conn,
    site: Site,
    *,
    batch_days: int = REBUILD_BATCH_DAYS,
    progress: Callable[[int], None] = lambda _: None,
) -> int:
    """Recompute the site's rollups from the event log, ``batch_days`` days a transaction (each
    under the site's reporting lock, so live counting waits rather than being lost or counted
    twice); a crash leaves each day either old or rebuilt, and a re-run finishes. Then the save
    rollups from the saves and the experiment rollups from the assignments, a transaction each.
    Returns the rollup rows written."""
    tz = site.settings.time_zone
    first, last = await _span(conn, site)
    if first is None or last is None:
        return 0
    written, day = 0, first
    while day <= last:
        end = min(day + timedelta(days=batch_days - 1), last)
        async with transaction(conn):
            written += await store.rebuild_days(
                conn,
                site.id,
                tz=tz,
                first=day,
                last=end,
                lo=midnight(day, tz),
                hi=midnight(end + timedelta(days=1), tz),
            )
        progress(1)
        day = end + timedelta(days=1)
    async with transaction(conn):
        written += await store.rebuild_saves(conn, site.id)
    async with transaction(conn):
        written += await store.rebuild_experiments(conn, site.id)
    return written


async def site_ids(conn: Conn) -> list[str]:
    return await store.sites_with_data(conn)
