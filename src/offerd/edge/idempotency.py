"""``chargebee-idempotency-key`` on POSTs (spec §7.3).

The key is scoped to (site, API key, method, path). Its record is written in the same transaction
as the request's effects, and only for a successful response: an error leaves nothing behind, so
the client may retry. A duplicate that arrives while the first is still in flight waits on the
record's primary key until the first commits, then replays it: it never does the work twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from psycopg.types.json import Jsonb
from starlette.responses import Response

from offerd.db import Conn, execute, fetchone, transaction
from offerd.edge.errors import UnableToProcess

REPLAYED = "chargebee-idempotency-replayed"
_REPLAYED_HEADERS = ("content-type", "location")

_CLAIM = """
INSERT INTO idempotency_keys
    (site_id, api_key_id, method, path, key, request_hash, status, body, headers, created_at, expires_at)
VALUES (%(site)s, %(api_key)s, %(method)s, %(path)s, %(key)s, %(hash)s, 0, '', '{}', %(now)s, %(expires)s)
ON CONFLICT (site_id, api_key_id, method, path, key) DO UPDATE
SET request_hash = EXCLUDED.request_hash, status = 0, body = '', headers = '{}',
    created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at
WHERE idempotency_keys.expires_at <= EXCLUDED.created_at
RETURNING 1 AS claimed
"""

_STORED = """
SELECT request_hash, status, body, headers FROM idempotency_keys
WHERE site_id = %(site)s AND api_key_id = %(api_key)s AND method = %(method)s
  AND path = %(path)s AND key = %(key)s
"""

_RECORD = """
UPDATE idempotency_keys SET status = %(status)s, body = %(body)s, headers = %(headers)s
WHERE site_id = %(site)s AND api_key_id = %(api_key)s AND method = %(method)s
  AND path = %(path)s AND key = %(key)s
"""


@dataclass(frozen=True, slots=True)
class Scope:
    site: str
    api_key: str
    method: str
    path: str
    key: str
    request_hash: bytes

    def params(self) -> dict[str, Any]:
        return {
            "site": self.site,
            "api_key": self.api_key,
            "method": self.method,
            "path": self.path,
            "key": self.key,
        }


def request_hash(params: dict[str, Any]) -> bytes:
    """Same parameters, however encoded (JSON or form, any key order), hash the same."""
    return hashlib.sha256(orjson.dumps(params, option=orjson.OPT_SORT_KEYS)).digest()


async def run(
    conn: Conn,
    scope: Scope | None,
    work: Callable[[Conn], Awaitable[Response]],
    *,
    now: datetime,
    ttl_seconds: int,
) -> Response:
    """Run ``work`` once per key: in one transaction with the key's record, or replay the record."""
    if scope is None:
        return await work(conn)
    try:
        return await _run_recorded(conn, scope, work, now=now, ttl_seconds=ttl_seconds)
    except _NotRecorded as unrecorded:
        return unrecorded.response


class _NotRecorded(Exception):
    """Rolls the key's claim back when the work answered with something other than success."""

    def __init__(self, response: Response) -> None:
        self.response = response


async def _run_recorded(
    conn: Conn,
    scope: Scope,
    work: Callable[[Conn], Awaitable[Response]],
    *,
    now: datetime,
    ttl_seconds: int,
) -> Response:
    async with transaction(conn):
        claimed = await fetchone(
            conn,
            _CLAIM,
            {
                **scope.params(),
                "hash": scope.request_hash,
                "now": now,
                "expires": now + timedelta(seconds=ttl_seconds),
            },
        )
        if claimed is None:
            stored = await fetchone(conn, _STORED, scope.params())
            assert stored is not None  # the conflicting row is committed and unexpired
            return _replay(scope, stored)
        response = await work(conn)
        if not 200 <= response.status_code < 300:
            raise _NotRecorded(response)
        headers = {k: v for k, v in response.headers.items() if k.lower() in _REPLAYED_HEADERS}
        await conn.execute(
            _RECORD,
            {
                **scope.params(),
                "status": response.status_code,
                "body": bytes(response.body),
                "headers": Jsonb(headers),
            },
        )
        return response


def _replay(scope: Scope, stored: dict[str, Any]) -> Response:
    if bytes(stored["request_hash"]) != scope.request_hash:
        raise UnableToProcess(
            "The idempotency key was already used with different request parameters"
        )
    headers = dict(stored["headers"])
    headers[REPLAYED] = "true"
    return Response(content=bytes(stored["body"]), status_code=stored["status"], headers=headers)


async def purge_expired(conn: Conn, now: datetime) -> int:
    """The periodic sweep: forget keys past their time (a replay after that is a new request)."""
    return await execute(conn, "DELETE FROM idempotency_keys WHERE expires_at < %s", (now,))
