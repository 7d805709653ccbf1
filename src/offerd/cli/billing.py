"""``offerd billing sync --site S``: import a Stripe or Chargebee Billing site's customers,
subscriptions, prices and coupons into the mirror, with a progress bar; resumable (run it again
after a crash or a failure and it goes on from the last page written)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from offerd.billing.mirror.objects import KINDS
from offerd.cli.base import console, fail, prepare
from offerd.common.secrets import box_for
from offerd.settings import get_settings

billing_cli = typer.Typer(help="Billing providers: the mirror's import", no_args_is_help=True)


@billing_cli.command("sync")
def sync_command(site: Annotated[str, typer.Option(help="Site id")]) -> None:
    """Import the site's objects from its billing provider (resumes an unfinished import)."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from offerd.billing.ledger import LedgerProvider
    from offerd.billing.mirror import sync
    from offerd.billing.provider import ProviderError, ProviderUnauthorized
    from offerd.billing.sites import SiteProviders
    from offerd.common.clock import SystemClock
    from offerd.db import Database

    settings = get_settings()
    url = prepare(settings, migrate=True)
    clock = SystemClock()

    async def run() -> sync.Outcome:
        db = Database(url, min_size=1, max_size=4)
        await db.open()
        try:
            providers = SiteProviders(db, box_for(settings), LedgerProvider())
            async with db.connection() as conn:
                source = await providers.source(conn, site)
            if source is None:
                fail(f"site {site} has no Stripe or Chargebee Billing provider: nothing to import")
            columns = (
                SpinnerColumn(),
                TextColumn("{task.description}"),
                TextColumn("{task.completed:>8,.0f}"),
                TimeElapsedColumn(),
            )
            with Progress(*columns, console=console) as bar:
                tasks = {}

                def progress(kind: str, seen: int) -> None:
                    if kind not in tasks:
                        tasks[kind] = bar.add_task(f"{kind}s", total=None)
                    bar.update(tasks[kind], completed=seen)

                try:
                    return await sync.run(db, source, site, now=clock.now, progress=progress)
                except sync.AlreadyRunning as exc:
                    fail(str(exc))
                except ProviderError as exc:
                    if isinstance(exc, ProviderUnauthorized):
                        async with db.connection() as conn:
                            await providers.unauthorized(conn, site, str(exc))
                    await sync.fail(db, site, str(exc), clock.now())
                    fail(f"the import stopped (run it again to resume): {exc}")
        finally:
            await db.close()

    outcome = asyncio.run(run())
    skipped = outcome.seen.get("skipped", 0)
    summary = ", ".join(f"{outcome.seen.get(k, 0):,} {k}s" for k in KINDS)
    console.print(
        f"imported {summary}"
        + (f" ({skipped:,} with no offerd equivalent skipped)" if skipped else "")
    )
