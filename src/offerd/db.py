"""The connection pool, the transaction helper and the embedded PostgreSQL.

Connections are autocommit: a single statement is its own transaction (one round trip), and a
use case that needs several statements to land together opens ``transaction(conn)``.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from pathlib import Path
from typing import Any, TypeAlias, TypeVar

import orjson
import psycopg
import structlog
from psycopg.pq import TransactionStatus
from psycopg.rows import DictRow, dict_row
from psycopg.types.json import set_json_dumps, set_json_loads
from psycopg_pool import AsyncConnectionPool

Conn: TypeAlias = psycopg.AsyncConnection[DictRow]

log = structlog.get_logger(__name__)


def _dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode()


set_json_dumps(_dumps)
set_json_loads(orjson.loads)


async def _configure(conn: psycopg.AsyncConnection[Any]) -> None:
    await conn.set_autocommit(True)


class Database:
    """One pool per process; ``connection()`` lends a connection for the length of a block."""

    def __init__(
        self, url: str, *, min_size: int = 2, max_size: int = 20, acquire_timeout: float = 30.0
    ) -> None:
        """``acquire_timeout``: how long ``connection()`` waits for a connection before it raises
        ``PoolTimeout`` (an ``OperationalError``). The API gives it OFFERD_DB_ACQUIRE_TIMEOUT_SECONDS
        so that, with PostgreSQL down, a request gets its 503 in seconds instead of after the
        pool's default 30 s; the pool keeps reconnecting in the background meanwhile."""
        self.url = url
        self.pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            timeout=acquire_timeout,
            open=False,
            kwargs={"autocommit": True, "row_factory": dict_row},
            configure=_configure,
            name="offerd",
        )

    async def open(self, *, wait: bool = True, timeout: float = 30.0) -> None:
        await self.pool.open(wait=wait, timeout=timeout)

    async def close(self) -> None:
        await self.pool.close()

    def connection(self) -> AbstractAsyncContextManager[Conn]:
        return self.pool.connection()

    async def check(self) -> None:
        """Drop idle connections that died (after a PostgreSQL restart), so the next use is fresh."""
        await self.pool.check()


def transaction(conn: Conn) -> AbstractAsyncContextManager[Any]:
    """A transaction, unless one is already open on ``conn``: then the block joins it.

    Use cases open their own transactions, and still compose under an outer one (the
    idempotency record is written in the same transaction as the use case's effects).
    """
    if conn.info.transaction_status != TransactionStatus.IDLE:
        return nullcontext()
    return conn.transaction()


K = TypeVar("K")
R = TypeVar("R")


async def in_batches(
    conn: Conn,
    *,
    start: K,
    fetch: Callable[[Conn, K], Awaitable[Sequence[R]]],
    key: Callable[[R], K],
    each: Callable[[Conn, R], Awaitable[bool]],
    progress: Callable[[int], None] = lambda _: None,
) -> int:
    """Walk rows in key order, a transaction per batch (``fetch`` reads the batch after a key):
    a crash loses at most one batch and a re-run carries on, when ``each`` is idempotent.
    Returns how many rows ``each`` changed."""
    changed, after = 0, start
    while True:
        async with transaction(conn):
            rows = await fetch(conn, after)
            for row in rows:
                changed += await each(conn, row)
        if not rows:
            return changed
        progress(len(rows))
        after = key(rows[-1])


async def fetchone(conn: Conn, sql: str, params: Any = None) -> DictRow | None:
    cur = await conn.execute(sql, params)
    return await cur.fetchone()


async def fetchall(conn: Conn, sql: str, params: Any = None) -> list[DictRow]:
    cur = await conn.execute(sql, params)
    return await cur.fetchall()


async def execute(conn: Conn, sql: str, params: Any = None) -> int:
    cur = await conn.execute(sql, params)
    return cur.rowcount


# --- embedded PostgreSQL ------------------------------------------------------------------------


