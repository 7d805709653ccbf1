"""``offerd demo`` as a newcomer runs it (a real subprocess): a taken port is refused before
anything changes, the admin token survives a restart, ``--reset`` starts the site over."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from offerd.cli.demo import CONSOLE_PASSWORD_FILE, CONSOLE_USER, SITE, TOKEN_FILE, demo_offer
from offerd.console import service
from offerd.db import Database
from tests.support.server import free_port

OFFERD = Path(sys.executable).parent / "offerd"


def demo_env(db_url: str, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "OFFERD_ADMIN_TOKEN"}
    return {
        **env,
        "OFFERD_DATABASE_URL": db_url,
        "OFFERD_HOME": str(home),
        "OFFERD_LOG_LEVEL": "warning",
        "PYTHONUNBUFFERED": "1",
        "COLUMNS": "400",
        "NO_COLOR": "1",
    }


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def run_demo(db_url: str, home: Path, *args: str) -> str:
    """Start the demo, wait until it serves, stop it (SIGTERM); its output."""
    port = free_port()
    proc = subprocess.Popen(
        [str(OFFERD), "demo", "--port", str(port), *args],
        cwd=home.parent,
        env=demo_env(db_url, home),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not listening(port):
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "the demo did not start serving"
            time.sleep(0.1)
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=60)
    return out


def token_in(output: str) -> str:
    line = next(x for x in output.splitlines() if "admin token" in x and ":" in x)
    return line.split(":", 1)[1].strip()


def count(db_url: str, sql: str) -> int:
    with psycopg.connect(db_url) as conn:
        row = conn.execute(sql, (SITE,)).fetchone()
        assert row is not None
        return int(row[0])


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def test_a_taken_port_is_refused_before_anything_changes(
    db_url: str, tmp_path: Path, busy_port: int
) -> None:
    home = tmp_path / "home"
    done = subprocess.run(
        [str(OFFERD), "demo", "--port", str(busy_port)],
        cwd=tmp_path,
        env=demo_env(db_url, home),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0
    assert f"127.0.0.1:{busy_port} is already in use" in done.stderr
    assert "--port" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "curl" not in done.stdout  # no walk-through for the other process
    assert count(db_url, "SELECT count(*) FROM sites WHERE id = %s") == 0
    assert not (home / TOKEN_FILE).exists()


def test_the_admin_token_is_kept_and_reset_starts_the_site_over(
    db_url: str, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    first = run_demo(db_url, home)
    token = token_in(first)
    assert token.startswith("adm_")
    path = home / TOKEN_FILE
    assert path.read_text().strip() == token
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    second = run_demo(db_url, home)
    assert token_in(second) == token
    keys = "SELECT count(*) FROM api_keys WHERE site_id = %s"
    assert count(db_url, keys) == 4  # each run adds a pair; the old ones keep working

    reset = run_demo(db_url, home, "--reset")
    assert token_in(reset) == token
    assert count(db_url, keys) == 2


def test_each_walk_through_uses_fresh_idempotency_keys(db_url: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    runs = [run_demo(db_url, home) for _ in range(2)]
    keys = [
        [
            line.split(":", 1)[1].strip(" '\\")
            for line in out.splitlines()
            if "chargebee-idempotency-key" in line
        ]
        for out in runs
    ]
    assert all(len(k) == len(set(k)) >= 2 for k in keys), keys
    assert not set(keys[0]) & set(keys[1]), keys


def test_the_demo_offer_text_names_its_options() -> None:
    offer = demo_offer("http://127.0.0.1:8080")
    text = offer["content"]["description"].lower()
    assert "pause" not in text  # there is no pause option
    for option in offer["options"]:
        words = {
            "discount": "20% off",
            "upgrade": "pro",
            "talk": "talk",
            "gift": "gift",
            "call": "call",
        }
        assert words[option["id"]] in text, option["id"]


def test_the_demo_prints_a_console_user_that_can_sign_in(db_url: str, tmp_path: Path) -> None:
    """The walk-through's console line names a user and a password (kept 0600 in the home, the
    same across runs) that the console's own sign-in accepts."""
    home = tmp_path / "home"
    out = run_demo(db_url, home)
    line = next(line for line in out.splitlines() if "/console" in line)
    password = (home / CONSOLE_PASSWORD_FILE).read_text().strip()
    assert CONSOLE_USER in line and password in line
    assert stat.S_IMODE((home / CONSOLE_PASSWORD_FILE).stat().st_mode) == 0o600
    assert password in run_demo(db_url, home)  # kept across runs

    async def sign_in() -> bool:
        db = Database(db_url, min_size=1, max_size=1)
        await db.open()
        try:
            async with db.connection() as conn:
                signed = await service.sign_in(
                    conn,
                    email=CONSOLE_USER,
                    password=password,
                    address=None,
                    now=datetime.now(UTC),
                    ttl=timedelta(hours=1),
                    attempts=5,
                )
                return signed is not None and signed[1].user.role == "editor"
        finally:
            await db.close()

    assert asyncio.run(sign_in())
