"""Secrets encrypted at rest (Fernet), with key rotation without downtime.

``OFFERD_SECRET_KEY`` is a comma-separated list of Fernet keys, newest first: values are
encrypted with the first and decrypted with any, so a new key is rolled out by putting it in
front, restarting, running ``offerd secrets rotate``, and only then dropping the old one.

Stored values carry the prefix ``fernet:``, so code can tell an encrypted value from one written
before encryption existed (those are encrypted at ``offerd migrate`` time, and read as they are
until then).

With the embedded database and no key, one is generated under ``OFFERD_HOME`` (fine for a
laptop, whose database lives next to it); with an external database the key must be set, since a
key generated on one machine would leave the others unable to read what it wrote.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import structlog
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from offerd.settings import Settings

log = structlog.get_logger("offerd.secrets")

PREFIX = "fernet:"
KEY_FILE = "secret.key"


class SecretKeyError(Exception):
    """OFFERD_SECRET_KEY unset with an external database, or not a Fernet key: offerd refuses
    to start (one line, never the key)."""


class SecretUnreadable(Exception):
    """A stored value none of the configured keys decrypts (a key was dropped too early)."""


def generate_key() -> str:
    return Fernet.generate_key().decode()


def is_sealed(value: str) -> bool:
    return value.startswith(PREFIX)


class SecretBox:
    """Encrypts with the first key, decrypts with any of them."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ValueError("at least one key is needed")
        try:
            self._fernet = MultiFernet([Fernet(k.strip().encode()) for k in keys])
        except (ValueError, TypeError):
            raise ValueError(
                "OFFERD_SECRET_KEY: each key must be 32 url-safe Base64-encoded bytes "
                "(make one with `offerd secrets generate-key`)"
            ) from None

    def encrypt(self, plaintext: str) -> str:
        return PREFIX + self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, stored: str) -> str:
        """The plaintext; a value without the prefix (stored before encryption) as it is."""
        if not is_sealed(stored):
            return stored
        try:
            return self._fernet.decrypt(stored.removeprefix(PREFIX).encode()).decode()
        except InvalidToken:
            raise SecretUnreadable(
                "a stored secret matches none of the keys in OFFERD_SECRET_KEY"
            ) from None

    def rotate(self, stored: str) -> str:
        """The value encrypted with the newest key (a plaintext one is encrypted)."""
        if not is_sealed(stored):
            return self.encrypt(stored)
        try:
            token = self._fernet.rotate(stored.removeprefix(PREFIX).encode())
        except InvalidToken:
            raise SecretUnreadable(
                "a stored secret matches none of the keys in OFFERD_SECRET_KEY"
            ) from None
        return PREFIX + token.decode()

    def seal(self, value: str | None) -> str | None:
        """Encrypt unless absent or already encrypted (idempotent)."""
        if value is None or is_sealed(value):
            return value
        return self.encrypt(value)


def split_keys(raw: str) -> list[str]:
    return [k.strip() for k in raw.split(",") if k.strip()]


def _home_key(home: Path) -> str:
    """The embedded database's key under OFFERD_HOME, made once (0600, created atomically: a
    second process starting at the same moment reads the first one's key, never half a file)."""
    path = home / KEY_FILE
    if path.exists():
        return path.read_text().strip()
    home.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=home, prefix=".secret-key-")  # mode 0600
    try:
        with os.fdopen(fd, "w") as f:
            f.write(generate_key() + "\n")
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileExistsError):  # another process made it first
            os.link(tmp, path)
    finally:
        os.unlink(tmp)
    return path.read_text().strip()


_boxes: dict[tuple[str, str, str], SecretBox] = {}
_warned = False


def box_for(settings: Settings) -> SecretBox:
    """The process's box for these settings (built once)."""
    global _warned
    raw = settings.secret_key.get_secret_value() if settings.secret_key else ""
    cache_key = (raw, settings.database_url or "", str(settings.home))
    box = _boxes.get(cache_key)
    if box is not None:
        return box
    keys = split_keys(raw)
    if not keys:
        if settings.database_url:
            raise SecretKeyError(
                "OFFERD_SECRET_KEY is not set: it is required with an external database "
                "(OFFERD_DATABASE_URL); make one with `offerd secrets generate-key`"
            )
        keys = [_home_key(settings.home)]
        if not _warned:
            _warned = True
            log.warning(
                "secrets.key_from_home",
                path=str(settings.home / KEY_FILE),
                message="secrets are encrypted with a key kept under OFFERD_HOME; "
                "set OFFERD_SECRET_KEY in production",
            )
    try:
        box = _boxes[cache_key] = SecretBox(keys)
    except ValueError as exc:
        raise SecretKeyError(str(exc)) from None
    return box
