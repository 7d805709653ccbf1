"""Each process keeps every site's active offers compiled and ranked, keyed by the site's
``catalog_version`` (bumped by every catalog write), so decisioning does no per-offer work but
evaluating rules."""

from __future__ import annotations

from datetime import datetime

from offerd.db import Conn
from offerd.offers import store
from offerd.offers.targeting import Candidate, compile_rule, rank
from offerd.sites.models import Site


class Catalog:
    def __init__(self) -> None:
        self._by_site: dict[str, tuple[int, list[Candidate]]] = {}

    async def candidates(self, conn: Conn, site: Site) -> list[Candidate]:
        hit = self._by_site.get(site.id)
        if hit is not None and hit[0] == site.catalog_version:
            return hit[1]
        rows = await store.active_offers(conn, site.id)
        ranked = rank(candidate(row) for row in rows)
        self._by_site[site.id] = (site.catalog_version, ranked)
        return ranked

    def forget(self, site_id: str | None = None) -> None:
        if site_id is None:
            self._by_site.clear()
        else:
            self._by_site.pop(site_id, None)


def candidate(row: dict[str, object]) -> Candidate:
    definition = row["definition"]
    assert isinstance(definition, dict)
    expression = definition.get("eligibility")
    starts = row["starts_at"]
    ends = row["ends_at"]
    return Candidate(
        id=str(row["id"]),
        version=int(row["version"]),  # type: ignore[call-overload]
        priority=int(row["priority"]),  # type: ignore[call-overload]
        starts_at=starts if isinstance(starts, datetime) else None,
        ends_at=ends if isinstance(ends, datetime) else None,
        business_entity_id=row["business_entity_id"] if row["business_entity_id"] else None,  # type: ignore[arg-type]
        program=compile_rule(expression) if expression else None,
        definition=definition,
    )
