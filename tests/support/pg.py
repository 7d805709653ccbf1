"""A real PostgreSQL for the tests: the pgserver wheel's server in a temporary folder (or the
server at OFFERD_TEST_DATABASE_URL), one database per test cloned from a migrated template."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

TEMPLATE = "offerd_template"


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

    def create_database(self, template: str | None = TEMPLATE) -> str:
        name = f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
            if template:
                query = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(template)
                )
            conn.execute(query)
        return name

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def start_cluster(tmp: Path) -> Cluster:
    external = os.environ.get("OFFERD_TEST_DATABASE_URL")
    if external:
        return Cluster(admin_url=external)
    import pgserver

    server = pgserver.get_server(tmp / "pgdata", cleanup_mode="delete")
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
