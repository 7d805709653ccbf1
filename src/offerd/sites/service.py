"""Sites and their API keys, for the admin API, the edge's authentication, the command line and
the other slices (which ask for a site here, never of its table)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from psycopg.rows import DictRow

from offerd.common.secrets import SecretBox
from offerd.db import Conn, in_batches
from offerd.notifications.signing import new_secret
from offerd.sites import store
from offerd.sites.models import KeyKind, Site, SiteIn


@dataclass(frozen=True, slots=True)
class KeyOwner:
    """Whose an API key is: the site, and which of its keys, of what kind."""

    site: Site
    key_id: str
    kind: KeyKind


async def save(conn: Conn, site_id: str, body: SiteIn, now: datetime) -> tuple[Site, bool]:
    """The site as saved, and whether this created it."""
    row = await store.upsert_site(conn, site_id, body, now)
    return Site.from_row(row), bool(row["created"])


async def get(conn: Conn, site_id: str) -> Site | None:
    row = await store.get_site(conn, site_id)
    return Site.from_row(row) if row is not None else None


async def list_sites(conn: Conn, *, after: str | None, limit: int) -> list[Site]:
    """Sites in id order, from after ``after``."""
    return [Site.from_row(r) for r in await store.list_sites(conn, after=after, limit=limit)]


async def delete(conn: Conn, site_id: str) -> None:
    """The site and everything it owns (the demo's ``--reset``)."""
    await store.delete_site(conn, site_id)


async def catalog_changed(conn: Conn, site_id: str) -> None:
    """A new catalog version: every process recompiles the site's offers on its next request."""
    await store.bump_catalog(conn, site_id)


async def ensure_webhook_secret(conn: Conn, site_id: str, box: SecretBox) -> str:
    """The site's signing secret for processing webhooks, made on first use. Stored encrypted
    (``OFFERD_SECRET_KEY``) like every other secret; returned in the clear."""
    stored = await store.ensure_webhook_secret(conn, site_id, box.encrypt(new_secret()))
    return box.decrypt(stored)


async def rotate_webhook_secret(conn: Conn, site_id: str, box: SecretBox) -> str:
    """A new signing secret for processing webhooks (the caller shows it once)."""
    secret = new_secret()
    await store.rotate_webhook_secret(conn, site_id, box.encrypt(secret))
    return secret


async def reseal_webhook_secrets(
    conn: Conn,
    box: SecretBox,
    *,
    rotate: bool,
    batch: int = 200,
    progress: Callable[[int], None] = lambda _: None,
) -> int:
    """Encrypt the sites' processing-webhook secrets: all with the newest key (``rotate``), or
    those stored before encryption. A transaction per batch; idempotent."""
    fn = box.rotate if rotate else lambda v: box.seal(v) or v

    async def each(conn: Conn, row: DictRow) -> bool:
        sealed = fn(row["webhook_secret"])
        if sealed == row["webhook_secret"]:
            return False
        await store.rotate_webhook_secret(conn, row["id"], sealed)
        return True

    return await in_batches(
        conn,
        start="",
        fetch=lambda conn, after: store.secrets_after(
            conn, after, limit=batch, plaintext_only=not rotate
        ),
        key=lambda row: str(row["id"]),
        each=each,
        progress=progress,
    )


async def count_webhook_secrets(conn: Conn) -> int:
    return await store.count_webhook_secrets(conn)


async def add_key(
    conn: Conn,
    *,
    key_id: str,
    site_id: str,
    kind: str,
    name: str,
    key_hash: bytes,
    hint: str,
    now: datetime,
) -> DictRow:
    return await store.insert_key(
        conn,
        key_id=key_id,
        site_id=site_id,
        kind=kind,
        name=name,
        key_hash=key_hash,
        hint=hint,
        now=now,
    )


async def list_keys(conn: Conn, site_id: str) -> list[DictRow]:
    return await store.list_keys(conn, site_id)


async def revoke_key(conn: Conn, site_id: str, key_id: str, now: datetime) -> DictRow | None:
    return await store.revoke_key(conn, site_id, key_id, now)


async def key_owner(conn: Conn, key_hash: bytes) -> KeyOwner | None:
    """The site an unrevoked key (by its hash) belongs to."""
    row = await store.key_by_hash(conn, key_hash)
    if row is None:
        return None
    return KeyOwner(Site.from_row(row), row["key_id"], row["kind"])
