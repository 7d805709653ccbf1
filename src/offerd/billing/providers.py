"""Which billing provider a site uses, with its credentials encrypted at rest (DESIGN.md §7).

A site without a row uses the built-in ledger. The admin API shows a provider with a hint of
its key (the last four characters), never a credential: the credentials are decrypted only by
``credentials`` for the code that calls the provider."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from psycopg.rows import DictRow

from offerd.billing import providers_store as store
from offerd.billing.provider_models import KEY_FIELD, SECRET_FIELDS, ProviderIn
from offerd.common import addresses
from offerd.common.secrets import SecretBox
from offerd.db import Conn, in_batches, transaction
from offerd.edge.errors import ParamWrongValue


def check_destination(provider: ProviderIn, *, allow_private: bool) -> None:
    """``api_base`` goes through the outbound guard notification destinations go through: https
    only, and never a private, loopback or link-local address, unless
    OFFERD_ALLOW_PRIVATE_DESTINATIONS is set (tests, a local fake)."""
    base = getattr(provider, "api_base", None)
    if base is None or allow_private:
        return
    if not base.startswith("https://"):
        raise ParamWrongValue(
            "api_base",
            "must be an https URL (set OFFERD_ALLOW_PRIVATE_DESTINATIONS=1 to allow http)",
        )
    reason = addresses.refused_literal(base)
    if reason is not None:
        raise ParamWrongValue("api_base", reason)


def _map_secrets(kind: str, config: Mapping[str, Any], fn: Callable[[str], str]) -> dict[str, Any]:
    out = dict(config)
    for name in SECRET_FIELDS.get(kind, ()):
        if isinstance(out.get(name), str):
            out[name] = fn(out[name])
    return out


async def save(
    conn: Conn, site_id: str, provider: ProviderIn, *, now: datetime, box: SecretBox
) -> DictRow:
    config = provider.model_dump(exclude={"type"}, exclude_none=True)
    sealed = _map_secrets(provider.type, config, box.encrypt)
    async with transaction(conn):
        return await store.upsert(conn, site_id=site_id, type=provider.type, config=sealed, now=now)


async def get(conn: Conn, site_id: str) -> DictRow | None:
    return await store.get(conn, site_id)


def credentials(row: Mapping[str, Any], box: SecretBox) -> dict[str, Any]:
    """The provider's configuration with its credentials decrypted, for calling it."""
    return _map_secrets(row["type"], row["config"], box.decrypt)


def _hint(value: str) -> str:
    return "…" + value[-4:] if len(value) > 8 else "…"


def resource(row: Mapping[str, Any] | None, box: SecretBox) -> dict[str, Any]:
    """The provider as the admin API shows it; no row is the built-in ledger."""
    kind = row["type"] if row else "ledger"
    config = dict(row["config"]) if row else {}
    out: dict[str, Any] = {
        "object": "billing_provider",
        "type": kind,
        "status": row["status"] if row else "healthy",
        "secret_key_hint": None,
        "api_base": config.get("api_base"),
    }
    if row and kind in KEY_FIELD:
        out["secret_key_hint"] = _hint(box.decrypt(config[KEY_FIELD[kind]]))
    if kind == "chargebee":
        out["site"] = config.get("site")
        out["webhook_username"] = config.get("webhook_username")
    if row:
        out["updated_at"] = int(row["updated_at"].timestamp())
    return out


async def reseal(
    conn: Conn,
    box: SecretBox,
    *,
    rotate: bool,
    batch: int = 200,
    progress: Callable[[int], None] = lambda _: None,
) -> int:
    """Encrypt stored credentials: all with the newest key (``rotate``), or only those not yet
    encrypted. A transaction per batch; idempotent, so safe to run again after a crash."""
    fn = box.rotate if rotate else lambda v: box.seal(v) or v

    async def each(conn: Conn, row: DictRow) -> bool:
        config = _map_secrets(row["type"], row["config"], fn)
        if config == row["config"]:
            return False
        await store.set_config(conn, row["site_id"], config)
        return True

    return await in_batches(
        conn,
        start="",
        fetch=lambda conn, after: store.batch_after(conn, after, limit=batch),
        key=lambda row: str(row["site_id"]),
        each=each,
        progress=progress,
    )


async def count(conn: Conn) -> int:
    return await store.count(conn)
