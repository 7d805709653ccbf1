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
report_cli = typer.Typer(
    help="Reports: funnel (saves and experiments to come)", no_args_is_help=True
)


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


@report_cli.command("funnel")
def report_funnel(
    site: Annotated[str, typer.Option(help="Site id")],
    start: Annotated[
        str | None, typer.Option("--from", help="Unix seconds or YYYY-MM-DD (UTC); 30 days ago")
    ] = None,
    end: Annotated[
        str | None, typer.Option("--to", help="Unix seconds or YYYY-MM-DD (UTC); now")
    ] = None,
    granularity: Annotated[str, typer.Option(help="day|week|month|all")] = "day",
    group_by: Annotated[
        str, typer.Option(help="offer,option,arm,processing_type,business_entity,brand")
    ] = "",
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV on stdout")] = False,
) -> None:
    """The funnel per period and dimension, from the rollups (what GET .../reports/funnel says)."""
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
        return await service.report(conn, s, "funnel", q)

    rows = asyncio.run(with_db(url, run))
    columns = views.columns("funnel", q)
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
