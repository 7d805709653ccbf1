"""SQL for console users, their sessions and failed sign-ins (migration 0013)."""

from __future__ import annotations

from datetime import datetime

from psycopg.rows import DictRow

from offerd.db import Conn, execute, fetchall, fetchone

INSERT_USER = """
INSERT INTO console_users (id, email, password_hash, role, created_at)
VALUES (%(id)s, %(email)s, %(hash)s, %(role)s, %(now)s)
ON CONFLICT (email) DO UPDATE
SET password_hash = EXCLUDED.password_hash, role = EXCLUDED.role, disabled_at = NULL
RETURNING id, email, role, created_at, disabled_at, (xmax = 0) AS created
"""

USER_BY_EMAIL = "SELECT * FROM console_users WHERE email = %s"

LIST_USERS = "SELECT id, email, role, created_at, disabled_at FROM console_users ORDER BY email"

DISABLE_USER = """
UPDATE console_users SET disabled_at = coalesce(disabled_at, %(now)s) WHERE email = %(email)s
RETURNING id
"""

INSERT_SESSION = """
INSERT INTO console_sessions (token_hash, user_id, csrf_token, created_at, expires_at)
VALUES (%s, %s, %s, %s, %s)
"""

SESSION = """
SELECT s.csrf_token, s.expires_at, u.id AS user_id, u.email, u.role
FROM console_sessions s JOIN console_users u ON u.id = s.user_id
WHERE s.token_hash = %s AND s.expires_at > %s AND u.disabled_at IS NULL
"""

DELETE_SESSION = "DELETE FROM console_sessions WHERE token_hash = %s"
DELETE_USER_SESSIONS = "DELETE FROM console_sessions WHERE user_id = %s"
DELETE_EXPIRED = "DELETE FROM console_sessions WHERE expires_at <= %s"

RECENT_FAILURES = """
SELECT key, count(*) AS n, min(failed_at) AS oldest FROM console_login_failures
WHERE key = ANY(%(keys)s) AND failed_at > %(since)s GROUP BY key
"""

INSERT_FAILURE = "INSERT INTO console_login_failures (key, failed_at) VALUES (%s, %s)"
CLEAR_FAILURES = "DELETE FROM console_login_failures WHERE key = %s"
FORGET_FAILURES = "DELETE FROM console_login_failures WHERE failed_at <= %s"


async def upsert_user(
    conn: Conn, *, user_id: str, email: str, password_hash: str, role: str, now: datetime
) -> DictRow:
    row = await fetchone(
        conn,
        INSERT_USER,
        {"id": user_id, "email": email, "hash": password_hash, "role": role, "now": now},
    )
    assert row is not None
    return row


async def user_by_email(conn: Conn, email: str) -> DictRow | None:
    return await fetchone(conn, USER_BY_EMAIL, (email,))


async def list_users(conn: Conn) -> list[DictRow]:
    return await fetchall(conn, LIST_USERS)


async def disable_user(conn: Conn, email: str, now: datetime) -> str | None:
    row = await fetchone(conn, DISABLE_USER, {"email": email, "now": now})
    if row is None:
        return None
    await execute(conn, DELETE_USER_SESSIONS, (row["id"],))
    return str(row["id"])


async def insert_session(
    conn: Conn,
    *,
    token_hash: bytes,
    user_id: str,
    csrf_token: str,
    now: datetime,
    expires_at: datetime,
) -> None:
    await execute(conn, INSERT_SESSION, (token_hash, user_id, csrf_token, now, expires_at))


async def session(conn: Conn, token_hash: bytes, now: datetime) -> DictRow | None:
    return await fetchone(conn, SESSION, (token_hash, now))


async def delete_session(conn: Conn, token_hash: bytes) -> None:
    await execute(conn, DELETE_SESSION, (token_hash,))


async def delete_expired_sessions(conn: Conn, now: datetime) -> int:
    return await execute(conn, DELETE_EXPIRED, (now,))


async def recent_failures(conn: Conn, keys: list[str], since: datetime) -> list[DictRow]:
    return await fetchall(conn, RECENT_FAILURES, {"keys": keys, "since": since})


async def add_failure(conn: Conn, key: str, now: datetime) -> None:
    await execute(conn, INSERT_FAILURE, (key, now))


async def clear_failures(conn: Conn, key: str) -> None:
    await execute(conn, CLEAR_FAILURES, (key,))


async def forget_failures(conn: Conn, before: datetime) -> int:
    return await execute(conn, FORGET_FAILURES, (before,))
