"""``offerd serve | worker | migrate | demo | apply``, and the command groups of ``records``
(Typer)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from offerd.cli import records, reports
from offerd.cli.base import console, fail, prepare, with_db
from offerd.cli.billing import billing_cli
from offerd.cli.users import users_cli
from offerd.common.secrets import SecretKeyError, box_for
from offerd.edge.errors import APIError
from offerd.settings import Settings, get_settings

if TYPE_CHECKING:
    from pydantic import ValidationError

    from offerd.db import Conn

T = TypeVar("T")

cli = typer.Typer(help="offerd: offers decisioning and fulfillment", no_args_is_help=True)

_RUN_WORKER_ENV = "OFFERD_SERVE_IN_PROCESS_WORKER"
_DEMO_ENV = "OFFERD_SERVE_DEMO_INBOX"


def _version(value: bool) -> None:
    if value:
        from offerd import __version__

        typer.echo(f"offerd {__version__}")
        raise typer.Exit()


@cli.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version"),
    ] = False,
) -> None:
    """offerd: offers decisioning and fulfillment"""


def app_factory():  # type: ignore[no-untyped-def]
    """uvicorn's factory, in each server process."""
    from offerd.app import create_app
    from offerd.observability import configure_logging

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    return create_app(
        settings,
        run_worker=os.environ.get(_RUN_WORKER_ENV) == "1",
        demo=os.environ.get(_DEMO_ENV) == "1",
        freeze_heap=True,
    )


def _serve(settings: Settings, *, host: str, port: int, worker: bool, workers: int) -> None:
    import uvicorn

    os.environ[_RUN_WORKER_ENV] = "1" if worker else "0"
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        metrics_dir = Path(tempfile.mkdtemp(prefix="offerd-metrics-"))
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    uvicorn.run(
        "offerd.cli.main:app_factory",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
        proxy_headers=True,
        server_header=False,
        timeout_graceful_shutdown=int(settings.job_lease_seconds),
    )


@cli.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Default OFFERD_HOST")] = None,
    port: Annotated[int | None, typer.Option(help="Default OFFERD_PORT")] = None,
    worker: Annotated[
        bool, typer.Option("--worker/--no-worker", help="Run a worker in each server process")
    ] = True,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Server processes")] = 1,
) -> None:
    """Run the API (and, unless --no-worker, the job worker) after migrating the schema."""
    settings = get_settings()
    host, port = host or settings.host, port or settings.port
    with _owning_home(settings, host=host, port=port):
        prepare(settings, migrate=True)
        _serve(settings, host=host, port=port, worker=worker, workers=workers)


# --- one server per OFFERD_HOME, and the embedded database stopped however it ends -------------


def _exit_on_sigterm(_signum: int, _frame: object) -> None:
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again once its own
    # handler is gone: with the default action the process would die on the spot, skipping
    # every ``finally`` and exit hook, and the embedded PostgreSQL would be left running.
    raise SystemExit(0)


@contextlib.contextmanager
def _owning_home(settings: Settings, *, host: str, port: int) -> Iterator[None]:
    """Serve from OFFERD_HOME: with the embedded database, refuse if another ``offerd serve``
    holds the home (``serve_lock``), and on the way out, whatever the reason (SIGTERM, Ctrl-C,
    an error), give up this process's handle on the embedded PostgreSQL, which stops it if no
    other offerd process still uses it."""
    from offerd.cli.serve_lock import lock_home
    from offerd.db import release_embedded

    if not settings.database_url:
        lock_home(settings.home, host=host, port=port)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        yield
    finally:
        # a second Ctrl-C or SIGTERM must not cut the stop of PostgreSQL short
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)
        release_embedded()


@cli.command()
def worker(
    concurrency: Annotated[
        int | None, typer.Option(help="Default OFFERD_WORKER_CONCURRENCY")
    ] = None,
    drain: Annotated[bool, typer.Option(help="Run what is due, then exit")] = False,
) -> None:
    """Run the job worker (scale out: any number, on any machines)."""
    settings = get_settings()
    if concurrency is not None:
        settings = settings.model_copy(update={"worker_concurrency": concurrency})
    url = prepare(settings, migrate=False)
    asyncio.run(_run_worker(settings, url, drain=drain))


async def _run_worker(settings: Settings, url: str, *, drain: bool) -> None:
    from offerd.app import build_services
    from offerd.common.clock import SystemClock
    from offerd.db import Database
    from offerd.queue.runtime import build_worker, freeze_startup_heap

    db = Database(
        url,
        min_size=1,
        max_size=settings.worker_concurrency + settings.delivery_concurrency + 4,
    )
    await db.open()
    services = build_services(settings, db, SystemClock())
    try:
        w = build_worker(services)
        if drain:
            ran = await w.run_once()
            console.print(f"ran {ran} jobs")
            return
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, w.stop)
        freeze_startup_heap()
        await w.run()
    finally:
        await services.aclose()
        await db.close()


@cli.command()
def migrate() -> None:
    """Bring the database schema up to date (safe to run from several processes at once)."""
    from offerd import migrate as migrations

    settings = get_settings()
    url = prepare(settings, migrate=True)
    console.print(f"schema at revision {migrations.current(url)}")


