"""Console users, sign-in and sessions.

- **Users** are created (or their password and role reset) by ``offerd users add``; a role is
  ``viewer`` (sees everything) or ``editor`` (may also change things).
- **Sign-in** checks the argon2id hash. Failed attempts are counted in PostgreSQL (every process
  agrees) per email and per client address over ``WINDOW``; past
  ``console_login_attempts`` per email (four times that per address) sign-in is refused with a
  429 until the oldest failure leaves the window. A success clears its email's failures.
- **Sessions**: the cookie holds a 192-bit random token; only its SHA-256 is stored, with the
  session's CSRF token (the synchronizer token every form and htmx request sends back) and its
  expiry. Signing out deletes the row, so a stolen cookie dies with it.
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, get_args

from offerd.common.ids import new_id, secret_token
from offerd.console import passwords, store
from offerd.db import Conn, transaction

Role = Literal["viewer", "editor"]
ROLES: tuple[str, ...] = get_args(Role)
WINDOW = timedelta(minutes=15)
PER_ADDRESS_FACTOR = 4
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


class UserError(ValueError):
    """A user that cannot be created as asked (bad email, password or role)."""


class TooManyAttempts(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed sign-ins; retry in {retry_after} s")
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class User:
    id: str
    email: str
    role: Role

    @property
    def can_edit(self) -> bool:
        return self.role == "editor"


@dataclass(frozen=True, slots=True)
class Session:
    user: User
    csrf_token: str
    expires_at: datetime


def token_hash(token: str) -> bytes:
    # a 192-bit random token: a fast hash is right, nothing to brute-force
    return hashlib.sha256(token.encode()).digest()


def normalize_email(email: str) -> str:
    return email.strip().lower()


async def add_user(
    conn: Conn, *, email: str, password: str, role: str, now: datetime
) -> tuple[User, bool]:
    """Create a user, or reset an existing one's password and role (and enable it). Returns the
    user and whether it was new."""
    email = normalize_email(email)
    if not _EMAIL.match(email) or len(email) > 254:
        raise UserError(f"{email!r} is not an email address")
    if role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}")
    problem = passwords.password_problem(password)
    if problem:
        raise UserError(f"the password {problem}")
    hashed = await passwords.hash_password(password)
    async with transaction(conn):
        row = await store.upsert_user(
            conn, user_id=new_id("usr"), email=email, password_hash=hashed, role=role, now=now
        )
    return User(row["id"], row["email"], row["role"]), bool(row["created"])


async def list_users(conn: Conn) -> list[dict[str, object]]:
    return [dict(r) for r in await store.list_users(conn)]


async def disable_user(conn: Conn, email: str, now: datetime) -> bool:
    """Disable a user and end their sessions; whether there was such a user."""
    async with transaction(conn):
        return await store.disable_user(conn, normalize_email(email), now) is not None


def _failure_keys(email: str, address: str | None) -> list[str]:
    keys = [f"email:{email}"]
    if address:
        keys.append(f"ip:{address}")
    return keys


async def _check_attempts(conn: Conn, keys: list[str], *, now: datetime, limit: int) -> None:
    for row in await store.recent_failures(conn, keys, now - WINDOW):
        allowed = limit * (PER_ADDRESS_FACTOR if row["key"].startswith("ip:") else 1)
        if row["n"] >= allowed:
            wait = (row["oldest"] + WINDOW - now).total_seconds()
            raise TooManyAttempts(max(1, math.ceil(wait)))


async def sign_in(
    conn: Conn,
    *,
    email: str,
    password: str,
    address: str | None,
    now: datetime,
    ttl: timedelta,
    attempts: int,
) -> tuple[str, Session] | None:
    """A new session's cookie token and the session, or None for a wrong email or password.
    Raises ``TooManyAttempts`` past the rate limit (checked before the password)."""
    email = normalize_email(email)[:254]
    keys = _failure_keys(email, address)
    await _check_attempts(conn, keys, now=now, limit=attempts)
    row = await store.user_by_email(conn, email)
    usable = row is not None and row["disabled_at"] is None
    ok = await passwords.verify(row["password_hash"] if usable and row else None, password)
    if not ok or row is None:
        async with transaction(conn):
            for key in keys:
                await store.add_failure(conn, key, now)
        return None
    token = secret_token("cs")
    csrf = secrets.token_urlsafe(32)
    expires = now + ttl
    async with transaction(conn):
        await store.clear_failures(conn, keys[0])
        await store.insert_session(
            conn,
            token_hash=token_hash(token),
            user_id=row["id"],
            csrf_token=csrf,
            now=now,
            expires_at=expires,
        )
    return token, Session(User(row["id"], row["email"], row["role"]), csrf, expires)


async def session(conn: Conn, token: str | None, now: datetime) -> Session | None:
    if not token or len(token) > 100:
        return None
    row = await store.session(conn, token_hash(token), now)
    if row is None:
        return None
    return Session(
        User(row["user_id"], row["email"], row["role"]), row["csrf_token"], row["expires_at"]
    )


async def sign_out(conn: Conn, token: str | None) -> None:
    if token and len(token) <= 100:
        await store.delete_session(conn, token_hash(token))


async def forget_expired(conn: Conn, now: datetime) -> int:
    """The periodic sweep: expired sessions and failures older than the window."""
    removed = await store.delete_expired_sessions(conn, now)
    removed += await store.forget_failures(conn, now - WINDOW)
    return removed
