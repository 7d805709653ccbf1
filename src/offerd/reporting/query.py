"""What a report is asked for: the period, its granularity and the dimensions to group by,
checked once (a bad value is a 400 naming the parameter) for the API and the command alike."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Literal, cast, get_args
from zoneinfo import ZoneInfo

from offerd.edge.errors import ParamMissing, ParamWrongValue

Granularity = Literal["day", "week", "month", "all"]
GRANULARITIES: tuple[str, ...] = get_args(Granularity)

# group_by names -> the rollups' columns and the row's keys
DIMENSIONS: dict[str, str] = {
    "offer": "offer_id",
    "option": "option_id",
    "arm": "experiment_arm",
    "processing_type": "processing_type",
    "business_entity": "business_entity_id",
    "brand": "brand_id",
}

MAX_SPAN_SECONDS = 10 * 366 * 86400  # ten years: enough for any report, bounds day rows
# The most rows one report answers: past it, a 400 asks for a coarser granularity, fewer
# dimensions or a shorter range (a year of days by offer, option and arm can be 100,000s of
# rows: seconds to build and megabytes to send, for a table nobody reads).
MAX_ROWS = 10_000


@dataclass(frozen=True, slots=True)
class ReportQuery:
    start: int  # Unix seconds, inclusive
    end: int  # Unix seconds, exclusive
    granularity: Granularity
    group_by: tuple[str, ...]  # names from DIMENSIONS, in the order asked

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(DIMENSIONS[name] for name in self.group_by)


def _seconds(param: str, raw: str | None) -> int:
    if raw is None or raw == "":
        raise ParamMissing(param)
    try:
        value = int(raw)
    except ValueError:
        raise ParamWrongValue(param, "must be a Unix timestamp in seconds") from None
    if not 0 <= value < 253402300800:  # before year 10000
        raise ParamWrongValue(param, "must be a Unix timestamp in seconds")
    return value


def parse(
    *, start: str | None, end: str | None, granularity: str | None, group_by: str | None
) -> ReportQuery:
    """A report query from its raw parameters (``from``, ``to``, ``granularity``, ``group_by``)."""
    begin, finish = _seconds("from", start), _seconds("to", end)
    if finish <= begin:
        raise ParamWrongValue("to", "must be after from")
    if finish - begin > MAX_SPAN_SECONDS:
        raise ParamWrongValue("to", "must be at most ten years after from")
    grain = granularity or "day"
    if grain not in GRANULARITIES:
        raise ParamWrongValue("granularity", f"must be one of {', '.join(GRANULARITIES)}")
    names: list[str] = []
    for name in (n.strip() for n in (group_by or "").split(",")):
        if not name:
            continue
        if name not in DIMENSIONS:
            raise ParamWrongValue("group_by", f"{name!r} is not one of {', '.join(DIMENSIONS)}")
        if name in names:
            raise ParamWrongValue("group_by", f"{name!r} is named twice")
        names.append(name)
    return ReportQuery(begin, finish, cast(Granularity, grain), tuple(names))


def local_day(seconds: int, tz: str) -> date:
    return datetime.fromtimestamp(seconds, ZoneInfo(tz)).date()


def day_span(q: ReportQuery, tz: str) -> tuple[date, date]:
    """The rollups' days a query reads, in the site's time zone: rollups are daily, so the
    period is widened to whole days, from the day holding ``from`` to the day holding ``to``
    less one second."""
    return local_day(q.start, tz), local_day(q.end - 1, tz)


def _period_start(day: date, grain: str) -> date:
    return day - timedelta(days=day.weekday()) if grain == "week" else day.replace(day=1)


def _next_period(start: date, grain: str) -> date:
    if grain == "week":
        return start + timedelta(days=7)
    return (start.replace(day=28) + timedelta(days=4)).replace(day=1)


def whole_periods(granularity: str, first: date, last: date) -> tuple[date, date] | None:
    """The ISO weeks (granularity ``week``) or months (``month``, ``all``) lying wholly inside
    days [first, last], as [lo, hi) of their first days; None for ``day``, or when there is no
    whole one (the report then reads every day)."""
    if granularity == "day":
        return None
    grain = "week" if granularity == "week" else "month"
    lo = _period_start(first, grain)
    if lo != first:
        lo = _next_period(lo, grain)
    hi = _period_start(last + timedelta(days=1), grain)
    return (lo, hi) if lo < hi else None


def midnight(day: date, tz: str) -> datetime:
    """The instant a local day starts (DST-aware: the zone's offset on that day)."""
    return datetime.combine(day, time(), ZoneInfo(tz))


def period_start(period: date | None, q: ReportQuery, tz: str) -> int:
    """A row's ``period_start`` in Unix seconds: the local midnight its day, ISO week (Monday)
    or month starts; ``from`` itself for granularity ``all``."""
    if period is None:
        return q.start
    return int(midnight(period, tz).timestamp())
