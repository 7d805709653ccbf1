"""``offerd reports rebuild`` (the rollups recomputed from the event log) and ``offerd report``
(a report as a table, or CSV)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from offerd.cli.base import console, fail, prepare, with_db
from offerd.edge.errors import APIError
from offerd.settings import get_settings

if TYPE_CHECKING:
    from offerd.db import Conn

reports_cli = typer.Typer(help="The report rollups", no_args_is_help=True)
report_cli = typer.Typer(help="Reports: funnel, saves, experiments", no_args_is_help=True)


@reports_cli.command("rebuild")
def reports_rebuild(
    site: Annotated[str | None, typer.Option(help="Site id (default: every site)")] = None,
    batch_days: Annotated[int, typer.Option(min=1, max=366, help="Days per transaction")] = 31,
) -> None:
    """Recompute the report rollups from the event log (after a time zone change, or to check
    them), a batch of days per transaction; live counting waits on each batch, not on the
    whole run. Safe to run again."""
    from rich.progress import Progress, TaskID

    from offerd.reporting import service
    from offerd.sites import service as sites

    url = prepare(get_settings(), migrate=False)

    async def run(conn: Conn) -> int:
        ids = [site] if site else await service.site_ids(conn)
        found = []
        for site_id in ids:
            s = await sites.get(conn, site_id)
            if s is None:
                fail(f"no site {site_id!r}")
            found.append(s)
        written = 0
        with Progress(console=console, transient=True) as bar:
            for s in found:
                total = await service.rebuild_batches(conn, s, batch_days=batch_days)
                task = bar.add_task(f"rebuilding {s.id}", total=total)

                def step(n: int, task: TaskID = task) -> None:
                    bar.update(task, advance=n)

                written += await service.rebuild(conn, s, batch_days=batch_days, progress=step)
        return written

    written = asyncio.run(with_db(url, run))
    console.print(f"rebuilt the report rollups: {written} rows")


def _instant(value: str | None, default: int, name: str) -> str:
    if value is None:
        return str(default)
    if value.isdigit():
        return value
    try:
        return str(int(datetime.fromisoformat(value).replace(tzinfo=UTC).timestamp()))
    except ValueError:
        fail(f"--{name}: Unix seconds or a date (2026-03-01), not {value!r}")


def _report(
    kind: str,
    site: str,
    start: str | None,
    end: str | None,
    granularity: str,
    group_by: str,
    as_csv: bool,
) -> None:
    """A report as ``GET .../reports/{kind}`` answers it: a table, or CSV on stdout."""
    from rich.table import Table

    from offerd.reporting import query, service, views
    from offerd.sites import service as sites

    now = int(time.time())
    try:
        q = query.parse(
            start=_instant(start, now - 30 * 86400, "from"),
            end=_instant(end, now, "to"),
            granularity=granularity,
            group_by=group_by,
        )
    except APIError as e:
        fail(e.message)
    url = prepare(get_settings(), migrate=False)

    async def run(conn: Conn) -> list[dict[str, object]]:
        s = await sites.get(conn, site)
        if s is None:
            fail(f"no site {site!r}")
        try:
            return await service.report(conn, s, kind, q)
        except APIError as e:
            fail(e.message)

    rows = asyncio.run(with_db(url, run))
    columns = views.columns(kind, q)
    if as_csv:
        typer.echo(views.report_csv(rows, columns), nl=False)
        return
    table = Table(*[c.removesuffix("_rate").replace("_", " ") for c in columns])
    for row in rows:
        cells = dict(row)
        cells["period_start"] = datetime.fromtimestamp(int(str(row["period_start"])), UTC).strftime(
            "%Y-%m-%d %H:%M"
        )
        table.add_row(*[str(views.cell(cells.get(c))) for c in columns])
    from rich.console import Console

    Console().print(table)


Site = Annotated[str, typer.Option(help="Site id")]
From = Annotated[
    str | None, typer.Option("--from", help="Unix seconds or YYYY-MM-DD (UTC); 30 days ago")
]
To = Annotated[str | None, typer.Option("--to", help="Unix seconds or YYYY-MM-DD (UTC); now")]
Csv = Annotated[bool, typer.Option("--csv", help="CSV on stdout")]


@report_cli.command("funnel")
def report_funnel(
    site: Site,
    start: From = None,
    end: To = None,
    granularity: Annotated[str, typer.Option(help="day|week|month|all")] = "day",
    group_by: Annotated[
        str, typer.Option(help="offer,option,arm,processing_type,business_entity,brand")
    ] = "",
    as_csv: Csv = False,
) -> None:
    """The funnel per period and dimension, from the rollups (what GET .../reports/funnel says)."""
    _report("funnel", site, start, end, granularity, group_by, as_csv)


@report_cli.command("saves")
def report_saves(
    site: Site,
    start: From = None,
    end: To = None,
    granularity: Annotated[str, typer.Option(help="day|week|month|all")] = "month",
    group_by: Annotated[str, typer.Option(help="offer,option,arm")] = "",
    as_csv: Csv = False,
) -> None:
    """Saves per period of acceptance: pending, saved, lost, save rate and revenue retained per
    currency (what GET .../reports/saves says)."""
    _report("saves", site, start, end, granularity, group_by, as_csv)


@report_cli.command("experiments")
def report_experiments(site: Site, start: From = None, end: To = None, as_csv: Csv = False) -> None:
    """Each experiment's arms against the holdout: assigned, accepted, saved, lost, and the
    lift with its always-valid interval and verdict (what GET .../reports/experiments says)."""
    _report("experiments", site, start, end, "all", "", as_csv)
