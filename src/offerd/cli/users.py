"""``offerd users``: the console's users (add or reset, list, disable)."""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from offerd.cli.base import console, fail, prepare, with_db
from offerd.settings import get_settings

if TYPE_CHECKING:
    from offerd.db import Conn

users_cli = typer.Typer(help="Console users", no_args_is_help=True)


@users_cli.command("add")
def users_add(
    email: Annotated[str, typer.Argument(help="The user's email (their sign-in name)")],
    role: Annotated[str, typer.Option(help="viewer (look) or editor (look and change)")] = "viewer",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input")
    ] = False,
) -> None:
    """Create a console user, or reset an existing one's password and role (and enable them).
    Asks for the password (twice) unless --password-stdin; at least 10 characters."""
    from offerd.console import service

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    url = prepare(get_settings(), migrate=True)

    async def run(conn: Conn) -> tuple[service.User, bool]:
        from datetime import UTC, datetime

        return await service.add_user(
            conn, email=email, password=password, role=role, now=datetime.now(UTC)
        )

    try:
        user, created = asyncio.run(with_db(url, run))
    except service.UserError as exc:
        fail(str(exc))
    verb = "created" if created else "updated (password and role reset)"
    console.print(f"console user {user.email} ({user.role}) {verb}", markup=False)


@users_cli.command("list")
def users_list() -> None:
    """Every console user, with role and state."""
    from rich.table import Table

    from offerd.console import service

    url = prepare(get_settings(), migrate=False)
    rows = asyncio.run(with_db(url, service.list_users))
    table = Table("email", "role", "created", "state")
    for r in rows:
        table.add_row(
            str(r["email"]),
            str(r["role"]),
            f"{r['created_at']:%Y-%m-%d %H:%M}",
            "disabled" if r["disabled_at"] else "active",
        )
    console.print(table)


@users_cli.command("disable")
def users_disable(email: Annotated[str, typer.Argument(help="The user's email")]) -> None:
    """Disable a user and end their sessions at once."""
    from datetime import UTC, datetime

    from offerd.console import service

    url = prepare(get_settings(), migrate=False)

    async def run(conn: Conn) -> bool:
        return await service.disable_user(conn, email, datetime.now(UTC))

    if not asyncio.run(with_db(url, run)):
        fail(f"no console user {email!r}")
    console.print(f"console user {email} disabled; their sessions are ended", markup=False)