def start_embedded(home: Path) -> str:
    """Start (or join) the PostgreSQL server kept in ``home/pgdata`` and return its URL.

    The server is the one from the ``pgserver`` wheel: a real PostgreSQL, run as a child of this
    process and stopped when the last process that started it exits.
    """
    import warnings

    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
    from pgserver import get_server  # type: ignore[attr-defined]

    home = home.expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    forget_dead_handles(home / "pgdata")
    server = get_server(home / "pgdata", cleanup_mode="stop")
    _EMBEDDED.append(server)
    _ensure_database(server.get_uri(), "offerd")
    uri: str = server.get_uri("offerd")
    return uri


# The embedded servers this process holds a handle on (pgserver counts handles per process).
_EMBEDDED: list[Any] = []


def release_embedded() -> None:
    """Give up this process's handle on the embedded server now; if it was the last process
    using it, pgserver stops PostgreSQL. pgserver does this at exit too (``atexit``), but a
    process ended by a signal's default action never gets there: ``offerd serve`` calls this on
    its way out, whatever stopped it. Safe to call twice (pgserver's own exit hook then finds
    this process already gone from its list)."""
    while _EMBEDDED:
        _EMBEDDED.pop()._cleanup()


def forget_dead_handles(pgdata: Path) -> None:
    """Drop processes that no longer exist from pgserver's list of the server's users
    (``pgdata/.handle_pids.json``). pgserver stops the server when the last process on that
    list exits, and a process killed with SIGKILL never takes itself off it: without this, after
    one ``kill -9`` the server would never be stopped again. Done under pgserver's own lock."""
    path = pgdata / ".handle_pids.json"
    if not path.exists():
        return
    import json

    import psutil  # type: ignore[import-untyped]
    from pgserver.postgres_server import PostgresServer

    with PostgresServer._lock:
        try:
            pids = [int(p) for p in json.loads(path.read_text())]
        except (ValueError, TypeError):
            pids = []
        alive = [p for p in pids if psutil.pid_exists(p)]
        if alive != pids:
            log.info("embedded_db.forgot_dead_processes", pids=sorted(set(pids) - set(alive)))
            path.write_text(json.dumps(alive))


def _ensure_database(admin_uri: str, name: str) -> None:
    with psycopg.connect(admin_uri, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            try:
                conn.execute(f'CREATE DATABASE "{name}"')
            except psycopg.errors.DuplicateDatabase:
                pass


def resolve_database_url(database_url: str | None, home: Path) -> str:
    """The configured URL, or the embedded server's (started on demand)."""
    if database_url:
        return database_url
    try:
        url = start_embedded(home)
    except (OSError, subprocess.SubprocessError, psycopg.Error) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise DatabaseUnreachable(
            f"cannot start the embedded PostgreSQL in {home}: {reason} (or set OFFERD_DATABASE_URL)"
        ) from None
    # Child processes (uvicorn workers, `offerd worker` started from `serve`) reuse the server.
    os.environ["OFFERD_DATABASE_URL"] = url
    return url


async def wait_until_reachable(url: str, *, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            conn = await psycopg.AsyncConnection.connect(url, connect_timeout=5)
            await conn.close()
            return
        except psycopg.OperationalError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.5)


class DatabaseUnreachable(Exception):
    """The configured database cannot be connected to (the command says so in one line)."""


def ensure_reachable(url: str, *, timeout: int = 5) -> None:
    """Connect once, so that a wrong or unreachable OFFERD_DATABASE_URL is one clear error at
    startup rather than a migration's (or the pool's, 30 s later) traceback. The message names
    host, port and database, never the password."""
    try:
        with psycopg.connect(url, connect_timeout=timeout):
            return
    except psycopg.Error as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise DatabaseUnreachable(
            f"cannot connect to the database {describe(url)}: {reason}"
        ) from None


def describe(url: str) -> str:
    """``user@host:port/dbname`` of a connection string, without its password."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.Error:
        return "(unparsable OFFERD_DATABASE_URL)"
    host = str(info.get("host") or "localhost")
    port = info.get("port")
    where = f"{host}:{port}" if port else host
    user = info.get("user")
    return f"{str(user) + '@' if user else ''}{where}/{info.get('dbname') or ''}"
