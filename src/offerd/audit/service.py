"""Recording and reading the audit log.

An entry says who (``actor``: ``user:<email>`` for a console user, ``admin_api`` for the admin
token), on which site, did what (``action``, e.g. ``offer.save``) to what (``target``, e.g.
``offer:winback``), and the target's state before and after (None where there was none: a
creation has no before, a revocation of a key keeps its row). Secrets never go in: a caller
records resources as the admin API shows them (hints, never the secret).

Entries are written in the transaction of the change where the change has one, so a change and
its entry are kept or lost together.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from offerd.audit import store
from offerd.db import Conn

ADMIN_API = "admin_api"


def user_actor(email: str) -> str:
    return f"user:{email}"


async def record(
    conn: Conn,
    *,
    at: datetime,
    actor: str,
    site_id: str | None,
    action: str,
    target: str,
    before: Any = None,
    after: Any = None,
) -> None:
    await store.insert(
        conn,
        at=at,
        actor=actor,
        site_id=site_id,
        action=action,
        target=target,
        before=before,
        after=after,
    )


def entry_resource(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "object": "audit_entry",
        "at": int(row["at"].timestamp()),
        "actor": row["actor"],
        "site_id": row["site_id"],
        "action": row["action"],
        "target": row["target"],
        "before": row["before"],
        "after": row["after"],
    }


async def entries(
    conn: Conn,
    site_id: str | None,
    *,
    target: str | None = None,
    before_id: int | None = None,
    limit: int = 50,
) -> list[Any]:
    """Newest first; ``before_id`` pages on."""
    return await store.list_entries(conn, site_id, target=target, before_id=before_id, limit=limit)