@cli.command()
def demo(
    port: Annotated[int | None, typer.Option(help="Default OFFERD_PORT")] = None,
    reset: Annotated[
        bool, typer.Option("--reset", help="Delete the demo site and all its data, then re-seed")
    ] = False,
) -> None:
    """Serve with a demo site: plans, coupons, a customer, a subscription and an offer with one
    option of each processing type. Prints the keys and a curl walk-through."""
    from offerd.cli.demo import TOKEN_FILE, admin_token, port_free, seed, walkthrough

    os.environ.setdefault("OFFERD_ALLOW_PRIVATE_DESTINATIONS", "1")
    if port is not None:
        os.environ["OFFERD_PORT"] = str(port)
    get_settings.cache_clear()
    settings = get_settings()
    if not port_free(settings.host, settings.port):
        fail(
            f"{settings.host}:{settings.port} is already in use (another offerd demo?); "
            f"choose another port: ./scripts/demo --port {settings.port + 1}"
        )
    if not os.environ.get("OFFERD_ADMIN_TOKEN"):
        os.environ["OFFERD_ADMIN_TOKEN"] = admin_token(settings.home)
        console.print(f"admin token kept in {settings.home / TOKEN_FILE}", markup=False)
        get_settings.cache_clear()
        settings = get_settings()
    os.environ[_DEMO_ENV] = "1"
    with _owning_home(settings, host=settings.host, port=settings.port):
        url = prepare(settings, migrate=True)
        keys = asyncio.run(seed(url, settings, reset=reset))
        typer.echo(walkthrough(settings, keys))
        _serve(settings, host=settings.host, port=settings.port, worker=True, workers=1)


@cli.command("apply")
def apply_catalog(
    file: Annotated[
        Path, typer.Option("-f", "--file", exists=True, dir_okay=False, help="catalog.yaml")
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the difference; change nothing")
    ] = False,
) -> None:
    """Upsert sites' plans, coupons, offers, experiments and channels from a YAML file."""
    from rich.progress import Progress, TaskID

    from offerd.cli import catalog_file
    from offerd.common.clock import SystemClock

    try:
        spec = catalog_file.parse(file.read_text())
    except catalog_file.CatalogError as exc:
        console.print(f"{file}: {exc}", style="red", markup=False)
        raise typer.Exit(2) from None
    settings = get_settings()
    try:
        catalog_file.check_destinations(spec, allow_private=settings.allow_private_destinations)
    except catalog_file.CatalogError as exc:
        console.print(f"{file}: {exc}", style="red", markup=False)
        raise typer.Exit(2) from None
    url = prepare(settings, migrate=True)
    box = box_for(settings)

    async def run(conn: Conn) -> int:
        changed = 0
        for site_id, site_spec in spec.items():
            changes = await catalog_file.diff(conn, site_id, site_spec, box=box)
            for change in changes:
                typer.echo(change.line())
            changed += sum(c.action != "unchanged" for c in changes)
            if dry_run or not any(c.action != "unchanged" for c in changes):
                continue
            with Progress(console=console, transient=True) as bar:
                task = bar.add_task(f"applying {site_id}", total=catalog_file.count(site_spec))

                def step(what: str, bar: Progress = bar, task: TaskID = task) -> None:
                    bar.update(task, advance=1, description=what)

                secrets = await catalog_file.apply(
                    conn, site_id, site_spec, now=SystemClock().now(), box=box, progress=step
                )
            for channel_id, secret in secrets.items():
                typer.echo(f"webhook secret of {site_id}/{channel_id} (shown once): {secret}")
        return changed

    try:
        changed = asyncio.run(with_db(url, run))
    except catalog_file.CatalogError as exc:
        console.print(f"{file}: {exc}", style="red", markup=False)
        raise typer.Exit(2) from None
    except APIError as exc:
        where = f" ({exc.param})" if exc.param else ""
        console.print(f"{file}: {exc.message}{where}", style="red", markup=False)
        raise typer.Exit(1) from None
    verb = "would change" if dry_run else "changed"
    console.print(f"{changed} {'resource' if changed == 1 else 'resources'} {verb}")


cli.add_typer(records.deliveries, name="deliveries")
cli.add_typer(records.jobs_cli, name="jobs")
cli.add_typer(records.secrets_cli, name="secrets")
cli.add_typer(billing_cli, name="billing")
cli.add_typer(reports.reports_cli, name="reports")
cli.add_typer(reports.report_cli, name="report")
cli.add_typer(users_cli, name="users")


# --- configuration errors: one line on stderr and a non-zero exit, never a traceback ----------

CONFIG_ERROR_EXIT = 2


def _settings_error_line(exc: ValidationError) -> str:
    """``OFFERD_LOG_FORMAT='bogus': Input should be 'json' or 'console'`` for each bad setting."""
    parts = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error.get("loc") else "?"
        given = error.get("input")
        secret = any(word in field for word in ("token", "password", "secret"))
        value = f"={given!r}" if isinstance(given, str | int | float) and not secret else ""
        parts.append(f"OFFERD_{field.upper()}{value}: {error['msg']}")
    return "; ".join(parts)


def main() -> None:
    from pydantic import ValidationError

    from offerd.cli.serve_lock import HomeInUse
    from offerd.db import DatabaseUnreachable

    try:
        cli()
    except ValidationError as exc:
        if exc.title != Settings.__name__:
            raise
        typer.echo(f"offerd: configuration error: {_settings_error_line(exc)}", err=True)
        raise SystemExit(CONFIG_ERROR_EXIT) from None
    except (DatabaseUnreachable, SecretKeyError) as exc:
        typer.echo(f"offerd: {exc}", err=True)
        raise SystemExit(CONFIG_ERROR_EXIT) from None
    except HomeInUse as exc:
        typer.echo(f"offerd: {exc}", err=True)
        raise SystemExit(1) from None
