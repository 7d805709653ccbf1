"""What the ``offerd`` commands share: the console, preparing the database (reachable, migrated,
stored secrets sealed), a short-lived connection, and failing with one line."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, NoReturn, TypeVar

import typer
from rich.console import Console

from offerd.common.secrets import SecretBox, box_for
from offerd.settings import Settings

if TYPE_CHECKING:
    from offerd.db import Conn

T = TypeVar("T")

console = Console(stderr=True)


def prepare(settings: Settings, *, migrate: bool) -> str:
    from offerd.db import ensure_reachable, resolve_database_url
    from offerd.observability import configure_logging

    configure_logging(settings.log_level, settings.log_format)
    if settings.database_url:
        box_for(settings)  # no key for an external database: refuse before connecting
    with console.status("Starting the database…" if not settings.database_url else "Connecting…"):
        url = resolve_database_url(settings.database_url, settings.home)
        ensure_reachable(url)
    box = box_for(settings)
    if migrate:
        from offerd import migrate as migrations

        with console.status("Migrating the schema…"):
            migrations.upgrade(url)
            asyncio.run(with_db(url, lambda conn: seal_plaintext(conn, box)))
    return url


async def seal_plaintext(conn: Conn, box: SecretBox) -> None:
    """Secrets stored before they were encrypted at rest are encrypted now (idempotent)."""
    from offerd.billing import providers
    from offerd.notifications import service as notifications
    from offerd.sites import service as sites

    await notifications.reseal_channels(conn, box, rotate=False)
    await providers.reseal(conn, box, rotate=False)
    await sites.reseal_webhook_secrets(conn, box, rotate=False)


async def with_db(url: str, work: Callable[[Conn], Awaitable[T]]) -> T:
    from offerd.db import Database

    db = Database(url, min_size=1, max_size=2)
    await db.open()
    try:
        async with db.connection() as conn:
            return await work(conn)
    finally:
        await db.close()


def fail(message: str) -> NoReturn:
    console.print(message, style="red", markup=False, soft_wrap=True)
    raise typer.Exit(2)
