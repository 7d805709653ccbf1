"""API keys: how they are made, stored (only as SHA-256 hashes) and resolved to a site.

Public API calls authenticate as Chargebee's do: HTTP Basic, the key as the username and an empty
password. ``publishable`` keys may ask for offers, report events and accept; ``full_access`` keys
may do everything. A resolved key is cached in the process for ``auth_cache_seconds``, so a
revoked key stops working everywhere within that time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from offerd.common.ids import secret_token
from offerd.db import Database
from offerd.edge.errors import AuthenticationFailed, AuthorizationFailed
from offerd.sites import service as sites
from offerd.sites.models import KeyKind, Site

KEY_PREFIX: dict[str, str] = {"full_access": "sk", "publishable": "pk"}

K = TypeVar("K")
V = TypeVar("V")


def hash_key(key: str) -> bytes:
    # Keys are 190+ random bits, so a fast hash is the right one: nothing to brute-force.
    return hashlib.sha256(key.encode()).digest()


def new_key(kind: KeyKind) -> str:
    return secret_token(KEY_PREFIX[kind], bits=192)


@dataclass(frozen=True, slots=True)
class Caller:
    site: Site
    key_id: str
    kind: KeyKind

    def require_full_access(self) -> None:
        if self.kind != "full_access":
            raise AuthorizationFailed(
                "Sorry, the API key used does not have the privileges for this operation: "
                "a full_access key is required"
            )


class TTLCache(Generic[K, V]):
    """A small per-process cache; entries live ``ttl`` seconds of monotonic time."""

    def __init__(self, ttl: float, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._data: dict[K, tuple[float, V]] = {}

    async def get(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        now = time.monotonic()
        hit = self._data.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        value = await load()
        if self.ttl > 0:
            if len(self._data) >= self.max_entries:
                self._data.clear()
            self._data[key] = (now + self.ttl, value)
        return value

    def clear(self) -> None:
        self._data.clear()


class Authenticator:
    def __init__(self, db: Database, *, ttl: float, base_domain: str | None) -> None:
        self.db = db
        self.base_domain = base_domain.lower().strip(".") if base_domain else None
        self._keys: TTLCache[bytes, Caller | None] = TTLCache(ttl)
        self._sites: TTLCache[str, Site | None] = TTLCache(ttl)

    def invalidate(self) -> None:
        self._keys.clear()
        self._sites.clear()

    async def site(self, site_id: str) -> Site | None:
        async def load() -> Site | None:
            async with self.db.connection() as conn:
                return await sites.get(conn, site_id)

        return await self._sites.get(site_id, load)

    async def resolve(self, key: str) -> Caller | None:
        digest = hash_key(key)

        async def load() -> Caller | None:
            async with self.db.connection() as conn:
                owner = await sites.key_owner(conn, digest)
            if owner is None:
                return None
            return Caller(site=owner.site, key_id=owner.key_id, kind=owner.kind)

        return await self._keys.get(digest, load)

    async def authenticate(self, authorization: str | None, host: str | None) -> Caller:
        key = basic_username(authorization)
        if not key:
            raise AuthenticationFailed(
                "Sorry, authentication failed. Send your API key as the HTTP Basic username"
            )
        caller = await self.resolve(key)
        if caller is None:
            raise AuthenticationFailed("Sorry, authentication failed. Invalid API key")
        named = self.site_in_host(host)
        if named is not None and named != caller.site.id:
            raise AuthenticationFailed(
                f"Sorry, authentication failed. The API key is not valid for site {named!r}"
            )
        return caller

    def site_in_host(self, host: str | None) -> str | None:
        """``{site}.grow.{BASE_DOMAIN}`` or ``{site}.{BASE_DOMAIN}`` -> site; anything else -> None."""
        if not self.base_domain or not host:
            return None
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        name = name.lower().rstrip(".")
        suffix = "." + self.base_domain
        if not name.endswith(suffix):
            return None
        label = name[: -len(suffix)]
        if label.endswith(".grow"):
            label = label[: -len(".grow")]
        if not label or "." in label:
            return None
        return label


def basic_username(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    username = decoded.split(":", 1)[0]
    return username or None


def check_admin_token(authorization: str | None, expected: str | None) -> None:
    if expected is None:
        raise AuthenticationFailed("The admin API is disabled: set OFFERD_ADMIN_TOKEN to enable it")
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        token.strip().encode(), expected.encode()
    ):
        raise AuthenticationFailed("Sorry, authentication failed. Invalid admin token")
