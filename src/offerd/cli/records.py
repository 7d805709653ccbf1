"""The record-keeping commands: ``offerd deliveries`` (the notification delivery log),
``offerd jobs`` (jobs that failed for good) and ``offerd secrets`` (encryption at rest)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from offerd.cli.base import console, fail, prepare, with_db
from offerd.common.secrets import box_for
from offerd.edge.errors import APIError
from offerd.settings import get_settings

if TYPE_CHECKING:
    from psycopg.rows import DictRow

    from offerd.db import Conn


deliveries = typer.Typer(help="The notification delivery log", no_args_is_help=True)


_DELIVERY_STATUSES = ("pending", "succeeded", "failed", "skipped")
_CHANNELS = ("webhook", "slack", "email", "segment")


@deliveries.command("list")
def deliveries_list(
    site: Annotated[str, typer.Option(help="Site id")],
    status: Annotated[str | None, typer.Option(help="pending|succeeded|failed|skipped")] = None,
    channel: Annotated[str | None, typer.Option(help="webhook|slack|email|segment")] = None,
    event_type: Annotated[str | None, typer.Option(help="e.g. offer_fulfillment_completed")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per line, as the admin API shows them")
    ] = False,
) -> None:
    """List deliveries, newest first (full ids at any terminal width)."""
    from typing import get_args

    from rich.table import Table

    from offerd.notifications import service
    from offerd.notifications.models import NotificationType
    from offerd.sites import service as sites

    # A typo'd filter would list nothing, which reads as "no failures": refuse it instead.
    for name, value, allowed in (
        ("--status", status, _DELIVERY_STATUSES),
        ("--channel", channel, _CHANNELS),
        ("--event-type", event_type, (*get_args(NotificationType), "offer_fulfillment_requested")),
    ):
        if value is not None and value not in allowed:
            fail(f"unknown {name} {value!r}: use one of {', '.join(allowed)}")
    settings = get_settings()
    url = prepare(settings, migrate=False)

    async def work(conn: Conn) -> list[DictRow] | None:
        if await sites.get(conn, site) is None:
            return None
        return await service.list_deliveries(
            conn, site, status=status, channel=channel, event_type=event_type, limit=limit
        )

    rows = asyncio.run(with_db(url, work))
    if rows is None:
        fail(f"unknown --site {site!r}: no such site")
    if as_json:
        import orjson

        for r in rows:
            typer.echo(orjson.dumps(service.delivery_resource(r)).decode())
        return
    table = Table("id", "channel", "event", "status", "attempts", "last error", "created")
    table.columns[0].no_wrap = True
    table.columns[0].min_width = max((len(r["id"]) for r in rows), default=2)
    table.columns[5].overflow = "fold"
    for r in rows:
        table.add_row(
            r["id"],
            r["channel"],
            r["event_type"],
            r["status"],
            str(r["attempts"]),
            (r["last_error"] or r["skip_reason"] or "")[:60],
            r["created_at"].strftime("%Y-%m-%d %H:%M:%S"),
        )
    Console().print(table)


@deliveries.command("retry")
def deliveries_retry(
    delivery_id: Annotated[str, typer.Argument(help="dl_...")],
    site: Annotated[str, typer.Option(help="Site id")],
) -> None:
    """Send a delivery again (a worker picks it up)."""
    from offerd.common.clock import SystemClock
    from offerd.notifications import service

    settings = get_settings()
    url = prepare(settings, migrate=False)

    async def work(conn: Conn) -> DictRow:
        return await service.retry(conn, site, delivery_id, now=SystemClock().now())

    try:
        row = asyncio.run(with_db(url, work))
    except APIError as exc:
        console.print(exc.message, style="red", markup=False)
        raise typer.Exit(1) from None
    console.print(f"{row['id']} is {row['status']} again")


# --- offerd jobs: the jobs that failed for good --------------------------------------------------

jobs_cli = typer.Typer(
    help="The job queue: jobs that failed for good, and their retry", no_args_is_help=True
)


@jobs_cli.command("list")
def jobs_list(
    failed: Annotated[
        bool, typer.Option("--failed", help="Jobs that failed for good (the only list there is)")
    ] = False,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
) -> None:
    """List failed jobs, newest first: id, kind, attempts, when, the ids it carries, its error."""
    from rich.table import Table

    from offerd.queue import jobs

    if not failed:
        console.print("say --failed: only failed jobs are listed", style="red", markup=False)
        raise typer.Exit(2)
    settings = get_settings()
    url = prepare(settings, migrate=False)

    async def work(conn: Conn) -> list[DictRow]:
        return await jobs.list_failed(conn, before=None, limit=limit)

    rows = asyncio.run(with_db(url, work))
    table = Table("id", "kind", "attempts", "failed", "payload", "last error")
    for r in rows:
        table.add_row(
            str(r["id"]),
            r["kind"],
            str(r["attempts"]),
            r["failed_at"].strftime("%Y-%m-%d %H:%M:%S") if r["failed_at"] else "",
            " ".join(f"{k}={v}" for k, v in sorted(r["payload"].items())),
            (r["last_error"] or "")[:80],
        )
    Console().print(table)


@jobs_cli.command("retry")
def jobs_retry(job_id: Annotated[int, typer.Argument(help="The job's id", min=1)]) -> None:
    """Queue a failed job again, its attempts reset (a worker picks it up)."""
    from offerd.common.clock import SystemClock
    from offerd.queue import jobs

    settings = get_settings()
    url = prepare(settings, migrate=False)

    async def work(conn: Conn) -> tuple[DictRow | None, bool]:
        row = await jobs.retry(conn, job_id, now=SystemClock().now())
        return row, row is not None or await jobs.get(conn, job_id) is not None

    row, exists = asyncio.run(with_db(url, work))
    if row is None:
        message = "has not failed: it is still in the queue" if exists else "not found"
        console.print(f"job {job_id} {message}", style="red", markup=False)
        raise typer.Exit(1)
    console.print(f"job {job_id} ({row['kind']}) is queued again")


# --- secrets encrypted at rest ------------------------------------------------------------------

secrets_cli = typer.Typer(
    help="Secrets encrypted at rest (OFFERD_SECRET_KEY)", no_args_is_help=True
)


@secrets_cli.command("generate-key")
def secrets_generate_key() -> None:
    """Print a new key: put it first in OFFERD_SECRET_KEY, then run `offerd secrets rotate`."""
    from offerd.common.secrets import generate_key

    typer.echo(generate_key())


@secrets_cli.command("rotate")
def secrets_rotate(
    batch: Annotated[int, typer.Option(min=1, max=10_000, help="Rows per transaction")] = 200,
) -> None:
    """Re-encrypt every stored secret with the newest key (the first in OFFERD_SECRET_KEY).
    Idempotent, a transaction per batch: safe to run again after a crash. Drop an old key only
    once this has completed."""
    from rich.progress import Progress

    from offerd.billing import providers
    from offerd.notifications import service as notifications
    from offerd.sites import service as sites

    settings = get_settings()
    url = prepare(settings, migrate=False)
    box = box_for(settings)

    async def run(conn: Conn) -> int:
        total = (
            await notifications.count_channels(conn)
            + await providers.count(conn)
            + await sites.count_webhook_secrets(conn)
        )
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task("re-encrypting secrets", total=total)

            def step(n: int) -> None:
                bar.update(task, advance=n)

            return (
                await notifications.reseal_channels(
                    conn, box, rotate=True, batch=batch, progress=step
                )
                + await providers.reseal(conn, box, rotate=True, batch=batch, progress=step)
                + await sites.reseal_webhook_secrets(
                    conn, box, rotate=True, batch=batch, progress=step
                )
            )

    changed = asyncio.run(with_db(url, run))
    console.print(f"re-encrypted the secrets of {changed} rows with the newest key")
