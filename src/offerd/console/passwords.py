"""Console passwords: argon2id (argon2-cffi's defaults, RFC 9106's low-memory profile), and a
hash computed for unknown emails too so a sign-in takes as long whether the email exists or not.

Hashing takes tens of milliseconds of CPU: it runs in a thread so the event loop keeps serving.
"""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_HASHER = PasswordHasher()
MIN_LENGTH = 10
MAX_LENGTH = 256
# checked against when the email is unknown: the same work as a real check
_DUMMY = _HASHER.hash("offerd-console-unknown-user")


def password_problem(password: str) -> str | None:
    if len(password) < MIN_LENGTH:
        return f"must be at least {MIN_LENGTH} characters"
    if len(password) > MAX_LENGTH:
        return f"must be at most {MAX_LENGTH} characters"
    return None


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_HASHER.hash, password)


def _verify(stored: str | None, password: str) -> bool:
    try:
        return _HASHER.verify(stored or _DUMMY, password[:MAX_LENGTH]) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def verify(stored: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored`` (None: an unknown user; always False)."""
    return await asyncio.to_thread(_verify, stored, password)
