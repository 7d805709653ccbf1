"""A real PostgreSQL for the tests: the pgserver wheel's server in a temporary folder (or the
server at OFFERD_TEST_DATABASE_URL), one database per test cloned from a migrated template.

Under pytest-xdist the workers of a run share one server and one template (``shared_cluster``):
the first worker to need them starts and migrates them under a file lock, the last one to finish
stops the server. Starting a server per worker would cost each worker an initdb and a migration
and multiply the memory; the tests need no more isolation than their own database."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import psycopg
from psycopg import sql

TEMPLATE = "offerd_template"

# Where the server keeps its data: in memory when the machine has a tmpfs at /dev/shm. The tests
# need no durability, and on a disk each test's CREATE DATABASE (8 MB copied from the template)
# took 0.2 to 1 s of waiting for writes instead of 0.02 s.
TMPFS = Path("/dev/shm")


@dataclass
class Cluster:
    admin_url: str
    pgdata: Path | None = None
    system_user: str | None = None

    def url(self, database: str) -> str:
        conninfo = psycopg.conninfo.conninfo_to_dict(self.admin_url)
        conninfo["dbname"] = database
        return psycopg.conninfo.make_conninfo(**conninfo)  # type: ignore[arg-type]

    @property
    def restartable(self) -> bool:
        return self.pgdata is not None

    def pg_ctl(self, *args: str) -> None:
        from pgserver import _commands

        assert self.pgdata is not None, "only the tests' own server can be restarted"
        _commands.pg_ctl(list(args), pgdata=self.pgdata, user=self.system_user, timeout=60)

    def restart(self) -> None:
        self.pg_ctl("-w", "-m", "fast", "restart")

    def stop(self) -> None:
        self.pg_ctl("-w", "-m", "fast", "stop")

    def start(self) -> None:
        """Start as pgserver does: on its socket directory only, logging to pgdata/log."""
        assert self.pgdata is not None
        socket_dir = psycopg.conninfo.conninfo_to_dict(self.admin_url)["host"]
        self.pg_ctl(
            "-w", "-o", '-h ""', "-o", f"-k {socket_dir}", "-l", str(self.pgdata / "log"), "start"
        )

    def running(self) -> bool:
        try:
            with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5):
                return True
        except psycopg.OperationalError:
            return False

    def create_database(self, template: str | None = TEMPLATE) -> str:
        """FILE_COPY copies the template's files as they are; the default (WAL_LOG, PostgreSQL
        15+) writes every block of them to the WAL as well, twice the writing for a test."""
        name = f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
            if template:
                query = sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(
                    sql.Identifier(name), sql.Identifier(template)
                )
            conn.execute(query)
        return name

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def data_folder(fallback: Path) -> Path:
    """A new folder for a server's data: on the tmpfs if there is one, else in ``fallback``."""
    if TMPFS.is_dir() and os.access(TMPFS, os.W_OK):
        return Path(tempfile.mkdtemp(prefix="offerd-tests-pg-", dir=TMPFS))
    return fallback


def start_cluster(tmp: Path) -> Cluster:
    """The server at OFFERD_TEST_DATABASE_URL, or a new pgserver one in ``tmp/pgdata``.

    pgserver is told not to clean up: its exit handler would delete the data folder when the
    process that started the server exits, even while other xdist workers still use it, and it
    could not stop the server anyway once we restarted it. ``shared_cluster`` stops it instead.
    """
    external = os.environ.get("OFFERD_TEST_DATABASE_URL")
    if external:
        return Cluster(admin_url=external)
    import pgserver

    server = pgserver.get_server(tmp / "pgdata", cleanup_mode=None)
    cluster = Cluster(server.get_uri(), pgdata=tmp / "pgdata", system_user=server.system_user)
    with psycopg.connect(cluster.admin_url, autocommit=True) as conn:
        # Test data needs no durability; the fault tests restart the server cleanly.
        for setting, value in (
            ("fsync", "off"),
            ("synchronous_commit", "off"),
            ("full_page_writes", "off"),
            ("max_connections", "400"),
        ):
            conn.execute(
                sql.SQL("ALTER SYSTEM SET {} = {}").format(
                    sql.Identifier(setting), sql.Literal(value)
                )
            )
    cluster.restart()
    return cluster


def build_template(cluster: Cluster) -> None:
    from offerd import migrate

    with psycopg.connect(cluster.admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(TEMPLATE))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEMPLATE)))
    migrate.upgrade(cluster.url(TEMPLATE))


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _attach_or_start(folder: Path) -> Cluster:
    """The cluster described in ``folder/cluster.json`` if it still answers, else a new one
    (started, tuned and migrated) described there for the next worker. Called under the lock."""
    described = folder / "cluster.json"
    if described.exists():
        fields = json.loads(described.read_text())
        pgdata = fields["pgdata"]
        cluster = Cluster(
            fields["admin_url"], Path(pgdata) if pgdata else None, fields["system_user"]
        )
        if cluster.running():
            return cluster
        described.unlink()
    cluster = start_cluster(data_folder(folder))
    build_template(cluster)
    fields = asdict(cluster) | {"pgdata": str(cluster.pgdata) if cluster.pgdata else None}
    described.write_text(json.dumps(fields))
    return cluster


def _shut_down(cluster: Cluster, folder: Path) -> None:
    (folder / "cluster.json").unlink(missing_ok=True)
    if cluster.restartable:
        assert cluster.pgdata is not None
        with contextlib.suppress(Exception):
            cluster.stop()
        in_memory = cluster.pgdata.parent.parent == TMPFS  # the folder data_folder made
        shutil.rmtree(cluster.pgdata.parent if in_memory else cluster.pgdata, ignore_errors=True)


@contextlib.contextmanager
def shared_cluster(folder: Path) -> Iterator[Cluster]:
    """The cluster of every pytest process that passes the same ``folder``.

    Each user holds a shared flock on ``users.lock`` while it uses the cluster. Starting and
    leaving happen under the exclusive ``setup.lock``; the user that leaves last (it alone can
    turn its shared lock exclusive at once) stops the server. A process that dies releases its
    locks with it. A worker that comes after the last one left finds the server gone and
    starts a new one.
    """
    folder.mkdir(parents=True, exist_ok=True)
    users = os.open(folder / "users.lock", os.O_RDONLY | os.O_CREAT, 0o600)
    try:
        with _exclusive(folder / "setup.lock"):
            cluster = _attach_or_start(folder)
            fcntl.flock(users, fcntl.LOCK_SH)
        try:
            yield cluster
        finally:
            with _exclusive(folder / "setup.lock"):
                fcntl.flock(users, fcntl.LOCK_UN)
                try:
                    fcntl.flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    pass  # another worker still uses it: the last one stops it
                else:
                    _shut_down(cluster, folder)
    finally:
        os.close(users)
