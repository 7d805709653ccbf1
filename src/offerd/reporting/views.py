"""What a report looks like on the wire: the JSON envelope, and the same rows as CSV (one
column per key; ``failed_by_code`` as a JSON object in its cell)."""

from __future__ import annotations

import csv
import io
from typing import Any

import orjson

from offerd.reporting.query import ReportQuery


def report_body(kind: str, q: ReportQuery, rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "object": "report",
        "report": kind,
        "from": q.start,
        "to": q.end,
        "granularity": q.granularity,
        "group_by": list(q.group_by),
        "rows": rows,
    }


def cell(value: Any) -> Any:
    if isinstance(value, dict):
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    return "" if value is None else value


def report_csv(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """The rows as CSV with a header; ``columns`` says which and in what order (the report's
    own, so an empty report still has its header)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([cell(row.get(c)) for c in columns])
    return out.getvalue()


FUNNEL_COLUMNS = [
    "decisions", "viewed", "dismissed", "accepted", "fulfilled", "failed", "failed_by_code",
    "view_to_accept_rate", "accept_to_fulfil_rate", "time_to_fulfil_mean", "time_to_fulfil_p50",
    "time_to_fulfil_p90",
]  # fmt: skip


SAVES_COLUMNS = ["pending", "saved", "lost", "save_rate", "revenue_retained"]

EXPERIMENT_COLUMNS = [
    "experiment_id", "experiment_arm", "holdout", "assigned", "accepted", "acceptance_rate",
    "pending", "saved", "lost", "save_rate", "lift", "interval_low", "interval_high", "verdict",
    "acceptance_lift", "acceptance_interval_low", "acceptance_interval_high", "acceptance_verdict",
]  # fmt: skip

KIND_COLUMNS = {
    "funnel": FUNNEL_COLUMNS,
    "saves": SAVES_COLUMNS,
    "experiments": EXPERIMENT_COLUMNS,
}


def columns(kind: str, q: ReportQuery) -> list[str]:
    return ["period_start", *q.columns, *KIND_COLUMNS.get(kind, [])]
