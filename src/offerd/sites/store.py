"""SQL for sites and API keys."""

from __future__ import annotations

from datetime import datetime

from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from offerd.db import Conn, fetchall, fetchone
from offerd.sites.models import SiteIn

UPSERT_SITE = """
INSERT INTO sites (id, name, brand, brands, settings, created_at, updated_at)
VALUES (%(id)s, %(name)s, %(brand)s, %(brands)s, %(settings)s, %(now)s, %(now)s)
ON CONFLICT (id) DO UPDATE
SET name = EXCLUDED.name, brand = EXCLUDED.brand, brands = EXCLUDED.brands,
    settings = EXCLUDED.settings,
    catalog_version = sites.catalog_version + 1, updated_at = EXCLUDED.updated_at
RETURNING *, (xmax = 0) AS created
"""

GET_SITE = "SELECT * FROM sites WHERE id = %s"

BUMP_CATALOG = "UPDATE sites SET catalog_version = catalog_version + 1 WHERE id = %s"

INSERT_KEY = """
INSERT INTO api_keys (id, site_id, kind, name, key_hash, key_hint, created_at)
VALUES (%s, %s, %s, %s, %s, %s, %s)
RETURNING id, site_id, kind, name, key_hint, created_at, revoked_at
"""

LIST_KEYS = """
SELECT id, site_id, kind, name, key_hint, created_at, revoked_at FROM api_keys
WHERE site_id = %s ORDER BY created_at, id
"""

REVOKE_KEY = """
UPDATE api_keys SET revoked_at = coalesce(revoked_at, %s)
WHERE site_id = %s AND id = %s
RETURNING id, site_id, kind, name, key_hint, created_at, revoked_at
"""

KEY_BY_HASH = """
SELECT k.id AS key_id, k.kind, s.*
FROM api_keys k JOIN sites s ON s.id = k.site_id
WHERE k.key_hash = %s AND k.revoked_at IS NULL
"""


async def upsert_site(conn: Conn, site_id: str, body: SiteIn, now: datetime) -> DictRow:
    brands = [b.model_dump() for b in body.all_brands]
    row = await fetchone(
        conn,
        UPSERT_SITE,
        {
            "id": site_id,
            "name": body.name,
            "brand": Jsonb(brands[0]) if brands else None,
            "brands": Jsonb(brands),
            "settings": Jsonb(body.settings.model_dump(exclude_defaults=True)),
            "now": now,
        },
    )
    assert row is not None
    return row


LIST_SITES = """
SELECT * FROM sites WHERE (%(after)s::text IS NULL OR id > %(after)s) ORDER BY id LIMIT %(limit)s
"""


async def list_sites(conn: Conn, *, after: str | None, limit: int) -> list[DictRow]:
    return await fetchall(conn, LIST_SITES, {"after": after, "limit": limit})


async def get_site(conn: Conn, site_id: str) -> DictRow | None:
    return await fetchone(conn, GET_SITE, (site_id,))


# Children first where a reference between two of the site's tables has no ON DELETE CASCADE;
# the rest goes with the site.
async def delete_site(conn: Conn, site_id: str) -> bool:
    """Remove a site and everything it owns (``offerd demo --reset``): every table's rows of the
    site go with it by their ``ON DELETE CASCADE`` foreign keys, in this one statement."""
    cur = await conn.execute("DELETE FROM sites WHERE id = %s", (site_id,))
    return cur.rowcount > 0


async def bump_catalog(conn: Conn, site_id: str) -> None:
    await conn.execute(BUMP_CATALOG, (site_id,))


async def insert_key(
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
    row = await fetchone(conn, INSERT_KEY, (key_id, site_id, kind, name, key_hash, hint, now))
    assert row is not None
    return row


async def list_keys(conn: Conn, site_id: str) -> list[DictRow]:
    return await fetchall(conn, LIST_KEYS, (site_id,))


async def revoke_key(conn: Conn, site_id: str, key_id: str, now: datetime) -> DictRow | None:
    return await fetchone(conn, REVOKE_KEY, (now, site_id, key_id))


async def key_by_hash(conn: Conn, key_hash: bytes) -> DictRow | None:
    return await fetchone(conn, KEY_BY_HASH, (key_hash,))


ENSURE_SECRET = """
UPDATE sites SET webhook_secret = coalesce(webhook_secret, %s) WHERE id = %s
RETURNING webhook_secret
"""
ROTATE_SECRET = "UPDATE sites SET webhook_secret = %s WHERE id = %s RETURNING webhook_secret"


SECRETS_AFTER = """
SELECT id, webhook_secret FROM sites
WHERE id > %(after)s AND webhook_secret IS NOT NULL
  AND (NOT %(plaintext_only)s OR webhook_secret NOT LIKE 'fernet:%%')
ORDER BY id LIMIT %(limit)s
"""
COUNT_SECRETS = "SELECT count(*) AS n FROM sites WHERE webhook_secret IS NOT NULL"


async def ensure_webhook_secret(conn: Conn, site_id: str, sealed_new: str) -> str:
    """The site's signing secret for processing webhooks as stored (``sealed_new`` is stored if
    it has none yet)."""
    row = await fetchone(conn, ENSURE_SECRET, (sealed_new, site_id))
    assert row is not None
    secret: str = row["webhook_secret"]
    return secret


async def rotate_webhook_secret(conn: Conn, site_id: str, sealed: str) -> None:
    await conn.execute(ROTATE_SECRET, (sealed, site_id))


async def secrets_after(
    conn: Conn, after: str, *, limit: int, plaintext_only: bool
) -> list[DictRow]:
    values = {"after": after, "limit": limit, "plaintext_only": plaintext_only}
    return await fetchall(conn, SECRETS_AFTER, values)


async def count_webhook_secrets(conn: Conn) -> int:
    row = await fetchone(conn, COUNT_SECRETS)
    assert row is not None
    n: int = row["n"]
    return n
